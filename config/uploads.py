"""The file field every upload form uses (questionnaires, frames, imports, rules)."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _


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
