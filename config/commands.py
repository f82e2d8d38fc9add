"""Helpers shared by the management commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from surveys.models import Survey

if TYPE_CHECKING:
    # Only for the annotation: the spreadsheet readers cost every command ~0.1 s to import.
    from respondents.tabular import ImportRefused


def get_survey(slug: str) -> Survey:
    survey = Survey.objects.filter(slug=slug).first()
    if survey is None:
        raise CommandError(_("There is no survey with the ID %(slug)s.") % {"slug": slug})
    return survey


def refusal(command: BaseCommand, error: ImportRefused) -> CommandError:
    """Print a refused file's problems on stderr; the returned error ends the command."""
    for problem in error.problems:
        command.stderr.write(str(problem))
    if error.omitted:
        command.stderr.write(
            _("%(count)s more problems are not listed.") % {"count": error.omitted}
        )
    return CommandError(error.message)
