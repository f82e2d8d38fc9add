from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from respondents import mailing
from respondents.models import Case, ContactAttempt, Message, MessageTemplate, Wave
from surveys.models import Response, Survey
from tests import factories
from tests.services import MailServer

pytestmark = pytest.mark.django_db


def make_wave(survey: Survey, kind: str = Wave.Kind.INVITATION, name: str = "Invitation") -> Wave:
    start = timezone.now() - dt.timedelta(days=1)
    return Wave.objects.create(
        survey=survey, name=name, kind=kind, starts_at=start, ends_at=start + dt.timedelta(days=30)
    )


def cases(survey: Survey, count: int) -> list[Case]:
    return [factories.case(survey)[0] for _ in range(count)]


def test_queueing_twice_creates_one_message_per_case(
    survey: Survey, django_capture_on_commit_callbacks
) -> None:
    cases(survey, 3)
    wave = make_wave(survey)

    with django_capture_on_commit_callbacks(execute=False):
        first = mailing.queue_wave(wave)
        second = mailing.queue_wave(wave)

    assert (first.queued, second.queued, second.already) == (3, 0, 3)
    assert Message.objects.filter(wave=wave).count() == 3


def send(wave: Wave, capture) -> None:  # type: ignore[no-untyped-def]
    with capture(execute=True):
        mailing.queue_wave(wave)


def test_an_invitation_carries_the_link_and_code_in_korean_and_english(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    case, token, code = factories.case(survey, name="(주)한빛정밀")
    wave = make_wave(survey)

    send(wave, django_capture_on_commit_callbacks)

    assert smtp_server.recipients() == [case.frame_unit.email]
    body = smtp_server.body()
    assert f"/r/{token}/" in body and code in body
    assert "(주)한빛정밀 대표님께" in body and "Dear (주)한빛정밀" in body
    message = Message.objects.get(case=case)
    assert message.status == "sent"
    assert ContactAttempt.objects.get(case=case).outcome == "sent"
    case.refresh_from_db()
    assert case.disposition == "3.19"


def test_managers_can_edit_the_template(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    factories.case(survey)
    MessageTemplate.objects.create(
        survey=survey,
        kind="invitation",
        language="en",
        subject="Please answer",
        body="Hello {name}: {link}",
    )

    send(make_wave(survey), django_capture_on_commit_callbacks)

    assert "Please answer" in smtp_server.subject()
    assert "Hello (주)테스트제조" in smtp_server.body()


def test_a_reminder_skips_completers_refusals_and_ineligibles(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    open_case, done, refused, closed, broke_off = cases(survey, 5)
    done.record_disposition("1.1", source="manager")
    refused.record_disposition("2.111", source="manager")
    closed.record_disposition("4.21", source="manager")
    broke_off.record_disposition("2.12", source="respondent")

    send(make_wave(survey, Wave.Kind.REMINDER, "Reminder 1"), django_capture_on_commit_callbacks)

    assert sorted(smtp_server.recipients()) == sorted(
        [open_case.frame_unit.email, broke_off.frame_unit.email]
    )


def test_a_firm_that_submits_after_queueing_gets_no_reminder(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    late, other = cases(survey, 2)
    wave = make_wave(survey, Wave.Kind.REMINDER, "Reminder 1")
    with django_capture_on_commit_callbacks(execute=False):
        mailing.queue_wave(wave)

    Response.objects.create(
        case=late,
        questionnaire_id=survey.questionnaire_id,
        status="submitted",
        submitted_at=timezone.now(),
        reference="SMF-TEST1-00001",
    )
    mailing.send_wave(wave.pk)

    assert smtp_server.recipients() == [other.frame_unit.email]
    assert Message.objects.get(case=late).status == "skipped"


def test_a_refused_recipient_is_a_bounce_and_an_undeliverable_invitation(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    case = cases(survey, 1)[0]
    smtp_server.refuse.add(case.frame_unit.email)

    send(make_wave(survey), django_capture_on_commit_callbacks)

    assert Message.objects.get(case=case).status == "bounced"
    assert ContactAttempt.objects.get(case=case).outcome == "bounced"
    case.refresh_from_db()
    assert case.disposition == "3.30"


def test_cases_without_an_email_address_are_counted_not_queued(
    survey: Survey, django_capture_on_commit_callbacks
) -> None:
    factories.case(survey, email="")
    factories.case(survey)

    with django_capture_on_commit_callbacks(execute=False):
        result = mailing.queue_wave(make_wave(survey))

    assert (result.queued, result.without_email) == (1, 1)


def test_a_stale_claim_is_marked_uncertain_and_never_resent(
    survey: Survey, settings, django_capture_on_commit_callbacks
) -> None:
    case = cases(survey, 1)[0]
    wave = make_wave(survey)
    with django_capture_on_commit_callbacks(execute=False):
        mailing.queue_wave(wave)
    Message.objects.filter(case=case).update(
        status="sending", claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    settings.EMAIL_CLAIM_TIMEOUT_SECONDS = 60

    with django_capture_on_commit_callbacks(execute=False):
        result = mailing.sweep()

    assert result["uncertain"] == 1
    assert Message.objects.get(case=case).status == "uncertain"
    assert mailing.claim_next(wave.pk) is None


def test_every_email_tells_the_firm_its_deadline(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    # given: a reminder wave ending on a known day (in Seoul)
    factories.case(survey)
    wave = make_wave(survey, Wave.Kind.REMINDER, "Reminder 1")
    day = timezone.localtime(wave.ends_at).strftime("%Y-%m-%d")

    # when
    send(wave, django_capture_on_commit_callbacks)

    # then
    body = smtp_server.body()
    assert f"응답 기한: {day}\r\n" in body and f"Please answer by {day}." in body


def test_a_wave_without_an_end_date_sends_nothing(
    survey: Survey, smtp_server: MailServer, django_capture_on_commit_callbacks
) -> None:
    # given: a reminder wave without an end date (made outside the wave form)
    factories.case(survey)
    wave = Wave.objects.create(
        survey=survey, name="Reminder", kind=Wave.Kind.REMINDER, starts_at=timezone.now()
    )

    # when / then
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(mailing.NoDeadline):
        mailing.queue_wave(wave)
    assert not Message.objects.filter(wave=wave).exists()
    assert smtp_server.messages == []
