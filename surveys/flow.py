"""The respondent flow: start, save a page, autosave, submit. Shared by web and keyed entry.

Every save merges field by field under the response's row lock. A save says what the page
showed for each field; a field only this editor changed is stored whatever others changed
elsewhere on the page, and a field someone else changed since the page was shown is a
conflict for that field alone, left for a person to decide. One browser is one editor: it
is never in conflict with itself, and its saves are ordered by its own clock, so a late
save-on-leave never overwrites what it typed after.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from analytics.recompute import request_recompute
from respondents import dispositions
from respondents.models import Case

from .models import AnswerChange, Response
from .questionnaire import Form, Page, Question, get_form

Raw = str | list[str]
Posted = Mapping[str, Raw]
REVIEW = "_review"


def new_editor_id() -> str:
    return secrets.token_urlsafe(12)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Editor:
    """Who saves: one browser (its tabs, reloads, late save-on-leave requests)."""

    browser: str
    kind: str = AnswerChange.Editor.FIRM
    clock: int = field(default_factory=now_ms)
    user: Any = None


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

    @property
    def conflict(self) -> bool:
        return bool(self.conflicts)


def start_response(
    case: Case, *, mode: str = Response.Mode.WEB, by: Any = None, move: bool = True
) -> Response:
    """The case's response, created on first use and moved to the newest questionnaire.

    Answers given under an earlier version are all kept: the new version shows those it
    still asks, and the rest stay stored under their names.
    """
    latest = case.survey.questionnaire_id
    try:
        response: Response | None = case.response
    except Response.DoesNotExist:
        response = None
    if response is None:
        try:
            with transaction.atomic():
                response = Response.objects.create(
                    case=case, questionnaire_id=latest, mode=mode, keyed_by=_user(by)
                )
        except IntegrityError:
            # Two tabs opened at once: the other one created it.
            response = Response.objects.get(case=case)
    # Only a page about to be shown moves to the newest version: a page posted from an older
    # version is saved under the version it was shown with.
    if move and not response.is_submitted and response.questionnaire_id != latest:
        Response.objects.filter(pk=response.pk, status=Response.Status.IN_PROGRESS).update(
            questionnaire_id=latest, revision=F("revision") + 1
        )
        response.refresh_from_db()
    return response


def raw_of(value: Any) -> Raw:
    """A stored answer as a browser shows it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 12500, not 12500.0
    return str(value)


def stored_raw(response: Response, question: Question) -> Raw:
    """What a field holds now: the typed draft if there is one, else the answer."""
    if question.name in response.drafts:
        draft: Raw = response.drafts[question.name]
        return draft
    return raw_of(response.answers.get(question.name))


def same(question: Question, a: Raw, b: Raw) -> bool:
    """Whether two inputs mean the same answer ("1,200" and "1200", checkbox order)."""
    if a == b:
        return True
    try:
        return bool(question.parse_value(a) == question.parse_value(b))
    except ValueError:
        return _text(a) == _text(b)


def _text(raw: Raw) -> str:
    return " ".join(sorted(raw)) if isinstance(raw, list) else raw.strip()


def typed_or_raw(question: Question, raw: Raw) -> Any:
    try:
        return question.parse_value(raw)
    except ValueError:
        return raw


def page_state(response: Response, page: Page) -> tuple[dict[str, Raw], set[str]]:
    """What a page shows (typed drafts first) and which questions apply to it."""
    form = get_form(response.questionnaire_id)
    shown = {q.name: stored_raw(response, q) for q in page.inputs}
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
        stored = stored_raw(response, question)
        if same(question, mine, stored):
            continue
        if len(_text(mine)) > question.raw_limit:
            refused[question.name] = _too_long()
            continue
        base = None if shown is None else shown.get(question.name)
        if base is not None and same(question, base, mine):
            continue  # not changed on this page: whatever is stored stands
        if base is None or same(question, base, stored):
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
        locked = _lock(response)
        if locked.is_submitted:
            return SaveResult(submitted=True, revision=locked.revision)
        accepted, conflicts, refused = _merge(locked, page, posted, shown, editor)
        _store(
            locked, form, page.inputs, editor, drafts={**locked.drafts, **accepted}, page=page.name
        )
    current = {q.name: stored_raw(locked, q) for q in page.inputs}
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
) -> SaveResult:
    """Validate and store one page. Its answers are taken only when the whole page is valid
    and free of conflicts; until then what was typed is kept as drafts."""
    form = get_form(response.questionnaire_id)
    with transaction.atomic():
        locked = _lock(response)
        if locked.is_submitted:
            return SaveResult(submitted=True, revision=locked.revision)
        accepted, conflicts, refused = _merge(locked, page, posted, shown, editor)
        drafts = {**locked.drafts, **accepted}
        raw = {q.name: drafts.get(q.name, raw_of(locked.answers.get(q.name))) for q in page.inputs}
        if conflicts or refused:
            _store(locked, form, page.inputs, editor, drafts=drafts, page=page.name)
            current = {q.name: stored_raw(locked, q) for q in page.inputs}
            shown_raw = {**current, **{n: c.mine for n, c in conflicts.items()}}
            return SaveResult(
                errors=refused,
                conflicts=conflicts,
                revision=locked.revision,
                relevant=_relevant(form, locked, page, shown_raw),
                current=current,
            )
        values, errors, dropped = form.clean_page(page, raw, locked.answers)
        relevant = form.evaluate(values)[1]
        if errors:
            _store(locked, form, page.inputs, editor, drafts=drafts, page=page.name)
            current = {q.name: stored_raw(locked, q) for q in page.inputs}
            return SaveResult(
                values,
                errors,
                dropped,
                revision=locked.revision,
                relevant=relevant,
                current=current,
            )
        following = form.next_page(page, relevant)
        _store(
            locked,
            form,
            form.inputs(),
            editor,
            answers=values,
            drafts={k: v for k, v in drafts.items() if k not in page.question_names},
            page=following.name if following else REVIEW,
        )
    if any(v is not None for v in values.values()):
        dispositions.respondent_started(locked.case)
    return SaveResult(
        values,
        {},
        dropped,
        saved=True,
        revision=locked.revision,
        relevant=relevant,
        current={q.name: stored_raw(locked, q) for q in page.inputs},
    )


