"""Fieldwork pages: waves and mailings, email templates, a case's history, imports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from analytics.engine import aapor
from analytics.recompute import request_recompute
from surveys.models import Response, Survey

from .. import import_templates, imports, mailing
from ..forms import (
    NO_DEADLINE,
    ContactForm,
    DispositionForm,
    FieldworkImportForm,
    MessageTemplateForm,
    WaveForm,
)
from ..models import Case, MessageTemplate, Wave
from ..tabular import ImportRefused

FIELDWORK = "respondents.manage_fieldwork"
CONTACTS = "respondents.view_contact_details"
REVIEW_EDITS = "analytics.review_edits"


def _survey(slug: str) -> Survey:
    return get_object_or_404(Survey, slug=slug)


@login_required
@permission_required(FIELDWORK, raise_exception=True)
def waves(request: HttpRequest, survey: str) -> HttpResponse:
    target = _survey(survey)
    form = WaveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wave = form.save(commit=False)
        wave.survey = target
        wave.save()
        messages.success(request, _("Wave “%(name)s” added.") % {"name": wave.name})
        return redirect("respondents:waves", survey=target.slug)
    rows = list(Wave.objects.filter(survey=target).select_related("official_run"))
    progress = mailing.progress_by_wave([wave.pk for wave in rows])
    for wave in rows:
        wave.progress = progress[wave.pk]  # type: ignore[attr-defined]
    context = {"survey": target, "waves": rows, "form": form, "now": timezone.now()}
    return render(request, "respondents/waves.html", context)


@require_GET
@login_required
@permission_required(FIELDWORK, raise_exception=True)
def wave_progress(request: HttpRequest, survey: str, wave: int) -> HttpResponse:
    """The wave's progress element alone: the waves page polls it while mail is queued."""
    target = _survey(survey)
    chosen = get_object_or_404(Wave, pk=wave, survey=target)
    chosen.progress = mailing.progress_by_wave([wave])[wave]  # type: ignore[attr-defined]
    context = {"survey": target, "wave": chosen, "progress": chosen.progress}  # type: ignore[attr-defined]
    return render(request, "respondents/_wave_progress.html", context)


@require_POST
@login_required
@permission_required(FIELDWORK, raise_exception=True)
def send_wave(request: HttpRequest, survey: str, wave: int) -> HttpResponse:
    target = _survey(survey)
    chosen = get_object_or_404(Wave, pk=wave, survey=target)
    try:
        mailing.request_sending(chosen, user=request.user)
    except mailing.NoDeadline:
        messages.error(request, NO_DEADLINE)
        return redirect("respondents:waves", survey=target.slug)
    messages.success(
        request,
        _(
            "The emails of “%(wave)s” are being prepared and sent in the background; their "
            "progress shows below. Firms already sent this wave's email get no second one."
        )
        % {"wave": chosen.name},
    )
    return redirect("respondents:waves", survey=target.slug)


@require_POST
@login_required
@permission_required(FIELDWORK, raise_exception=True)
def close(request: HttpRequest, survey: str, wave: int) -> HttpResponse:
    target = _survey(survey)
    chosen = get_object_or_404(Wave, pk=wave, survey=target, closed_at__isnull=True)
    chosen.close(user=request.user)
    request_recompute(chosen.survey_id, reason="wave closed", closed_wave=chosen.pk)
    messages.success(
        request,
        _(
            "The wave is closed. Its official figures are being computed from the answers "
            "and dispositions recorded until now; the version appears here when ready."
        ),
    )
    return redirect("respondents:waves", survey=target.slug)


@login_required
@permission_required(FIELDWORK, raise_exception=True)
def message_template(request: HttpRequest, survey: str, kind: str, language: str) -> HttpResponse:
    target = _survey(survey)
    if kind not in MessageTemplate.Kind.values or language not in ("ko", "en"):
        return redirect("respondents:waves", survey=target.slug)
    stored = MessageTemplate.objects.filter(survey=target, kind=kind, language=language).first()
    subject, body = mailing.DEFAULTS[(kind, language)]
    instance = stored or MessageTemplate(
        survey=target, kind=kind, language=language, subject=subject, body=body
    )
    form = MessageTemplateForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        saved.updated_by, saved.updated_at = request.user, timezone.now()
        saved.save()
        messages.success(request, _("The template is saved."))
        return redirect("respondents:waves", survey=target.slug)
    context = {
        "survey": target,
        "form": form,
        "kind": MessageTemplate.Kind(kind).label,
        "language": dict(settings.LANGUAGES)[language],
    }
    return render(request, "respondents/message_template.html", context)


