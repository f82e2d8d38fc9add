"""Dispositions set by the respondent flow, and the rules that read them (sec. C).

Submitted responses are classified by the share of applicable items answered:
complete (1.1) at 80 % or more with every core item, partial (1.2) at 50 % or more with
every core item, otherwise a break-off (2.12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from analytics.engine import aapor
from surveys.models import Response

if TYPE_CHECKING:
    from surveys.questionnaire import Completeness


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


@dataclass(frozen=True)
class Note:
    """A reason written into the disposition history as translatable messages, so that every
    reader sees it in their own language; `text()` in the platform's language is stored
    beside it as the record. Values named in `translate` are themselves messages."""

    parts: tuple[dict[str, Any], ...] = ()

    def __add__(self, other: Note | str) -> Note:
        extra = other.parts if isinstance(other, Note) else ({"s": other},)
        return Note(self.parts + tuple(extra))

    def render(self) -> str:
        """The reason in the active language."""
        return "".join(_render(part) for part in self.parts)

    def text(self) -> str:
        """The reason in the platform's language (the stored record)."""
        with translation.override(settings.LANGUAGE_CODE):
            return self.render()

    def as_json(self) -> list[dict[str, Any]]:
        return [dict(part) for part in self.parts]


def _render(part: dict[str, Any]) -> str:
    if "s" in part:
        return str(part["s"])
    values = dict(part.get("v", {}))
    for key in part.get("t", ()):
        values[key] = gettext(values[key])
    return gettext(part["m"]) % values if values else gettext(part["m"])


def history_text(message: str, *, translate: tuple[str, ...] = (), **values: Any) -> Note:
    """A history reason from a message marked with gettext_noop and its values; the values
    named in `translate` are messages too (an answer mode's label, say)."""
    part: dict[str, Any] = {"m": message}
    if values:
        part["v"] = values
    if translate:
        part["t"] = list(translate)
    return Note((part,))


def render_note(parts: list[dict[str, Any]], fallback: str) -> str:
    """A stored history reason in the active language; free text (a manager's note, an
    email server's answer) as it was written."""
    try:
        return Note(tuple(parts)).render() if parts else fallback
    except (KeyError, TypeError, ValueError):
        return fallback


def classify(completeness: Completeness) -> tuple[str, Note]:
    """The code of a submitted response and the reason recorded with it."""
    fraction = completeness.fraction
    reason = history_text(
        gettext_noop("%(answered)s of %(applicable)s applicable items answered"),
        answered=completeness.answered,
        applicable=completeness.applicable,
    )
    if completeness.core_missing:
        # Without its core items a response is neither complete nor partial (sec. C).
        missing = ", ".join(completeness.core_missing)
        return BROKE_OFF, reason + history_text(
            gettext_noop("; core items missing: %(items)s"), items=missing
        )
    if fraction >= settings.COMPLETE_THRESHOLD:
        return COMPLETE, reason
    if fraction >= settings.PARTIAL_THRESHOLD:
        return PARTIAL, reason
    return BROKE_OFF, reason


def mode_message(mode: str) -> str:
    """The untranslated label of an answer mode, to be translated when read."""
    with translation.override(None):
        return str(Response.Mode(mode).label)
