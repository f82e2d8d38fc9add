from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from analytics import pipeline
from analytics.locks import survey_lock
from analytics.models import EstimateRun
from analytics.recompute import request_recompute
from respondents import mailing
from respondents.models import ContactAttempt, DispositionEvent, Message, Wave
from surveys.models import Survey
from tests import factories
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.conftest import login_as
from tests.services import MailServer

pytestmark = pytest.mark.django_db


def base(survey: Survey) -> str:
    return f"/manage/{survey.slug}"


def test_a_manager_adds_a_wave_and_sends_its_invitations_once(
    survey: Survey,
    manager_client: Client,
    smtp_server: MailServer,
    django_capture_on_commit_callbacks,
) -> None:
    factories.case(survey)
    factories.case(survey)
    start = timezone.localtime() - dt.timedelta(hours=1)
    manager_client.post(
        f"{base(survey)}/waves/",
        {
            "name": "Invitation",
            "kind": "invitation",
            "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (start + dt.timedelta(days=21)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    wave = Wave.objects.get(survey=survey)

    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(f"{base(survey)}/waves/{wave.pk}/send/")
    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(f"{base(survey)}/waves/{wave.pk}/send/")

    assert len(smtp_server.messages) == 2
    assert Message.objects.filter(wave=wave, status="sent").count() == 2
    assert "2 of 2 sent" in manager_client.get(f"{base(survey)}/waves/").content.decode()


@pytest.mark.parametrize("kind", ["invitation", "reminder", "other"])
def test_an_email_wave_needs_an_end_date(survey: Survey, manager_client: Client, kind: str) -> None:
    start = timezone.localtime().strftime("%Y-%m-%dT%H:%M")

    page = manager_client.post(
        f"{base(survey)}/waves/", {"name": "R", "kind": kind, "starts_at": start, "ends_at": ""}
    )

    assert page.status_code == 200
    assert "give the wave an end date" in page.content.decode()
    assert not Wave.objects.filter(survey=survey).exists()


def test_a_phone_wave_may_stay_open_ended(survey: Survey, manager_client: Client) -> None:
    start = timezone.localtime().strftime("%Y-%m-%dT%H:%M")

    manager_client.post(
        f"{base(survey)}/waves/", {"name": "Calls", "kind": "phone", "starts_at": start}
    )

    assert Wave.objects.get(survey=survey).ends_at is None


def test_sending_a_wave_without_an_end_date_is_refused_with_a_reason(
    survey: Survey, manager_client: Client, django_capture_on_commit_callbacks
) -> None:
    factories.case(survey)
    wave = Wave.objects.create(
        survey=survey, name="Old wave", kind="reminder", starts_at=timezone.now()
    )

    with django_capture_on_commit_callbacks(execute=True):
        page = manager_client.post(f"{base(survey)}/waves/{wave.pk}/send/", follow=True)

    assert "give the wave an end date" in page.content.decode()
    assert not Message.objects.filter(wave=wave).exists()


def test_the_case_page_records_a_disposition_and_a_contact(
    survey: Survey, manager_client: Client
) -> None:
    case = factories.case(survey)[0]
    now = timezone.localtime().strftime("%Y-%m-%dT%H:%M")

    manager_client.post(
        f"{base(survey)}/cases/{case.pk}/",
        {
            "form": "disposition",
            "disposition-code": "2.112",
            "disposition-at": now,
            "disposition-reason": "담당자 거절",
        },
    )
    manager_client.post(
        f"{base(survey)}/cases/{case.pk}/",
        {
            "form": "contact",
            "contact-channel": "phone",
            "contact-at": now,
            "contact-outcome": "refused",
            "contact-note": "called twice",
        },
    )

    case.refresh_from_db()
    assert case.disposition == "2.112"
    event = DispositionEvent.objects.get(case=case)
    assert event.source == "manager" and event.by is not None
    assert ContactAttempt.objects.get(case=case).note == "called twice"
    page = manager_client.get(f"{base(survey)}/cases/{case.pk}/").content.decode()
    assert "담당자 거절" in page and "called twice" in page


def test_recording_a_disposition_needs_an_explicit_choice(
    survey: Survey, manager_client: Client
) -> None:
    # given: a case that has not answered
    case = factories.case(survey)[0]
    url = f"{base(survey)}/cases/{case.pk}/"

    # when: the page is shown, and the form is sent without choosing
    page = manager_client.get(url).content.decode()
    result = manager_client.post(
        url,
        {
            "form": "disposition",
            "disposition-code": "",
            "disposition-at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        },
    )

    # then: nothing is preselected, and nothing is recorded
    start = page.index('name="disposition-code"')
    select = page[start : page.index("</select>", start)]
    assert '<option value="" selected>' in select
    assert select.count("selected") == 1
    assert result.status_code == 200 and "This field is required." in result.content.decode()
    assert not DispositionEvent.objects.filter(case=case).exists()
    case.refresh_from_db()
    assert case.disposition == "3.11"


def test_a_submitted_case_keeps_its_disposition_without_an_override(
    survey: Survey, manager_client: Client
) -> None:
    case = factories.submitted_case(survey)
    later = (timezone.localtime() + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")

    result = manager_client.post(
        f"{base(survey)}/cases/{case.pk}/",
        {
            "form": "disposition",
            "disposition-code": "2.111",
            "disposition-at": later,
            "disposition-reason": "mistake",
        },
        follow=True,
    )

    case.refresh_from_db()
    assert case.disposition == "1.1"
    assert "did not change" in result.content.decode()


def test_the_import_page_refuses_a_bad_file_and_shows_the_problems(
    survey: Survey, manager_client: Client
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("calls.csv", b"business_id,disposition,date\n1,9.9,x\n")

    page = manager_client.post(
        f"{base(survey)}/imports/", {"kind": "dispositions", "file": upload}
    ).content.decode()

    assert "Nothing was recorded" in page and "Row 2" in page
    assert not DispositionEvent.objects.exists()


def test_closing_a_wave_freezes_its_official_version_behind_the_request(
    survey: Survey, manager_client: Client, django_capture_on_commit_callbacks
) -> None:
    # given
    load_synthetic_case(survey)
    wave = Wave.objects.create(
        survey=survey,
        name="Invitation",
        kind="invitation",
        starts_at=timezone.now() - dt.timedelta(days=10),
    )

    # when: the manager closes it; the request only asks for the official version
    with django_capture_on_commit_callbacks(execute=False) as tasks:
        manager_client.post(f"{base(survey)}/waves/{wave.pk}/close/")
    wave.refresh_from_db()
    assert wave.closed_at is not None and wave.official_run is None
    assert not EstimateRun.objects.exists() and len(tasks) == 1

    # then: the task computes it, labelled with the wave
    tasks[0]()
    wave.refresh_from_db()
    assert wave.official_run == EstimateRun.objects.latest_published(survey)
    assert wave.official_run is not None and wave.official_run.wave_id == wave.pk


def test_the_sweep_finds_a_closed_wave_whose_official_version_was_lost(
    survey: Survey, django_capture_on_commit_callbacks
) -> None:
    # given: a wave closed, its task lost
    load_synthetic_case(survey)
    wave = Wave.objects.create(
        survey=survey, name="Invitation", kind="invitation", starts_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=False):
        wave.close()
        request_recompute(survey.pk, reason="wave closed", closed_wave=wave.pk)

    # when
    result = pipeline.sweep()

    # then
    wave.refresh_from_db()
    assert result["official"] == 1 and wave.official_run is not None


@pytest.mark.parametrize(
    "path", ["waves/", "imports/", "cases/{case}/", "templates/invitation/ko/"]
)
def test_fieldwork_pages_need_the_fieldwork_permission(survey: Survey, path: str) -> None:
    case = factories.case(survey)[0]
    url = f"{base(survey)}/{path.format(case=case.pk)}"

    anonymous = Client().get(url)
    no_role = login_as(None).get(url)

    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert no_role.status_code == 403


def test_the_waves_page_shows_each_waves_progress(
    survey: Survey, manager_client: Client, django_capture_on_commit_callbacks
) -> None:
    # given: three invitations queued, none sent yet
    for _ in range(3):
        factories.case(survey)
    start = timezone.now() - dt.timedelta(hours=1)
    wave = Wave.objects.create(
        survey=survey,
        name="Invitation",
        kind="invitation",
        starts_at=start,
        ends_at=start + dt.timedelta(days=21),
    )
    with django_capture_on_commit_callbacks(execute=False):
        mailing.queue_wave(wave)
    url = f"{base(survey)}/waves/{wave.pk}/progress/"

    # when / then: under way, the element asks to be refreshed
    page = manager_client.get(f"{base(survey)}/waves/").content.decode()
    assert f'data-progress-url="{url}"' in page and "0 of 3 sent · 3 waiting" in page
    # and when the wave is sent, it is final
    mailing.send_wave(wave.pk)
    partial = manager_client.get(url).content.decode()
    assert "3 of 3 sent" in partial and "data-progress-url" not in partial


@pytest.mark.django_db(transaction=True)
def test_a_wave_closed_while_a_recompute_runs_waits_for_the_survey_lock(survey: Survey) -> None:
    # given: a wave closed while another process holds the survey's recompute lock
    load_synthetic_case(survey)
    wave = Wave.objects.create(
        survey=survey, name="Invitation", kind="invitation", starts_at=timezone.now()
    )
    held, release = threading.Event(), threading.Event()

    def worker() -> None:
        with survey_lock(survey.pk) as locked:
            assert locked
            held.set()
            release.wait(timeout=30)
        connection.close()

    other = threading.Thread(target=worker)
    other.start()
    held.wait(timeout=30)
    try:
        # when: its official version is asked for
        first = pipeline.close_wave(wave)
    finally:
        release.set()
        other.join()
    swept = pipeline.sweep()

    # then: nothing ran beside the other run; the next sweep published it, once
    wave.refresh_from_db()
    assert first is None and swept["official"] == 1 and wave.official_run is not None
    assert pipeline.sweep()["official"] == 0 and wave.close() is False
