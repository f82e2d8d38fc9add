"""The estimates: a plain table, and the formatted publication workbook."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine import quality
from respondents.classifications import VALUE_LABELS
from surveys.questionnaire import Question

from ..models import Estimate, EstimateRun
from ..spec import SpecError, parse_spec
from .options import ExportOptions, row_count
from .tables import Progress, Table, safe_cell
from .versions import union_questions
from .xlsx import Styles, new_workbook, write_row, write_table_sheet

ESTIMATE_COLUMNS = (
    "item", "option", "statistic", "domain", "domain_value", "estimate", "se", "ci_low",
    "ci_high", "cv", "deff", "n", "population", "df", "flag", "suppressed", "grade",
    "imputed_share",
)  # fmt: skip
# Blank in every download of a suppressed cell: each gives the value away (N̂·p, CV, CI).
SUPPRESSED_BLANK = (
    "estimate", "se", "ci_low", "ci_high", "cv", "deff", "population", "grade", "imputed_share",
)  # fmt: skip
_BLANK = [ESTIMATE_COLUMNS.index(name) for name in SUPPRESSED_BLANK]
_SUPPRESSED = ESTIMATE_COLUMNS.index("suppressed")


def estimates_table(options: ExportOptions) -> Table:
    rows = (
        Estimate.objects.filter(run=options.run)
        .order_by("pk")
        .values_list(*ESTIMATE_COLUMNS)
        .iterator(chunk_size=5000)
    )
    published = (_blanked(row) for row in rows)
    return Table(ESTIMATE_COLUMNS, published, row_count(options), sheet=_("all estimates"))


def _blanked(row: tuple[Any, ...]) -> tuple[Any, ...]:
    if not row[_SUPPRESSED]:
        return row
    values = list(row)
    for index in _BLANK:
        values[index] = None
    return tuple(values)


STATISTIC_LABELS = dict(Estimate.Statistic.choices)
SUPPRESS_CODES = quality.CONFIDENTIALITY
REVIEW_CODES = (quality.RSE_UNDEFINED, quality.DF_LOW, quality.P_EXTREME)
FLAG_TEXTS = {
    quality.OK: gettext_lazy("Meets the reliability standards."),
    quality.NO_DATA: gettext_lazy("No respondent in the base: no estimate."),
    quality.MIN_N: gettext_lazy("Too few respondents in the base (confidentiality)."),
    quality.MIN_CELL: gettext_lazy("Too few respondents in the cell (confidentiality)."),
    quality.DOMINANCE: gettext_lazy("A few firms dominate the total (dominance)."),
    quality.NCHS_N: gettext_lazy("Fewer than 30 respondents (NCHS standard)."),
    quality.NCHS_NEFF: gettext_lazy("Effective sample size below 30 (NCHS standard)."),
    quality.NCHS_WIDTH: gettext_lazy("Confidence interval 30 points wide or more (NCHS)."),
    quality.NCHS_RELATIVE_WIDTH: gettext_lazy(
        "Confidence interval too wide for a small share (NCHS)."
    ),
    quality.RSE_HIGH: gettext_lazy("Relative standard error above 50 %: use with great caution."),
    quality.RSE_UNDEFINED: gettext_lazy("Relative standard error undefined (estimate 0)."),
    quality.DF_LOW: gettext_lazy("Fewer than 8 degrees of freedom: review."),
    quality.P_EXTREME: gettext_lazy("Estimate of exactly 0 or 100 %: review."),
    quality.RSE_CAUTION: gettext_lazy("Relative standard error 25–50 %: use with caution."),
}
LEVEL_TEXTS = {
    quality.OK: gettext_lazy("published"),
    quality.CAUTION: gettext_lazy("use with caution"),
    quality.REVIEW: gettext_lazy("review"),
    quality.SUPPRESS: gettext_lazy("suppressed (blank in the tables)"),
}


def _flag_level(code: str) -> str:
    if code in SUPPRESS_CODES:
        return quality.SUPPRESS
    if code in REVIEW_CODES:
        return quality.REVIEW
    return quality.CAUTION if code in quality.RELIABILITY else quality.OK


@dataclass
class Labeller:
    """Question, option and domain-value labels in one language."""

    questions: Mapping[str, Question]
    language: str

    def item(self, name: str) -> str:
        question = self.questions.get(name)
        return question.text(self.language) if question else name

    def option(self, item: str, option: str) -> str:
        question = self.questions.get(item)
        return question.choice_text(option, self.language) if question and option else ""

    def domain_value(self, domain: str, value: str) -> str:
        if domain == "all":
            return _("All firms")
        if domain in VALUE_LABELS:
            return str(VALUE_LABELS[domain].get(value, value))
        return self.option(domain, value) or value


def write_estimates_xlsx(options: ExportOptions, out: IO[bytes], progress: Progress) -> int:
    """Cover, one publication sheet per domain variable, the flag legend, every estimate."""
    run = options.run
    assert run is not None
    labels = Labeller(union_questions(options.survey), options.language)
    book, styles = new_workbook(out)
    _cover_sheet(book, styles, options, run)
    for domain in _domains(run):
        _domain_sheet(book, styles, run, domain, labels)
    _legend_sheet(book, styles)
    _controls_sheet(book, styles, run)
    written = write_table_sheet(book, styles, estimates_table(options), progress)
    book.close()
    return written


def _domains(run: EstimateRun) -> list[str]:
    """The run's domain variables in the order they were estimated (all first)."""
    first = (
        Estimate.objects.filter(run=run)
        .values("domain")
        .annotate(first=Min("pk"))
        .order_by("first")
    )
    return [row["domain"] for row in first]