def _without_nul(value: Raw) -> Raw:
    # PostgreSQL's jsonb cannot hold NUL characters, and nobody types them on purpose.
    if isinstance(value, str):
        return value.replace("\x00", "")
    return [str(item).replace("\x00", "") for item in value]


def _lock(response: Response) -> Response:
    # The response's row alone: a join would lock its case's row too.
    locked = Response.objects.select_for_update().get(pk=response.pk)
    locked.case = response.case
    return locked


def _store(
    locked: Response,
    form: Form,
    questions: Iterable[Question],
    editor: Editor,
    **fields: Any,
) -> None:
    """Write the response under the lock: who changed each field last (for conflicts) and
    one history row per answer that changed."""
    questions = list(questions)
    if all(getattr(locked, name) == value for name, value in fields.items()):
        return  # nothing new: no write, no revision
    shown_before = {q.name: stored_raw(locked, q) for q in questions}
    answers_before = dict(locked.answers)
    for name, value in fields.items():
        setattr(locked, name, value)
    now = timezone.now()
    stamp = [editor.browser, editor.clock, editor.kind, now.isoformat()]
    for question in questions:
        if not same(question, shown_before[question.name], stored_raw(locked, question)):
            locked.stamps[question.name] = stamp
    changes = _changes(locked, questions, answers_before, editor, now)
    update = [*fields, "stamps", "revision", "last_editor", "updated_at"]
    locked.revision += 1
    locked.last_editor = editor.browser
    locked.updated_at = now
    if editor.kind != AnswerChange.Editor.FIRM and _user(editor.user):
        locked.keyed_by = editor.user
        update.append("keyed_by")
    locked.save(update_fields=update)
    if changes:
        AnswerChange.objects.bulk_create(changes)


def _changes(
    response: Response,
    questions: list[Question],
    before: Mapping[str, Any],
    editor: Editor,
    now: Any,
) -> list[AnswerChange]:
    """One row per answer that differs from `before`. Typing not yet taken as an answer
    (a draft, perhaps invalid) is not an answer, so it is not history."""
    return [
        AnswerChange(
            response=response,
            item=question.name,
            old=before.get(question.name),
            new=response.answers.get(question.name),
            editor=editor.kind,
            browser=editor.browser,
            user=_user(editor.user),
            at=now,
        )
        for question in questions
        if before.get(question.name) != response.answers.get(question.name)
    ]


def submit(
    response: Response,
    *,
    by: Any = None,
    editor: Editor | None = None,
    answers: Mapping[str, Any] | None = None,
    mode: str | None = None,
    recompute: bool = True,
) -> tuple[Response, dict[str, str]]:
    """Submit once: the one submit action of the web, keyed entry and imports (which bring
    the whole response as `answers`). A second submit (double click, retry, other tab)
    changes nothing. The disposition is recorded and the recompute asked for here."""
    if editor is None:
        kind = AnswerChange.Editor.STAFF if _user(by) else AnswerChange.Editor.FIRM
        editor = Editor("", kind, user=by)
    with transaction.atomic(savepoint=False):
        locked = _lock(response)
        if locked.is_submitted:
            return locked, {}
        form = get_form(locked.questionnaire_id)
        given = locked.answers if answers is None else answers
        errors = form.validate_all(given)
        if errors:
            return locked, errors
        values, _relevant = form.evaluate(given)
        _store(
            locked,
            form,
            form.inputs(),
            editor,
            status=Response.Status.SUBMITTED,
            submitted_at=timezone.now(),
            reference=Response.new_reference(),
            answers=values,
            drafts={},
            **({"mode": mode} if mode else {}),
        )
        imported = editor.kind == AnswerChange.Editor.IMPORT
        dispositions.response_submitted(
            locked, form.completeness(values), by=_user(by or editor.user), imported=imported
        )
        if recompute:
            request_recompute(locked.case.survey_id, reason="response submitted")
    return locked, {}


def _user(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None
