"""Exports of a survey: estimates, microdata, codebook, fieldwork status and contact log.

Every export writes to a binary file object, so the same code serves `manage.py export`, the
web download and the worker's export job. CSV and XLSX are written row by row in constant
memory; SPSS and Stata files go through pyreadstat, which needs the whole table: those
columns are kept compact (int8/int16 codes, float64 numbers) until the file is written.

Text that a spreadsheet would run as a formula is neutralised in CSV and XLSX; CSV is UTF-8
with a byte-order mark so that Korean Excel opens it correctly.

Modules: `options` (formats, options, run lookup), `tables` (tables, cell safety, CSV),
`xlsx`, `estimates`, `versions` (questionnaire versions), `microdata` (with SPSS and Stata),
`codebook`, `fieldwork` (fieldwork status and contact log). This module dispatches.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO

from django.utils import translation
from django.utils.translation import gettext as _

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
    NEEDS_RUN,
    USES_RUN,
    ExportError,
    ExportOptions,
    find_run,
    make_options,
    row_count,
)
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
    return options.what == "microdata" or row_count(options) > DIRECT_ROW_LIMIT


def export(options: ExportOptions, out: IO[bytes], progress: Progress | None = None) -> int:
    """Write the export to `out`; returns the number of data rows written."""
    report = progress or (lambda _fraction: None)
    with translation.override(options.language):
        if options.what == "response-rates":
            return _response_rates(options, out)
        if options.what == "estimates" and options.format == "xlsx":
            return write_estimates_xlsx(options, out, report)
        if options.what == "codebook" and options.format == "json":
            return write_codebook_json(options, out)
        if options.what == "microdata" and options.format in ("sav", "dta"):
            return write_statistical(options, out, report)
        table = build_table(options)
        if options.format == "csv":
            return write_csv(table, out, report, options.language)
        return write_xlsx(table, out, report, extra=_extra_sheets(options))


def csv_chunks(options: ExportOptions) -> Iterator[bytes]:
    """The CSV export as byte chunks, for a streaming HTTP response."""
    with translation.override(options.language):
        table = build_table(options)
    return (chunk for chunk, _written in csv_batches(table, options.language))


def _response_rates(options: ExportOptions, out: IO[bytes]) -> int:
    from respondents.rates import write_response_rates_csv

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
        "microdata": microdata_table,
        "codebook": codebook_table,
        "fieldwork": fieldwork_table,
        "contacts": contacts_table,
    }
    return builders[options.what](options)


def _extra_sheets(options: ExportOptions) -> list[Table]:
    if options.what != "microdata":
        return []
    layout = microdata_layout(options.survey, identified=options.identified)
    rows = [(v.name, v.text(options.language), v.kind) for v in layout.variables]
    header = [_("variable"), _("label"), _("type")]
    return [Table(header, rows, len(rows), sheet=_("variables"), widths=(24, 60, 12))]
