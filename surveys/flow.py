"""The respondent flow: start, save a page, autosave, submit. Shared by web and keyed entry.

Each function owns its transaction. Saves use an optimistic revision check so that two
people answering for one firm never silently overwrite each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from respondents import dispositions
from respondents.models import Case

from .models import Response
from .questionnaire import Page, get_form

Posted = Mapping[str, str | list[str]]
REVIEW = "_review"


def new_editor_id() -> str:
    return secrets.token_urlsafe(12)


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


@dataclass
class SaveResult:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    conflict: bool = False
    saved: bool = False
    revision: int = 0
    relevant: set[str] = field(default_factory=set)


def save_page(
    response: Response,
    page: Page,
    posted: Posted,
    *,
    revision: int,
    editor: str,
    by: Any = None,
) -> SaveResult:
    """Validate and store one page. Nothing is stored when anything on it is invalid."""
    for attempt in range(3):
        if attempt:
            _reload(response)
        if _conflicts(response, revision, editor):
            return SaveResult(conflict=True, revision=response.revision)
        form = get_form(response.questionnaire_id)
        values, errors, dropped = form.clean_page(page, posted, response.answers)
        _answers, relevant = form.evaluate(values)
        if errors:
            return SaveResult(
                values, errors, dropped, revision=response.revision, relevant=relevant
            )
        drafts = {k: v for k, v in response.drafts.items() if k != page.name}
        following = form.next_page(page, relevant)
        resume = following.name if following else REVIEW
        if _write(response, answers=values, drafts=drafts, page=resume, editor=editor, by=by):
            if values:
                dispositions.respondent_started(response.case)
            return SaveResult(
                values, {}, dropped, saved=True, revision=response.revision, relevant=relevant
            )
    return SaveResult(conflict=True, revision=response.revision)


def page_state(response: Response, page: Page) -> tuple[dict[str, Any], set[str]]:
    """What a page shows (autosaved typing first) and which questions apply to it."""
    form = get_form(response.questionnaire_id)
    draft = response.drafts.get(page.name)
    if not draft:
        return form.evaluate(response.answers)
    typed, _errors = form.parse_page(page, draft)
    merged = {k: v for k, v in response.answers.items() if k not in page.question_names}
    merged.update({k: v for k, v in typed.items() if v is not None})
    _values, relevant = form.evaluate(merged)
    return draft, relevant


def autosave(
    response: Response, page: Page, posted: Posted, *, revision: int, editor: str
) -> SaveResult:
    """Keep what is being typed (as raw text) and report which questions now apply."""
    form = get_form(response.questionnaire_id)
    # PostgreSQL's jsonb cannot hold NUL characters, and nobody types them on purpose.
    raw = {q.name: _without_nul(posted[q.name]) for q in page.inputs if q.name in posted}
    typed, errors = form.parse_page(page, posted)
    merged = {k: v for k, v in response.answers.items() if k not in page.question_names}
    merged.update({k: v for k, v in typed.items() if v is not None})
    _values, relevant = form.evaluate(merged)
    for attempt in range(3):
        if attempt:
            _reload(response)
        if _conflicts(response, revision, editor):
            break
        drafts = {**response.drafts, page.name: raw}
        if _write(response, drafts=drafts, page=page.name, editor=editor):
            return SaveResult(
                errors=errors, saved=True, revision=response.revision, relevant=relevant
            )
    return SaveResult(conflict=True, revision=response.revision, relevant=relevant)


def _without_nul(value: str | list[str]) -> str | list[str]:
    if isinstance(value, str):
        return value.replace("\x00", "")
    return [item.replace("\x00", "") for item in value]


def _conflicts(response: Response, revision: int, editor: str) -> bool:
    # The same browser page may be ahead of its own form (autosave); anyone else may not.
    return response.revision != revision and response.last_editor != editor


def _reload(response: Response) -> None:
    fresh = Response.objects.get(pk=response.pk)
    for name in ("answers", "drafts", "revision", "last_editor", "status", "questionnaire_id"):
        setattr(response, name, getattr(fresh, name))


def _write(response: Response, *, editor: str, by: Any = None, **fields: Any) -> bool:
    """Store when nobody wrote since we read: a compare-and-swap on the revision."""
    changes = {**fields, "last_editor": editor, "updated_at": timezone.now()}
    if _user(by):
        changes["keyed_by"] = by
    updated = Response.objects.filter(
        pk=response.pk, revision=response.revision, status=Response.Status.IN_PROGRESS
    ).update(revision=F("revision") + 1, **changes)
    if updated == 1:
        for name, value in changes.items():
            setattr(response, name, value)
        response.revision += 1
    return updated == 1


def submit(response: Response, *, by: Any = None) -> tuple[Response, dict[str, str]]:
    """Submit once. A second submit (double click, retry, other tab) changes nothing."""
    with transaction.atomic(savepoint=False):
        locked = Response.objects.select_for_update().select_related("case").get(pk=response.pk)
        if locked.is_submitted:
            return locked, {}
        form = get_form(locked.questionnaire_id)
        errors = form.validate_all(locked.answers)
        if errors:
            return locked, errors
        values, _relevant = form.evaluate(locked.answers)
        locked.status = Response.Status.SUBMITTED
        locked.submitted_at = timezone.now()
        locked.reference = Response.new_reference()
        locked.answers, locked.drafts = values, {}
        locked.revision += 1
        if _user(by):
            locked.keyed_by = by
        locked.save()
        dispositions.response_submitted(locked, form.completeness(values), by=_user(by))
    return locked, {}


def _user(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None
