"""Forms of the pages `config` composes from several apps."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from surveys.models import Survey

YEAR_RE = re.compile(r"[-_]?(19|20)\d\d$")


class NextRoundForm(forms.Form):
    slug = forms.SlugField(
        label=_("Survey ID of the new round"),
        max_length=64,
        help_text=_("Letters, digits, - and _: it is part of the round's addresses."),
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    title_en = forms.CharField(label=_("English title"), max_length=200, required=False)
    year = forms.IntegerField(label=_("Reference year"), min_value=1900, max_value=2999)

    def __init__(self, *args: Any, previous: Survey, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        year = previous.year + 1 if previous.year else timezone.localdate().year
        self.fields["year"].initial = year
        self.fields["slug"].initial = f"{YEAR_RE.sub('', previous.slug)}_{year}"
        self.fields["title"].initial = _with_year(previous.title, previous.year, year)
        self.fields["title_en"].initial = _with_year(previous.title_en, previous.year, year)

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        if Survey.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("A survey with this ID exists already."))
        return slug


def _with_year(title: str, old: int | None, new: int) -> str:
    """The title with last round's year replaced, when it names it."""
    return title.replace(str(old), str(new)) if old and str(old) in title else title
