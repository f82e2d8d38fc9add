"""Editing (sec. L): the review queue by selective-editing score, one response's flags with
the reviewer's actions, and every edit of the survey as a file (the audit trail)."""

from __future__ import annotations

import io
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count, F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from config.http import client_address
from config.spreadsheets import csv_writer
from surveys.models import Response, Survey, get_form
from surveys.questionnaire import Form, Question

from .. import review
from ..exports import edits
from ..exports.xlsx import write_xlsx
from ..forms import (
    ACTIONS,
    FLAG_FORMS,
    FlagChoiceForm,
    FlagForm,
    QueryForm,
    QueueFilterForm,
    ResendForm,
)
from ..models import Download, EditCheck, EditFlag

REVIEW = "analytics.review_edits"
PER_PAGE = 50


def _survey(slug: str) -> Survey:
    return get_object_or_404(Survey, slug=slug)


def _submitted_response(survey: Survey, case: int) -> Response:
    found = Response.objects.submitted().select_related("case__frame_unit")
    return get_object_or_404(found, case_id=case, case__survey=survey)


# --- the queue ---------------------------------------------------------------------------------


@login_required
@permission_required(REVIEW, raise_exception=True)
def queue(request: HttpRequest, survey: str) -> HttpResponse:
    target = _survey(survey)
    review.sync_answered_queries(target.pk)
    flags = EditFlag.objects.of_survey(target.pk)
    rules = list(flags.order_by("rule").values_list("rule", flat=True).distinct())
    filters = QueueFilterForm(request.GET or None, rules=rules)
    chosen = (
        filters.apply(flags)
        .in_queue_order()
        .select_related("response__case__frame_unit")
        .defer("response__drafts", "response__stamps", "response__case__frame_unit__attributes")
    )
    page = Paginator(chosen, PER_PAGE).get_page(request.GET.get("page"))
    kept = request.GET.copy()
    kept.pop("page", None)
    context = {
        "survey": target,
        "check": _latest_check(target),
        "filters": filters,
        "counts": _counts(flags),
        "page": page,
        "rows": [_queue_row(flag) for flag in page],
        "query_string": kept.urlencode(),
    }
    return render(request, "analytics/editing.html", context)


def _queue_row(flag: EditFlag) -> dict[str, Any]:
    response = flag.response
    question = get_form(response.questionnaire_id).questions.get(flag.item)
    return {
        "flag": flag,
        "case": response.case,
        "message": flag.message_text(),
        "question": question.text() if question else flag.item,
        "value": _shown(question, response.edited_values().get(flag.item)),
        "edited": flag.item in response.edited,
    }


def _counts(flags: Any) -> dict[str, int]:
    by_status = dict(flags.order_by().values_list("status").annotate(n=Count("pk")))
    to_review = sum(by_status.get(status, 0) for status in EditFlag.REVIEWABLE)
    return {
        "to_review": to_review,
        "queried": by_status.get(EditFlag.Status.QUERIED, 0),
        "decided": sum(by_status.values()) - to_review - by_status.get("queried", 0),
    }


def _latest_check(survey: Survey) -> dict[str, Any] | None:
    check = EditCheck.objects.filter(survey=survey).order_by("-checked_at", "-pk").first()
    if check is None:
        return None
    form = _form_of(survey)
    shares = [
        {
            "name": name,
            "question": form.questions[name].text() if form and name in form.questions else name,
            "percent": 100 * share,
        }
        for name, share in check.passed_share.items()
        if isinstance(share, int | float)
    ]
    order = {name: q.row for name, q in form.questions.items()} if form else {}
    shares.sort(key=lambda s: (order.get(s["name"], len(order)), s["name"]))
    return {"check": check, "shares": shares}


def _form_of(survey: Survey) -> Form | None:
    if survey.current_questionnaire_id is None:
        return None
    return get_form(survey.current_questionnaire_id)


def _shown(question: Question | None, value: Any) -> str:
    if value is None:
        return ""
    return question.shown(value) if question else str(value)


# --- one response ------------------------------------------------------------------------------


