"""What can be exported, the checked options of one export, and the run it uses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from respondents.models import Case, ContactAttempt
from surveys.models import Survey

from ..models import Estimate, EstimateRun

FORMATS: dict[str, tuple[str, ...]] = {
    "estimates": ("csv", "xlsx"),
    "microdata": ("csv", "xlsx", "sav", "dta"),
    "panel": ("csv", "xlsx", "sav", "dta"),
    "codebook": ("csv", "xlsx", "json"),
    "fieldwork": ("csv", "xlsx"),
    "contacts": ("csv", "xlsx"),
    "response-rates": ("csv",),
}
NEEDS_RUN = ("estimates", "microdata", "panel")
# Uses the chosen (else the latest) published run when there is one: the codebook describes
# that run's weights (controls, replicate weights and how R and Stata combine them).
USES_RUN = ("codebook",)
# Microdata release levels (release.py): identified is internal; the others pass through
# disclosure control, public-use more strongly than scientific-use.
LEVELS = ("scientific", "public", "identified")
LANGUAGES = ("ko", "en")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
    "json": "application/json",
}


class ExportError(Exception):
    """A request that cannot be exported; the message is shown to the user."""


@dataclass(frozen=True)
class ExportOptions:
    survey: Survey
    what: str
    format: str
    language: str = "ko"
    run: EstimateRun | None = None
    identified: bool = False  # business_id and personal-data questions (microdata)
    contact: bool = False  # email and phone (fieldwork, contacts)
    weighted: bool = False  # response rates on base weights
    labelled: bool = False  # microdata CSV/XLSX: values as labels in `language`, not codes
    level: str = "scientific"  # microdata release level (identified when `identified`)
    panel: bool = False  # unit_id the same in every release of this level (microdata)
    previous_run: EstimateRun | None = None  # the previous round's version (panel)
    release: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def release_key(self) -> str:
        """What unit_id is keyed by: this release's own random key, so that two releases
        cannot be joined; the stable pseudonym (empty key) for a panel file and for the
        internal identified file."""
        return "" if self.identified or self.panel else self.release

    @property
    def filename(self) -> str:
        run = f"-run{self.run.number}" if self.run is not None and self.what in NEEDS_RUN else ""
        tag = f"-{self.level}" if self.what == "microdata" else ""
        if self.previous_run is not None:
            tag += f"-from-{self.previous_run.survey.slug}-run{self.previous_run.number}"
        tag += "-labels" if self.labelled else ""
        return f"{self.survey.slug}-{self.what}{run}{tag}-{self.language}.{self.format}"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def parameters(self) -> dict[str, Any]:
        """What the audit log and the export job keep of the request."""
        return {
            "language": self.language,
            "run": self.run.number if self.run is not None else None,
            "identified": self.identified,
            "contact": self.contact,
            "weighted": self.weighted,
            "labelled": self.labelled,
            "level": self.level if self.what == "microdata" else "",
            "panel": self.panel,
            "previous_run": self.previous_run.number if self.previous_run is not None else None,
        }


def make_options(
    survey: Survey,
    what: str,
    fmt: str,
    *,
    language: str = "ko",
    run_number: int | None = None,
    identified: bool = False,
    contact: bool = False,
    weighted: bool = False,
    labelled: bool = False,
    level: str = "",
    panel: bool = False,
    previous_run_number: int | None = None,
) -> ExportOptions:
    """Checked options; ExportError says what does not fit."""
    if what not in FORMATS:
        raise ExportError(_("Unknown export “%(what)s”.") % {"what": what})
    if fmt not in FORMATS[what]:
        raise ExportError(
            _("The %(what)s export is available as %(formats)s, not %(format)s.")
            % {"what": what, "formats": ", ".join(FORMATS[what]), "format": fmt}
        )
    if language not in LANGUAGES:
        raise ExportError(_("Choose the language ko or en."))
    if identified and what != "microdata":
        raise ExportError(_("Only microdata can be exported identified."))
    level = level or ("identified" if identified else "scientific")
    if level not in LEVELS:
        raise ExportError(_("Choose the release level scientific, public or identified."))
    if identified and level != "identified":
        raise ExportError(
            _("An identified export cannot also be a %(level)s file.") % {"level": level}
        )
    return ExportOptions(
        survey=survey,
        what=what,
        format=fmt,
        language=language,
        run=_run_for(survey, what, run_number),
        identified=level == "identified" and what == "microdata",
        contact=contact and what in ("fieldwork", "contacts"),
        weighted=weighted and what == "response-rates",
        labelled=labelled and what in ("microdata", "panel") and fmt in ("csv", "xlsx"),
        level=level,
        panel=panel and what == "microdata" and level != "identified",
        previous_run=_previous_run(survey, previous_run_number) if what == "panel" else None,
    )


def _run_for(survey: Survey, what: str, number: int | None) -> EstimateRun | None:
    if what in NEEDS_RUN:
        return find_run(survey, number)
    published = EstimateRun.objects.published().filter(survey=survey)
    if what in USES_RUN and (number or published.exists()):
        return find_run(survey, number)
    return None


def _previous_run(survey: Survey, number: int | None) -> EstimateRun:
    """The previous round's chosen (else latest published) version, for a panel."""
    if survey.previous_round is None:
        raise ExportError(
            _("Survey %(survey)s has no previous round to make a panel with.")
            % {"survey": survey.slug}
        )
    return find_run(survey.previous_round, number)


def find_run(survey: Survey, number: int | None) -> EstimateRun:
    runs = EstimateRun.objects.published().filter(survey=survey).defer("weights")
    run = runs.filter(number=number).first() if number else runs.order_by("-number").first()
    if run is None and number:
        message = _("Survey %(survey)s has no published run %(n)s.")
        raise ExportError(message % {"survey": survey.slug, "n": number})
    if run is None:
        message = _("Survey %(survey)s has no published estimate run yet.")
        raise ExportError(message % {"survey": survey.slug})
    return run


def row_count(options: ExportOptions) -> int:
    """Rows the export will hold (decides between a direct download and a worker job)."""
    survey = options.survey
    if options.what == "estimates":
        return Estimate.objects.filter(run=options.run).count()
    if options.what in ("microdata", "fieldwork"):
        return Case.objects.in_sample().filter(survey=survey).count()
    if options.what == "panel" and options.previous_run is not None:
        rounds = (survey, options.previous_run.survey)
        return Case.objects.in_sample().filter(survey__in=rounds).count()
    if options.what == "contacts":
        return ContactAttempt.objects.filter(case__survey=survey).count()
    return 0
