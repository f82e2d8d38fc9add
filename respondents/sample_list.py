"""The drawn sample as files for people: the case list in CSV and XLSX, with or without
contact details."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from config.spreadsheets import csv_writer, safe_cell

from .models import Case

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser


def sample_columns(*, contact: bool) -> list[tuple[str, str]]:
    columns = [
        ("business_id", _("business registration number")),
        ("name", _("name")),
        ("stratum", _("stratum")),
        ("size_class", _("size class")),
        ("region", _("region")),
        ("ksic", _("KSIC code")),
        ("employees", _("employees")),
        ("status", _("status")),
        ("reserve_rank", _("reserve rank")),
        ("population", "N_h"),
        ("stratum_sample_size", "n_h"),
        ("base_weight", _("base weight")),
        ("disposition", _("disposition")),
    ]
    if contact:
        columns += [("email", _("email")), ("phone", _("phone"))]
    return columns


def case_status(case: Case) -> str:
    if not case.is_reserve:
        return _("in sample")
    return _("released reserve") if case.released_at else _("reserve")


def sample_rows(cases: QuerySet[Case], *, contact: bool) -> Iterator[list[Any]]:
    """One row per case for the CSV and XLSX exports, text made safe for spreadsheets."""
    cases = cases.select_related("frame_unit", "stratum")
    for case in cases.iterator(chunk_size=2000):
        unit, stratum = case.frame_unit, case.stratum
        weight = stratum.population / stratum.sample_size if stratum.sample_size else None
        row: list[Any] = [case.business_id, unit.name, stratum.key, unit.size_class, unit.region]
        row += [unit.ksic, unit.employees, case_status(case), case.reserve_rank]
        row += [stratum.population, stratum.sample_size, weight, case.disposition]
        if contact:
            row += [unit.email, unit.phone]
        yield [safe_cell(value) for value in row]


def write_sample_csv(cases: QuerySet[Case], out: IO[str], *, contact: bool) -> None:
    out.write("\ufeff")
    writer = csv_writer(out)
    writer.writerow([label for _name, label in sample_columns(contact=contact)])
    writer.writerows(sample_rows(cases, contact=contact))


def sample_xlsx(cases: QuerySet[Case], *, contact: bool) -> bytes:
    """The filtered sample as an XLSX workbook, written row by row (constant memory)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer, {"constant_memory": True, "strings_to_formulas": False, "in_memory": False}
    )
    sheet = workbook.add_worksheet("sample")
    for col, (_name, label) in enumerate(sample_columns(contact=contact)):
        sheet.write_string(0, col, str(label))
    for r, row in enumerate(sample_rows(cases, contact=contact), start=1):
        for col, value in enumerate(row):
            if isinstance(value, int | float):
                sheet.write_number(r, col, value)
            elif value is not None:
                sheet.write_string(r, col, str(value))
    workbook.close()
    return buffer.getvalue()
