"""Downloads: estimates, microdata, codebook, fieldwork status, contact log, response rates.

Small exports stream directly; microdata and anything over exports.DIRECT_ROW_LIMIT rows run
as a worker job whose file only its owner can download. Every file served is recorded in the
Download audit log.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.celery import enqueue_on_commit
from config.http import client_address
from surveys.models import Survey

from .. import exports
from ..export_jobs import RUN_EXPORT, report_file
from ..models import Download, EstimateRun, ExportJob, ListedRun

DOWNLOAD = "analytics.download_results"
IDENTIFIED = "analytics.download_identified"
CONTACTS = "respondents.view_contact_details"
RECENT_JOBS = 20
TRUE_VALUES = ("1", "true", "on", "yes")
TITLES = {
    "estimates": gettext_lazy("Estimates"),
    "microdata": gettext_lazy("Microdata"),
    "panel": gettext_lazy("Panel of two rounds"),
    "codebook": gettext_lazy("Codebook"),
    "fieldwork": gettext_lazy("Fieldwork status"),
    "contacts": gettext_lazy("Contact log"),
    "response-rates": gettext_lazy("Response rates"),
}
DESCRIPTIONS = {
    "estimates": gettext_lazy(
        "Every estimate of a published version with its standard error, confidence interval, "
        "flags and suppression. Excel: a sheet per domain with labels, a flag legend and a "
        "cover stating the version."
    ),
    "microdata": gettext_lazy(
        "One row per sampled firm with its weights and every question of every questionnaire "
        "version. SPSS and Stata files carry labels and missing-value codes. Prepared by the "
        "worker. Scientific-use and public-use files pass through disclosure control and come "
        "with a disclosure-risk report."
    ),
    "panel": gettext_lazy(
        "One row per sampled firm and round, this survey and its previous round, with each "
        "round's stratum and weights, whether the firm was sampled in both, and the answers "
        "as each round's version used them. A link key joins a firm's rows across rounds. For "
        "analysis inside the office: no disclosure control. Prepared by the worker."
    ),
    "codebook": gettext_lazy(
        "Every microdata variable: labels in Korean and English, choices, who was asked, "
        "missing-value codes and questionnaire versions."
    ),
    "fieldwork": gettext_lazy(
        "One row per sampled firm: disposition, response status and mode, last contact, "
        "emails sent."
    ),
    "contacts": gettext_lazy("Every recorded contact attempt: channel, date, staff, outcome."),
    "response-rates": gettext_lazy("AAPOR outcome rates, in total and by domain."),
}
LEVEL_LABELS = {
    "scientific": gettext_lazy("Scientific use (disclosure control: k = 3)"),
    "public": gettext_lazy("Public use (stronger: k = 5, no region)"),
    "identified": gettext_lazy(
        "Identified (internal: business registration numbers and contact answers)"
    ),
}
FORMAT_LABELS = {
    "csv": gettext_lazy("CSV (UTF-8, Excel)"),
    "xlsx": gettext_lazy("Excel (XLSX)"),
    "sav": gettext_lazy("SPSS (.sav)"),
    "dta": gettext_lazy("Stata (.dta)"),
    "json": gettext_lazy("JSON"),
}


class ExportForm(forms.Form):
    format = forms.ChoiceField(label=gettext_lazy("Format"))
    language = forms.ChoiceField(
        label=gettext_lazy("Language of labels"), choices=settings.LANGUAGES, initial="ko"
    )
    run = forms.TypedChoiceField(
        label=gettext_lazy("Estimate version"), coerce=int, required=False, empty_value=None
    )
    level = forms.ChoiceField(
        label=gettext_lazy("Release level"), initial="scientific", required=False
    )
    panel = forms.BooleanField(
        label=gettext_lazy("Panel file: the same unit ID in every release of this level"),
        required=False,
    )
    contact = forms.BooleanField(
        label=gettext_lazy("Include email addresses and phone numbers"), required=False
    )
    weighted = forms.BooleanField(label=gettext_lazy("Weighted by base weights"), required=False)
    labelled = forms.BooleanField(
        label=gettext_lazy("Answers as labels"),
        help_text=gettext_lazy(
            "CSV and Excel: choices, classifications and dispositions written as their labels "
            "in the language above, instead of codes (SPSS and Stata carry both)."
        ),
        required=False,
        initial=True,
    )

    def __init__(
        self,
        *args: Any,
        survey: Survey,
        what: str,
        user: Any,
        runs: list[ListedRun],
        **kwargs: Any,
    ) -> None:
        kwargs["prefix"] = what
        super().__init__(*args, **kwargs)
        self.survey, self.what = survey, what
        _choices(self, "format", [(f, FORMAT_LABELS[f]) for f in exports.FORMATS[what]])
        _choices(self, "run", [(r.run.number, _run_label(r)) for r in runs])
        if what not in (*exports.NEEDS_RUN, *exports.USES_RUN) or not runs:
            del self.fields["run"]
        levels = [lv for lv in exports.LEVELS if lv != "identified" or user.has_perm(IDENTIFIED)]
        _choices(self, "level", [(lv, LEVEL_LABELS[lv]) for lv in levels])
        if what != "microdata":
            del self.fields["level"], self.fields["panel"]
        if what not in ("fieldwork", "contacts") or not user.has_perm(CONTACTS):
            del self.fields["contact"]
        if what != "response-rates":
            del self.fields["weighted"]
        if what not in ("microdata", "panel"):
            del self.fields["labelled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.options = exports.make_options(
                self.survey,
                self.what,
                data["format"],
                language=data["language"],
                run_number=data.get("run"),
                contact=data.get("contact", False),
                weighted=data.get("weighted", False),
                labelled=data.get("labelled", False),
                level=data.get("level", ""),
                panel=data.get("panel", False),
            )
        except exports.ExportError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


def _choices(form: forms.Form, name: str, choices: list[tuple[Any, Any]]) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


def _published(survey: Survey) -> list[ListedRun]:
    """Each closed wave's official version and the latest provisional one."""
    return EstimateRun.objects.defer("weights", "timings", "diagnostics").by_wave(survey)


