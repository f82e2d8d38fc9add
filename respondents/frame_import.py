"""Import the sampling frame from a CSV (UTF-8 or CP949) or XLSX file, all or nothing.

Rows are validated as they stream past and go in batches into a temporary staging table
(COPY on PostgreSQL, executemany elsewhere). Duplicates are found there with SQL, and only a
file without a single problem replaces the survey's frame, in one transaction.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Count
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine.prn import new_prns
from surveys.models import Survey

from . import frame_changes
from .classifications import (
    Region,
    SizeClass,
    canonical_region,
    ksic_problem,
)
from .models import BusinessIdLink, FrameImport, FrameUnit
from .tabular import ImportRefused, ProblemLog, Source, TemplateColumn, open_binary, read_table

StagedRow = tuple[Any, ...]

# Every file has these columns (cells of the last three may be empty); any other column is
# kept and can stratify. The import template is written from this table.
FRAME_COLUMNS = (
    TemplateColumn(
        "business_id", gettext_lazy("Business registration number, 10 digits."), "123-45-67890"
    ),
    TemplateColumn("name", gettext_lazy("The firm's name."), "(주)예시정밀"),
    TemplateColumn(
        "ksic", gettext_lazy("5-digit KSIC code of a manufacturing industry (10 to 34)."), "29199"
    ),
    TemplateColumn(
        "size_class",
        gettext_lazy("micro, small, medium or midsize (or 소상공인, 소기업, 중기업, 중견기업)."),
        "small",
    ),
    TemplateColumn(
        "region", gettext_lazy("Province or metropolitan city, e.g. Gyeonggi or 경기도."), "경기"
    ),
    TemplateColumn("employees", gettext_lazy("Regular employees, a whole number."), "25"),
    TemplateColumn(
        "sales_krw_mn", gettext_lazy("Sales in KRW million; may be empty."), "3200.5", False
    ),
    TemplateColumn(
        "email",
        gettext_lazy("Email for the invitation; may be empty."),
        "info@example.co.kr",
        False,
    ),
    TemplateColumn("phone", gettext_lazy("Phone; may be empty."), "031-123-4567", False),
)
REQUIRED_COLUMNS = tuple(column.name for column in FRAME_COLUMNS)
BATCH_ROWS = 5000

SIZE_CLASSES = {size.value: size.value for size in SizeClass} | {
    "소상공인": SizeClass.MICRO.value,
    "소기업": SizeClass.SMALL.value,
    "중기업": SizeClass.MEDIUM.value,
    "중견기업": SizeClass.MIDSIZE.value,
}
NUMBER_RE = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?", re.ASCII)
WHOLE_RE = re.compile(r"\d{1,3}(,\d{3})+|\d+", re.ASCII)
MAX_EMPLOYEES = 2**31 - 1
MAX_SALES = Decimal(10) ** 16
EMAIL_MAX_CHARS = FrameUnit._meta.get_field("email").max_length or 254
_validate_email = EmailValidator()


# The staging table is per connection (TEMPORARY); the frame table is FrameUnit's.
DROP_STAGING = "DROP TABLE frame_import_staging"
DROP_STAGING_IF_EXISTS = "DROP TABLE IF EXISTS frame_import_staging"
CREATE_STAGING = """
CREATE TEMPORARY TABLE frame_import_staging (
    source_row integer NOT NULL, business_id varchar(20), name text, ksic text,
    size_class text, region text, employees bigint, sales_krw_mn numeric, email text,
    phone text, attributes text, prn double precision
)"""
INSERT_STAGED = """
INSERT INTO frame_import_staging (source_row, business_id, name, ksic, size_class, region,
    employees, sales_krw_mn, email, phone, attributes, prn)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
