"""The firm's questionnaire: personal link or access code, pages, review, submit, receipt."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.celery import enqueue_on_commit
from config.http import client_address
from config.tokens import hash_token
from respondents.models import AccessFailure, Case, check_password_timing

from . import flow
from .edits import Failure
from .forms import CONFIRM, CORRECT, AccessCodeForm, QueryAnswerForm, QuestionnaireUploadForm
from .models import (
    AnswerChange,
    Editor,
    EditQuery,
    QuestionnaireUpload,
    Raw,
    Response,
    cached_survey,
    get_form,
    new_editor_id,
    now_ms,
)
from .questionnaire import Form, Page, pick
from .xlsform import LOAD_UPLOAD, FormError, check_size, load_questionnaire

SESSION_CASE = "respondent_case"
SESSION_CREDENTIAL = "respondent_credential"
SESSION_EDITOR = "editor"
RespondentView = Callable[..., HttpResponse]


def _sign_in(request: HttpRequest, case: Case) -> None:
    # The browser keeps its editor id across sign-ins (the link opened again in a new tab).
    request.session.setdefault(SESSION_EDITOR, new_editor_id())
    request.session.cycle_key()
    request.session[SESSION_CASE] = case.pk
    request.session[SESSION_CREDENTIAL] = case.credential_version


def _session_editor(request: HttpRequest) -> str:
    """A session signed in without an editor id (staff) gets one derived from its key, not
    stored: two first saves racing from two tabs must agree on who they are."""
    key = request.session.session_key or ""
    return hashlib.sha256(f"editor:{key}".encode()).hexdigest()[:16]


def _respondent_case(request: HttpRequest) -> Case | None:
    case_id = request.session.get(SESSION_CASE)
    version = request.session.get(SESSION_CREDENTIAL)
    if case_id is None or version is None:
        return None
    try:
        # get(), not first(): no ORDER BY to compile and run on every page.
        case = Case.objects.select_related("response").get(
            pk=case_id, credential_version=version, token_hash__isnull=False
        )
    except Case.DoesNotExist:
        return None
    case.survey = cached_survey(case.survey_id)
    return case


def respondent_required(view: RespondentView) -> RespondentView:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        case = _respondent_case(request)
        if case is None:
            messages.info(
                request,
                _(
                    "Please open the link in your invitation again, or sign in with your "
                    "business registration number and access code. Your answers are saved."
                ),
            )
            return redirect("surveys:login")
        return view(request, case, *args, **kwargs)

    return wrapper


def link(request: HttpRequest, token: str) -> HttpResponse:
    if len(token) != 32:
        raise Http404
    case = Case.objects.in_sample().filter(token_hash=hash_token(token)).first()
    if case is None:
        raise Http404
    _sign_in(request, case)
    case.record_opened()
    return redirect("surveys:welcome")


def login(request: HttpRequest) -> HttpResponse:
    form = AccessCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        business_id = form.cleaned_data["business_id"]
        outcome, case = _check_access(
            business_id, form.cleaned_data["access_code"], client_address(request)
        )
        if case is not None:
            _sign_in(request, case)
            case.record_opened()
            return redirect("surveys:welcome")
        if outcome == "locked":
            form.add_error(
                None,
                _(
                    "Too many wrong access codes. Please wait 15 minutes, or "
                    "call the survey help desk."
                ),
            )
        else:
            form.add_error(
                None,
                _(
                    "The business registration number or access code is not "
                    "right. Check your invitation letter and try again."
                ),
            )
    return render(request, "respondent/login.jinja", {"form": form})


def _check_access(business_id: str, code: str, client: str) -> tuple[str, Case | None]:
    """Count, check and record in one transaction under the business ID's and the
    client's lock: ("ok", case), ("wrong", None) or ("locked", None)."""
    with transaction.atomic():
        AccessFailure.objects.lock(business_id=business_id, client=client)
        if AccessFailure.objects.too_many(business_id=business_id, client=client):
            return "locked", None
        case = Case.objects.in_sample().filter(business_id=business_id).first()
        if case is None:
            # As long as a real check: the time taken must not tell who was sampled.
            check_password_timing(code)
        elif case.check_access_code(code):
            return "ok", case
        AccessFailure.objects.create(business_id=business_id, client=client)
        return "wrong", None


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return redirect("surveys:login")