@login_required
@permission_required(FIELDWORK, raise_exception=True)
def case_detail(request: HttpRequest, survey: str, case: int) -> HttpResponse:
    target = _survey(survey)
    found = get_object_or_404(
        Case.objects.select_related("frame_unit", "stratum__design"), pk=case, survey=target
    )
    disposition = DispositionForm(
        request.POST if request.POST.get("form") == "disposition" else None,
        initial={"at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")},
        prefix="disposition",
    )
    contact = ContactForm(
        request.POST if request.POST.get("form") == "contact" else None,
        initial={"at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")},
        prefix="contact",
    )
    if request.method == "POST":
        done = _record(request, found, disposition, contact)
        if done:
            return redirect("respondents:case", survey=target.slug, case=found.pk)
    return render(
        request,
        "respondents/case.html",
        _case_context(request, target, found, disposition, contact),
    )


def _record(
    request: HttpRequest, case: Case, disposition: DispositionForm, contact: ContactForm
) -> bool:
    if disposition.is_bound and disposition.is_valid():
        data = disposition.cleaned_data
        event = case.record_disposition(
            data["code"],
            source="manager",
            by=request.user,
            reason=data["reason"],
            at=data["at"],
            override=data["override"],
        )
        if not event.applied:
            messages.warning(
                request,
                _(
                    "Recorded in the history, but the disposition did not change: a later event "
                    "decides, or the firm submitted its answers (tick override to change it)."
                ),
            )
        else:
            messages.success(request, _("Disposition recorded."))
        return True
    if contact.is_bound and contact.is_valid():
        case.log_contact(**contact.cleaned_data, by=request.user)
        messages.success(request, _("Contact attempt recorded."))
        return True
    return False


def _case_context(
    request: HttpRequest,
    survey: Survey,
    case: Case,
    disposition: DispositionForm,
    contact: ContactForm,
) -> dict[str, Any]:
    response = Response.objects.filter(case=case).select_related("keyed_by").first()
    events = case.disposition_events.select_related("wave", "by").order_by("-at", "-pk")
    history, history_count = response.history() if response else ([], 0)
    submitted = response if response is not None and response.is_submitted else None
    return {
        "survey": survey,
        "case": case,
        "code_label": _(aapor.parse_code(case.disposition).label),
        "response": response,
        "history": history,
        "history_count": history_count,
        "edit_trail": submitted.edit_trail() if submitted else [],
        "queries": submitted.query_trail() if submitted else [],
        "review_edits": bool(submitted) and request.user.has_perm(REVIEW_EDITS),
        "events": [(e, _(aapor.parse_code(e.code).label)) for e in events],
        "contacts": case.contacts.select_related("wave", "staff"),
        "messages_sent": case.messages.select_related("wave").order_by("-queued_at"),
        "disposition_form": disposition,
        "contact_form": contact,
        "show_contacts": request.user.has_perm(CONTACTS),
        "modes": [
            (m.value, m.label)
            for m in (Response.Mode.PHONE, Response.Mode.PAPER, Response.Mode.FAX)
        ],
    }


@login_required
@permission_required(FIELDWORK, raise_exception=True)
def fieldwork_import(request: HttpRequest, survey: str) -> HttpResponse:
    target = _survey(survey)
    form = FieldworkImportForm(request.POST or None, request.FILES or None)
    refusal: ImportRefused | None = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if form.cleaned_data["kind"] == "dispositions":
                result = imports.import_dispositions(
                    target, upload, filename=upload.name, user=request.user
                )
            else:
                result = imports.import_responses(
                    target,
                    upload,
                    filename=upload.name,
                    mode=form.cleaned_data["mode"] or "paper",
                    user=request.user,
                )
        except ImportRefused as error:
            refusal = error
        else:
            messages.success(request, _("%(rows)s rows recorded.") % {"rows": result.rows})
            return redirect("respondents:fieldwork_import", survey=target.slug)
    context = {"survey": target, "form": form, "refusal": refusal}
    return render(request, "respondents/fieldwork_import.html", context)


TEMPLATE_PERMISSIONS = {"frame": "respondents.manage_frame"}


@login_required
def import_template(request: HttpRequest, survey: str, kind: str, fmt: str) -> HttpResponse:
    """The template of an import file: its columns and an example row."""
    if not request.user.has_perm(TEMPLATE_PERMISSIONS.get(kind, FIELDWORK)):
        raise PermissionDenied
    target = _survey(survey)
    found = import_templates.template(target, kind)
    response = HttpResponse(
        import_templates.write(found, fmt), content_type=import_templates.CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{found.filename(target, fmt)}"'
    return response