COPY_STAGED = """
COPY frame_import_staging (source_row, business_id, name, ksic, size_class, region,
    employees, sales_krw_mn, email, phone, attributes, prn)
FROM STDIN WITH (FORMAT csv)"""
COUNT_DUPLICATES = """
SELECT COUNT(*) FROM frame_import_staging WHERE business_id IN (
    SELECT business_id FROM frame_import_staging GROUP BY business_id HAVING COUNT(*) > 1
)"""
SELECT_DUPLICATES = """
SELECT business_id, source_row FROM frame_import_staging WHERE business_id IN (
    SELECT business_id FROM frame_import_staging GROUP BY business_id HAVING COUNT(*) > 1
)
ORDER BY business_id, source_row LIMIT %s"""
DELETE_FRAME = "DELETE FROM respondents_frameunit WHERE survey_id = %s"
# A firm of the previous round's frame (same business ID) keeps its permanent random number
# and is linked to its unit there; any other firm takes the number drawn for its row (M1).
INSERT_FRAME = """
INSERT INTO respondents_frameunit (survey_id, business_id, name, ksic, size_class, region,
    employees, sales_krw_mn, email, phone, attributes, source_row, prn, previous_id)
SELECT %s, s.business_id, s.name, s.ksic, s.size_class, s.region, s.employees,
    s.sales_krw_mn, COALESCE(s.email, ''), COALESCE(s.phone, ''), s.attributes{cast},
    s.source_row, COALESCE(o.prn, s.prn), o.id
FROM frame_import_staging s
LEFT JOIN respondents_frameunit o ON o.survey_id = %s AND o.business_id = s.business_id
ORDER BY s.source_row"""


@dataclass(frozen=True)
class ImportResult:
    rows: int
    by_size_class: dict[str, int]
    by_region: dict[str, int]
    seconds: float
    replaced: int
    file_format: str
    carried: int = 0  # firms that kept the previous round's permanent random number
    links_removed: int = 0  # rows of the ID mapping that no longer fit the new frame


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


@dataclass(frozen=True)
class Columns:
    width: int
    required: dict[str, int]  # column name -> position
    extra: tuple[tuple[str, int], ...]


