from typing import Any

from django import template
from django.http import HttpRequest
from django.template.defaultfilters import floatformat
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from analytics.engine import aapor
from analytics.views import downloads
from config import navigation, widgets
from surveys.models import Survey

register = template.Library()


@register.simple_tag(takes_context=True)
def language_switcher(context: template.Context, dark: bool = False) -> SafeString:
    request: HttpRequest = context["request"]
    return widgets.language_switcher(request, dark=dark)


@register.simple_tag(takes_context=True)
def survey_menu(context: template.Context, survey: Any) -> list[navigation.Link]:
    """The survey's functions this user may open, the current page marked."""
    request: HttpRequest = context["request"]
    match = request.resolver_match
    return navigation.menu(request.user, survey.slug, match.view_name if match else "")


@register.simple_tag
def surveys_with_questionnaires() -> list[Survey]:
    """Every survey that has a questionnaire, for the links of the questionnaire page."""
    found = Survey.objects.filter(current_questionnaire__isnull=False).order_by("slug")
    return list(found.select_related("current_questionnaire"))


@register.filter
def disposition(code: str) -> str:
    """An AAPOR disposition code with its name in the reader's language: "1.1 Complete"."""
    try:
        found = aapor.parse_code(code)
    except ValueError:
        return code
    return f"{found.code} {_(found.label)}"


@register.filter
def disposition_name(code: str) -> str:
    """The AAPOR name of a disposition code alone, in the reader's language."""
    try:
        return _(aapor.parse_code(code).label)
    except ValueError:
        return code


@register.filter
def export_title(what: str) -> str:
    return str(downloads.TITLES.get(what, what))


@register.filter
def export_level(level: str) -> str:
    return str(downloads.LEVEL_LABELS.get(level, level))


@register.filter
def export_format(fmt: str) -> str:
    return str(downloads.FORMAT_LABELS.get(fmt, fmt))


@register.filter
def signed(value: float | None, digits: str = "1g") -> str:
    """A change with its sign, formatted as floatformat does: "+3.2", "-1.5", "0.0"."""
    if value is None:
        return "—"
    text = str(floatformat(value, digits))
    rounds_to_zero = not text.strip("0.,")
    return f"+{text}" if value > 0 and not rounds_to_zero else text
