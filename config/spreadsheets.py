"""One neutralisation for every file the platform writes that a spreadsheet may open.

Text starting with a formula character is prefixed with an apostrophe (OWASP, CSV
injection), so Excel, LibreOffice and Google Sheets show it as text instead of running it.
Every CSV the platform writes goes through `csv_writer`; every XLSX cell of text through
`safe_cell` (tests/security/test_formula_injection.py checks that no other writer exists).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Neutralise text that a spreadsheet would run as a formula (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in row]


class SafeWriter:
    """A csv.writer whose every cell is neutralised."""

    def __init__(self, out: IO[str], **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._writer.writerows(safe_row(row) for row in rows)


def csv_writer(out: IO[str], **options: Any) -> SafeWriter:
    return SafeWriter(out, **options)
