"""Build XLSForm workbooks in memory for tests."""

from __future__ import annotations

from io import BytesIO

from openpyxl import Workbook

Row = dict[str, str]


def workbook(
    survey: list[Row],
    choices: list[Row] | None = None,
    settings: Row | None = None,
    sheets: dict[str, list[Row]] | None = None,
) -> bytes:
    """An XLSForm; `sheets` adds more (edits, edit_statistics), in order."""
    book = Workbook()
    _sheet(book.active, "survey", survey)
    if choices:
        _sheet(book.create_sheet(), "choices", choices)
    _sheet(book.create_sheet(), "settings", [settings or {"form_id": "test_form", "version": "1"}])
    for title, rows in (sheets or {}).items():
        _sheet(book.create_sheet(), title, rows)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet(sheet, title: str, rows: list[Row]) -> None:  # type: ignore[no-untyped-def]
    sheet.title = title
    columns = list(dict.fromkeys(key for row in rows for key in row))
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(column, "") for column in columns])


def drop_edit_rules(book, question: str) -> None:  # type: ignore[no-untyped-def]
    """Remove the edit rules that read a question, as a form designer removing it would."""
    edits = book["edits"]
    reference = f"${{{question}}}"
    rows = edits.iter_rows(min_row=2)
    reads = [row[0].row for row in rows if any(reference in str(c.value) for c in row)]
    for number in reversed(reads):
        edits.delete_rows(number)


def q(type_: str, name: str, label: str = "", **columns: str) -> Row:
    """A survey row; label goes to both languages unless given per language."""
    row = {"type": type_, "name": name}
    if label:
        row["label::Korean (ko)"] = columns.pop("ko", label)
        row["label::English (en)"] = label
    row.update(columns)
    return row


EVERY_TYPE = [
    q("begin_group", "p1", "Page one"),
    q("select_one yn", "adopted", "Adopted?", required="yes"),
    q(
        "integer",
        "staff",
        "Staff",
        required="yes",
        constraint=". >= 1 and . <= 500",
        **{"constraint_message::English (en)": "Between 1 and 500"},
    ),
    q("decimal", "sales", "Sales", relevant="${adopted} = 'yes'", constraint=". >= 0"),
    q(
        "select_multiple tech",
        "tech",
        "Technologies",
        relevant="selected(${adopted}, 'yes')",
        constraint="count-selected(.) <= 2",
    ),
    q("calculate", "staff_x2", "Twice the staff", calculation="${staff} * 2"),
    q("end_group", ""),
    q("begin_group", "p2", "Page two", relevant="${staff} > 5 or not(${adopted} = 'no')"),
    q("note", "intro2", "A note"),
    q("text", "comment", "Comment"),
    q("date", "visited", "Date of visit", constraint=". >= '2024-01-01'"),
    q("end_group", ""),
]
CHOICES = [
    {"list_name": "yn", "name": "yes", "label::Korean (ko)": "예", "label::English (en)": "Yes"},
    {"list_name": "yn", "name": "no", "label::Korean (ko)": "아니요", "label::English (en)": "No"},
    {"list_name": "tech", "name": "erp", "label::Korean (ko)": "ERP", "label::English (en)": "ERP"},
    {"list_name": "tech", "name": "mes", "label::Korean (ko)": "MES", "label::English (en)": "MES"},
    {"list_name": "tech", "name": "iot", "label::Korean (ko)": "IoT", "label::English (en)": "IoT"},
]
