"""Forms of the manager's frame and sample pages."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics.engine import aapor
from config.uploads import UploadField
from surveys.models import Survey

from . import sampling
from .classifications import Region, SizeClass
from .models import (
    CaseQuerySet,
    ContactAttempt,
    MessageTemplate,
    SampleDesign,
    Stratum,
    Wave,
)

SEED_DIGITS = 10**9
DRAFT_FIELDS = (
    "strata_variables", "allocation", "sample_size", "min_per_stratum", "reserve_fraction",
    "power", "neyman_variable", "assumed_proportion", "selection", "coordination", "rotation",
)  # fmt: skip


class FrameUploadForm(forms.Form):
    file = UploadField(
        label=_("Frame file"),
        extensions=(".csv", ".xlsx"),
        help_text=_(
            "CSV (UTF-8 or CP949/EUC-KR) or XLSX, one firm a row, with the columns business_id, "
            "name, ksic, size_class, region, employees, sales_krw_mn, email and phone. Other "
            "columns are kept and can be used for stratification."
        ),
    )


class LinkUploadForm(forms.Form):
    file = UploadField(
        label=_("Mapping file"),
        extensions=(".csv", ".xlsx"),
        help_text=_(
            "CSV (UTF-8 or CP949/EUC-KR) or XLSX with the columns old_business_id, "
            "new_business_id and kind (merger, split or renumbered), one link a row. It "
            "replaces the mapping loaded before."
        ),
    )


class DesignForm(forms.Form):
    strata_variables = forms.MultipleChoiceField(
        label=_("Stratification variables"),
        help_text=_("Every combination of their values is a stratum."),
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )
    groupings = forms.CharField(
        label=_("Grouping maps (JSON, optional)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            'New variables that group a frame variable\'s values, e.g. {"zone": {"source": '
            '"region", "map": {"Seoul": "north", "Busan": "south"}}}.'
        ),
    )
    allocation = forms.ChoiceField(
        label=_("Allocation"), choices=SampleDesign.Allocation.choices, initial="proportional"
    )
    sample_size = forms.IntegerField(label=_("Sample size n"), min_value=1, initial=5000)
    min_per_stratum = forms.IntegerField(label=_("Minimum per stratum"), min_value=0, initial=2)
    seed = forms.IntegerField(
        label=_("Random seed"),
        min_value=0,
        max_value=sampling.MAX_SEED,
        help_text=_("Recorded with the sample: the same frame, design and seed redo the draw."),
    )
    reserve_fraction = forms.FloatField(
        label=_("Reserve fraction"),
        min_value=0.0,
        max_value=sampling.MAX_RESERVE_FRACTION,
        initial=0.0,
        help_text=_("Reserve per stratum: ceil(fraction × n_h), at most N_h − n_h."),
    )
    power = forms.FloatField(
        label=_("Power q (power allocation)"),
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text=_("n_h ∝ N_h^q; 0.5 (square root) when left empty."),
    )
    neyman_variable = forms.ChoiceField(label=_("Neyman: numeric frame variable"), required=False)
    assumed_proportion = forms.FloatField(
        label=_("Neyman: assumed proportion P"), min_value=0.0, max_value=1.0, required=False
    )
    selection = forms.ChoiceField(
        label=_("Selection"),
        choices=SampleDesign.Selection.choices,
        initial=SampleDesign.Selection.SRS,
        required=False,  # SRS, as before there was a choice
        help_text=_(
            "Both give a stratified simple random sample. Permanent random numbers (PRN) "
            "also let the next round's sample be coordinated with this one."
        ),
    )
    coordination = forms.ChoiceField(
        label=_("Coordination with the previous round"),
        choices=SampleDesign.Coordination.choices,
        initial=SampleDesign.Coordination.NONE,
        help_text=_(
            "PRN only. Positive keeps last year's firms (estimates of change are most "
            "precise), negative avoids them (spreads the burden), rotation replaces the share "
            "below in each stratum."
        ),
    )
    rotation = forms.FloatField(
        label=_("Rotation share r"),
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text=_("Rotation only: the share of last year's sample replaced, e.g. 0.2."),
    )
    confirm = forms.BooleanField(
        label=_("I have checked the preview. Draw the sample now; it cannot be drawn again."),
        required=False,
    )

    def __init__(self, *args: Any, survey: Survey, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        variables = sampling.frame_variables(survey, self._posted_groupings())
        draft = survey.designs.filter(drawn_at__isnull=True).order_by("-pk").first()
        # A browser posts the chosen variables in the list's order, and their order makes the
        # strata's keys and the weighting's collapse (D3): the round's settings come first, in
        # their order, so that its strata are last round's.
        first = list(draft.strata_variables) if draft else []
        names = [*(n for n in first if n in variables.strata), *variables.strata]
        choices = [(name, sampling.variable_label(name)) for name in dict.fromkeys(names)]
        self.fields["strata_variables"].choices = choices  # type: ignore[attr-defined]
        numeric = [(name, sampling.variable_label(name)) for name in variables.numeric]
        self.fields["neyman_variable"].choices = [("", "—"), *numeric]  # type: ignore[attr-defined]
        self.fields["seed"].initial = secrets.randbelow(SEED_DIGITS)
        if survey.previous_round_id is None:
            # A first round has nothing to be coordinated with.
            del self.fields["coordination"], self.fields["rotation"]
        if draft is not None and not self.is_bound:
            self._start_from(draft)

    def _start_from(self, draft: SampleDesign) -> None:
        """The settings the round was started with (config.rounds): the form's first values."""
        for name in DRAFT_FIELDS:
            if name in self.fields:
                self.fields[name].initial = getattr(draft, name)
        if draft.groupings:
            self.fields["groupings"].initial = json.dumps(draft.groupings, ensure_ascii=False)

    def _posted_groupings(self) -> dict[str, Any]:
        try:
            posted = json.loads(self.data.get("groupings") or "{}")
        except ValueError:
            return {}
        return posted if isinstance(posted, dict) else {}

    def clean_groupings(self) -> dict[str, Any]:
        text = self.cleaned_data["groupings"].strip()
        if not text:
            return {}
        try:
            groupings = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(
                _("Not valid JSON: %(error)s"), params={"error": exc}
            ) from exc
        if not isinstance(groupings, dict):
            raise forms.ValidationError(_("Give a JSON object: {name: {source, map}}."))
        return groupings

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("allocation") == SampleDesign.Allocation.NEYMAN:
            variable, proportion = data.get("neyman_variable"), data.get("assumed_proportion")
            if bool(variable) == (proportion is not None):
                raise forms.ValidationError(
                    _("Neyman allocation needs a numeric variable or an assumed P (one of them).")
                )
        return data

    def design_parameters(self) -> dict[str, Any]:
        """Keyword arguments of sampling.preview_design and draw_sample (without the seed)."""
        data = self.cleaned_data
        return {
            "strata_variables": data["strata_variables"],
            "allocation": data["allocation"],
            "sample_size": data["sample_size"],
            "min_per_stratum": data["min_per_stratum"],
            "reserve_fraction": data["reserve_fraction"],
            "power": data["power"],
            "neyman_variable": data["neyman_variable"] or "",
            "assumed_proportion": data["assumed_proportion"],
            "groupings": data["groupings"],
            "selection": data["selection"] or SampleDesign.Selection.SRS,
            "coordination": data.get("coordination") or SampleDesign.Coordination.NONE,
            "rotation": data.get("rotation"),
        }


