from __future__ import annotations

from dataclasses import replace
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .spec import (
    CALIBRATION_LABELS,
    CALIBRATION_METHODS,
    CI_LABELS,
    CI_METHODS,
    CLASS_VARIABLES,
    LONELY_PSU,
    LONELY_PSU_LABELS,
    VARIABLE_LABELS,
    SpecError,
    WeightingSpec,
    parse_spec,
)

VARIABLES = [(v, VARIABLE_LABELS[v]) for v in CLASS_VARIABLES]


class WeightingSpecForm(forms.Form):
    """The survey's weighting and publication settings (methodology D, E, F)."""

    classes = forms.MultipleChoiceField(
        label=_("Weighting classes"),
        choices=VARIABLES,
        required=False,
        help_text=_("Leave empty to use the strata (the default)."),
    )
    min_respondents = forms.IntegerField(
        label=_("Collapse a class below this many respondents"), min_value=1, max_value=100
    )
    max_adjustment = forms.FloatField(
        label=_("…or above this adjustment factor"), min_value=1.01, required=False
    )
    partials_are_respondents = forms.BooleanField(
        label=_("Partials (1.2) count as respondents"), required=False
    )
    calibration = forms.ChoiceField(
        label=_("Calibration"), choices=[(m, CALIBRATION_LABELS[m]) for m in CALIBRATION_METHODS]
    )
    margins = forms.MultipleChoiceField(
        label=_("Calibration margins"), choices=VARIABLES, required=False
    )
    bound_lower = forms.FloatField(label=_("Lower bound of g (logit calibration)"), min_value=0)
    bound_upper = forms.FloatField(label=_("Upper bound of g"), min_value=1.01)
    trim_lower = forms.FloatField(label=_("Trim weights below"), min_value=0, required=False)
    trim_upper = forms.FloatField(label=_("Trim weights above"), min_value=0, required=False)
    lonely_psu = forms.ChoiceField(
        label=_("Stratum with one respondent"),
        choices=[(r, LONELY_PSU_LABELS[r]) for r in LONELY_PSU],
    )
    ci_method = forms.ChoiceField(
        label=_("Confidence interval of proportions"),
        choices=[(m, CI_LABELS[m]) for m in CI_METHODS],
    )
    domain_variables = forms.MultipleChoiceField(
        label=_("Domains"),
        choices=VARIABLES,
        required=False,
        help_text=_(
            "Leave empty for the strata variables, size class, industry group, region "
            "area and region."
        ),
    )
    domain_questions = forms.CharField(
        label=_("Domains by answer"),
        required=False,
        help_text=_("Single-choice questions, comma-separated (e.g. sf_adopted)."),
    )
    min_n = forms.IntegerField(label=_("Suppress below this many respondents"), min_value=1)
    nchs_min_n = forms.IntegerField(label=_("NCHS: minimum n and effective n"), min_value=1)
    nchs_max_width = forms.FloatField(
        label=_("NCHS: suppress CI widths of at least"), min_value=0.01, max_value=1
    )
    rse_caution = forms.FloatField(label=_("Means and totals: caution above RSE"), min_value=0)
    rse_suppress = forms.FloatField(label=_("Means and totals: suppress above RSE"), min_value=0)
    min_df = forms.IntegerField(label=_("Review below these degrees of freedom"), min_value=1)

    @staticmethod
    def initial_from(spec: WeightingSpec) -> dict[str, Any]:
        t = spec.suppression
        return {
            "classes": [] if spec.weighting_classes == "stratum" else list(spec.weighting_classes),
            "min_respondents": spec.min_respondents,
            "max_adjustment": spec.max_adjustment,
            "partials_are_respondents": spec.partials_are_respondents,
            "calibration": spec.calibration,
            "margins": list(spec.margins),
            "bound_lower": spec.calibration_bounds[0],
            "bound_upper": spec.calibration_bounds[1],
            "trim_lower": spec.trim_lower,
            "trim_upper": spec.trim_upper,
            "lonely_psu": spec.lonely_psu,
            "ci_method": spec.ci_method,
            "domain_variables": list(spec.domain_variables),
            "domain_questions": ", ".join(spec.domain_questions),
            "min_n": t.min_n,
            "nchs_min_n": t.nchs_min_n,
            "nchs_max_width": t.nchs_max_width,
            "rse_caution": t.rse_caution,
            "rse_suppress": t.rse_suppress,
            "min_df": t.min_df,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.spec = self._spec(data)
        except SpecError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    def _spec(self, data: dict[str, Any]) -> WeightingSpec:
        base = WeightingSpec()
        thresholds = replace(
            base.suppression,
            min_n=data["min_n"],
            min_cell_n=data["min_n"],
            nchs_min_n=data["nchs_min_n"],
            nchs_min_neff=float(data["nchs_min_n"]),
            nchs_max_width=data["nchs_max_width"],
            rse_caution=data["rse_caution"],
            rse_suppress=data["rse_suppress"],
            min_df=data["min_df"],
        )
        spec = replace(
            base,
            weighting_classes=tuple(data["classes"]) or "stratum",
            min_respondents=data["min_respondents"],
            max_adjustment=data["max_adjustment"],
            partials_are_respondents=data["partials_are_respondents"],
            calibration=data["calibration"],
            margins=tuple(data["margins"]),
            calibration_bounds=(data["bound_lower"], data["bound_upper"]),
            trim_lower=data["trim_lower"],
            trim_upper=data["trim_upper"],
            lonely_psu=data["lonely_psu"],
            ci_method=data["ci_method"],
            domain_variables=tuple(data["domain_variables"]),
            domain_questions=tuple(
                q.strip() for q in data["domain_questions"].split(",") if q.strip()
            ),
            suppression=thresholds,
        )
        return parse_spec(spec.to_json())