def _cover_sheet(book: Any, styles: Styles, options: ExportOptions, run: EstimateRun) -> None:
    sheet = book.add_worksheet(_("Cover")[:31])
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, 1, 90, styles.wrap)
    sheet.write_string(0, 0, options.survey.title_in(options.language), styles.title)
    for r, (name, value) in enumerate(_cover_rows(run), start=2):
        sheet.write_string(r, 0, str(name), styles.header)
        write_row(sheet, r, [None, value], styles)


def _cover_rows(run: EstimateRun) -> list[tuple[str, Any]]:
    snapshot = run.snapshot or {}
    return [
        (_("Estimate version (run)"), run.number),
        (_("Data as of"), run.data_as_of),
        (_("Published"), run.finished_at),
        (_("Fieldwork wave"), run.wave.name if run.wave_id and run.wave else ""),
        (_("Sampled cases"), snapshot.get("cases")),
        (_("Respondents (complete and partial)"), snapshot.get("respondents")),
        (_("Response rate AAPOR RR3"), _percent(snapshot.get("rr3"))),
        (_("Response rate AAPOR RR4"), _percent(snapshot.get("rr4"))),
        (_("Weighting specification version"), run.spec_version),
        (_("Weighting"), _spec_text(run.spec)),
        (_("Weighting specification (JSON)"), json.dumps(run.spec, ensure_ascii=False)),
        (_("Estimation code version"), run.code_version),
        (_("Proportions"), _("fractions between 0 and 1; suppressed cells are blank")),
        (_("Exported"), timezone.now()),
    ]


def _percent(value: float | None) -> str:
    return f"{100 * value:.1f} %" if value is not None else ""


def _spec_text(spec: Mapping[str, Any]) -> str:
    try:
        return parse_spec(spec).describe()
    except (SpecError, TypeError):
        return ""


PUBLICATION_COLUMNS = (
    (gettext_lazy("item"), 16), (gettext_lazy("question"), 50), (gettext_lazy("option"), 14),
    (gettext_lazy("option label"), 30), (gettext_lazy("statistic"), 10),
    (gettext_lazy("domain value"), 16), (gettext_lazy("domain value label"), 26),
    (gettext_lazy("estimate"), 11), (gettext_lazy("standard error"), 11),
    (gettext_lazy("CI lower"), 11), (gettext_lazy("CI upper"), 11), (gettext_lazy("CV"), 9),
    (gettext_lazy("design effect"), 9), (gettext_lazy("respondents (n)"), 10),
    (gettext_lazy("population"), 12), (gettext_lazy("flag"), 30), (gettext_lazy("grade"), 7),
    (gettext_lazy("imputed share"), 9),
)  # fmt: skip


