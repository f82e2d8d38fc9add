"""Manager pages for the sample: design and draw, the drawn sample, reserves, credentials."""

from __future__ import annotations

import io
import tempfile

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from surveys.models import Survey

from .. import credentials as issuing
from .. import letters, sample_list, sampling
from ..forms import CredentialsForm, DesignForm, ReleaseForm, SampleFilterForm
from ..models import Case, CaseQuerySet, FrameUnit, SampleDesign, Stratum

MANAGE_FRAME = "respondents.manage_frame"
VIEW_SAMPLE = ("respondents.manage_fieldwork", MANAGE_FRAME)
VIEW_CONTACTS = "respondents.view_contact_details"
PER_PAGE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _survey(request: HttpRequest, slug: str, any_of: tuple[str, ...] = ()) -> Survey:
    """The survey, if the user holds at least one of the permissions (all managers: none)."""
    if any_of and not any(request.user.has_perm(perm) for perm in any_of):
        raise PermissionDenied
    return get_object_or_404(Survey, slug=slug)


def _drawn(survey: Survey) -> SampleDesign:
    design = sampling.drawn_design(survey)
    if design is None:
        raise Http404
    return design


@login_required
@permission_required(MANAGE_FRAME, raise_exception=True)
def design(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey.objects.select_related("previous_round"), slug=survey)
    drawn = sampling.drawn_design(found)
    if drawn is not None:
        context = {
            "survey": found,
            "design": drawn,
            "variables": [sampling.variable_label(name) for name in drawn.strata_variables],
            "strata": drawn.strata.all(),
            "overlap": sampling.overlap_table(drawn) if found.previous_round_id else None,
        }
        return render(request, "respondents/design_drawn.html", context)
    form = DesignForm(request.POST or None, survey=found)
    preview = None
    if request.method == "POST" and form.is_valid():
        try:
            if "draw" in request.POST and form.cleaned_data["confirm"]:
                _draw(request, found, form)
                return redirect("respondents:design", found.slug)
            if "draw" in request.POST:
                form.add_error("confirm", _("Tick this box to confirm the draw."))
            preview = sampling.preview_design(found, **form.design_parameters())
        except sampling.SamplingError as exc:
            form.add_error(None, str(exc))
    frame_size = FrameUnit.objects.filter(survey=found).count()
    context = {"survey": found, "form": form, "preview": preview, "frame_size": frame_size}
    return render(request, "respondents/design.html", context)


def _draw(request: HttpRequest, survey: Survey, form: DesignForm) -> None:
    seed = form.cleaned_data["seed"]
    record = sampling.draw_sample(survey, **form.design_parameters(), seed=seed, user=request.user)
    messages.success(
        request,
        _("The sample of %(n)s firms was drawn with seed %(seed)s.")
        % {"n": record.sample_size, "seed": record.seed},
    )


@login_required
def sample(request: HttpRequest, survey: str) -> HttpResponse:
    found = _survey(request, survey, VIEW_SAMPLE)
    drawn = sampling.drawn_design(found)
    if drawn is None:
        return render(request, "respondents/sample.html", {"survey": found, "design": None})
    strata = list(
        drawn.strata.annotate(
            reserve_left=Count(
                "cases", filter=Q(cases__is_reserve=True, cases__released_at__isnull=True)
            )
        )
    )
    filters = SampleFilterForm(request.GET or None, strata=strata)
    cases = _cases(found, filters).select_related("frame_unit", "stratum__design")
    page = Paginator(cases, PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "survey": found,
        "design": drawn,
        "strata": strata,
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "show_contacts": request.user.has_perm(VIEW_CONTACTS),
    }
    return render(request, "respondents/sample.html", context)


def _cases(survey: Survey, filters: SampleFilterForm) -> CaseQuerySet:
    return filters.filter(Case.objects.filter(survey=survey)).order_by(
        "stratum__key", "selection_order"
    )


@login_required
def sample_export(request: HttpRequest, survey: str, fmt: str) -> HttpResponse:
    found = _survey(request, survey, VIEW_SAMPLE)
    drawn = _drawn(found)
    filters = SampleFilterForm(request.GET or None, strata=list(drawn.strata.all()))
    cases = _cases(found, filters)
    contact = request.user.has_perm(VIEW_CONTACTS)
    filename = f"{found.slug}-sample.{fmt}"
    if fmt == "xlsx":
        response = HttpResponse(sample_list.sample_xlsx(cases, contact=contact), content_type=XLSX)
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        sample_list.write_sample_csv(cases, response, contact=contact)  # type: ignore[arg-type]
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if contact:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required(MANAGE_FRAME, raise_exception=True)
@require_POST
def release(request: HttpRequest, survey: str, stratum: int) -> HttpResponse:
    found = _survey(request, survey)
    target = get_object_or_404(
        Stratum.objects.select_related("design"),
        pk=stratum,
        design__survey=found,
        design__drawn_at__isnull=False,
    )
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the number of reserve units to release (at least 1)."))
        return redirect("respondents:sample", found.slug)
    try:
        cases = sampling.release_reserve(
            target, count=form.cleaned_data["count"], user=request.user
        )
    except sampling.SamplingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("Released %(count)s reserve units of %(stratum)s; n_h is now %(n)s.")
            % {"count": len(cases), "stratum": target.label, "n": target.sample_size},
        )
    return redirect("respondents:sample", found.slug)


@login_required
@permission_required(MANAGE_FRAME, raise_exception=True)
def credentials(request: HttpRequest, survey: str) -> HttpResponse:
    found = _survey(request, survey)
    _drawn(found)
    # An unticked form posts nothing, so bind on the method, not on request.POST.
    form = CredentialsForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        reissue = form.cleaned_data["reissue"]
        for _issued in issuing.issue_credentials(found, reissue=reissue):
            pass
        return _letters(found)
    in_sample = Case.objects.filter(survey=found).in_sample()
    counts = in_sample.aggregate(
        total=Count("pk"), issued=Count("pk", filter=Q(token_hash__isnull=False))
    )
    context = {"survey": found, "form": form, "counts": counts}
    return render(request, "respondents/credentials.html", context)


def _letters(survey: Survey) -> HttpResponse:
    buffer = io.StringIO()
    issuing.write_letters(survey, buffer)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{survey.slug}-letters.csv"'
    # The file holds every firm's link and access code: keep it out of any cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required(MANAGE_FRAME, raise_exception=True)
def letters_pdf(request: HttpRequest, survey: str) -> HttpResponseBase:
    """Every firm's letter, one page each, in the order of the letters CSV; written to a
    temporary file and streamed from it."""
    found = _survey(request, survey)
    _drawn(found)
    # Not a `with` block: the response closes (and so deletes) the file once sent.
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        letters.write_letters_pdf(found, spool)
    except letters.LetterError as exc:
        spool.close()
        messages.error(request, str(exc))
        return redirect("respondents:credentials", survey=found.slug)
    spool.seek(0)
    response = FileResponse(
        spool,
        as_attachment=True,
        filename=f"{found.slug}-letters.pdf",
        content_type="application/pdf",
    )
    # Every firm's access code: keep it out of any cache.
    response["Cache-Control"] = "no-store"
    return response
