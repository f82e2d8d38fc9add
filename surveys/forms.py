from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from config.uploads import UploadField
from respondents.models import FrameUnit

from .models import EditQuery, QueryAnswer
from .questionnaire import Form, Question


class AccessCodeForm(forms.Form):
    business_id = forms.CharField(
        label=_("Business registration number"),
        max_length=20,
        help_text=_("10 digits, as on your invitation letter, e.g. 123-45-67890"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
    )
    access_code = forms.CharField(
        label=_("Access code"),
        max_length=20,
        help_text=_("The code printed on your invitation letter, e.g. ABCDE-23456"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )

    def clean_business_id(self) -> str:
        value = FrameUnit.normalise_business_id(self.cleaned_data["business_id"])
        if value is None:
            raise forms.ValidationError(_("Enter the 10-digit business registration number."))
        return value


class QuestionnaireUploadForm(forms.Form):
    file = UploadField(label=_("XLSForm file"), extensions=(".xlsx", ".xls"))


class EditRulesUploadForm(forms.Form):
    file = UploadField(
        label=_("Edit rules file"),
        extensions=(".xlsx", ".csv"),
        help_text=_(
            "An XLSX workbook with an “edits” sheet (and optionally “edit_statistics”), or a "
            "CSV file of rules with the same columns."
        ),
    )


CONFIRM, CORRECT = "confirm", "correct"
COMMENT_MAX = 1000


class QueryAnswerForm(forms.Form):
    """The firm's answer to a query: each questioned answer confirmed, or corrected with a
    value its question's own parser and constraint accept."""

    def __init__(self, data: Any = None, *, query: EditQuery, form: Form) -> None:
        super().__init__(data)
        self.query, self.form = query, form
        self.current = query.response.edited_values()
        names = dict.fromkeys(entry["item"] for entry in query.items)
        self.questions = [form.questions[name] for name in names if name in form.questions]
        for question in self.questions:
            self.fields[f"{question.name}__decision"] = forms.ChoiceField(
                choices=[(CONFIRM, CONFIRM), (CORRECT, CORRECT)],
                error_messages={"required": _("Confirm this answer, or give the correct one.")},
            )
            self.fields[question.name] = _value_field(question)
            self.fields[f"{question.name}__comment"] = forms.CharField(
                required=False, max_length=COMMENT_MAX
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        corrections: dict[str, Any] = {}
        for question in self.questions:
            if data.get(f"{question.name}__decision") != CORRECT:
                continue
            raw = data.get(question.name)
            try:
                value = question.parse_value(raw if raw is not None else "")
            except ValueError as exc:
                self.add_error(question.name, str(exc))
                continue
            if value is None:
                self.add_error(question.name, _("Enter the correct answer."))
            else:
                corrections[question.name] = value
        values, _relevant = self.form.evaluate({**self.current, **corrections})
        for name, value in corrections.items():
            problem = self.form.questions[name].check(value, values)
            if problem:
                self.add_error(name, problem)
        data["corrections"] = corrections
        return data

    def answers(self) -> dict[str, QueryAnswer]:
        """Every questioned item's answer; an item the questionnaire no longer has is
        taken as confirmed."""
        corrections = self.cleaned_data["corrections"]
        answers = {
            entry["item"]: QueryAnswer(self.current.get(entry["item"]), corrected=False)
            for entry in self.query.items
        }
        for question in self.questions:
            name = question.name
            value = corrections.get(name, self.current.get(name))
            comment = self.cleaned_data.get(f"{name}__comment", "")
            answers[name] = QueryAnswer(value, value != self.current.get(name), comment)
        return answers


def _value_field(question: Question) -> forms.Field:
    if question.type == "select_multiple":
        return forms.MultipleChoiceField(
            choices=[(name, name) for name in question.choice_names], required=False
        )
    return forms.CharField(required=False, max_length=question.raw_limit, strip=False)