def _domain_sheet(
    book: Any, styles: Styles, run: EstimateRun, domain: str, labels: Labeller
) -> None:
    sheet = book.add_worksheet(_sheet_name(domain))
    for col, (_title, width) in enumerate(PUBLICATION_COLUMNS):
        sheet.set_column(col, col, width)
    sheet.freeze_panes(1, 2)
    sheet.write_row(0, 0, [str(title) for title, _width in PUBLICATION_COLUMNS], styles.header)
    rows = Estimate.objects.filter(run=run, domain=domain).order_by("pk")
    for r, row in enumerate(rows.iterator(chunk_size=5000), start=1):
        _publication_row(sheet, r, row, labels, styles)


def _sheet_name(domain: str) -> str:
    return re.sub(r"[\[\]:*?/\\]", "_", domain)[:31] or "domain"


def _publication_row(sheet: Any, r: int, row: Estimate, labels: Labeller, styles: Styles) -> None:
    text = [
        row.item, labels.item(row.item), row.option, labels.option(row.item, row.option),
        str(STATISTIC_LABELS.get(row.statistic, row.statistic)), row.domain_value,
        labels.domain_value(row.domain, row.domain_value),
    ]  # fmt: skip
    write_row(sheet, r, text, styles)
    scale = styles.percent if row.statistic == Estimate.Statistic.PROPORTION else styles.number
    values = [
        (row.estimate, scale), (row.se, scale), (row.ci_low, scale), (row.ci_high, scale),
        (row.cv, styles.percent), (row.deff, styles.ratio), (row.n, styles.integer),
        (row.population, styles.integer),
    ]  # fmt: skip
    for offset, (value, fmt) in enumerate(values):
        shown = value if offset == 6 or not row.suppressed else None
        if shown is not None:
            sheet.write_number(r, 7 + offset, shown, fmt)
    if row.flag:
        sheet.write_string(r, 15, safe_cell(row.flag))
    if row.grade and not row.suppressed:
        sheet.write_string(r, 16, row.grade)
    if row.imputed_share is not None and not row.suppressed:
        sheet.write_number(r, 17, row.imputed_share, styles.percent)


def _controls_sheet(book: Any, styles: Styles, run: EstimateRun) -> None:
    """The calibration controls of the run, to rake to the same numbers elsewhere."""
    controls = (run.diagnostics or {}).get("controls") or {}
    if not controls.get("margins"):
        return
    sheet = book.add_worksheet(_("Controls")[:31])
    sheet.set_column(0, 1, 20)
    sheet.set_column(2, 3, 22)
    header = [_("variable"), _("level"), _("control"), _("sum of final weights")]
    sheet.write_row(0, 0, header, styles.header)
    for r, margin in enumerate(controls["margins"], start=1):
        sheet.write_string(r, 0, safe_cell(str(margin["variable"])))
        sheet.write_string(r, 1, safe_cell(str(margin["level"])))
        sheet.write_number(r, 2, margin["control"])
        sheet.write_number(r, 3, margin["weighted"])
    source = _("uploaded file") if controls.get("source") == "file" else _("whole sample")
    note = _("Eligible-population controls (%(source)s), method %(method)s.") % {
        "source": source,
        "method": controls.get("method", ""),
    }
    sheet.write_string(len(controls["margins"]) + 2, 0, note)


def _legend_sheet(book: Any, styles: Styles) -> None:
    sheet = book.add_worksheet(_("Flags")[:31])
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, 1, 30)
    sheet.set_column(2, 2, 70, styles.wrap)
    sheet.write_row(0, 0, [_("flag"), _("effect"), _("meaning")], styles.header)
    for r, (code, text) in enumerate(FLAG_TEXTS.items(), start=1):
        sheet.write_row(r, 0, [code, str(LEVEL_TEXTS[_flag_level(code)]), str(text)])
    note = _(
        "A cell may carry several flags joined by “+” (cut at 32 characters). Suppressed "
        "cells (confidentiality only) are blank in every sheet and every download. The grade "
        "A–E rates the coefficient of variation as Statistics Canada does: A under 5 per cent, "
        "B under 10, C under 15, D under 25, E 25 and above (use with caution)."
    )
    sheet.write_string(len(FLAG_TEXTS) + 2, 0, note)