@dataclass
class Channel:
    """Who is answering: the firm itself on the web, or staff keying in its answers
    received by phone, fax or paper. Both go through exactly the same pages and rules."""

    case: Case
    staff: Any = None
    mode: str = Response.Mode.WEB

    def url(self, view: str, *args: Any) -> str:
        if self.staff is None:
            return reverse(f"surveys:{view}", args=args)
        prefix = [self.case.survey.slug, self.case.pk, self.mode]
        return reverse(f"surveys:keyed_{view}", args=[*prefix, *args])

    @property
    def mode_label(self) -> str:
        return str(Response.Mode(self.mode).label)

    def editor(self, request: HttpRequest) -> Editor:
        """This browser, as one editor whatever its tabs and reloads; its saves are ordered
        by the clock the page sends (the browser's own)."""
        browser = request.session.get(SESSION_EDITOR) or _session_editor(request)
        try:
            clock = int(request.POST.get("clock", ""))
        except ValueError:
            clock = 0
        if not 0 < clock < 2**53:
            clock = now_ms()
        kind = AnswerChange.Editor.STAFF if self.staff else AnswerChange.Editor.FIRM
        return Editor(browser, kind, clock, self.staff)

    def start(self, *, move: bool = True) -> Response:
        return Response.objects.start(self.case, mode=self.mode, by=self.staff, move=move)

    def render(
        self, request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
    ) -> HttpResponse:
        return render(
            request, template, {**context, "channel": self, "case": self.case}, status=status
        )


@respondent_required
def welcome(request: HttpRequest, case: Case) -> HttpResponse:
    return _welcome(request, Channel(case))


@respondent_required
def page(request: HttpRequest, case: Case, name: str) -> HttpResponse:
    return _page(request, Channel(case), name)


@require_POST
@respondent_required
def autosave(request: HttpRequest, case: Case, name: str) -> HttpResponse:
    return _autosave(request, Channel(case), name)


@respondent_required
def review(request: HttpRequest, case: Case) -> HttpResponse:
    return _review(request, Channel(case))


@respondent_required
def receipt(request: HttpRequest, case: Case) -> HttpResponse:
    return _receipt(request, Channel(case))


KEYING = "respondents.manage_fieldwork"


def _keyed(request: HttpRequest, survey: str, case_id: int, mode: str) -> Channel:
    if mode not in (Response.Mode.PHONE, Response.Mode.PAPER, Response.Mode.FAX):
        raise Http404
    case = get_object_or_404(
        Case.objects.in_sample().select_related("survey", "frame_unit"),
        pk=case_id,
        survey__slug=survey,
    )
    return Channel(case, staff=request.user, mode=mode)


@permission_required(KEYING, raise_exception=True)
def keyed_welcome(request: HttpRequest, survey: str, case_id: int, mode: str) -> HttpResponse:
    return _welcome(request, _keyed(request, survey, case_id, mode))


@permission_required(KEYING, raise_exception=True)
def keyed_page(
    request: HttpRequest, survey: str, case_id: int, mode: str, name: str
) -> HttpResponse:
    return _page(request, _keyed(request, survey, case_id, mode), name)


@require_POST
@permission_required(KEYING, raise_exception=True)
def keyed_autosave(
    request: HttpRequest, survey: str, case_id: int, mode: str, name: str
) -> HttpResponse:
    return _autosave(request, _keyed(request, survey, case_id, mode), name)


@permission_required(KEYING, raise_exception=True)
def keyed_review(request: HttpRequest, survey: str, case_id: int, mode: str) -> HttpResponse:
    return _review(request, _keyed(request, survey, case_id, mode))


@permission_required(KEYING, raise_exception=True)
def keyed_receipt(request: HttpRequest, survey: str, case_id: int, mode: str) -> HttpResponse:
    return _receipt(request, _keyed(request, survey, case_id, mode))