class SampleFilterForm(forms.Form):
    STATUSES = [
        ("", _("all")),
        ("in_sample", _("in sample")),
        ("reserve", _("reserve (not released)")),
        ("released", _("released reserve")),
    ]

    q = forms.CharField(label=_("Business ID or name"), required=False)
    stratum = forms.TypedChoiceField(label=_("Stratum"), required=False, coerce=int)
    size_class = forms.ChoiceField(
        label=_("Size class"), required=False, choices=[("", _("all")), *SizeClass.choices]
    )
    region = forms.ChoiceField(
        label=_("Region"), required=False, choices=[("", _("all")), *Region.choices]
    )
    status = forms.ChoiceField(label=_("Status"), required=False, choices=STATUSES)

    def __init__(self, *args: Any, strata: Sequence[Stratum], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _("all")), *((s.pk, s.label) for s in strata)]
        self.fields["stratum"].choices = choices  # type: ignore[attr-defined]

    def filter(self, cases: CaseQuerySet) -> CaseQuerySet:
        """The cases that match; an invalid form filters nothing."""
        if not self.is_valid():
            return cases
        data = self.cleaned_data
        if data["stratum"]:
            cases = cases.filter(stratum_id=data["stratum"])
        if data["size_class"]:
            cases = cases.filter(frame_unit__size_class=data["size_class"])
        if data["region"]:
            cases = cases.filter(frame_unit__region=data["region"])
        if data["status"] == "in_sample":
            cases = cases.in_sample()
        elif data["status"] == "reserve":
            cases = cases.reserve()
        elif data["status"] == "released":
            cases = cases.filter(is_reserve=True, released_at__isnull=False)
        return cases.search(data["q"])


