"""Reading CSV (UTF-8 or CP949) and XLSX files row by row, and reporting their problems.

Shared by every import (frame, dispositions, keyed responses): a file with any bad row is
refused as a whole, with a row-by-row report.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ExpatError

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from xlsx2csv import InvalidXlsxFileException, SheetNotFoundException, Xlsx2csv

from config.spreadsheets import csv_writer

Source = IO[bytes] | str | os.PathLike[str]
MAX_PROBLEMS = 1000
MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class Problem:
    row: int  # the spreadsheet row: the header is row 1
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        return _("Row %(row)s, column “%(column)s”, value “%(value)s”: %(message)s") % {
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


class ImportRefused(Exception):
    """The file was refused as a whole; `problems` holds the first MAX_PROBLEMS of `total`."""

    def __init__(self, message: str, problems: list[Problem] | None = None, total: int = 0):
        super().__init__(message)
        self.message = message
        self.problems = problems or []
        self.total = max(total, len(self.problems))

    @property
    def omitted(self) -> int:
        return self.total - len(self.problems)


class ProblemLog:
    """Problems in the order found: the first `limit` are kept, the rest only counted."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.limit = limit
        self.kept: list[Problem] = []
        self.total = 0

    def add(self, row: int, column: str, value: str, message: str) -> None:
        self.total += 1
        if len(self.kept) < self.limit:
            self.kept.append(Problem(row, column, value[:MAX_VALUE_CHARS], message))

    def refuse(self, message: str) -> ImportRefused:
        problems = sorted(self.kept, key=lambda problem: problem.row)
        return ImportRefused(message, problems, self.total)


def write_report(error: ImportRefused, out: IO[str]) -> None:
    """The refusal as CSV: one problem a line, and a last line counting those left out. The
    bad values are quoted back as they were: neutralised, like every file written."""
    writer = csv_writer(out)
    writer.writerow([_("row"), _("column"), _("value"), _("problem")])
    if not error.problems:
        writer.writerow(["", "", "", error.message])
    for problem in error.problems:
        writer.writerow([problem.row, problem.column, problem.value, problem.message])
    if error.omitted:
        line = _("%(count)s more problems are not listed.") % {"count": error.omitted}
        writer.writerow(["", "", "", line])


@contextmanager
def open_binary(source: Source) -> Iterator[IO[bytes]]:
    """A seekable binary stream; the file is read twice (encoding check, then rows)."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield stream
    elif source.seekable():
        source.seek(0)
        yield source
    else:
        with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as spool:
            shutil.copyfileobj(source, spool)
            spool.seek(0)
            yield spool  # type: ignore[misc]


@contextmanager
def read_table(stream: IO[bytes], filename: str) -> Iterator[tuple[Iterator[list[str]], str]]:
    """The file's rows as lists of strings (header first), and the format found."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".xlsx":
        with _xlsx_rows(stream) as rows:
            yield rows, "XLSX"
    elif suffix in (".csv", ".txt"):
        with _csv_rows(stream) as (rows, encoding):
            yield rows, encoding
    else:
        raise ImportRefused(_("Upload a CSV or XLSX file."))


@contextmanager
def _csv_rows(stream: IO[bytes]) -> Iterator[tuple[Iterator[list[str]], str]]:
    encoding, label = _detect_encoding(stream)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")  # type: ignore[type-var]
    try:
        yield _guarded(csv.reader(text)), label
    finally:
        text.detach()


def _detect_encoding(stream: IO[bytes]) -> tuple[str, str]:
    # Korean Excel saves CSV as CP949 (a superset of EUC-KR). Strict UTF-8 goes first:
    # CP949 Hangul almost never forms valid UTF-8, while UTF-8 text often decodes, wrongly,
    # as CP949.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    first = stream.read(3)
    stream.seek(0)
    try:
        for chunk in iter(lambda: stream.read(2**20), b""):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        stream.seek(0)
        return "cp949", "CSV (CP949)"
    stream.seek(0)
    if first == codecs.BOM_UTF8:
        return "utf-8-sig", "CSV (UTF-8, BOM)"
    return "utf-8", "CSV (UTF-8)"


def _guarded(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    try:
        yield from rows
    except UnicodeDecodeError:
        raise ImportRefused(_("The file is neither UTF-8 nor CP949 (EUC-KR) text.")) from None
    except csv.Error as exc:
        raise ImportRefused(_("The file is not readable CSV: %(error)s") % {"error": exc}) from None


@contextmanager
def _xlsx_rows(stream: IO[bytes]) -> Iterator[Iterator[list[str]]]:
    """The first sheet as CSV rows, streamed: xlsx2csv parses the sheet XML with expat
    several times faster than openpyxl, in constant memory."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as text:
        try:
            Xlsx2csv(
                stream, outputencoding="utf-8", dateformat="%Y-%m-%d", skip_empty_lines=False
            ).convert(text, sheetid=1)
        except (InvalidXlsxFileException, SheetNotFoundException):
            raise ImportRefused(_("The file is not a readable XLSX workbook.")) from None
        except (
            ParseError,
            ExpatError,
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            KeyError,
            ValueError,
            OSError,
        ):
            raise ImportRefused(_("The file is not a readable XLSX workbook.")) from None
        text.seek(0)
        yield _guarded(csv.reader(text))


@dataclass(frozen=True)
class TemplateColumn:
    """A column an import reads: what to write in it and an example value that passes."""

    name: str
    description: str | Promise
    example: str
    required: bool = True
