from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from config.commands import get_survey, refusal
from respondents.imports import import_dispositions
from respondents.tabular import ImportRefused


class Command(BaseCommand):
    help = (
        "Record a call centre's dispositions from a CSV or XLSX file with the columns "
        "business_id, disposition (an AAPOR code such as 2.111 or 4.2), date and note "
        "(optionally override). A file with any bad row is refused whole."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="the survey ID (slug)")
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, survey: str, path: Path, **options: Any) -> None:
        target = get_survey(survey)
        if not path.is_file():
            raise CommandError(_("%(path)s: no such file") % {"path": path})
        try:
            result = import_dispositions(target, path, filename=path.name)
        except ImportRefused as error:
            raise refusal(self, error) from None
        self.stdout.write(
            _("Recorded %(rows)s dispositions from %(format)s.")
            % {"rows": result.rows, "format": result.file_format}
        )
