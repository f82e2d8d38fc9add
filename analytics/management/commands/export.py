"""Export a survey's estimates, microdata, codebook, fieldwork status, contact log or
response rates to a file, and record the download in the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics import exports
from analytics.models import Download
from surveys.models import Survey

CLIENT = "command"


class Command(BaseCommand):
    help = (
        "Export a survey: --what estimates|microdata|panel|codebook|fieldwork|contacts|"
        "response-rates --format csv|xlsx|sav|dta|json --out PATH."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="The survey ID (slug).")
        parser.add_argument("--what", required=True, choices=list(exports.FORMATS))
        parser.add_argument("--format", required=True, dest="fmt")
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--run", type=int, help="Estimate run number (latest published).")
        parser.add_argument(
            "--previous-run",
            type=int,
            help="Panel: the previous round's estimate run number (latest published).",
        )
        parser.add_argument("--language", default="ko", choices=exports.LANGUAGES)
        parser.add_argument(
            "--identified",
            action="store_true",
            help="Microdata with business_id and personal data; needs --user with "
            "analytics.download_identified.",
        )
        parser.add_argument(
            "--level",
            choices=exports.LEVELS,
            help="Microdata release level: scientific (default: disclosure control), public "
            "(stronger) or identified (internal, as --identified). A disclosure-risk report "
            "is written next to a released file as PATH.disclosure.json.",
        )
        parser.add_argument(
            "--panel",
            action="store_true",
            help="Microdata: the same unit_id in every release of this level (default: keyed "
            "per release, so that two releases cannot be joined).",
        )
        parser.add_argument(
            "--contact-details",
            action="store_true",
            help="Email and phone in fieldwork and contact exports; needs --user with "
            "respondents.view_contact_details.",
        )
        parser.add_argument("--weighted", action="store_true", help="Response rates weighted.")
        parser.add_argument(
            "--labels",
            action="store_true",
            help="Microdata CSV/XLSX: answers and classifications as labels in --language.",
        )
        parser.add_argument("--user", help="The staff account the export is made for.")

    def handle(self, *args: Any, **options: Any) -> None:
        survey = Survey.objects.filter(slug=options["survey"]).first()
        if survey is None:
            raise CommandError(f"Unknown survey “{options['survey']}”.")
        user = _user(options["user"])
        options["identified"] = options["identified"] or options["level"] == "identified"
        _check_permissions(user, options)
        try:
            request = exports.make_options(
                survey,
                options["what"],
                options["fmt"],
                language=options["language"],
                run_number=options["run"],
                identified=options["identified"],
                contact=options["contact_details"],
                weighted=options["weighted"],
                labelled=options["labels"],
                level=options["level"] or "",
                panel=options["panel"],
                previous_run_number=options["previous_run"],
            )
        except exports.ExportError as exc:
            raise CommandError(str(exc)) from exc
        disclosure: dict[str, Any] = {}
        rows = _write(request, options["out"], disclosure)
        Download.objects.create(
            user=user,
            survey=survey,
            what=request.what,
            format=request.format,
            identified=request.identified,
            parameters=request.parameters(),
            client=CLIENT,
        )
        self.stdout.write(f"Wrote {rows} rows to {options['out']}.")
        if disclosure:
            path = report_path(options["out"])
            path.write_text(json.dumps(disclosure, ensure_ascii=False, indent=2), "utf-8")
            after = disclosure["after"]
            self.stdout.write(
                f"Disclosure report: {path} (k-anonymity violations "
                f"{disclosure['before']['k_anonymity_violations']} → "
                f"{after['k_anonymity_violations']}, highest individual risk "
                f"{after['max_individual_risk']}, targets met: {disclosure['targets_met']})."
            )


def _user(username: str | None) -> Any:
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user “{username}”.")
    return user


def _check_permissions(user: Any, options: dict[str, Any]) -> None:
    needed = []
    if options["identified"]:
        needed.append("analytics.download_identified")
    if options["contact_details"]:
        needed.append("respondents.view_contact_details")
    if needed and user is None:
        raise CommandError(f"--identified and --contact-details need --user with {needed[0]}.")
    if user is not None:
        needed.insert(0, "analytics.download_results")
        missing = [perm for perm in needed if not user.has_perm(perm)]
        if missing:
            raise CommandError(f"User “{user.username}” lacks {', '.join(missing)}.")


def report_path(path: Path) -> Path:
    return path.with_name(path.name + ".disclosure.json")


def _write(request: exports.ExportOptions, path: Path, disclosure: dict[str, Any]) -> int:
    """Write next to the target and rename, so that a failed export leaves no partial file."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as out:
            rows = exports.export(request, out, disclosure=disclosure)
        partial.replace(path)
    except OSError as exc:
        raise CommandError(f"Could not write {path}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return rows
