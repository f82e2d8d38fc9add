"""Tables of plain values, cells made safe for spreadsheets, and CSV written in batches."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.utils import timezone, translation

from config.spreadsheets import FORMULA_STARTS, safe_cell

__all__ = ["FORMULA_STARTS", "safe_cell"]

PROGRESS_EVERY = 2000
Progress = Callable[[float], None]


@dataclass
class Table:
    """Rows of plain values (str, int, float, datetime or None) under a header."""

    header: Sequence[str]
    rows: Iterable[Sequence[Any]]
    total: int
    sheet: str = "data"
    widths: Sequence[int] = ()


def write_csv(table: Table, out: IO[bytes], progress: Progress, language: str) -> int:
    written = 0
    for chunk, written in csv_batches(table, language):
        out.write(chunk)
        progress(written / max(table.total, written, 1))
    progress(1.0)
    return written


def csv_batches(table: Table, language: str) -> Iterator[tuple[bytes, int]]:
    """UTF-8 with a BOM, in batches of rows; the language is active only while a batch is
    built, never while the caller holds a chunk (a streaming response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(table.header)
    rows, written = iter(table.rows), 0
    while True:
        with translation.override(language):
            batch = list(itertools.islice(rows, PROGRESS_EVERY))
            writer.writerows([_csv_value(value) for value in row] for row in batch)
        written += len(batch)
        yield _drain(buffer), written
        if len(batch) < PROGRESS_EVERY:
            return


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def _csv_value(value: Any) -> Any:
    # Seven million cells for the census: the common types are tested by identity first.
    kind = value.__class__
    if kind is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if kind is int or kind is float or value is None:
        return value
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, bool):
        return int(value)
    return safe_cell(value)
