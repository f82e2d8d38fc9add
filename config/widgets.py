"""Pieces of HTML shared by the Django templates (staff) and Jinja2 templates (firms)."""

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from django.utils.translation import gettext as _

LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}


def language_switcher(request: HttpRequest, *, dark: bool = False) -> SafeString:
    current = (get_language() or settings.LANGUAGE_CODE)[:2]
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        (
            (code, " selected" if code == current else "", LANGUAGE_NAMES.get(code, code))
            for code, _name in settings.LANGUAGES
        ),
    )
    button = "btn-outline-light" if dark else "btn-outline-dark"
    return format_html(
        '<form action="{}" method="post" class="language-switcher d-flex gap-1 '
        'align-items-center"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
        '<input type="hidden" name="next" value="{}">'
        '<label class="visually-hidden" for="language-select">{}</label>'
        '<select id="language-select" name="language" class="form-select form-select-sm '
        'js-autosubmit">{}</select>'
        '<button type="submit" class="btn btn-sm {} js-hide-with-script">{}</button></form>',
        reverse("set_language"),
        get_token(request),
        request.get_full_path(),
        _("Language"),
        options,
        button,
        _("Change"),
    )
