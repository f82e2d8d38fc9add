import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from respondents import sampling
from respondents.models import SampleDesign
from surveys.models import Survey


class Command(BaseCommand):
    help = "Preview or draw the stratified sample of a survey's frame (methodology sec. B)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("survey", help="survey ID (slug)")
        parser.add_argument("--size", type=int, required=True, help="sample size n")
        parser.add_argument(
            "--strata", required=True, help="comma-separated frame variables, e.g. size_class"
        )
        parser.add_argument(
            "--allocation", choices=SampleDesign.Allocation.values, default="proportional"
        )
        parser.add_argument("--min-per-stratum", type=int, default=2)
        parser.add_argument("--seed", type=int, help="random seed (required to draw)")
        parser.add_argument("--reserve", type=float, default=0.0, help="reserve fraction")
        parser.add_argument("--power", type=float, help="power q of N_h^q (default 0.5)")
        variability = parser.add_mutually_exclusive_group()
        variability.add_argument("--neyman-variable", default="", help="e.g. employees")
        variability.add_argument("--assumed-proportion", type=float)
        parser.add_argument("--groupings", type=Path, help="JSON file of grouping maps")
        parser.add_argument(
            "--selection", choices=SampleDesign.Selection.values, default="srs", help="srs or prn"
        )
        parser.add_argument(
            "--coordination",
            choices=SampleDesign.Coordination.values,
            default="none",
            help="with the previous round's PRN sample (selection prn)",
        )
        parser.add_argument("--rotation", type=float, help="rotation share r, e.g. 0.2")
        parser.add_argument("--preview", action="store_true", help="show the table only")

    def handle(self, *args: Any, **options: Any) -> None:
        survey = Survey.objects.filter(slug=options["survey"]).first()
        if survey is None:
            raise CommandError(_("No survey “%(slug)s”.") % {"slug": options["survey"]})
        design = _design(options)
        try:
            preview = sampling.preview_design(survey, **design)
            self.stdout.write(preview_table(preview))
            if options["preview"]:
                self.stdout.write(_("Nothing was drawn (preview)."))
                return
            if options["seed"] is None:
                raise CommandError(_("Give --seed to draw the sample."))
            record = sampling.draw_sample(survey, **design, seed=options["seed"])
        except sampling.SamplingError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            _("Drew %(n)s units (+%(r)s reserve) from a frame of %(N)s with seed %(seed)s.")
            % {
                "n": record.sample_size,
                "r": preview.reserve,
                "N": record.frame_size,
                "seed": record.seed,
            }
        )


def _design(options: dict[str, Any]) -> dict[str, Any]:
    groupings = None
    if options["groupings"] is not None:
        try:
            groupings = json.loads(options["groupings"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{options['groupings']}: {exc}") from exc
    return {
        "strata_variables": [name.strip() for name in options["strata"].split(",") if name.strip()],
        "allocation": options["allocation"],
        "sample_size": options["size"],
        "min_per_stratum": options["min_per_stratum"],
        "reserve_fraction": options["reserve"],
        "power": options["power"],
        "neyman_variable": options["neyman_variable"],
        "assumed_proportion": options["assumed_proportion"],
        "groupings": groupings,
        "selection": options["selection"],
        "coordination": options["coordination"],
        "rotation": options["rotation"],
    }


def preview_table(preview: sampling.Preview) -> str:
    width = max([len(_("stratum")), *(len(row.key) for row in preview.strata)])
    header = (
        f"{_('stratum'):<{width}}  {'N_h':>8}  {'n_h':>6}  {'f_h':>7}  {_('SE(50%)'):>8}  "
        f"{_('reserve'):>7}"
    )
    lines = [header, "-" * len(header)]
    for row in preview.strata:
        mark = "  " + _("take-all") if row.take_all else ""
        lines.append(
            f"{row.key:<{width}}  {row.population:>8}  {row.sample_size:>6}  "
            f"{row.fraction:>7.4f}  {row.se:>8.4f}  {row.reserve:>7}{mark}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{_('overall'):<{width}}  {preview.population:>8}  {preview.sample_size:>6}  "
        f"{preview.fraction:>7.4f}  {preview.se:>8.4f}  {preview.reserve:>7}"
    )
    summary = _("%(count)s strata, %(take_all)s take-all.")
    lines.append(summary % {"count": len(preview.strata), "take_all": preview.take_all_count})
    if preview.coordinated:
        expected = _("Expected overlap with the previous round's sample: %(firms).1f firms.")
        lines.append(expected % {"firms": preview.expected_overlap})
    return "\n".join(lines)