def import_frame(
    survey: Survey,
    source: Source,
    *,
    filename: str,
    prn_seed: int | None = None,
    user: Any = None,
) -> ImportResult:
    """Replace the survey's frame with the file's firms, or raise ImportRefused.

    Every firm gets its permanent random number (methodology M1): a firm of the previous
    round's frame (same business ID) keeps its own; the others take, in file order, the
    numbers of a generator seeded with `prn_seed` (drawn when not given), recorded with the
    import. In a round with a previous one the change report is written; a mapping of
    changed IDs loaded for the frame replaced is removed with it (`links_removed`)."""
    started = time.perf_counter()
    seed = secrets.randbits(63) if prn_seed is None else prn_seed
    with (
        open_binary(source) as stream,
        read_table(stream, filename) as (rows, file_format),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        _lock_unsampled(survey)
        columns = _columns(next(rows, None))
        log = ProblemLog()
        _create_staging(cursor)
        staged = _stage(cursor, _clean_rows(rows, columns, log), np.random.default_rng(seed))
        _check_duplicates(cursor, log)
        if log.total:
            raise log.refuse(_("The frame was not imported: the file has problems."))
        if not staged:
            raise ImportRefused(_("The frame was not imported: the file has no firms."))
        links_removed, _kinds = BusinessIdLink.objects.filter(survey=survey).delete()
        replaced = _replace_frame(cursor, survey)
        carried = survey.frame_units.filter(previous__isnull=False).count()
        FrameImport.objects.create(
            survey=survey,
            file_name=filename[:255],
            rows=staged,
            carried=carried,
            prn_seed=seed,
            numpy_version=np.__version__,
            imported_by=user if getattr(user, "is_authenticated", False) else None,
        )
        frame_changes.refresh(survey)
    return ImportResult(
        rows=staged,
        by_size_class=_counts(survey, "size_class", SizeClass.values),
        by_region=_counts(survey, "region", Region.values),
        seconds=time.perf_counter() - started,
        replaced=replaced,
        file_format=file_format,
        carried=carried,
        links_removed=links_removed,
    )


# --- Reading ------------------------------------------------------------------------------


# --- Validating ---------------------------------------------------------------------------


def _columns(header: list[str] | None) -> Columns:
    if header is None:
        raise ImportRefused(_("The file is empty."))
    names = [name.strip().lower() for name in header]
    while names and not names[-1]:
        names.pop()
    log = ProblemLog()
    for position, name in enumerate(names):
        if not name:
            log.add(1, str(position + 1), "", _("this column has no name"))
        elif names.index(name) != position:
            log.add(1, name, name, _("this column appears more than once"))
    for name in REQUIRED_COLUMNS:
        if name not in names:
            log.add(1, name, "", _("this required column is missing"))
    if log.total:
        raise log.refuse(_("The frame was not imported: the header row has problems."))
    extra = tuple((name, i) for i, name in enumerate(names) if name not in REQUIRED_COLUMNS)
    return Columns(len(names), {name: names.index(name) for name in REQUIRED_COLUMNS}, extra)


def _clean_rows(
    rows: Iterable[list[str]], columns: Columns, log: ProblemLog
) -> Iterator[StagedRow]:
    """The rows to stage; a row with a problem is staged by business ID only (for duplicates)."""
    for line, cells in enumerate(rows, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if "\x00" in "".join(cells):
            log.add(line, "", "", _("this row contains a NUL character; is the file binary?"))
            continue
        if len(cells) < columns.width or any(cell.strip() for cell in cells[columns.width :]):
            message = _("this row has %(cells)s cells; the header has %(columns)s") % {
                "cells": len(cells),
                "columns": columns.width,
            }
            log.add(line, "", "", message)
            continue
        yield _clean_row(line, cells, columns, log)


def _clean_row(line: int, cells: list[str], columns: Columns, log: ProblemLog) -> StagedRow:
    values: list[Any] = [line]
    problems = log.total
    for name, position in columns.required.items():
        text = cells[position].strip()
        try:
            values.append(CLEANERS[name](text))
        except _Invalid as invalid:
            log.add(line, name, text, invalid.message)
            values.append(None)
    if log.total > problems:
        return (line, values[1], *([None] * len(REQUIRED_COLUMNS)))
    attributes = {name: cells[position].strip() for name, position in columns.extra}
    values.append(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")))
    return tuple(values)


def _business_id(text: str) -> str:
    value = FrameUnit.normalise_business_id(text)
    if value is None:
        raise _Invalid(_("must be a 10-digit business registration number, e.g. 123-45-67890"))
    return value


def _name(text: str) -> str:
    if not text:
        raise _Invalid(_("is required"))
    if len(text) > 200:
        raise _Invalid(_("is longer than 200 characters"))
    return text


@lru_cache(maxsize=4096)
def _is_manufacturing_code(code: str) -> bool:
    return ksic_problem(code) is None


def _ksic(text: str) -> str:
    if not _is_manufacturing_code(text):
        raise _Invalid(ksic_problem(text) or "")
    return text


def _size_class(text: str) -> str:
    value = SIZE_CLASSES.get(text.lower())
    if value is None:
        raise _Invalid(
            _("must be one of micro, small, medium, midsize (소상공인, 소기업, 중기업, 중견기업)")
        )
    return value


_canonical_region = lru_cache(maxsize=4096)(canonical_region)


def _region(text: str) -> str:
    value = _canonical_region(text)
    if value is None:
        raise _Invalid(_("is not a Korean province or metropolitan city (sido)"))
    return value


def _employees(text: str) -> int:
    if not WHOLE_RE.fullmatch(text):
        raise _Invalid(_("must be a whole number of 0 or more"))
    value = int(text.replace(",", ""))
    if value > MAX_EMPLOYEES:
        raise _Invalid(_("is too large"))
    return value


def _sales(text: str) -> Decimal | None:
    if not text:
        return None
    if not NUMBER_RE.fullmatch(text):
        raise _Invalid(_("must be a number"))
    try:
        value = Decimal(text.replace(",", "")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    except InvalidOperation:
        raise _Invalid(_("must be a number")) from None
    if abs(value) >= MAX_SALES:
        raise _Invalid(_("is too large"))
    return value


def _email(text: str) -> str:
    if not text:
        return ""
    try:
        _validate_email(text)
    except ValidationError:
        raise _Invalid(_("is not a valid email address")) from None
    if len(text) > EMAIL_MAX_CHARS:
        raise _Invalid(_("is not a valid email address"))
    return text


def _phone(text: str) -> str:
    if len(text) > 40:
        raise _Invalid(_("is longer than 40 characters"))
    return text


CLEANERS: dict[str, Callable[[str], Any]] = {
    "business_id": _business_id,
    "name": _name,
    "ksic": _ksic,
    "size_class": _size_class,
    "region": _region,
    "employees": _employees,
    "sales_krw_mn": _sales,
    "email": _email,
    "phone": _phone,
}


# --- Staging and replacing ----------------------------------------------------------------


def _lock_unsampled(survey: Survey) -> None:
    # The lock serialises two imports of the same survey; a sample drawn from the frame
    # pins it, since cases point at its units.
    Survey.objects.select_for_update().filter(pk=survey.pk).first()
    if survey.designs.filter(drawn_at__isnull=False).exists() or survey.cases.exists():
        raise ImportRefused(
            _(
                "The sample has already been drawn from this frame, so the frame can no "
                "longer be replaced."
            )
        )
    if FrameUnit.objects.filter(previous__survey=survey).exists():
        raise ImportRefused(
            _(
                "The next round's frame carries this frame's permanent random numbers, so "
                "this frame can no longer be replaced."
            )
        )


def _create_staging(cursor: CursorWrapper) -> None:
    cursor.execute(DROP_STAGING_IF_EXISTS)
    cursor.execute(CREATE_STAGING)


def _stage(cursor: CursorWrapper, rows: Iterator[StagedRow], rng: np.random.Generator) -> int:
    """Write the rows in batches, each with the next permanent random number of `rng`;
    returns how many are complete (not only an ID)."""
    staged = 0
    while chunk := list(itertools.islice(rows, BATCH_ROWS)):
        batch = [row for row in chunk if row[1] is not None]
        if not batch:
            continue
        staged += sum(1 for row in batch if row[-1] is not None)
        numbers = new_prns(len(batch), rng).tolist()
        batch = [(*row, number) for row, number in zip(batch, numbers, strict=True)]
        if connection.vendor == "postgresql":
            _copy(cursor, batch)
        else:
            cursor.executemany(INSERT_STAGED, batch)
    return staged


def _copy(cursor: CursorWrapper, batch: list[StagedRow]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(batch)
    raw = cursor.cursor
    if hasattr(raw, "copy_expert"):  # psycopg2
        buffer.seek(0)
        raw.copy_expert(COPY_STAGED, buffer)
    else:  # psycopg 3
        with raw.copy(COPY_STAGED) as copy:
            copy.write(buffer.getvalue())


def _check_duplicates(cursor: CursorWrapper, log: ProblemLog) -> None:
    cursor.execute(COUNT_DUPLICATES)
    (total,) = cursor.fetchone()
    room = max(log.limit - len(log.kept), 0)
    cursor.execute(SELECT_DUPLICATES, [room])
    found = cursor.fetchall()
    for business_id, group in itertools.groupby(found, key=lambda pair: pair[0]):
        lines = [line for _id, line in group]
        message = _("the same business registration number is in rows %(rows)s") % {
            "rows": ", ".join(str(line) for line in lines)
        }
        for line in lines:
            log.add(line, "business_id", business_id, message)
    log.total += total - len(found)


def _replace_frame(cursor: CursorWrapper, survey: Survey) -> int:
    cursor.execute(DELETE_FRAME, [survey.pk])
    replaced: int = cursor.rowcount
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    cursor.execute(INSERT_FRAME.format(cast=cast), [survey.pk, survey.previous_round_id])
    cursor.execute(DROP_STAGING)
    return replaced


def _counts(survey: Survey, field: str, order: list[str]) -> dict[str, int]:
    """Firms by the field's value, in the classification's order."""
    counts = dict(survey.frame_units.order_by().values_list(field).annotate(n=Count("id")))
    return {value: counts[value] for value in order if value in counts}
