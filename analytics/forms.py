from __future__ import annotations

from dataclasses import replace
from typing import Any

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from surveys.models import EditQuery, Response, get_form
from surveys.questionnaire import Question

from .models import EditFlag, EditFlagQuerySet
from .spec import (
    CALIBRATION_LABELS,
    CALIBRATION_METHODS,
    CI_LABELS,
    CI_METHODS,
    CLASS_VARIABLES,
    LONELY_PSU,
    LONELY_PSU_LABELS,
    MAX_REPLICATES,
    VARIABLE_LABELS,
    VARIANCE_LABELS,
    SpecError,
    WeightingSpec,
    parse_margins_csv,
    parse_spec,
)

VARIABLES = [(v, VARIABLE_LABELS[v]) for v in CLASS_VARIABLES]
MAX_MARGINS_FILE = 1_000_000


class WeightingSpecForm(forms.Form):
    """The survey's weighting and publication settings (docs/methodology.md, D, E, F)."""

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
    margins_file = forms.FileField(
        label=_("Eligible-population control totals (CSV file)"),
        required=False,
        help_text=_(
            "Columns variable, level, N; every calibration variable's levels must add up to "
            "the same total. Without a file the controls are the eligible population "
            "estimated from the whole sample."
        ),
    )
    forget_margins = forms.BooleanField(
        label=_("Estimate the controls from the sample again (forget the uploaded totals)"),
        required=False,
    )
    trim_rounds = forms.IntegerField(
        label=_("Trimming: at most this many rounds of trimming and recalibration"),
        min_value=1,
        max_value=100,
    )
    variance = forms.ChoiceField(
        label=_("Variance estimation"), choices=list(VARIANCE_LABELS.items())
    )
    replicates = forms.IntegerField(
        label=_("Replicates"),
        min_value=2,
        max_value=MAX_REPLICATES,
        required=False,
        help_text=_("Empty: 100 jackknife groups or 500 bootstrap replicates."),
    )
    replicate_seed = forms.IntegerField(label=_("Random seed of the replicates"), min_value=0)
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
    min_n = forms.IntegerField(
        label=_("Suppress below this many respondents (confidentiality)"), min_value=1
    )
    nchs_min_n = forms.IntegerField(label=_("NCHS: warn below this n or effective n"), min_value=1)
    nchs_max_width = forms.FloatField(
        label=_("NCHS: warn at CI widths of at least"), min_value=0.01, max_value=1
    )
    rse_caution = forms.FloatField(label=_("Means and totals: caution above RSE"), min_value=0)
    rse_suppress = forms.FloatField(
        label=_("Means and totals: stronger warning above RSE"),
        min_value=0,
        help_text=_("Unreliable cells are published with their grade and a warning."),
    )
    min_df = forms.IntegerField(label=_("Review below these degrees of freedom"), min_value=1)
    editing_threshold = forms.FloatField(
        label=_("Selective editing: review a soft rule's failure from this score"),
        min_value=0,
        max_value=0.99,
        help_text=_(
            "The share of the item's estimated total the suspicious value could move "
            "(final weight × |value − expected| / total). Below it the value passes "
            "untouched; a hard rule's failure is always reviewed."
        ),
    )
    imputation = forms.CharField(
        label=_("Imputation, one item per line, in form order"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace"}),
        help_text=_(
            "item method [variables]: derived <expression>, ratio <auxiliary>, nearest "
            "<matching variables>, or random; e.g. “sales_krw_mn ratio frame.employees”, "
            "“sf_level random”. Missing and rejected values of these items are imputed."
        ),
    )
    imputation_classes = forms.MultipleChoiceField(
        label=_("Imputation classes"),
        choices=VARIABLES,
        required=False,
        help_text=_("Collapsed by dropping the last variable, then all donors."),
    )

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
            "trim_rounds": spec.trim_rounds,
            "variance": spec.variance,
            "replicates": spec.replicates,
            "replicate_seed": spec.replicate_seed,
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
            "editing_threshold": spec.editing_threshold,
            "imputation": "\n".join(spec.imputation),
            "imputation_classes": list(spec.imputation_classes),
        }

    def __init__(self, *args: Any, current: WeightingSpec | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = current or WeightingSpec()

    def clean_margins_file(self) -> dict[str, dict[str, float]] | None:
        upload = self.cleaned_data.get("margins_file")
        if upload is None:
            return None
        if upload.size > MAX_MARGINS_FILE:
            raise forms.ValidationError(_("The margins file is larger than 1 MB."))
        try:
            return parse_margins_csv(upload.read())
        except SpecError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.spec = self._spec(data)
        except SpecError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    def _margin_totals(self, data: dict[str, Any]) -> dict[str, dict[str, float]]:
        if data.get("margins_file"):
            return dict(data["margins_file"])
        if data.get("forget_margins") or data["calibration"] == "none":
            return {}
        return dict(self.current.margin_totals)

    def _spec(self, data: dict[str, Any]) -> WeightingSpec:
        # Settings the form does not show (raking epsilon, seeds...) keep their values.
        base = self.current
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
            trim_rounds=data["trim_rounds"],
            margin_totals=self._margin_totals(data),
            variance=data["variance"],
            replicates=data["replicates"],
            replicate_seed=data["replicate_seed"],
            lonely_psu=data["lonely_psu"],
            ci_method=data["ci_method"],
            domain_variables=tuple(data["domain_variables"]),
            domain_questions=tuple(
                q.strip() for q in data["domain_questions"].split(",") if q.strip()
            ),
            suppression=thresholds,
            editing_threshold=data["editing_threshold"],
            imputation=tuple(
                line.strip() for line in data["imputation"].splitlines() if line.strip()
            ),
            imputation_classes=tuple(data["imputation_classes"])
            or WeightingSpec().imputation_classes,
        )
        return parse_spec(spec.to_json())


