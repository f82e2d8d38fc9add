from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from config.commands import get_survey, refusal
from respondents.imports import MODES, import_responses
from respondents.tabular import ImportRefused


class Command(BaseCommand):
    help = (
        "Load keyed answers (phone, paper or fax): columns business_id, then one column per "
        "question named as in the XLSForm; select_multiple as space-separated choice names. "
        "Rows are validated by the web questionnaire's rules; a file with bad rows is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="the survey ID (slug)")
        parser.add_argument("path", type=Path)
        parser.add_argument("--mode", choices=MODES, default="paper")

    def handle(self, *args: Any, survey: str, path: Path, mode: str, **options: Any) -> None:
        target = get_survey(survey)
        if not path.is_file():
            raise CommandError(_("%(path)s: no such file") % {"path": path})
        try:
            result = import_responses(target, path, filename=path.name, mode=mode)
        except ImportRefused as error:
            raise refusal(self, error) from None
        self.stdout.write(
            _("Loaded %(rows)s keyed responses (%(mode)s) from %(format)s.")
            % {"rows": result.rows, "mode": mode, "format": result.file_format}
        )
