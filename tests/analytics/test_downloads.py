"""The downloads pages: permissions, direct downloads, export jobs (in process and with a
real worker), and the audit log of every file served."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import openpyxl
import pyreadstat
import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from analytics import exports, pipeline
from analytics.export_jobs import export_job, sweep
from analytics.models import Download, EstimateRun, ExportJob
from respondents.models import Wave
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.conftest import client_for, staff_user
from tests.services import Worker, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def run(survey: Survey) -> EstimateRun:
    load_synthetic_case(survey)
    result = pipeline.recompute(survey, trigger="test")
    assert result is not None
    return result


def user_with(name: str, *codenames: str) -> User:
    user: User = staff_user(name=name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def url(survey: Survey, name: str = "downloads", **kwargs: Any) -> str:
    from django.urls import reverse

    return reverse(f"analytics:{name}", kwargs={"survey": survey.slug, **kwargs})


def ask(what: str, fmt: str, **fields: str) -> dict[str, str]:
    data = {"what": what, f"{what}-format": fmt, f"{what}-language": "ko"}
    data.update({f"{what}-{name}": value for name, value in fields.items()})
    return data


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.fixture
def analyst() -> User:
    return user_with("analyst", "download_results")


# --- permissions ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(run: EstimateRun) -> None:
    response = client_for(None).get(url(run.survey))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_user_without_download_results_is_refused_everywhere(run: EstimateRun) -> None:
    # given
    job = ExportJob.objects.create(survey=run.survey, what="microdata", format="csv")
    client = client_for(user_with("viewer", "view_results", "manage_fieldwork"))

    # then
    assert client.get(url(run.survey)).status_code == 403
    assert client.post(url(run.survey), ask("estimates", "csv")).status_code == 403
    for name in ("export_job", "export_job_status", "export_job_file"):
        assert client.get(url(run.survey, name, job=job.pk)).status_code == 403
    assert not Download.objects.exists()


def test_the_page_lists_every_export_with_its_formats(run: EstimateRun, analyst: User) -> None:
    # when
    response = client_for(analyst).get(url(run.survey))

    # then
    assert response.status_code == 200
    page = response.content.decode()
    for what, formats in exports.FORMATS.items():
        if what == "panel":  # the survey has no previous round
            assert "Needs a previous round with a published estimate version." in page
            continue
        assert f'value="{what}"' in page
        for fmt in formats:
            assert f'<option value="{fmt}"' in page
    assert '<option value="identified"' not in page  # not offered without the permission
    assert "fieldwork-contact" not in page
    assert f"run {run.number}" in page


def test_the_page_runs_a_fixed_number_of_queries(
    run: EstimateRun, analyst: User, django_assert_num_queries: Any
) -> None:
    client = client_for(analyst)
    for _ in range(3):
        ExportJob.objects.create(survey=run.survey, user=analyst, what="microdata", format="sav")
    with django_assert_num_queries(8):
        assert client.get(url(run.survey)).status_code == 200


def test_identified_microdata_needs_download_identified(run: EstimateRun, analyst: User) -> None:
    # when
    response = client_for(analyst).post(
        url(run.survey), ask("microdata", "csv", level="identified")
    )

    # then
    assert response.status_code == 403
    assert not ExportJob.objects.exists() and not Download.objects.exists()


def test_contact_details_need_view_contact_details(run: EstimateRun, analyst: User) -> None:
    response = client_for(analyst).post(url(run.survey), ask("fieldwork", "csv", contact="on"))
    assert response.status_code == 403
    assert not Download.objects.exists()


def test_a_format_that_does_not_fit_is_refused_with_a_message(
    run: EstimateRun, analyst: User
) -> None:
    response = client_for(analyst).post(url(run.survey), ask("estimates", "sav"))
    assert response.status_code == 400
    assert "sav is not one of the available choices" in response.content.decode()
    assert not Download.objects.exists()


# --- direct downloads -------------------------------------------------------------------------


def test_a_small_csv_streams_directly_and_is_audited(run: EstimateRun, analyst: User) -> None:
    # when
    response = client_for(analyst).post(
        url(run.survey), ask("estimates", "csv"), REMOTE_ADDR="203.0.113.9"
    )

    # then
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert f"estimates-run{run.number}" in response["Content-Disposition"]
    data = body(response)
    assert data.startswith(b"\xef\xbb\xbf")
    assert list(csv_rows(data)[0]) == list(exports.ESTIMATE_COLUMNS)
    download = Download.objects.get()
    assert (download.user, download.survey, download.what, download.format) == (
        analyst,
        run.survey,
        "estimates",
        "csv",
    )
    assert download.client == "203.0.113.9"
    assert download.parameters["run"] == run.number and not download.identified


def test_a_small_workbook_is_sent_as_a_file(run: EstimateRun, analyst: User) -> None:
    # when
    response = client_for(analyst).post(url(run.survey), ask("fieldwork", "xlsx"))

    # then
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(body(response)))
    assert book.worksheets[0].max_row == 327
    assert Download.objects.get().what == "fieldwork"


def test_contact_details_for_users_allowed_to_see_them(run: EstimateRun) -> None:
    # given
    manager = user_with("manager", "download_results", "view_contact_details")

    # when
    response = client_for(manager).post(
        url(run.survey), ask("contacts", "csv", contact="on", language="en")
    )

    # then
    header = body(response).decode("utf-8-sig").splitlines()[0]
    assert header.endswith("email,phone")
    assert Download.objects.get().parameters["contact"] is True


def test_response_rates_are_downloaded_as_csv(run: EstimateRun, analyst: User) -> None:
    response = client_for(analyst).post(url(run.survey), ask("response-rates", "csv"))
    assert response.status_code == 200
    assert csv_rows(body(response))[0]["domain"] == "all"
    assert Download.objects.get().what == "response-rates"


def test_a_closed_waves_official_version_can_be_chosen(run: EstimateRun, analyst: User) -> None:
    # given: a closed wave's official figures, then a newer provisional version
    start = timezone.now() - dt.timedelta(days=30)
    wave = Wave.objects.create(
        survey=run.survey,
        name="초청",
        kind="invitation",
        starts_at=start,
        ends_at=start + dt.timedelta(days=21),
    )
    official = pipeline.close_wave(wave)
    newer = pipeline.recompute(run.survey, trigger="test", force=True)
    assert official is not None and newer is not None

    # when
    response = client_for(analyst).post(
        url(run.survey), ask("estimates", "csv", run=str(official.number))
    )

    # then
    assert f"run{official.number}" in response["Content-Disposition"]
    assert Download.objects.get().parameters["run"] == official.number


def test_only_official_and_the_latest_provisional_versions_are_offered(
    run: EstimateRun, analyst: User
) -> None:
    # given: run 1 (provisional), the wave's official run 2, provisional runs 3 and 4
    start = timezone.now() - dt.timedelta(days=30)
    wave = Wave.objects.create(
        survey=run.survey,
        name="초청",
        kind="invitation",
        starts_at=start,
        ends_at=start + dt.timedelta(days=21),
    )
    official = pipeline.close_wave(wave)
    pipeline.recompute(run.survey, trigger="test", force=True)
    latest = pipeline.recompute(run.survey, trigger="test", force=True)
    assert official is not None and latest is not None

    # when
    page = client_for(analyst).get(url(run.survey)).content.decode()
    refused = client_for(analyst).post(url(run.survey), ask("estimates", "csv", run="1"))

    # then
    offered = set(re.findall(r'<option value="(\d+)"', page))
    assert offered == {str(official.number), str(latest.number)}
    assert "official figures of 초청" in page
    assert refused.status_code == 400


# --- export jobs ------------------------------------------------------------------------------


def test_microdata_runs_as_a_job_enqueued_after_commit(
    run: EstimateRun, analyst: User, django_capture_on_commit_callbacks: Any
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(analyst).post(url(run.survey), ask("microdata", "sav"))

    # then: a job, its task waiting for the commit, no download yet
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url(run.survey, "export_job", job=job.pk)
    assert (job.user, job.what, job.format, job.status) == (analyst, "microdata", "sav", "queued")
    assert job.parameters["run"] == run.number
    assert len(callbacks) == 1
    assert not Download.objects.exists()


def test_a_finished_job_offers_its_file_to_its_owner_only(
    run: EstimateRun, analyst: User, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the job runs in process once the request commits
    client = client_for(analyst)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(run.survey), ask("microdata", "dta"))
    job = ExportJob.objects.get()
    assert (job.status, job.progress) == ("done", 1.0)
    assert not Download.objects.exists()

    # when
    page = client.get(url(run.survey, "export_job", job=job.pk))
    status = client.get(url(run.survey, "export_job_status", job=job.pk)).json()
    response = client.get(url(run.survey, "export_job_file", job=job.pk))

    # then
    file_url = url(run.survey, "export_job_file", job=job.pk)
    assert file_url in page.content.decode()
    assert status == {"status": "done", "progress": 1.0, "percent": 100, "finished": True}
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert job.filename in response["Content-Disposition"]
    download = Download.objects.get()
    assert (download.user, download.what, download.format) == (analyst, "microdata", "dta")
    # someone else, even with the same permission, finds nothing
    other = client_for(user_with("other", "download_results"))
    for name in ("export_job", "export_job_status", "export_job_file"):
        assert other.get(url(run.survey, name, job=job.pk)).status_code == 404
    assert Download.objects.count() == 1


def test_identified_job_files_need_the_permission_at_download_time(
    run: EstimateRun, django_capture_on_commit_callbacks: Any
) -> None:
    # given: an identified export made while the permission was held
    officer = user_with("officer", "download_results", "download_identified")
    client = client_for(officer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url(run.survey), ask("microdata", "csv", level="identified"))
    job = ExportJob.objects.get()
    assert job.parameters["identified"] is True

    # when: the permission is withdrawn
    officer.user_permissions.remove(Permission.objects.get(codename="download_identified"))
    client = client_for(User.objects.get(pk=officer.pk))

    # then
    assert client.get(url(run.survey, "export_job_file", job=job.pk)).status_code == 403
    assert not Download.objects.exists()


def test_a_large_export_becomes_a_job(
    run: EstimateRun,
    analyst: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: a limit below the 326 sampled firms
    monkeypatch.setattr(exports, "DIRECT_ROW_LIMIT", 100)
    client = client_for(analyst)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(run.survey), ask("fieldwork", "csv"))
    job = ExportJob.objects.get()
    served = client.get(url(run.survey, "export_job_file", job=job.pk))

    # then
    assert response.status_code == 302
    assert len(csv_rows(body(served))) == 326
    assert Download.objects.get().what == "fieldwork"


def test_a_failed_job_says_why(run: EstimateRun, analyst: User) -> None:
    # given: a job for a run that does not exist
    job = ExportJob.objects.create(
        survey=run.survey, user=analyst, what="microdata", format="sav", parameters={"run": 99}
    )

    # when
    result = export_job(job.pk)

    # then
    job.refresh_from_db()
    assert result == "failed" and job.status == "failed"
    assert "no published run 99" in job.error
    page = client_for(analyst).get(url(run.survey, "export_job", job=job.pk))
    assert "no published run 99" in page.content.decode()
    assert (
        client_for(analyst).get(url(run.survey, "export_job_file", job=job.pk)).status_code == 404
    )


def test_a_job_runs_once(run: EstimateRun) -> None:
    job = ExportJob.objects.create(survey=run.survey, what="codebook", format="json")
    assert export_job(job.pk) == "done"
    assert export_job(job.pk) == "skipped"


def test_the_sweep_resends_lost_jobs_and_deletes_old_files(run: EstimateRun) -> None:
    # given: a job whose task was lost, and a finished job of last month
    from datetime import timedelta

    from django.utils import timezone

    lost = ExportJob.objects.create(
        survey=run.survey,
        what="codebook",
        format="csv",
        created_at=timezone.now() - timedelta(minutes=5),
    )
    old = ExportJob.objects.create(survey=run.survey, what="codebook", format="csv")
    export_job(old.pk)
    old.refresh_from_db()
    path = Path(old.file)
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=30))

    # when
    result = sweep()

    # then
    lost.refresh_from_db()
    old.refresh_from_db()
    assert result == {"sent": 1, "deleted": 1}
    assert lost.status == "done"  # eager in tests: the resent task ran
    assert old.file == "" and not path.exists()


# --- a real worker ------------------------------------------------------------------------------


@pytest.fixture
def worker_media(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Path:
    """The worker writes its files where this process serves them from (request it before
    `worker`)."""
    var = tmp_path / "worker-var"
    monkeypatch.setenv("VAR_DIR", str(var))
    settings.MEDIA_ROOT = var / "media"
    return Path(settings.MEDIA_ROOT)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_writes_the_file_and_reports_progress(
    survey: Survey, worker_media: Path, worker: Worker, tmp_path: Path
) -> None:
    # given
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None
    analyst = user_with("analyst", "download_results")
    client = client_for(analyst)

    # when
    response = client.post(url(survey), ask("microdata", "sav"))
    job = ExportJob.objects.get()
    wait_until(lambda: ExportJob.objects.get(pk=job.pk).status in ("done", "failed"), 60)

    # then
    job.refresh_from_db()
    assert response.status_code == 302
    assert (job.status, job.progress, job.error) == ("done", 1.0, "")
    served = client.get(url(survey, "export_job_file", job=job.pk))
    path = tmp_path / "served.sav"
    path.write_bytes(body(served))
    frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
    assert len(frame) == 326 and meta.missing_ranges["sf_level"]
    assert Download.objects.get().user == analyst
