from django import forms
from django.utils.translation import gettext_lazy as _

from surveys.forms import UploadField


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
