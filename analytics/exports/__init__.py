"""Exports of a survey: estimates, microdata, codebook, fieldwork status and contact log.

Every export writes to a binary file object, so the same code serves `manage.py export`, the
web download and the worker's export job. CSV and XLSX are written row by row in constant
memory; SPSS and Stata files go through pyreadstat, which needs the whole table: those
columns are kept compact (int8/int16 codes, float64 numbers) until the file is written.

Text that a spreadsheet would run as a formula is neutralised in CSV and XLSX; CSV is UTF-8
with a byte-order mark so that Korean Excel opens it correctly.

Modules: `options` (formats, options, run lookup), `tables` (tables, cell safety, CSV),
`xlsx`, `estimates`, `versions` (questionnaire versions), `microdata` (with SPSS and Stata),
`panel` (two rounds' firms with a link key), `codebook`, `fieldwork` (fieldwork status and
contact log). This module dispatches.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, Any

from django.utils import translation
from django.utils.translation import gettext as _

from respondents.rates import write_response_rates_csv

from .codebook import CODEBOOK_COLUMNS, codebook_entries, codebook_table, write_codebook_json
from .estimates import ESTIMATE_COLUMNS, estimates_table, write_estimates_xlsx
from .fieldwork import contacts_table, fieldwork_table
from .microdata import (
    Layout,
    Missing,
    Variable,
    microdata_layout,
    microdata_table,
    unit_id,
    write_statistical,
)
from .options import (
    CONTENT_TYPES,
    FORMATS,
    LANGUAGES,
    LEVELS,
    NEEDS_RUN,
    USES_RUN,
    ExportError,
    ExportOptions,
    find_run,
    make_options,
    row_count,
)
from .panel import PanelRecords, panel_table
from .release import Release, records_for, treatment
from .tables import Progress, Table, csv_batches, safe_cell, write_csv
from .versions import survey_versions, union_questions
from .xlsx import write_xlsx

__all__ = [
    "CODEBOOK_COLUMNS",
    "CONTENT_TYPES",
    "DIRECT_ROW_LIMIT",
    "ESTIMATE_COLUMNS",
    "FORMATS",
    "LANGUAGES",
    "LEVELS",
    "NEEDS_RUN",
    "USES_RUN",
    "ExportError",
    "ExportOptions",
    "Layout",
    "Missing",
    "Progress",
    "Table",
    "Variable",
    "build_table",
    "codebook_entries",
    "csv_chunks",
    "export",
    "find_run",
    "make_options",
    "microdata_layout",
    "needs_job",
    "row_count",
    "safe_cell",
    "survey_versions",
    "union_questions",
    "unit_id",
]

# Larger exports run as a worker job; microdata always does (SPSS/Stata need the whole table).
DIRECT_ROW_LIMIT = 20_000


def needs_job(options: ExportOptions) -> bool:
    return options.what in ("microdata", "panel") or row_count(options) > DIRECT_ROW_LIMIT


def export(
    options: ExportOptions,
    out: IO[bytes],
    progress: Progress | None = None,
    disclosure: dict[str, Any] | None = None,
) -> int:
    """Write the export to `out`; returns the number of data rows written. A released
    microdata file fills `disclosure` with its disclosure-risk report."""
    report = progress or (lambda _fraction: None)
    with translation.override(options.language):
        if options.what == "microdata":
            return _microdata(options, out, report, disclosure)
        if options.what == "panel":
            return _panel(options, out, report)
        if options.what == "response-rates":
            return _response_rates(options, out)
        if options.what == "estimates" and options.format == "xlsx":
            return write_estimates_xlsx(options, out, report)
        if options.what == "codebook" and options.format == "json":
            return write_codebook_json(options, out)
        table = build_table(options)
        if options.format == "csv":
            return write_csv(table, out, report, options.language)
        return write_xlsx(table, out, report)


def _microdata(
    options: ExportOptions, out: IO[bytes], progress: Progress, disclosure: dict[str, Any] | None
) -> int:
    records = records_for(options)
    if options.format in ("sav", "dta"):
        count = write_statistical(options, out, progress, records)
    elif options.format == "csv":
        count = write_csv(microdata_table(options, records), out, progress, options.language)
    else:
        table = microdata_table(options, records)
        count = write_xlsx(table, out, progress, extra=_extra_sheets(options, records))
    if disclosure is not None and isinstance(records, Release):
        disclosure.update(records.report)
    return count


def _panel(options: ExportOptions, out: IO[bytes], progress: Progress) -> int:
    records = PanelRecords(options)
    if options.format in ("sav", "dta"):
        return write_statistical(options, out, progress, records)
    table = panel_table(options, records)
    if options.format == "csv":
        return write_csv(table, out, progress, options.language)
    return write_xlsx(table, out, progress)


def csv_chunks(options: ExportOptions) -> Iterator[bytes]:
    """The CSV export as byte chunks, for a streaming HTTP response."""
    with translation.override(options.language):
        table = build_table(options)
    return (chunk for chunk, _written in csv_batches(table, options.language))


def _response_rates(options: ExportOptions, out: IO[bytes]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        text.write("\ufeff")
        return int(write_response_rates_csv(options.survey, text, weighted=options.weighted))
    finally:
        text.flush()
        text.detach()


def build_table(options: ExportOptions) -> Table:
    builders: dict[str, Callable[[ExportOptions], Table]] = {
        "estimates": estimates_table,
        "microdata": lambda o: microdata_table(o, records_for(o)),
        "panel": lambda o: panel_table(o, PanelRecords(o)),
        "codebook": codebook_table,
        "fieldwork": fieldwork_table,
        "contacts": contacts_table,
    }
    return builders[options.what](options)


def _extra_sheets(options: ExportOptions, records: Any) -> list[Table]:
    layout = records.layout
    strata = layout.strata_variables
    rows = [
        (v.name, v.text(options.language), v.kind,
         "" if options.identified else treatment(v, options.level, strata))
        for v in layout.variables
    ]  # fmt: skip
    header = [_("variable"), _("label"), _("type"), _("release treatment")]
    sheets = [Table(header, rows, len(rows), sheet=_("variables"), widths=(24, 60, 12, 50))]
    if isinstance(records, Release):
        lines = list(report_lines(records.report))
        sheets.append(Table([_("item"), _("value")], lines, len(lines), sheet=_("disclosure"),
                            widths=(50, 80)))  # fmt: skip
    return sheets


def report_lines(report: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """The disclosure report flattened to (item, value) lines, for a sheet."""
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from report_lines(value, name + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, entry in enumerate(value, start=1):
                yield from report_lines(entry, f"{name}.{index}.")
        else:
            yield name, ", ".join(map(str, value)) if isinstance(value, list) else str(value)
