"""The respondent flow: show a page, save it, autosave. Shared by web and keyed entry; the
submit action is `Response.submit`, shared with imports too.

Every save merges field by field under the response's row lock. A save says what the page
showed for each field; a field only this editor changed is stored whatever others changed
elsewhere on the page, and a field someone else changed since the page was shown is a
conflict for that field alone, left for a person to decide. One browser is one editor: it
is never in conflict with itself, and its saves are ordered by its own clock, so a late
save-on-leave never overwrites what it typed after.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from .edits import Failure, check_page, plain_values
from .models import Editor, Raw, Response, get_form, raw_of
from .questionnaire import Form, Page, Question, text_of

Posted = Mapping[str, Raw]
REVIEW = "_review"


@dataclass(frozen=True)
class Conflict:
    """A field someone else changed since this editor's page showed it."""

    name: str
    stored: Raw
    mine: Raw
    kind: str
    at: str | None


@dataclass
class SaveResult:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    saved: bool = False
    submitted: bool = False
    revision: int = 0
    relevant: set[str] = field(default_factory=set)
    current: dict[str, Raw] = field(default_factory=dict)
    # Soft edit rules the page fails and the firm has not confirmed: "please check".
    queries: list[Failure] = field(default_factory=list)

    @property
    def conflict(self) -> bool:
        return bool(self.conflicts)


def typed_or_raw(question: Question, raw: Raw) -> Any:
    try:
        return question.parse_value(raw)
    except ValueError:
        return raw


def page_state(response: Response, page: Page) -> tuple[dict[str, Raw], set[str]]:
    """What a page shows (typed drafts first) and which questions apply to it."""
    form = get_form(response.questionnaire_id)
    shown = {q.name: response.stored_raw(q) for q in page.inputs}
    return shown, _relevant(form, response, page, shown)


def _relevant(form: Form, response: Response, page: Page, raw: Posted) -> set[str]:
    typed, _errors = form.parse_page(page, raw)
    merged = {k: v for k, v in response.answers.items() if k not in page.question_names}
    merged.update({k: v for k, v in typed.items() if v is not None})
    return form.evaluate(merged)[1]


def _merge(
    response: Response,
    page: Page,
    posted: Posted,
    shown: Mapping[str, Raw] | None,
    editor: Editor,
) -> tuple[dict[str, Raw], dict[str, Conflict], dict[str, str]]:
    """Which posted fields to store, which are conflicts, which are too long to keep."""
    accepted: dict[str, Raw] = {}
    conflicts: dict[str, Conflict] = {}
    refused: dict[str, str] = {}
    for question in page.inputs:
        if question.name not in posted:
            continue
        mine = _without_nul(posted[question.name])
        stored = response.stored_raw(question)
        if question.same(mine, stored):
            continue
        if len(text_of(mine)) > question.raw_limit:
            refused[question.name] = _too_long()
            continue
        base = None if shown is None else shown.get(question.name)
        if base is not None and question.same(base, mine):
            continue  # not changed on this page: whatever is stored stands
        if base is None or question.same(base, stored):
            accepted[question.name] = mine
            continue
        stamp = response.stamps.get(question.name) or [None, 0, "", None]
        if stamp[0] == editor.browser:
            if editor.clock >= stamp[1]:
                accepted[question.name] = mine
            continue  # an earlier save of this browser arriving late
        conflicts[question.name] = Conflict(question.name, stored, mine, stamp[2], stamp[3])
    return accepted, conflicts, refused


def _too_long() -> str:
    return gettext("This answer is too long to be right: check it.")


def autosave(
    response: Response,
    page: Page,
    posted: Posted,
    *,
    shown: Mapping[str, Raw] | None,
    editor: Editor,
) -> SaveResult:
    """Keep what is being typed (as raw text) and report which questions now apply."""
    form = get_form(response.questionnaire_id)
    with transaction.atomic():
        locked = response.locked()
        if locked.is_submitted:
            return SaveResult(submitted=True, revision=locked.revision)
        accepted, conflicts, refused = _merge(locked, page, posted, shown, editor)
        locked.record(page.inputs, editor, drafts={**locked.drafts, **accepted}, page=page.name)
    current = {q.name: locked.stored_raw(q) for q in page.inputs}
    raw = {**current, **{name: c.mine for name, c in conflicts.items()}}
    _typed, errors = form.parse_page(page, raw)
    return SaveResult(
        errors={**errors, **refused},
        conflicts=conflicts,
        saved=True,
        revision=locked.revision,
        relevant=_relevant(form, locked, page, raw),
        current=current,
    )


