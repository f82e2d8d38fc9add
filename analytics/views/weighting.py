"""The survey's weighting specification: shown to managers, edited by administrators."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from analytics.engine.weighting import WeightingError
from surveys.models import Survey

from ..forms import WeightingSpecForm
from ..models import EstimateRun, WeightingSpec
from ..pipeline import check_margin_totals, current_spec, sample_levels, save_spec

# Actions on the form, not settings: the uploaded totals show in the controls table.
UPLOAD_FIELDS = ("margins_file", "forget_margins")


def readable_settings(form: forms.Form) -> list[tuple[str, str]]:
    """Each setting as people read it: its label and the chosen options' labels."""
    return [
        (str(field.label), _readable(field, form.initial.get(name)))
        for name, field in form.fields.items()
        if name not in UPLOAD_FIELDS
    ]


def _readable(field: forms.Field, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    labels = {str(k): str(v) for k, v in getattr(field, "choices", [])}
    values = value if isinstance(value, list | tuple) else [value]
    return ", ".join(labels.get(str(v), str(v)) for v in values)


@login_required
@permission_required("analytics.view_results", raise_exception=True)
def weighting(request: HttpRequest, survey: str) -> HttpResponse:
    target = get_object_or_404(Survey, slug=survey)
    spec, version = current_spec(target)
    form = WeightingSpecForm(
        request.POST or None,
        request.FILES or None,
        initial=WeightingSpecForm.initial_from(spec),
        current=spec,
    )
    if request.method == "POST":
        if not request.user.has_perm("analytics.edit_weighting_spec"):
            raise PermissionDenied
        if form.is_valid() and _margins_fit(target, form):
            saved = save_spec(target, form.spec, user=request.user)
            messages.success(
                request,
                _("Saved as version %(v)s; the estimates are being recomputed.") % {"v": saved},
            )
            return redirect("analytics:weighting", survey=target.slug)
    history = WeightingSpec.objects.filter(survey=target).select_related("created_by")[:20]
    latest = (
        EstimateRun.objects.published()
        .filter(survey=target)
        .defer("weights", "timings")
        .order_by("-number")
        .first()
    )
    context = {
        "survey": target,
        "form": form,
        "spec": spec,
        "version": version,
        "history": history,
        "settings": readable_settings(WeightingSpecForm(initial=form.initial)),
        "run": latest,
        "controls": (latest.diagnostics or {}).get("controls", {}) if latest else {},
    }
    return render(request, "analytics/weighting.html", context)


def _margins_fit(survey: Survey, form: WeightingSpecForm) -> bool:
    """External totals may only name levels that the survey's sample has."""
    if not form.spec.margin_totals:
        return True
    try:
        check_margin_totals(form.spec, sample_levels(survey, form.spec))
    except WeightingError as exc:
        form.add_error("margins_file", str(exc))
        return False
    return True
