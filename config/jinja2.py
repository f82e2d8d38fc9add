"""Jinja2 for the respondents' pages: the busiest pages of the platform render several
times faster than with Django templates. Strings are marked with {{ _("...") }}, which
`makemessages -e html,txt,py,jinja` extracts like Django template strings."""

from typing import Any

from django.conf import settings
from django.contrib.messages import get_messages
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from jinja2 import Environment

from .widgets import language_switcher


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


# What a question may end with that must not meet the ": " which follows it ("…주십시오.: ").
CLOSING_PUNCTUATION = ".?!:;。？！：；．… \t\n\u00a0\u3000"


def summary_item(question: str, message: str) -> str:
    """A question and its error, one line of an error summary."""
    return _("%(question)s: %(message)s") % {
        "question": question.rstrip(CLOSING_PUNCTUATION) or question,
        "message": message,
    }


def environment(**options: Any) -> Environment:
    env = Environment(**options)  # noqa: S701 (the Django backend turns autoescape on)
    env.install_gettext_callables(  # type: ignore[attr-defined]
        translation.gettext, translation.ngettext, newstyle=False
    )
    env.globals.update(
        static=static,
        url=url,
        get_messages=get_messages,
        language=translation.get_language,
        language_switcher=language_switcher,
        settings=settings,
        summary_item=summary_item,
    )
    return env
