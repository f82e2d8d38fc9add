from django import forms
from django.utils.translation import gettext_lazy as _

from config.uploads import UploadField
from respondents.models import FrameUnit


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