# --- the review of edit flags ------------------------------------------------------------------

TO_REVIEW, ALL = "review", "all"
REASON_MAX = 2000


class QueueFilterForm(forms.Form):
    """The review queue's filters; what does not validate is not applied."""

    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            (TO_REVIEW, _("to review (open or answered)")),
            (ALL, _("all")),
            *EditFlag.Status.choices,
        ],
    )
    rule = forms.ChoiceField(label=_("Edit rule"), required=False)
    severity = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("hard and soft")), ("hard", _("hard")), ("soft", _("soft"))],
    )

    def __init__(self, data: Any, *, rules: list[str]) -> None:
        super().__init__(data)
        self.fields["rule"].choices = [("", _("every rule")), *((r, r) for r in rules)]  # type: ignore[attr-defined]

    def apply(self, flags: EditFlagQuerySet) -> EditFlagQuerySet:
        chosen = self.cleaned_data if self.is_valid() else {}
        status = chosen.get("status") or TO_REVIEW
        if status == TO_REVIEW:
            flags = flags.to_review()
        elif status != ALL:
            flags = flags.filter(status=status)
        if chosen.get("rule"):
            flags = flags.filter(rule=chosen["rule"])
        if chosen.get("severity"):
            flags = flags.filter(severity=chosen["severity"])
        return flags


ACTIONS = ("accept", "correct", "reject")


class FlagChoiceForm(forms.Form):
    """Which of the response's flags an action is about."""

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    flag = forms.ModelChoiceField(
        queryset=EditFlag.objects.none(),
        error_messages={"invalid_choice": _("This is not one of this response's flags.")},
    )

    def __init__(self, data: Any, *, response: Response) -> None:
        super().__init__(data)
        self.fields["flag"].queryset = EditFlag.objects.filter(response=response)  # type: ignore[attr-defined]


class FlagForm(forms.Form):
    """An action on one flag; its fields carry the flag's id in their names."""

    def __init__(self, data: Any = None, *, flag: EditFlag, items: list[Question]) -> None:
        super().__init__(data, prefix=f"{self.action}-{flag.pk}")
        self.flag = flag
        if "item" in self.fields:
            field = self.fields["item"]
            field.choices = [(q.name, f"{q.text()} ({q.name})") for q in items]  # type: ignore[attr-defined]
            field.initial = flag.item

    action = ""


class AcceptForm(FlagForm):
    action = "accept"
    reason = forms.CharField(
        label=_("Why the value stands (optional)"),
        required=False,
        max_length=REASON_MAX,
    )


class RejectForm(FlagForm):
    action = "reject"
    item = forms.ChoiceField(label=_("Question"))
    reason = forms.CharField(
        label=_("Why the value is wrong"),
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The value is blanked; the estimates impute it."),
    )


class CorrectForm(FlagForm):
    action = "correct"
    item = forms.ChoiceField(label=_("Question"))
    value = forms.CharField(
        label=_("Correct value"),
        max_length=REASON_MAX,
        help_text=_("For a choice question, the option's code (several separated by spaces)."),
    )
    reason = forms.CharField(
        label=_("Source or reason"),
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: the firm's accountant on the phone, 2024-05-02."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name, raw = data.get("item"), data.get("value")
        if name is None or raw is None:
            return data
        response = self.flag.response
        form = get_form(response.questionnaire_id)
        question = form.questions[name]
        try:
            value = question.parse_value(raw)
        except ValueError as exc:
            self.add_error("value", str(exc))
            return data
        current = response.edited_values()
        if value is None:
            self.add_error("value", _("Enter the correct value, or reject the value instead."))
        elif value == current.get(name):
            self.add_error("value", _("This is the current value: accept it instead."))
        else:
            values, _relevant = form.evaluate({**current, name: value})
            problem = question.check(value, values)
            if problem:
                self.add_error("value", problem)
        data["parsed"] = value
        return data


FLAG_FORMS: dict[str, type[FlagForm]] = {
    form.action: form for form in (AcceptForm, CorrectForm, RejectForm)
}


class QueryForm(forms.Form):
    """Ask the firm about some of its response's flags, with a note."""

    flags = forms.ModelMultipleChoiceField(
        label=_("Questions to ask about"),
        queryset=EditFlag.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("This is not one of this response's flags to review.")},
    )
    note = forms.CharField(
        label=_("Note to the firm (optional)"),
        required=False,
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("The firm reads it above the questions, with each rule's message."),
    )

    def __init__(self, data: Any = None, *, response: Response, labels: dict[int, str]) -> None:
        super().__init__(data, prefix="query")
        self.response = response
        askable = EditFlag.objects.filter(response=response).to_review().exclude(item="")
        field = self.fields["flags"]
        field.queryset = askable  # type: ignore[attr-defined]
        field.label_from_instance = lambda flag: labels.get(flag.pk, flag.rule)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.response.case.frame_unit.email:
            raise forms.ValidationError(
                _("The firm has no email address in the frame: call it instead.")
            )
        return data


class ResendForm(forms.Form):
    query = forms.ModelChoiceField(queryset=EditQuery.objects.none(), widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, response: Response) -> None:
        super().__init__(data, prefix="resend")
        unsent = Q(sent_at__isnull=True, answered_at__isnull=True)
        self.fields["query"].queryset = EditQuery.objects.filter(unsent, response=response)  # type: ignore[attr-defined]
