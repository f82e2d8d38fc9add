from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from surveys.xlsform import FormError, load_questionnaire


class Command(BaseCommand):
    help = "Load a questionnaire version from an XLSForm workbook (.xlsx)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--survey", default="", help="Load into this survey instead of the form_id."
        )

    def handle(self, *args: Any, path: Path, survey: str, **options: Any) -> None:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            version = load_questionnaire(
                path.read_bytes(), source_name=path.name, survey_slug=survey
            )
        except FormError as exc:
            raise CommandError(
                "The form was not loaded; nothing changed:\n" + "\n".join(exc.problems)
            ) from exc
        form = version.form
        self.stdout.write(
            f"Loaded {version.survey.slug} version {version.version}: "
            f"{len(form.pages)} pages, {len(form.questions)} questions."
        )