def _welcome(request: HttpRequest, channel: Channel) -> HttpResponse:
    response = channel.start()
    if response.is_submitted:
        return redirect(channel.url("receipt"))
    form = get_form(response.questionnaire_id)
    pages = form.relevant_pages(response.answers)
    if response.page == flow.REVIEW:
        resume = channel.url("review")
    else:
        page_name = response.page if response.page in {p.name for p in pages} else pages[0].name
        resume = channel.url("page", page_name)
    context = {"form": form, "response": response, "resume": resume}
    return channel.render(request, "respondent/welcome.jinja", context)


def _page(request: HttpRequest, channel: Channel, name: str) -> HttpResponse:
    response = channel.start(move=request.method != "POST")
    if response.is_submitted:
        return redirect(channel.url("receipt"))
    form = get_form(response.questionnaire_id)
    current = form.page_by_name.get(name)
    if current is None:
        raise Http404
    if request.method == "POST":
        return _save_page(request, channel, response, form, current)
    shown, relevant = flow.page_state(response, current)
    if current.name not in relevant:
        return redirect(_next_url(channel, form, relevant, current))
    state = flow.SaveResult(relevant=relevant, current=shown)
    return _render_page(request, channel, response, form, current, state)


def _save_page(
    request: HttpRequest, channel: Channel, response: Response, form: Form, current: Page
) -> HttpResponse:
    posted, shown = _posted(request, current), _shown(request)
    action = request.POST.get("action", "next")
    decided = _decide(request, current, posted, shown)
    if decided or action == "back":
        result = flow.autosave(
            response, current, posted, shown=shown, editor=channel.editor(request)
        )
        if action == "back" and not decided and not result.conflict:
            return redirect(_previous_url(channel, form, result.relevant, current))
    else:
        result = flow.save_page(
            response,
            current,
            posted,
            shown=shown,
            editor=channel.editor(request),
            confirmed=set(request.POST.getlist("confirm")),
        )
    if result.submitted:
        return redirect(channel.url("receipt"))
    if result.conflict or result.errors or result.queries or decided:
        if result.conflict:
            messages.warning(
                request,
                _(
                    "An answer on this page was changed by someone else after you opened "
                    "it. Your other answers are saved; choose below which answer to keep."
                ),
            )
        return _render_page(
            request,
            channel,
            response,
            form,
            current,
            result,
            status=409 if result.conflict else 200,
        )
    for name in result.dropped:
        messages.info(
            request,
            _("Your answer to “%(q)s” was not kept because the question does not apply.")
            % {"q": form.questions[name].text()},
        )
    if action == "save":
        messages.success(
            request,
            _("Your answers are saved. You can close this page and come back with the same link."),
        )
        return redirect(channel.url("page", current.name))
    return redirect(_next_url(channel, form, result.relevant, current))


def _posted(request: HttpRequest, page: Page) -> dict[str, Raw]:
    posted: dict[str, Raw] = {}
    for question in page.inputs:
        if question.type == "select_multiple":
            if question.name in request.POST or f"{question.name}__present" in request.POST:
                posted[question.name] = request.POST.getlist(question.name)
        elif question.name in request.POST:
            posted[question.name] = request.POST[question.name]
    return posted


def _shown(request: HttpRequest) -> dict[str, Raw] | None:
    """What the page showed for each field; None from a client that does not say."""
    shown = _raw_json(request.POST.get("shown"))
    return shown if isinstance(shown, dict) else None


def _raw_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if _is_raw(v)}
    return value if _is_raw(value) else None