def save_page(
    response: Response,
    page: Page,
    posted: Posted,
    *,
    shown: Mapping[str, Raw] | None,
    editor: Editor,
    confirmed: Collection[str] = (),
) -> SaveResult:
    """Validate and store one page. Its answers are taken only when the whole page is valid
    and free of conflicts, passes the hard edit rules about its questions, and the firm has
    confirmed the answers the soft rules question (`confirmed`: the rules it ticked); until
    then what was typed is kept as drafts."""
    form = get_form(response.questionnaire_id)
    with transaction.atomic():
        locked = response.locked()
        if locked.is_submitted:
            return SaveResult(submitted=True, revision=locked.revision)
        accepted, conflicts, refused = _merge(locked, page, posted, shown, editor)
        drafts = {**locked.drafts, **accepted}
        raw = {q.name: drafts.get(q.name, raw_of(locked.answers.get(q.name))) for q in page.inputs}
        if conflicts or refused:
            locked.record(page.inputs, editor, drafts=drafts, page=page.name)
            current = {q.name: locked.stored_raw(q) for q in page.inputs}
            shown_raw = {**current, **{n: c.mine for n, c in conflicts.items()}}
            return SaveResult(
                errors=refused,
                conflicts=conflicts,
                revision=locked.revision,
                relevant=_relevant(form, locked, page, shown_raw),
                current=current,
            )
        values, errors, dropped = form.clean_page(page, raw, locked.answers)
        evaluated, relevant = form.evaluate(values)
        queries: list[Failure] = []
        if not errors:
            errors, queries, confirmations = _edit_checks(locked, page, evaluated, confirmed)
        if errors or queries:
            locked.record(page.inputs, editor, drafts=drafts, page=page.name)
            current = {q.name: locked.stored_raw(q) for q in page.inputs}
            return SaveResult(
                values,
                errors,
                dropped,
                revision=locked.revision,
                relevant=relevant,
                current=current,
                queries=queries,
            )
        following = form.next_page(page, relevant)
        locked.record(
            form.inputs(),
            editor,
            answers=values,
            drafts={k: v for k, v in drafts.items() if k not in page.question_names},
            page=following.name if following else REVIEW,
            confirmations=confirmations,
        )
    if any(v is not None for v in values.values()):
        locked.case.record_started()
    return SaveResult(
        values,
        {},
        dropped,
        saved=True,
        revision=locked.revision,
        relevant=relevant,
        current={q.name: locked.stored_raw(q) for q in page.inputs},
    )


def _edit_checks(
    response: Response, page: Page, values: Mapping[str, Any], ticked: Collection[str]
) -> tuple[dict[str, str], list[Failure], dict[str, Any]]:
    """The page against the edit rules about its questions: a hard rule's failure is an
    error on the question it blames; a soft rule's failure is a question to the firm, until
    it confirms the answer (then kept with the values it confirmed: it is not asked again
    about the same values, and the reviewers see it)."""
    check = check_page(response, page.name, values)
    errors = {f.flag: f.text() for f in check.hard if f.flag in page.question_names}
    confirmations = dict(response.confirmations)
    queries = []
    for failure in check.soft:
        seen = plain_values(failure.values)
        earlier = confirmations.get(failure.rule, {})
        if failure.rule in ticked or earlier.get("values") == seen:
            confirmations[failure.rule] = {"values": seen, "at": timezone.now().isoformat()}
        else:
            queries.append(failure)
    return errors, queries, confirmations


def _without_nul(value: Raw) -> Raw:
    # PostgreSQL's jsonb cannot hold NUL characters, and nobody types them on purpose.
    if isinstance(value, str):
        return value.replace("\x00", "")
    return [str(item).replace("\x00", "") for item in value]