@login_required
@permission_required(REVIEW, raise_exception=True)
def review_case(request: HttpRequest, survey: str, case: int) -> HttpResponse:
    target = _survey(survey)
    response = _submitted_response(target, case)
    review.sync_answered_queries(target.pk)
    bound: dict[Any, Any] = {}
    status = 200
    if request.method == "POST":
        done = _act(request, target, response, bound)
        if done:
            return redirect("analytics:edit_review", survey=target.slug, case=case)
        status = 400 if "choice" in bound else 200
    context = _review_context(target, response, bound)
    return render(request, "analytics/edit_review.html", context, status=status)


def _act(request: HttpRequest, survey: Survey, response: Response, bound: dict[Any, Any]) -> bool:
    """Carry out the posted action; False with the bound form (its errors) in `bound`."""
    action = request.POST.get("action", "")
    if action == "query":
        return _query(request, survey, response, bound)
    if action == "resend":
        return _resend(request, response)
    choice = FlagChoiceForm(request.POST, response=response)
    if not choice.is_valid():
        bound["choice"] = choice
        return False
    flag: EditFlag = choice.cleaned_data["flag"]
    flag.response = response
    form = FLAG_FORMS[choice.cleaned_data["action"]](
        request.POST, flag=flag, items=_questions(flag)
    )
    if not form.is_valid():
        bound[(form.action, flag.pk)] = form
        return False
    try:
        _decide(request, survey, form)
    except review.FlagDecided as decided:
        messages.warning(request, _already(decided.flag))
    return True


def _decide(request: HttpRequest, survey: Survey, form: FlagForm) -> None:
    data, flag, by = form.cleaned_data, form.flag, request.user
    if form.action == "accept":
        review.accept(survey.pk, flag.pk, by=by, reason=data["reason"])
        messages.success(request, _("Accepted: the value stands as reported."))
    elif form.action == "correct":
        review.correct(
            survey.pk,
            flag.pk,
            item=data["item"],
            value=data["parsed"],
            reason=data["reason"],
            by=by,
        )
        messages.success(request, _("Corrected. The estimates are being recomputed."))
    else:
        review.reject(survey.pk, flag.pk, item=data["item"], reason=data["reason"], by=by)
        messages.success(request, _("Rejected: the value is blanked and will be imputed."))


def _already(flag: EditFlag) -> str:
    when = date_format(localtime(flag.resolved_at), "Y-m-d H:i") if flag.resolved_at else ""
    who = flag.resolved_by.get_username() if flag.resolved_by else ""
    return _(
        "Nothing was changed: this flag was already decided (%(status)s, %(who)s %(when)s)."
    ) % {"status": flag.get_status_display(), "who": who, "when": when}


def _query(request: HttpRequest, survey: Survey, response: Response, bound: dict[Any, Any]) -> bool:
    flags = list(response.edit_flags.all())
    for flag in flags:
        flag.response = response
    form = QueryForm(request.POST, response=response, labels=_query_labels(flags))
    if not form.is_valid():
        bound["query"] = form
        return False
    chosen = [flag.pk for flag in form.cleaned_data["flags"]]
    try:
        review.query_firm(survey.pk, chosen, note=form.cleaned_data["note"], by=request.user)
    except review.FlagDecided as decided:
        messages.warning(request, _already(decided.flag))
        return True
    messages.success(
        request,
        _("The firm is asked by email; its answers appear here when it has replied."),
    )
    return True


def _resend(request: HttpRequest, response: Response) -> bool:
    form = ResendForm(request.POST, response=response)
    if form.is_valid():
        review.send_query_again(form.cleaned_data["query"])
        messages.success(request, _("The query is being sent again, with a new link."))
    else:
        messages.warning(request, _("Nothing was sent: that query was sent or answered already."))
    return True


def _questions(flag: EditFlag) -> list[Question]:
    form = get_form(flag.response.questionnaire_id)
    return [form.questions[name] for name in review.flag_items(flag)]


def _query_labels(flags: list[EditFlag]) -> dict[int, str]:
    labels = {}
    for flag in flags:
        question = get_form(flag.response.questionnaire_id).questions.get(flag.item)
        text = question.text() if question else flag.item
        labels[flag.pk] = f"{text} — {flag.message_text()}"
    return labels