def _run_label(entry: ListedRun) -> str:
    run = entry.run
    as_of = f"{timezone.localtime(run.data_as_of):%Y-%m-%d %H:%M}" if run.data_as_of else ""
    values = {"number": run.number, "as_of": as_of, "wave": entry.wave.name if entry.wave else ""}
    if entry.official_of is not None:
        return _("Run %(number)s: official figures of %(wave)s (data as of %(as_of)s)") % values
    if entry.wave is not None:
        return _("Run %(number)s: provisional, %(wave)s (data as of %(as_of)s)") % values
    return _("Run %(number)s: provisional (data as of %(as_of)s)") % values


# --- the downloads page ---------------------------------------------------------------------


@login_required
@permission_required(DOWNLOAD, raise_exception=True)
def downloads(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    runs = _published(found)
    bound = None
    if request.method == "POST":
        what = request.POST.get("what", "")
        if what not in exports.FORMATS:
            return HttpResponseBadRequest(_("Choose an export."))
        _check_sensitive(request, what)
        bound = ExportForm(request.POST, survey=found, what=what, user=request.user, runs=runs)
        if bound.is_valid():
            return _start(request, bound.options)
    context = {
        "survey": found,
        "run": runs[0].run if runs else None,
        "cards": _cards(found, request.user, bound, runs),
        "jobs": ExportJob.objects.filter(survey=found, user=request.user)[:RECENT_JOBS],  # type: ignore[misc]
    }
    return render(request, "analytics/downloads.html", context, status=400 if bound else 200)


def _check_sensitive(request: HttpRequest, what: str) -> None:
    """Asking for identified data or contact details without the permission is refused."""
    asked = {
        IDENTIFIED: request.POST.get(f"{what}-level", "") == "identified",
        CONTACTS: request.POST.get(f"{what}-contact", "").lower() in TRUE_VALUES,
    }
    if any(wanted and not request.user.has_perm(perm) for perm, wanted in asked.items()):
        raise PermissionDenied


def _cards(
    survey: Survey, user: Any, bound: ExportForm | None, runs: list[ListedRun]
) -> list[dict[str, Any]]:
    cards = []
    previous = survey.previous_round
    has_panel = (
        previous is not None and EstimateRun.objects.published().filter(survey=previous).exists()
    )
    for what in exports.FORMATS:
        form = bound if bound is not None and bound.what == what else None
        available = bool(runs) or what not in exports.NEEDS_RUN
        cards.append(
            {
                "what": what,
                "title": TITLES[what],
                "description": DESCRIPTIONS[what],
                "available": available and (what != "panel" or has_panel),
                "unavailable": _("Needs a previous round with a published estimate version.")
                if what == "panel" and available
                else "",
                "form": form or ExportForm(survey=survey, what=what, user=user, runs=runs),
            }
        )
    return cards


def _start(request: HttpRequest, options: exports.ExportOptions) -> HttpResponse:
    if exports.needs_job(options):
        job = ExportJob.objects.create(
            survey=options.survey,
            user=request.user,  # type: ignore[misc]
            what=options.what,
            format=options.format,
            parameters=options.parameters(),
            filename=options.filename,
        )
        enqueue_on_commit(RUN_EXPORT, job.pk)
        return redirect("analytics:export_job", survey=options.survey.slug, job=job.pk)
    _audit(request, options.survey, options.what, options.format, options.parameters())
    return _direct(options)


def _direct(options: exports.ExportOptions) -> HttpResponse:
    response: HttpResponse | StreamingHttpResponse
    if options.format == "csv" and options.what != "response-rates":
        response = StreamingHttpResponse(
            exports.csv_chunks(options), content_type=options.content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{options.filename}"'
    else:
        # Not a `with` block: the response closes (and so deletes) the file once sent.
        spool = tempfile.TemporaryFile()  # noqa: SIM115
        exports.export(options, spool)
        spool.seek(0)
        response = FileResponse(
            spool, as_attachment=True, filename=options.filename, content_type=options.content_type
        )
    response["Cache-Control"] = "no-store"
    return response  # type: ignore[return-value]


def _audit(
    request: HttpRequest, survey: Survey, what: str, fmt: str, parameters: dict[str, Any]
) -> None:
    Download.objects.create(
        user=request.user,  # type: ignore[misc]
        survey=survey,
        what=what,
        format=fmt,
        identified=bool(parameters.get("identified")),
        parameters=parameters,
        client=client_address(request),
    )


# --- export jobs ------------------------------------------------------------------------------


def _own_job(request: HttpRequest, survey: str, job: int) -> ExportJob:
    """The user's own job; anyone else's is not found."""
    return get_object_or_404(
        ExportJob.objects.select_related("survey"), pk=job, survey__slug=survey, user=request.user
    )


@login_required
@permission_required(DOWNLOAD, raise_exception=True)
def export_job(request: HttpRequest, survey: str, job: int) -> HttpResponse:
    found = _own_job(request, survey, job)
    context = {
        "survey": found.survey,
        "job": found,
        "title": TITLES.get(found.what, found.what),
        "level": LEVEL_LABELS.get(found.parameters.get("level", "")),
        "disclosure": _disclosure(found),
    }
    return render(request, "analytics/export_job.html", context)


def _disclosure(job: ExportJob) -> dict[str, Any] | None:
    path = _report_file(job)
    if path is None:
        return None
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError):
        return None


def _report_file(job: ExportJob) -> Path | None:
    if job.status != ExportJob.Status.DONE or not job.file:
        return None
    path = report_file(Path(settings.MEDIA_ROOT) / job.file)
    return path if path.is_file() else None


@login_required
@permission_required(DOWNLOAD, raise_exception=True)
def export_job_report(request: HttpRequest, survey: str, job: int) -> FileResponse:
    """The disclosure-risk report of a released microdata file, as JSON."""
    found = _own_job(request, survey, job)
    path = _report_file(found)
    if path is None:
        raise Http404
    name = f"{Path(found.filename or path.name).stem}-disclosure.json"
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=name, content_type="application/json"
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required(DOWNLOAD, raise_exception=True)
def export_job_status(request: HttpRequest, survey: str, job: int) -> JsonResponse:
    found = _own_job(request, survey, job)
    finished = found.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED)
    return JsonResponse(
        {
            "status": found.status,
            "progress": round(found.progress, 4),
            "percent": round(100 * found.progress),
            "finished": finished,
        }
    )


@login_required
@permission_required(DOWNLOAD, raise_exception=True)
def export_job_file(request: HttpRequest, survey: str, job: int) -> FileResponse:
    found = _own_job(request, survey, job)
    if found.parameters.get("identified") and not request.user.has_perm(IDENTIFIED):
        raise PermissionDenied
    if found.parameters.get("contact") and not request.user.has_perm(CONTACTS):
        raise PermissionDenied
    path = Path(settings.MEDIA_ROOT) / found.file
    if found.status != ExportJob.Status.DONE or not found.file or not path.is_file():
        raise Http404
    _audit(request, found.survey, found.what, found.format, found.parameters)
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=found.filename or path.name,
        content_type=exports.CONTENT_TYPES.get(found.format, "application/octet-stream"),
    )
    response["Cache-Control"] = "no-store"
    return response
