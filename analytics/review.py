"""Reviewing the edit flags (sec. L): accept a value, correct it, reject it for imputation, or
ask the firm; every change is a ValueEdit on the response, every decision is kept on its flag.

Each action locks its flag's row and acts only on a flag still open (or answered by the
firm), so a double click or two reviewers at once make one decision, never two edits. Each
asks for the recompute in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from respondents import mailing
from surveys.models import EditQuery, Response, ValueEdit, get_form

from .models import EditFlag
from .recompute import request_recompute

RECOMPUTE_REASON = "edit"


class FlagDecided(Exception):
    """The flag was decided by someone (or some click) else meanwhile: nothing was done."""

    def __init__(self, flag: EditFlag) -> None:
        super().__init__(f"flag {flag.pk} is {flag.status}")
        self.flag = flag


def flag_items(flag: EditFlag) -> list[str]:
    """The questions a flag concerns, in form order: the blamed one and those its rule read."""
    form = get_form(flag.response.questionnaire_id)
    names = [flag.item, *flag.values] if flag.item else list(flag.values)
    found = {name for name in names if name in form.questions}
    return sorted(found, key=lambda name: form.questions[name].row)


def accept(survey_id: int, flag_id: int, *, by: Any, reason: str = "") -> EditFlag:
    """The value stands as it is: the trace says who looked at it and why it stands."""

    def keep(flag: EditFlag, response: Response) -> None:
        item = flag.item or next(iter(flag_items(flag)), "")
        if item:
            current = response.edited_values().get(item)
            response.edit(
                item, current, kind=ValueEdit.Kind.ACCEPTED, by=by, reason=reason, rule=flag.rule
            )

    return _decide(survey_id, flag_id, EditFlag.Status.ACCEPTED, by=by, change=keep)


def correct(
    survey_id: int, flag_id: int, *, item: str, value: Any, reason: str, by: Any
) -> EditFlag:
    """A new value for one of the flag's questions (parsed and checked by the caller)."""

    def change(flag: EditFlag, response: Response) -> None:
        response.edit(
            item, value, kind=ValueEdit.Kind.CORRECTED, by=by, reason=reason, rule=flag.rule
        )

    return _decide(survey_id, flag_id, EditFlag.Status.CORRECTED, by=by, change=change)


def reject(survey_id: int, flag_id: int, *, item: str, reason: str, by: Any) -> EditFlag:
    """The value is wrong and nobody knows the right one: blanked, for the estimates to impute."""

    def blank(flag: EditFlag, response: Response) -> None:
        response.edit(
            item, None, kind=ValueEdit.Kind.REJECTED, by=by, reason=reason, rule=flag.rule
        )

    return _decide(survey_id, flag_id, EditFlag.Status.REJECTED, by=by, change=blank)


def _decide(
    survey_id: int,
    flag_id: int,
    status: str,
    *,
    by: Any,
    change: Callable[[EditFlag, Response], None],
) -> EditFlag:
    with transaction.atomic():
        flag = _locked(survey_id, [flag_id])[0]
        change(flag, flag.response)
        _resolve([flag], status, by=by)
        request_recompute(survey_id, reason=RECOMPUTE_REASON)
    return flag


def query_firm(survey_id: int, flag_ids: Iterable[int], *, note: str, by: Any) -> EditQuery:
    """Ask the firm about the flags' questions: a query whose link (a random token, stored as
    its digest) is emailed to the firm once the query is committed."""
    with transaction.atomic():
        flags = _locked(survey_id, flag_ids)
        response = flags[0].response
        form = get_form(response.questionnaire_id)
        entries = [
            {"item": f.item, "rule": f.rule, "message": f.message, "values": f.values}
            for f in sorted(flags, key=lambda f: (form.questions[f.item].row, f.rule))
        ]
        token, digest = EditQuery.new_token()
        query = EditQuery.objects.create(
            response=response, items=entries, note=note, token_hash=digest, created_by=_user(by)
        )
        for flag in flags:
            flag.query = query
        _resolve(flags, EditFlag.Status.QUERIED, by=by, also=["query"])
        request_recompute(survey_id, reason=RECOMPUTE_REASON)
        transaction.on_commit(partial(mailing.send_edit_query, query.pk, token), robust=True)
    return query


def send_query_again(query: EditQuery) -> None:
    """A query whose email did not go out gets a new link (the old one, never delivered,
    stops working) and is emailed again once committed."""
    with transaction.atomic():
        token, digest = EditQuery.new_token()
        EditQuery.objects.filter(pk=query.pk, answered_at__isnull=True).update(token_hash=digest)
        transaction.on_commit(partial(mailing.send_edit_query, query.pk, token), robust=True)


def sync_answered_queries(survey_id: int) -> int:
    """Flags whose query the firm has answered move from "queried" to "answered", back in
    the reviewer's queue. The firm's page (surveys) may not touch analytics' models, so it
    records the answer on the query and asks for a recompute; the recompute and the review
    pages call this. Returns the number of flags moved."""
    return (
        EditFlag.objects.of_survey(survey_id)
        .filter(status=EditFlag.Status.QUERIED, query__answered_at__isnull=False)
        .update(status=EditFlag.Status.ANSWERED)
    )


def _locked(survey_id: int, flag_ids: Iterable[int]) -> list[EditFlag]:
    """The flags' rows, locked in id order (two reviewers never wait on each other in a
    circle), each still to be decided; else FlagDecided."""
    flags = list(
        EditFlag.objects.of_survey(survey_id)
        .filter(pk__in=list(flag_ids))
        .select_for_update(of=("self",))
        .select_related("response", "resolved_by")
        .order_by("pk")
    )
    if not flags:
        raise EditFlag.DoesNotExist
    for flag in flags:
        if not flag.is_reviewable:
            raise FlagDecided(flag)
    return flags


def _resolve(flags: list[EditFlag], status: str, *, by: Any, also: Iterable[str] = ()) -> None:
    now = timezone.now()
    for flag in flags:
        flag.status, flag.resolved_by, flag.resolved_at = status, _user(by), now
    EditFlag.objects.bulk_update(flags, ["status", "resolved_by", "resolved_at", *also])


def _user(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None