def _is_raw(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _decide(
    request: HttpRequest, page: Page, posted: dict[str, Raw], shown: dict[str, Raw] | None
) -> bool:
    """A person's decision on a conflict: keep mine, or take the stored answer. Either way
    the page now counts as having shown the stored answer they decided on."""
    choice, _sep, name = request.POST.get("decide", "").partition(":")
    seen = _raw_json(request.POST.get(f"seen__{name}"))
    if choice not in ("mine", "theirs") or name not in page.question_names or seen is None:
        return False
    if shown is not None:
        shown[name] = seen
    if choice == "theirs":
        posted[name] = seen
    return True


def _next_url(channel: Channel, form: Form, relevant: set[str], current: Page) -> str:
    following = form.next_page(current, relevant)
    return channel.url("page", following.name) if following else channel.url("review")


def _previous_url(channel: Channel, form: Form, relevant: set[str], current: Page) -> str:
    earlier = form.previous_page(current, relevant)
    return channel.url("page", earlier.name) if earlier else channel.url("welcome")


def _render_page(
    request: HttpRequest,
    channel: Channel,
    response: Response,
    form: Form,
    current: Page,
    result: flow.SaveResult | None = None,
    *,
    status: int = 200,
) -> HttpResponse:
    if result is None or not result.current:
        stored, relevant = flow.page_state(response, current)
        errors: dict[str, str] = {}
        conflicts: dict[str, flow.Conflict] = {}
        queries: list[Failure] = []
    else:
        stored, relevant = result.current, result.relevant
        errors, conflicts, queries = result.errors, result.conflicts, result.queries
    # A conflicted field shows what this person typed, and counts as showing what they
    # saw before, until they decide.
    values = {**stored, **{name: c.mine for name, c in conflicts.items()}}
    shown = {**stored, **_shown_before(request, conflicts)}
    pages = [page for page in form.pages if page.name in relevant]
    number = [page.name for page in pages].index(current.name) + 1 if current in pages else 1
    last = last_answers(response, form)
    context = {
        "response": response,
        "form": form,
        "page": current,
        "label_of": lambda q: form.with_last(q.text(), last),
        "fields": [
            _field(q, values, relevant, errors, conflicts.get(q.name), queries, form, last)
            for q in current.questions
        ],
        "errors": [(form.questions[name], message) for name, message in errors.items()],
        "queries": [
            (form.questions[f.flag], f.text()) for f in queries if f.flag in form.questions
        ],
        "page_number": number,
        "page_count": len(pages),
        "shown": json.dumps(shown, ensure_ascii=False),
        "is_first": number == 1,
        "autosave_delay": settings.AUTOSAVE_DELAY_MS,
    }
    return channel.render(request, "respondent/page.jinja", context, status=status)


def _shown_before(request: HttpRequest, conflicts: dict[str, flow.Conflict]) -> dict[str, Any]:
    before = _shown(request) or {}
    return {name: before.get(name, "") for name in conflicts}


def last_answers(response: Response, form: Form) -> dict[str, Any]:
    """Last round's answers of the firm, when the form shows any (${last.<question>})."""
    return response.case.previous_answers() if form.reads_last else {}


def _field(
    question: Any,
    shown: Any,
    relevant: set[str],
    errors: dict[str, str],
    conflict: flow.Conflict | None,
    queries: Sequence[Failure],
    form: Form,
    last: Mapping[str, Any],
) -> dict[str, Any]:
    value = shown.get(question.name)
    if question.type == "select_multiple":
        selected = set(value if isinstance(value, list) else str(value or "").split())
    else:
        selected = {"" if value is None else str(value)}
    return {
        "q": question,
        "label": form.with_last(question.text(), last),
        "hint": form.hint_with_last(question, last),
        "value": "" if value is None or isinstance(value, list) else str(value),
        "choices": [(c.name, c.text(), c.name in selected) for c in question.choices],
        "error": errors.get(question.name),
        "hidden": question.name not in relevant,
        "required": question.is_input and question.required.lower() in ("yes", "true", "true()"),
        "conflict": conflict and conflict_context(question, conflict),
        "queries": [(f.rule, f.text()) for f in queries if f.flag == question.name],
    }


def conflict_context(question: Any, conflict: flow.Conflict) -> dict[str, Any]:
    """What the person deciding a conflict is told: both answers, who saved theirs, when."""
    at = parse_datetime(conflict.at) if conflict.at else None
    if conflict.kind == AnswerChange.Editor.STAFF:
        who = _("The survey staff entered this answer")
    elif conflict.kind == AnswerChange.Editor.IMPORT:
        who = _("This answer was imported by the survey staff")
    else:
        who = _("Another person of your company saved this answer")
    return {
        "name": question.name,
        "who": who,
        "at": date_format(localtime(at), "Y-m-d H:i") if at else "",
        "stored": _raw_text(question, conflict.stored) or _("(blank)"),
        "mine": _raw_text(question, conflict.mine) or _("(blank)"),
        "seen": json.dumps(conflict.stored, ensure_ascii=False),
    }


def _raw_text(question: Any, raw: Raw) -> str:
    return question.shown(flow.typed_or_raw(question, raw))


def _autosave(request: HttpRequest, channel: Channel, name: str) -> HttpResponse:
    response = channel.start(move=False)
    if response.is_submitted:
        return JsonResponse({"submitted": True, "redirect": channel.url("receipt")})
    form = get_form(response.questionnaire_id)
    current = form.page_by_name.get(name)
    if current is None:
        raise Http404
    result = flow.autosave(
        response,
        current,
        _posted(request, current),
        shown=_shown(request),
        editor=channel.editor(request),
    )
    if result.submitted:
        return JsonResponse({"submitted": True, "redirect": channel.url("receipt")})
    conflicts = {
        name: render_to_string(
            "respondent/_conflict.jinja",
            {"c": conflict_context(form.questions[name], conflict)},
            request,
        )
        for name, conflict in result.conflicts.items()
    }
    return JsonResponse(
        {
            "saved": result.saved,
            "conflict": result.conflict,
            "conflicts": conflicts,
            "revision": result.revision,
            "relevant": sorted(q.name for q in current.questions if q.name in result.relevant),
            "errors": result.errors,
            "current": result.current,
        },
        status=409 if result.conflict else 200,
    )


def _review(request: HttpRequest, channel: Channel) -> HttpResponse:
    response = channel.start()
    if response.is_submitted:
        return redirect(channel.url("receipt"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        response, errors = response.submit(by=channel.staff, editor=channel.editor(request))
        if response.is_submitted:
            return redirect(channel.url("receipt"))
    form = get_form(response.questionnaire_id)
    if request.method == "GET":
        errors = form.validate_all(response.answers)
    context = {
        "response": response,
        "form": form,
        "sections": answer_sections(form, response.answers, errors, last_answers(response, form)),
        "errors": errors,
    }
    return channel.render(request, "respondent/review.jinja", context)


def answer_sections(
    form: Form,
    answers: dict[str, Any],
    errors: dict[str, str],
    last: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    values, relevant = form.evaluate(answers)
    sections = []
    for page in form.pages:
        if page.name not in relevant:
            continue
        rows = [
            {
                "q": q,
                "label": form.with_last(q.text(), last or {}),
                "answer": q.display(values.get(q.name)),
                "error": errors.get(q.name),
            }
            for q in page.inputs
            if q.name in relevant
        ]
        sections.append({"page": page, "title": page.text(), "rows": rows})
    return sections


def _receipt(request: HttpRequest, channel: Channel) -> HttpResponse:
    response = Response.objects.filter(case=channel.case).first()
    if response is None or not response.is_submitted:
        return redirect(channel.url("welcome"))
    form = get_form(response.questionnaire_id)
    context = {
        "response": response,
        "form": form,
        "sections": answer_sections(form, response.answers, {}, last_answers(response, form)),
        "submitted_at": date_format(localtime(response.submitted_at), "Y-m-d H:i T"),
    }
    return channel.render(request, "respondent/receipt.jinja", context)


def edit_query(request: HttpRequest, token: str) -> HttpResponse:
    """The firm's page for a query about its submitted answers: only the questioned items,
    each confirmed or corrected; answered once."""
    query = EditQuery.objects.by_token(token)
    if query is None:
        return render(request, "respondent/query_closed.jinja", {"query": None}, status=404)
    form = get_form(query.response.questionnaire_id)
    if query.is_answered:
        return _query_answered(request, query, form, refused=request.method == "POST")
    answer = QueryAnswerForm(request.POST or None, query=query, form=form)
    if request.method == "POST" and answer.is_valid():
        if not query.answer(answer.answers()):
            return _query_answered(request, query, form, refused=True)
        return redirect("surveys:edit_query", token=token)
    context = {
        "query": query,
        "case": query.response.case,
        "response": query.response,
        "items": [_query_item(query, question, answer) for question in answer.questions],
        "errors": [
            (question.name, question.text(), message)
            for question in answer.questions
            for field in (f"{question.name}__decision", question.name, f"{question.name}__comment")
            for message in answer.errors.get(field, [])
        ],
    }
    return render(request, "respondent/query.jinja", context)


def _query_item(query: EditQuery, question: Any, answer: QueryAnswerForm) -> dict[str, Any]:
    name = question.name
    posted = answer[name].value() if answer.is_bound else None
    form = get_form(query.response.questionnaire_id)
    field = _field(question, {name: posted or ""}, {name}, {}, None, (), form, {})
    field["label"] = _("The correct answer")
    field["error"] = " ".join(map(str, answer.errors.get(name, [])))
    field["required"] = False  # only when the firm says the answer is wrong
    return {
        "q": question,
        "label": question.text(),
        "answer": question.shown(answer.current.get(name)) if name in answer.current else "",
        "messages": [pick(entry["message"]) for entry in query.items if entry["item"] == name],
        "decision": answer[f"{name}__decision"].value() if answer.is_bound else None,
        "decision_error": " ".join(map(str, answer.errors.get(f"{name}__decision", []))),
        "comment": answer[f"{name}__comment"].value() or "",
        "comment_error": " ".join(map(str, answer.errors.get(f"{name}__comment", []))),
        "field": field,
        "confirm": CONFIRM,
        "correct": CORRECT,
    }


def _query_answered(
    request: HttpRequest, query: EditQuery, form: Form, *, refused: bool
) -> HttpResponse:
    given = []
    for entry in query.items:
        question = form.questions.get(entry["item"])
        answer = entry.get("answer") or {}
        given.append(
            {
                "label": question.text() if question else entry["item"],
                "value": question.shown(answer.get("value")) if question else "",
                "corrected": answer.get("corrected", False),
            }
        )
    context = {
        "query": query,
        "refused": refused,
        "answered_at": date_format(localtime(query.answered_at), "Y-m-d H:i"),
        "given": list({g["label"]: g for g in given}.values()),
    }
    return render(request, "respondent/query_closed.jinja", context, status=409 if refused else 200)


@login_required
@permission_required("surveys.load_questionnaire", raise_exception=True)
def upload_questionnaire(request: HttpRequest) -> HttpResponse:
    upload = QuestionnaireUploadForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and upload.is_valid():
        data = upload.cleaned_data["file"].read()
        name = upload.cleaned_data["file"].name or ""
        try:
            expanded = check_size(data)
            if expanded > settings.FORM_INLINE_BYTES:
                return _load_in_worker(request, data, name)
            with transaction.atomic():
                version = load_questionnaire(data, source_name=name, user=request.user)
        except FormError as exc:
            problems = exc.problems
        else:
            messages.success(
                request,
                _("Loaded version %(version)s of “%(survey)s”.")
                % {"version": version.version, "survey": version.survey.title},
            )
            return redirect("surveys:upload_questionnaire")
    return render(
        request, "surveys/upload_questionnaire.html", {"upload": upload, "problems": problems}
    )


def _load_in_worker(request: HttpRequest, data: bytes, name: str) -> HttpResponse:
    """A large workbook is parsed by the worker, not in a web process."""
    job = QuestionnaireUpload.objects.create(
        source=data,
        source_name=name[:255],
        uploaded_by=request.user,  # type: ignore[misc]
    )
    enqueue_on_commit(LOAD_UPLOAD, job.pk)
    return redirect("surveys:questionnaire_upload", upload=job.pk)


@login_required
@permission_required("surveys.load_questionnaire", raise_exception=True)
def questionnaire_upload(request: HttpRequest, upload: int) -> HttpResponse:
    job = get_object_or_404(
        QuestionnaireUpload.objects.defer("source").select_related("version__survey"),
        pk=upload,
        uploaded_by=request.user,
    )
    return render(request, "surveys/questionnaire_upload.html", {"job": job})
