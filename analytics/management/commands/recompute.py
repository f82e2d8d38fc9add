from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from analytics import pipeline
from analytics.engine.weighting import WeightingError
from analytics.spec import (
    CALIBRATION_METHODS,
    VARIANCE_METHODS,
    SpecError,
    parse_margins_csv,
    parse_spec,
)
from config.commands import get_survey


class Command(BaseCommand):
    # The system checks take seconds (every URL, template and API schema) and check nothing
    # the recompute needs; the worker runs the same code without them.
    requires_system_checks: list[str] = []
    help = (
        "Recompute and publish a survey's estimates now, with the code the worker runs. "
        "--calibration, --margins, --margins-file, --variance and --replicates override the "
        "survey's weighting spec for this run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="the survey ID (slug)")
        parser.add_argument("--calibration", choices=CALIBRATION_METHODS)
        parser.add_argument("--margins", default="", help="frame variables, comma-separated")
        parser.add_argument(
            "--margins-file",
            type=Path,
            help="eligible-population control totals: a CSV with columns variable, level, N",
        )
        parser.add_argument("--variance", choices=VARIANCE_METHODS)
        parser.add_argument("--replicates", type=int, help="jackknife groups or bootstraps")
        parser.add_argument("--force", action="store_true", help="publish even if unchanged")

    def handle(self, *args: Any, survey: str, force: bool, **options: Any) -> None:
        target = get_survey(survey)
        spec, _version = pipeline.current_spec(target)
        try:
            spec = parse_spec(replace(spec, **self._changes(options)).to_json())
            if spec.margin_totals:
                pipeline.check_margin_totals(spec, pipeline.sample_levels(target, spec))
            run = pipeline.recompute(target, trigger="command", spec=spec, force=force)
        except (SpecError, WeightingError) as exc:
            raise CommandError(_("The estimates could not be computed: %s") % exc) from None
        if run is None:
            raise CommandError(_("Nothing was published."))
        timings = ", ".join(
            f"{k} {v:.2f} s" for k, v in run.timings.items() if isinstance(v, int | float)
        )
        self.stdout.write(
            _("Version %(number)s: %(respondents)s respondents, %(estimates)s estimates (%(t)s).")
            % {
                "number": run.number,
                "respondents": run.snapshot.get("respondents"),
                "estimates": run.estimates.count(),
                "t": timings,
            }
        )

    def _changes(self, options: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if options["calibration"]:
            changes["calibration"] = options["calibration"]
        if options["margins"]:
            changes["margins"] = tuple(
                m.strip() for m in options["margins"].split(",") if m.strip()
            )
        if options["margins_file"] is not None:
            try:
                content = options["margins_file"].read_bytes()
            except OSError as exc:
                raise CommandError(_("Cannot read the margins file: %s") % exc) from None
            changes["margin_totals"] = parse_margins_csv(content)
        if options["variance"]:
            changes["variance"] = options["variance"]
        if options["replicates"] is not None:
            changes["replicates"] = options["replicates"]
        return changes
