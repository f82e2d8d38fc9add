"""Reasons in a case's history read in the reader's language; the record keeps the platform's."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from config.roles import FIELDWORK_MANAGERS
from respondents import dispositions
from respondents.models import DispositionEvent
from surveys.models import Response, Survey
from surveys.questionnaire import Completeness
from tests import factories
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db


def history(survey: Survey, case_pk: int, language: str) -> str:
    client = client_for(staff_user(FIELDWORK_MANAGERS))
    client.cookies["django_language"] = language
    page = client.get(f"/manage/{survey.slug}/cases/{case_pk}/").content.decode()
    table = page[page.index("<tbody>") : page.index("</tbody>")]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", table))


def test_a_submission_reads_in_each_readers_language(survey: Survey) -> None:
    # given: a paper response keyed and submitted
    case = factories.case(survey)[0]
    response = Response.objects.create(
        case=case,
        questionnaire_id=survey.questionnaire_id,
        status=Response.Status.SUBMITTED,
        mode=Response.Mode.PAPER,
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
        answers={},
    )
    response.case.record_submission(response, Completeness(12, 0, ["sf_adopted"]))

    # when
    english, korean = history(survey, case.pk, "en"), history(survey, case.pk, "ko")

    # then
    assert (
        "Submitted (paper): 0 of 12 applicable items answered; core items missing: sf_adopted"
        in english
    )
    assert "제출 (종이 조사표)" in korean and "Submitted" not in korean
    stored = DispositionEvent.objects.get(case=case)
    assert stored.reason.startswith("제출 (종이 조사표)")  # the record, in the platform's language


def test_a_managers_note_reads_as_written(survey: Survey) -> None:
    # given
    case = factories.case(survey)[0]
    case.record_disposition("2.111", source="manager", reason="대표자가 거절함 / CEO refused")

    # when
    english = history(survey, case.pk, "en")

    # then
    assert "대표자가 거절함 / CEO refused" in english
    assert "Establishment-level refusal" in english


def test_notes_join_messages_and_text_in_order() -> None:
    # given
    note = (
        dispositions.history_text("Submitted (%(mode)s)", mode="web", translate=("mode",))
        + ": 3 of 4"
    )

    # then
    assert note.as_json() == [
        {"m": "Submitted (%(mode)s)", "v": {"mode": "web"}, "t": ["mode"]},
        {"s": ": 3 of 4"},
    ]
    assert note.render() == "Submitted (web): 3 of 4"
    assert note.text() == "제출 (웹): 3 of 4"
    broken = [{"m": "%(missing)s", "v": {"other": 1}}]
    assert dispositions.render_note(broken, "as recorded") == "as recorded"
