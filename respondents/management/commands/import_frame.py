from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from config.commands import get_survey, refusal
from respondents.frame_import import ImportResult, import_frame
from respondents.tabular import ImportRefused


class Command(BaseCommand):
    help = (
        "Import a survey's sampling frame from a CSV (UTF-8 or CP949) or XLSX file. "
        "A file with any problem is refused as a whole; the problems go to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="the survey ID (slug)")
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, survey: str, path: Path, **options: Any) -> None:
        target = get_survey(survey)
        if not path.is_file():
            raise CommandError(_("%(path)s: no such file") % {"path": path})
        try:
            result = import_frame(target, path, filename=path.name)
        except ImportRefused as error:
            raise refusal(self, error) from None
        self.stdout.write(summary(result))


def summary(result: ImportResult) -> str:
    head = _("Imported %(rows)s firms from %(format)s in %(seconds).1f s (replaced %(old)s).") % {
        "rows": f"{result.rows:,}",
        "format": result.file_format,
        "seconds": result.seconds,
        "old": f"{result.replaced:,}",
    }
    sizes = ", ".join(f"{key} {count:,}" for key, count in result.by_size_class.items())
    regions = ", ".join(f"{key} {count:,}" for key, count in result.by_region.items())
    return "\n".join([head, _("Size classes: %s") % sizes, _("Regions: %s") % regions])
