from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from analytics import pipeline
from analytics.spec import CALIBRATION_METHODS, SpecError, parse_spec
from analytics.weighting import WeightingError
from config.commands import get_survey


class Command(BaseCommand):
    help = (
        "Recompute and publish a survey's estimates now, with the code the worker runs. "
        "--calibration and --margins override the survey's weighting spec for this run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="the survey ID (slug)")
        parser.add_argument("--calibration", choices=CALIBRATION_METHODS)
        parser.add_argument("--margins", default="", help="frame variables, comma-separated")
        parser.add_argument("--force", action="store_true", help="publish even if unchanged")

    def handle(
        self,
        *args: Any,
        survey: str,
        calibration: str | None,
        margins: str,
        force: bool,
        **options: Any,
    ) -> None:
        target = get_survey(survey)
        spec, _version = pipeline.current_spec(target)
        if calibration or margins:
            changes: dict[str, Any] = {}
            if calibration:
                changes["calibration"] = calibration
            if margins:
                changes["margins"] = tuple(m.strip() for m in margins.split(",") if m.strip())
            try:
                spec = parse_spec(replace(spec, **changes).to_json())
            except SpecError as exc:
                raise CommandError(str(exc)) from None
        try:
            run = pipeline.recompute(target, trigger="command", spec=spec, force=force)
        except WeightingError as exc:
            raise CommandError(_("The estimates could not be computed: %s") % exc) from None
        if run is None:
            raise CommandError(_("Nothing was published."))
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in run.timings.items())
        self.stdout.write(
            _("Version %(number)s: %(respondents)s respondents, %(estimates)s estimates (%(t)s).")
            % {
                "number": run.number,
                "respondents": run.snapshot.get("respondents"),
                "estimates": run.estimates.count(),
                "t": timings,
            }
        )
