from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from respondents import credentials, letters
from surveys.models import Survey


class Command(BaseCommand):
    help = (
        "Issue missing respondent credentials and write the mail-merge letters file "
        "(business_id, name, link, access_code; UTF-8 with BOM)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="survey ID (slug)")
        parser.add_argument("--out", type=Path, required=True, help="letters CSV to write")
        parser.add_argument(
            "--pdf", type=Path, help="also write the letters as a print-ready PDF, one page each"
        )
        parser.add_argument(
            "--reissue",
            action="store_true",
            help="issue new credentials to every in-sample case; the old ones stop working",
        )

    def handle(
        self,
        *args: Any,
        survey: str,
        out: Path,
        reissue: bool,
        pdf: Path | None = None,
        **options: Any,
    ) -> None:
        found = Survey.objects.filter(slug=survey).first()
        if found is None:
            raise CommandError(_("No survey “%(slug)s”.") % {"slug": survey})
        issued = sum(1 for _issued in credentials.issue_credentials(found, reissue=reissue))
        with out.open("w", encoding="utf-8", newline="") as mail_merge:
            written = credentials.write_letters(found, mail_merge)
        self.stdout.write(
            _("Issued %(issued)s credentials; wrote %(written)s letters to %(path)s.")
            % {"issued": issued, "written": written, "path": out}
        )
        if pdf is not None:
            try:
                with pdf.open("wb") as printed:
                    pages = letters.write_letters_pdf(found, printed)
            except letters.LetterError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                _("Wrote %(pages)s letters to %(path)s.") % {"pages": pages, "path": pdf}
            )