class ReleaseForm(forms.Form):
    count = forms.IntegerField(label=_("Units to release"), min_value=1, initial=1)


class CredentialsForm(forms.Form):
    reissue = forms.BooleanField(
        label=_(
            "Issue new credentials to every firm in the sample. Their current links and "
            "access codes stop working at once."
        ),
        required=False,
    )


class WaveForm(forms.ModelForm):
    class Meta:
        model = Wave
        fields = ["name", "kind", "starts_at", "ends_at"]
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            raise forms.ValidationError(_("The wave must end after it starts."))
        if data.get("kind") in EMAIL_WAVES and not ends and "ends_at" not in self.errors:
            self.add_error("ends_at", NO_DEADLINE)
        return data


EMAIL_WAVES = (Wave.Kind.INVITATION, Wave.Kind.REMINDER, Wave.Kind.OTHER)
NO_DEADLINE = _(
    "Invitations and reminders tell each firm when to answer by: give the wave an end date."
)


def disposition_choices() -> list[tuple[str, Any]]:
    # An empty first choice: a preselected code would be one click from a false outcome.
    codes = [(code, f"{code} {_(entry.label)}") for code, entry in aapor.DISPOSITION_CODES.items()]
    return [("", _("Choose a disposition…")), *codes]


class DispositionForm(forms.Form):
    code = forms.ChoiceField(label=_("Disposition (AAPOR)"), choices=disposition_choices)
    at = forms.DateTimeField(
        label=_("Date and time"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("When the outcome happened; the most recent event decides the disposition."),
    )
    reason = forms.CharField(
        label=_("Reason or note"),
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    override = forms.BooleanField(
        label=_("Override a submitted response"),
        required=False,
        help_text=_("Needed to move a firm that submitted its answers to a non-response code."),
    )

    def clean_at(self) -> dt.datetime:
        at: dt.datetime = self.cleaned_data["at"]
        if at > timezone.now() + dt.timedelta(minutes=5):
            raise forms.ValidationError(_("The date cannot be in the future."))
        return at


class ContactForm(forms.ModelForm):
    class Meta:
        model = ContactAttempt
        fields = ["channel", "at", "outcome", "note"]
        widgets = {
            "at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "note": forms.Textarea(attrs={"rows": 2}),
        }


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 12})}

    def clean_body(self) -> str:
        body: str = self.cleaned_data["body"]
        if "{link}" not in body and "{access_code}" not in body:
            raise forms.ValidationError(
                _("The message must give the firm its {link} or its {access_code}.")
            )
        return body


class FieldworkImportForm(forms.Form):
    KINDS = [
        ("dispositions", _("Dispositions from a call centre")),
        ("responses", _("Keyed responses (phone, paper, fax)")),
    ]
    kind = forms.ChoiceField(label=_("What the file holds"), choices=KINDS)
    mode = forms.ChoiceField(
        label=_("Mode of keyed responses"),
        choices=[("phone", _("phone")), ("paper", _("paper")), ("fax", _("fax"))],
        required=False,
    )
    file = UploadField(label=_("File"), extensions=(".csv", ".xlsx"))
