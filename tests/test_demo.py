"""The demo builds two rounds of a survey through the platform's own functions, so what it
shows obeys the platform's rules: no reminder after a firm completed, skips counted, every
answer submitted once, each closed wave's official version labelled with it; 2025 started
from 2024, its sample coordinated with 2024's and its cases linked to 2024's."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count, F, Q
from django.test import Client

from analytics.models import EstimateRun
from config.management.commands.demo import NEXT_SLUG, ROTATION, SLUG
from respondents import dispositions, sampling
from respondents.models import Case, ContactAttempt, FrameChange, Message, Wave
from surveys.models import Response, Survey

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def demo_text(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Any:
    """One demo for the module's tests (it takes seconds): 4,000 firms, 400 sampled, and a
    slow relay so that firms answer while a reminder wave is still going out."""
    from django.conf import settings

    out = io.StringIO()
    var = tmp_path_factory.mktemp("var")
    with django_db_blocker.unblock():
        before, settings.VAR_DIR = settings.VAR_DIR, var
        try:
            call_command("demo", rows=4000, sample=400, relay_per_hour=60, stdout=out)
        finally:
            settings.VAR_DIR = before
        yield out.getvalue(), Path(var)
        # Committed outside the tests' transactions: the next module starts from empty.
        call_command("flush", interactive=False, verbosity=0)


def test_the_demo_builds_a_survey_in_the_field_and_prints_working_links(demo_text: Any) -> None:
    text, _var = demo_text
    assert "manager / manager-demo-2024" in text and "admin / admin-demo-2024" in text
    for slug in (SLUG, NEXT_SLUG):
        assert Case.objects.filter(survey__slug=slug).in_sample().count() == 400
        assert Response.objects.filter(status="submitted", case__survey__slug=slug).exists()
    current = EstimateRun.objects.filter(status="published", survey__slug=NEXT_SLUG)
    latest = current.order_by("-number").first()
    assert latest is not None and latest.spec["variance"] == "bootstrap"
    assert latest.diagnostics["controls"]["source"] == "sample"
    link = next(line.split()[-1] for line in text.splitlines() if "/r/" in line)
    assert Client().get(link.replace("http://127.0.0.1:8000", ""), follow=True).status_code == 200
    manager = Client()
    signed_in = manager.post(
        "/accounts/login/", {"username": "manager", "password": "manager-demo-2024"}
    )
    assert signed_in.status_code == 302
    assert manager.get(f"/manage/{NEXT_SLUG}/fieldwork/").status_code == 200
    admin = User.objects.get(username="admin")
    assert admin.has_perm("analytics.download_identified") and admin.is_staff
    site = Client()
    site.force_login(admin)
    assert "have permission to view or edit anything" not in site.get("/admin/").content.decode()


def test_no_reminder_reaches_a_firm_that_had_answered_refused_or_was_ineligible(
    demo_text: Any,
) -> None:
    sent = Message.objects.filter(kind="reminder", status="sent")
    assert sent.exists()
    answered_before = sent.filter(case__response__submitted_at__lt=F("sent_at"))
    closed_before = sent.filter(
        Q(case__disposition_events__code__startswith="4.")
        | Q(case__disposition_events__code__in=dispositions.EXPLICIT_REFUSALS),
        case__disposition_events__applied=True,
        case__disposition_events__at__lt=F("sent_at"),
    )
    assert not answered_before.exists() and not closed_before.exists()


def test_firms_that_answered_while_a_reminder_wave_went_out_were_skipped(demo_text: Any) -> None:
    skipped = Message.objects.filter(kind="reminder", status="skipped")
    assert skipped.count() > 0
    for message in skipped.select_related("case__response"):
        assert message.sent_at is None
        assert dispositions.ends_contact(message.case.disposition) or (
            message.case.response.is_submitted
        )


def test_every_email_went_through_the_backend_and_is_in_the_contact_log(demo_text: Any) -> None:
    _text, var = demo_text
    written = "".join(p.read_text() for p in (var / "demo" / "mail").iterdir())
    sent = Message.objects.filter(status="sent")
    assert written.count("\nSubject: ") == sent.count()
    # A wave's emails; the edit review's query to a firm is logged as a contact too
    emails = ContactAttempt.objects.filter(channel="email").exclude(note__startswith="edit query")
    assert emails.filter(outcome="sent").count() == sent.count()
    assert (
        emails.filter(outcome="bounced").count() == Message.objects.filter(status="bounced").count()
    )
    bounced = Message.objects.filter(status="bounced", kind="invitation").first()
    assert bounced is not None
    bounced.case.refresh_from_db()
    assert bounced.case.disposition_events.filter(code=dispositions.UNDELIVERABLE).exists()


def test_every_answer_was_submitted_once_through_the_questionnaires_rules(demo_text: Any) -> None:
    submitted = Response.objects.filter(status="submitted").select_related("case")
    assert submitted.exists()
    manager = User.objects.get(username="manager")
    for response in submitted:
        assert response.reference and response.revision >= 2 and response.submitted_at
        assert response.case.disposition in ("1.1", "1.2")
        assert response.keyed_by == (None if response.mode == "web" else manager)
        events = response.case.disposition_events.filter(code=response.case.disposition)
        source = "respondent" if response.mode == "web" else "manager"
        assert events.filter(at=response.submitted_at, source=source).exists()
    started = Response.objects.filter(status="in_progress")
    assert started.exists() and all(r.case.disposition == "2.12" for r in started)


def test_the_current_disposition_is_the_last_applied_event(demo_text: Any) -> None:
    for case in Case.objects.in_sample().annotate(n=Count("disposition_events")).filter(n__gt=0):
        last = case.disposition_events.filter(applied=True).order_by("at", "pk").last()
        assert last is not None and (last.code, last.at) == (case.disposition, case.disposition_at)


def test_each_closed_wave_has_its_own_official_version_and_the_open_one_a_provisional(
    demo_text: Any,
) -> None:
    waves = list(Wave.objects.filter(survey__slug=NEXT_SLUG).order_by("starts_at"))
    assert len(waves) == 4
    for wave in waves[:3]:
        run = wave.official_run
        assert run is not None and run.wave_id == wave.pk and run.status == "published"
        assert wave.closed_at == wave.ends_at == run.data_as_of
    assert waves[3].closed_at is None and waves[3].ends_at is None
    latest = EstimateRun.objects.latest_published(waves[0].survey)
    assert latest is not None and latest.wave_id == waves[3].pk
    # the open wave's provisional run, then the administrator's second weighting
    assert latest.number == waves[2].official_run.number + 2  # type: ignore[union-attr]
    listed = EstimateRun.objects.by_wave(waves[0].survey)
    assert [e.run.pk for e in listed] == [
        latest.pk,
        *(w.official_run_id for w in reversed(waves[:3])),
    ]


def test_the_waves_page_shows_what_was_sent_and_skipped(demo_text: Any) -> None:
    manager = Client()
    manager.force_login(User.objects.get(username="manager"))
    manager.cookies["django_language"] = "en"

    page = manager.get(f"/manage/{NEXT_SLUG}/waves/").content.decode()

    assert "skipped (answered, refused or ineligible by then)" in page
    assert "data-progress-url" not in page


def test_running_the_demo_again_keeps_the_first_survey(demo_text: Any) -> None:
    cases = set(Case.objects.values_list("pk", flat=True))

    call_command("demo", rows=4000, sample=400, stdout=io.StringIO())

    assert set(Case.objects.values_list("pk", flat=True)) == cases


def test_some_firms_answered_with_two_people_and_their_history_shows_both(
    demo_text: Any,
) -> None:
    from surveys.models import AnswerChange

    two = (
        AnswerChange.objects.filter(editor="firm", response__mode="web")
        .values("response")
        .annotate(browsers=Count("browser", distinct=True))
        .filter(browsers=2)
    )
    assert two.exists()
    corrected = AnswerChange.objects.filter(
        response_id=two[0]["response"], item="employees"
    ).order_by("at", "pk")
    first, last = corrected[0].new, corrected.last().new  # type: ignore[union-attr]
    assert isinstance(first, int) and last == first + 1


def test_2024_ran_its_whole_course_with_an_official_version_per_wave(demo_text: Any) -> None:
    waves = list(Wave.objects.filter(survey__slug=SLUG).order_by("starts_at"))
    assert len(waves) == 4
    for wave in waves:
        assert wave.closed_at is not None and wave.official_run is not None
    assert Survey.objects.get(slug=SLUG).year == 2024


def test_2025_was_started_from_2024_and_its_sample_coordinated_with_2024s(
    demo_text: Any,
) -> None:
    # given
    first, second = Survey.objects.get(slug=SLUG), Survey.objects.get(slug=NEXT_SLUG)

    # then: the round, the changes of its frame, the PRN draws
    assert (second.previous_round, second.year) == (first, 2025)
    assert {"birth", "death", "changed", "linked"} <= set(
        FrameChange.objects.filter(survey=second).values_list("kind", flat=True)
    )
    before, design = sampling.drawn_design(first), sampling.drawn_design(second)
    assert before is not None and before.selection == "prn"
    assert design is not None and (design.coordination, design.rotation) == ("rotation", ROTATION)
    overlap = sampling.overlap_table(design)
    assert overlap.expected is not None
    # about 80 % of 2024's sample again, within a few per cent of the expected overlap
    assert 0.7 * 400 < overlap.realised < 0.85 * 400
    assert abs(overlap.realised - overlap.expected) < 0.05 * 400
    linked = Case.objects.filter(survey=second).in_sample().exclude(previous=None)
    assert linked.count() == overlap.realised_all
    previous = [c.previous for c in linked.select_related("previous")]
    assert all(p is not None and p.survey_id == first.pk for p in previous)


def test_a_firm_that_answered_in_2024_sees_its_headcount_of_last_year(demo_text: Any) -> None:
    case = (
        Case.objects.filter(survey__slug=NEXT_SLUG, response__isnull=True)
        .exclude(previous=None)
        .filter(previous__response__status="submitted")
        .in_sample()
        .first()
    )
    assert case is not None
    last = case.previous.response.edited_values()  # type: ignore[union-attr]
    token, _code = case.issue_credentials()
    firm = Client()
    firm.cookies["django_language"] = "en"
    firm.get(f"/r/{token}/")

    page = firm.get("/q/p/profile/").content.decode()

    assert f"Last year you reported {last['employees']:,} employees." in page
