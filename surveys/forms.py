from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from respondents.classifications import normalise_business_id


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
        value = normalise_business_id(self.cleaned_data["business_id"])
        if value is None:
            raise forms.ValidationError(_("Enter the 10-digit business registration number."))
        return value


class UploadField(forms.FileField):
    """A file upload with a size limit and an allowed set of extensions."""

    def __init__(self, *, extensions: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extensions = extensions

    def clean(self, data: Any, initial: Any = None) -> UploadedFile:
        upload: UploadedFile = super().clean(data, initial)
        name = (upload.name or "").lower()
        if not name.endswith(self.extensions):
            raise forms.ValidationError(
                _("Upload a file of type %(types)s.") % {"types": ", ".join(self.extensions)}
            )
        if upload.size is not None and upload.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than allowed."))
        return upload


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
