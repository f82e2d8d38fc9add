from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from respondents.synthetic import DEFAULT_SEED, write_frame


class Command(BaseCommand):
    help = (
        "Write a seeded synthetic frame of Korean small and medium manufacturers "
        "(CSV or XLSX), to try the frame import and the sample draw."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=163_273)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument("--format", choices=["csv", "xlsx"], help="default: from --out")
        parser.add_argument("--encoding", choices=["utf-8", "utf-8-sig", "cp949"], default="utf-8")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        if options["rows"] < 1:
            raise CommandError(_("--rows must be at least 1."))
        file_format = options["format"] or ("xlsx" if out.suffix.lower() == ".xlsx" else "csv")
        write_frame(
            out,
            rows=options["rows"],
            seed=options["seed"],
            file_format=file_format,
            encoding=options["encoding"],
        )
        self.stdout.write(
            _("Wrote %(rows)s firms to %(path)s.") % {"rows": f"{options['rows']:,}", "path": out}
        )
