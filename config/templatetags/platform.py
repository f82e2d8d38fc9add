from django import template
from django.http import HttpRequest
from django.utils.safestring import SafeString

from config import widgets

register = template.Library()


@register.simple_tag(takes_context=True)
def language_switcher(context: template.Context, dark: bool = False) -> SafeString:
    request: HttpRequest = context["request"]
    return widgets.language_switcher(request, dark=dark)
