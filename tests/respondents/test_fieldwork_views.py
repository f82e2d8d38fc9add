from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from analytics.models import EstimateRun
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
            "ends_at": "",
        },
    )
    wave = Wave.objects.get(survey=survey)

    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(f"{base(survey)}/waves/{wave.pk}/send/")
        second = manager_client.post(f"{base(survey)}/waves/{wave.pk}/send/", follow=True)

    assert len(smtp_server.messages) == 2
    assert Message.objects.filter(wave=wave, status="sent").count() == 2
    assert "0 emails queued" in second.content.decode()


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


def test_closing_a_wave_freezes_its_official_version(
    survey: Survey, manager_client: Client
) -> None:
    load_synthetic_case(survey)
    wave = Wave.objects.create(
        survey=survey,
        name="Invitation",
        kind="invitation",
        starts_at=timezone.now() - dt.timedelta(days=10),
    )

    manager_client.post(f"{base(survey)}/waves/{wave.pk}/close/")

    wave.refresh_from_db()
    assert wave.closed_at is not None
    assert wave.official_run == EstimateRun.objects.latest_published(survey)


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