def _review_context(survey: Survey, response: Response, bound: dict[Any, Any]) -> dict[str, Any]:
    form = get_form(response.questionnaire_id)
    flags = list(
        response.edit_flags.select_related("resolved_by").order_by(
            F("score").desc(nulls_last=True), "pk"
        )
    )
    for flag in flags:
        flag.response = response
    history, history_count = response.history()
    return {
        "survey": survey,
        "case": response.case,
        "unit": response.case.frame_unit,
        "response": response,
        "answers": _answers(form, response, flags),
        "flags": [_flag_context(form, response, flag, bound) for flag in flags],
        "query_form": bound.get("query")
        or QueryForm(response=response, labels=_query_labels(flags)),
        "can_query": any(flag.is_reviewable and flag.item for flag in flags),
        "choice": bound.get("choice"),
        "queries": [
            _query_context(form, q) for q in response.edit_queries.select_related("created_by")
        ],
        "trail": response.edit_trail(),
        "history": history,
        "history_count": history_count,
    }


def _answers(form: Form, response: Response, flags: list[EditFlag]) -> list[dict[str, Any]]:
    """The questions the flags concern: the firm's answer and the value now used."""
    names = sorted(
        {name for flag in flags for name in review.flag_items(flag)},
        key=lambda name: form.questions[name].row,
    )
    current = response.edited_values()
    return [
        {
            "name": name,
            "question": form.questions[name].text(),
            "reported": _shown(form.questions[name], response.answers.get(name)),
            "current": _shown(form.questions[name], current.get(name)),
            "edited": name in response.edited,
        }
        for name in names
    ]


def _flag_context(
    form: Form, response: Response, flag: EditFlag, bound: dict[Any, Any]
) -> dict[str, Any]:
    questions = [form.questions[name] for name in review.flag_items(flag)]
    return {
        "flag": flag,
        "message": flag.message_text(),
        "question": form.questions[flag.item].text() if flag.item in form.questions else "",
        "seen": [(name, _shown(form.questions.get(name), v)) for name, v in flag.values.items()],
        "confirmation": _confirmation(form, response.confirmations.get(flag.rule)),
        "forms": {
            action: bound.get((action, flag.pk)) or FLAG_FORMS[action](flag=flag, items=questions)
            for action in ACTIONS
        }
        if flag.is_reviewable
        else {},
    }


def _confirmation(form: Form, entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    at = parse_datetime(str(entry.get("at", "")))
    values = entry.get("values") or {}
    return {
        "at": date_format(localtime(at), "Y-m-d H:i") if at else "",
        "values": [(name, _shown(form.questions.get(name), v)) for name, v in values.items()],
        "comment": entry.get("comment", ""),
    }


def _query_context(form: Form, query: Any) -> dict[str, Any]:
    items = []
    for entry in query.items:
        question = form.questions.get(entry.get("item", ""))
        answer = entry.get("answer") or {}
        items.append(
            {
                "question": question.text() if question else entry.get("item", ""),
                "answered": bool(answer),
                "corrected": answer.get("corrected", False),
                "value": _shown(question, answer.get("value")),
                "comment": answer.get("comment", ""),
            }
        )
    return {"query": query, "items": items}


# --- every edit as a file ----------------------------------------------------------------------

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@login_required
@permission_required(REVIEW, raise_exception=True)
def edits_export(request: HttpRequest, survey: str, fmt: str) -> HttpResponse:
    target = _survey(survey)
    table = edits.edits_table(target)
    response = HttpResponse(content_type=CONTENT_TYPES[fmt])
    if fmt == "csv":
        response.write("\ufeff")
        writer = csv_writer(response)  # type: ignore[arg-type]
        writer.writerow(table.header)
        writer.writerows(edits.as_text(row) for row in table.rows)
    else:
        buffer = io.BytesIO()
        write_xlsx(table, buffer, lambda _done: None)
        response.write(buffer.getvalue())
    Download.objects.create(
        user=request.user,  # type: ignore[misc]
        survey=target,
        what="edits",
        format=fmt,
        identified=True,
        client=client_address(request),
    )
    response["Content-Disposition"] = f'attachment; filename="{target.slug}-edits.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
