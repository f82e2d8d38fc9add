"""Dispositions set by the respondent flow, and the rules that read them (sec. C).

Submitted responses are classified by the share of applicable items answered:
complete (1.1) at 80 % or more with every core item, partial (1.2) at 50 % or more with
every core item, otherwise a break-off (2.12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from . import aapor

if TYPE_CHECKING:
    from surveys.models import Response
    from surveys.questionnaire import Completeness

    from .models import Case, DispositionEvent

NOT_INVITED = "3.11"
NOTHING_RETURNED = "3.19"
UNDELIVERABLE = "3.30"
OPENED = "2.121"
BROKE_OFF = "2.12"
PARTIAL = "1.2"
COMPLETE = "1.1"

# Explicit refusals end contact attempts; break-offs and implicit refusals get reminders.
EXPLICIT_REFUSALS = ("2.10", "2.11", "2.111", "2.112")


def is_nonresponse(code: str) -> bool:
    return aapor.category_of(code) in ("R", "NC", "O", "U")


def ends_contact(code: str) -> bool:
    """No more reminders: completed, explicitly refused, or found ineligible."""
    return aapor.category_of(code) in ("I", "P", "NE") or code in EXPLICIT_REFUSALS


def classify(completeness: Completeness) -> tuple[str, str]:
    """The code of a submitted response and the reason recorded with it."""
    fraction = completeness.fraction
    reason = f"{completeness.answered}/{completeness.applicable} applicable items answered"
    if completeness.core_missing:
        # Without its core items a response is neither complete nor partial (sec. C).
        return BROKE_OFF, reason + "; core items missing: " + ", ".join(completeness.core_missing)
    if fraction >= settings.COMPLETE_THRESHOLD:
        return COMPLETE, reason
    if fraction >= settings.PARTIAL_THRESHOLD:
        return PARTIAL, reason
    return BROKE_OFF, reason


def respondent_opened(case: Case) -> DispositionEvent | None:
    if aapor.category_of(case.disposition) in ("U", "NC", "O"):
        return case.record_disposition(OPENED, source="respondent", reason="link opened")
    return None


def respondent_started(case: Case) -> DispositionEvent | None:
    if case.disposition == OPENED or aapor.category_of(case.disposition) in ("U", "NC", "O"):
        return case.record_disposition(BROKE_OFF, source="respondent", reason="answering started")
    return None


def response_submitted(
    response: Response, completeness: Completeness, *, by: Any = None
) -> DispositionEvent:
    code, reason = classify(completeness)
    source = "manager" if by is not None else "respondent"
    mode = f"submitted ({response.mode})"
    return response.case.record_disposition(
        code, source=source, by=by, reason=f"{mode}: {reason}", at=response.submitted_at
    )
