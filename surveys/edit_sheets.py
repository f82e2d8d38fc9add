"""Edit rules and class statistics as spreadsheets: the `edits` and `edit_statistics` sheets
of an XLSForm, read when the questionnaire is loaded, or a file uploaded later (an XLSX
workbook with those sheets, or a CSV file of rules) that replaces a version's rules.

`edits`: name, type (hard or soft), rule, relevant, flag, message::Korean (ko),
message::English (en). `edit_statistics`: name, expression, by, percentile.

A sheet with any problem is refused whole, each problem named by its sheet, row and column,
and nothing changes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlrd
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _
from openpyxl import load_workbook

from respondents.models import FRAME_VARIABLES, attribute_keys

from .edits import FRAME, LAST, STAT, forget_rules, names_in_order
from .expressions import Expression, ExpressionError, parse
from .expressions.columns import column_problem
from .models import EditRule, EditStatistic, QuestionnaireVersion, Survey
from .questionnaire import Form
from .workbooks import FormError, check_size

RULES = "edits"
STATISTICS = "edit_statistics"
RULE_COLUMNS = ("name", "type", "rule", "relevant", "flag")
STATISTIC_COLUMNS = ("name", "expression", "by", "percentile")
MESSAGE = "message"
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_LENGTH = 64
LANGUAGE_RE = re.compile(r"\(([A-Za-z]{2,3})\)\s*$")
NUMBER_TYPES = ("integer", "decimal")
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an .xls workbook's first bytes


@dataclass(frozen=True)
class Sheet:
    """A sheet's rows: (spreadsheet row, {column: text}), the header being row 1."""

    name: str  # the sheet's name, or the file's for a CSV file
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    is_file: bool = False

    def place(self) -> str:
        return self.name if self.is_file else _("%(sheet)s sheet") % {"sheet": self.name}

    def problem(self, row: int, column: str, problem: str) -> str:
        return _("%(place)s, row %(row)d, column “%(column)s”: %(problem)s") % {
            "place": self.place(),
            "row": row,
            "column": column,
            "problem": problem,
        }


@dataclass
class Checked:
    """What a file's sheets hold, checked: unsaved rows, and every problem found."""

    rules: list[EditRule] = field(default_factory=list)
    statistics: list[EditStatistic] | None = None  # None: the file declares none
    problems: list[str] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------


def workbook_sheets(data: bytes) -> tuple[Sheet | None, Sheet | None]:
    """The `edits` and `edit_statistics` sheets of an XLSForm workbook (None where absent)."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        sheets = _xlsx_sheets(data)
    elif data.startswith(OLE2):
        sheets = _xls_sheets(data)
    else:  # an XLSForm as CSV or Markdown has one sheet of each kind pyxform knows
        return None, None
    return sheets.get(RULES), sheets.get(STATISTICS)


def file_sheets(data: bytes, filename: str) -> tuple[Sheet | None, Sheet | None]:
    """An uploaded file's rules and statistics: a workbook's `edits` sheet (or its only
    sheet) and `edit_statistics` sheet, or a CSV file of rules."""
    if Path(filename).suffix.lower() == ".csv":
        return _csv_sheet(data, Path(filename).name), None
    check_size(data)
    sheets = _xlsx_sheets(data, only_sheet_is_rules=True)
    if RULES not in sheets:
        raise FormError([_("The workbook has no “edits” sheet.")])
    return sheets[RULES], sheets.get(STATISTICS)


def _roles(titles: Sequence[str], only_sheet_is_rules: bool) -> dict[str, str]:
    """The sheets to read, by title: edits and edit_statistics (and, if asked, a
    workbook's only other sheet as the rules); the rest is never parsed."""
    roles = {t: t.strip().lower() for t in titles if t.strip().lower() in (RULES, STATISTICS)}
    others = [title for title in titles if title not in roles]
    if only_sheet_is_rules and RULES not in roles.values() and len(others) == 1:
        roles[others[0]] = RULES
    return roles


def _xlsx_sheets(data: bytes, *, only_sheet_is_rules: bool = False) -> dict[str, Sheet]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            roles = _roles(book.sheetnames, only_sheet_is_rules)
            return {
                role: _sheet(title, book[title].iter_rows(values_only=True))
                for title, role in roles.items()
            }
        finally:
            book.close()
    except FormError:
        raise
    except Exception as exc:  # a damaged upload can fail anywhere in the reader
        raise FormError([_("The file could not be read as a workbook: %s") % exc]) from exc


def _xls_sheets(data: bytes) -> dict[str, Sheet]:
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
        roles = _roles(book.sheet_names(), only_sheet_is_rules=False)
        sheets = {title: book.sheet_by_name(title) for title in roles}
        return {
            roles[title]: _sheet(title, map(sheet.row_values, range(sheet.nrows)))
            for title, sheet in sheets.items()
        }
    except FormError:
        raise
    except Exception as exc:  # a damaged upload can fail anywhere in the reader
        raise FormError([_("The file could not be read as a workbook: %s") % exc]) from exc


def _csv_sheet(data: bytes, name: str) -> Sheet:
    # Korean Excel saves CSV as CP949; valid UTF-8 is taken as UTF-8 first.
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        try:
            text = data.decode("cp949")
        except UnicodeDecodeError:
            raise FormError([_("The file is neither UTF-8 nor CP949 (EUC-KR) text.")]) from None
    try:
        return _sheet(name, csv.reader(io.StringIO(text, newline="")), is_file=True)
    except csv.Error as exc:
        raise FormError([_("The file is not readable CSV: %(error)s") % {"error": exc}]) from None


def _sheet(name: str, rows: Iterator[Sequence[Any]], *, is_file: bool = False) -> Sheet:
    header = [_header(cell) for cell in next(rows, [])]
    body: list[tuple[int, dict[str, str]]] = []
    for number, row in enumerate(rows, start=2):
        if number > settings.MAX_FORM_ROWS:
            raise FormError(
                [
                    _("%(sheet)s has more than %(rows)s rows.")
                    % {"sheet": name, "rows": f"{settings.MAX_FORM_ROWS:,}"}
                ]
            )
        cells = {column: _text(value) for column, value in zip(header, row, strict=False) if column}
        if any(cells.values()):
            body.append((number, cells))
    return Sheet(name, [column for column in header if column], body, is_file)


def _header(cell: Any) -> str:
    return " ".join(_text(cell).split())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- checking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The names a rule may read: the form's questions, the frame's variables, statistics."""

    questions: Mapping[str, str]  # name -> type
    frame: Collection[str]
    statistics: Collection[str]

    def problems(self, text: str) -> Iterator[str]:
        for name in names_in_order(text):
            if name.startswith(FRAME):
                if name.removeprefix(FRAME) not in self.frame:
                    yield _(
                        "${%(name)s} is not a variable of the frame; the frame has %(variables)s."
                    ) % {"name": name, "variables": ", ".join(self.frame)}
            elif name.startswith(STAT):
                if name.removeprefix(STAT) not in self.statistics:
                    yield _(
                        "${%(name)s} is no statistic declared on the edit_statistics sheet."
                    ) % {"name": name}
            elif name.startswith(LAST):
                if name.removeprefix(LAST) not in self.questions:
                    yield _(
                        "${%(name)s} refers to no question in this form (last round's answer "
                        "to a question of the form)."
                    ) % {"name": name}
            elif name not in self.questions:
                yield _(
                    "${%(name)s} refers to no question in this form, and is neither a frame "
                    "variable (${frame.…}), a statistic (${stat.…}) nor last round's answer "
                    "(${last.…})."
                ) % {"name": name}


def frame_names(survey: Survey) -> list[str]:
    """The frame variables rules may read: the frame's columns, the derived variables and
    the attribute columns of the frame as imported (none before the frame is)."""
    return list(dict.fromkeys([*FRAME_VARIABLES, *attribute_keys(survey)]))


def check(
    rules: Sheet | None,
    statistics: Sheet | None,
    *,
    form: Form,
    frame: Collection[str],
    declared: Collection[str] = (),
) -> Checked:
    """Check both sheets; `declared` names the statistics in effect when `statistics` is
    None (a CSV file of rules keeps the version's statistics)."""
    checked = Checked()
    if statistics is not None:
        checked.statistics = _statistics(statistics, frame, checked.problems)
        declared = [s.name for s in checked.statistics]
    if rules is not None:
        questions = {name: q.type for name, q in form.questions.items()}
        default = str(form.definition.get("default_language") or "ko")
        checked.rules = _rules(
            rules,
            Names(questions, frame, declared),
            form.languages or [default],
            default,
            checked.problems,
        )
    return checked


class _Row:
    """One row of a sheet being checked, and the problems found in it."""

    def __init__(self, sheet: Sheet, number: int, cells: Mapping[str, str]) -> None:
        self.sheet, self.number = sheet, number
        self.cells = {_column_key(column): value for column, value in cells.items()}
        self.problems: list[str] = []

    def get(self, column: str) -> str:
        return self.cells.get(column, "")

    def refuse(self, column: str, problem: str) -> None:
        self.problems.append(self.sheet.problem(self.number, column, problem))

    def name(self, seen: dict[str, int]) -> str:
        name = self.get("name")
        if not name:
            self.refuse("name", _("a name is required."))
        elif not NAME_RE.fullmatch(name) or len(name) > NAME_LENGTH:
            self.refuse(
                "name",
                _(
                    "“%(name)s” is not a valid name: use up to %(length)d letters, digits "
                    "and _, starting with a letter or _."
                )
                % {"name": name[:80], "length": NAME_LENGTH},
            )
        elif name in seen:
            self.refuse(
                "name",
                _("the name “%(name)s” is already used on row %(first)d.")
                % {"name": name, "first": seen[name]},
            )
        else:
            seen[name] = self.number
        return name

    def expression(self, column: str, *, required: bool = False) -> Expression | None:
        text = self.get(column)
        if not text:
            if required:
                self.refuse(column, _("an expression is required."))
            return None
        try:
            return parse(text)
        except ExpressionError as exc:
            self.refuse(column, str(exc))
            return None


def _column_key(column: str) -> str:
    return column if "::" in column else column.lower()


def _columns_problems(
    sheet: Sheet, allowed: Sequence[str], required: Sequence[str], problems: list[str]
) -> bool:
    """Problems with a sheet's header; True when a required column is missing."""
    for column in sheet.columns:
        base, _sep, language = column.partition("::")
        if base.strip().lower() not in allowed or (language and base.strip().lower() != MESSAGE):
            problems.append(
                _("%(place)s: unknown column “%(column)s”; the columns are %(columns)s.")
                % {"place": sheet.place(), "column": column, "columns": ", ".join(allowed)}
            )
    known = {_column_key(column).split("::")[0] for column in sheet.columns}
    missing = [column for column in required if column not in known]
    for column in missing:
        problems.append(
            _("%(place)s: the column “%(column)s” is missing.")
            % {"place": sheet.place(), "column": column}
        )
    return bool(missing)


def _rules(
    sheet: Sheet, names: Names, languages: Sequence[str], default: str, problems: list[str]
) -> list[EditRule]:
    if _columns_problems(sheet, [*RULE_COLUMNS, MESSAGE], ("name", "type", "rule"), problems):
        return []
    seen: dict[str, int] = {}
    rules = []
    for order, (number, cells) in enumerate(sheet.rows):
        row = _Row(sheet, number, cells)
        rule = _rule(row, seen, names, languages, default)
        problems.extend(row.problems)
        if rule is not None and not row.problems:
            rule.order = order
            rules.append(rule)
    return rules


def _rule(
    row: _Row, seen: dict[str, int], names: Names, languages: Sequence[str], default: str
) -> EditRule | None:
    name = row.name(seen)
    severity = row.get("type").lower()
    if severity not in EditRule.Severity.values:
        row.refuse("type", _kind_problem(row.get("type")))
    condition = row.expression("rule", required=True)
    relevant = row.expression("relevant")
    for column, expression in (("rule", condition), ("relevant", relevant)):
        for problem in names.problems(expression.text) if expression else ():
            row.refuse(column, problem)
    message = _message(row, languages, default)
    flag = row.get("flag").removeprefix("${").removesuffix("}")
    if flag and flag not in names.questions:
        row.refuse("flag", _("“%(flag)s” is no question of this form.") % {"flag": flag[:80]})
    if condition is None or row.problems:
        return None
    written = names_in_order(condition.text, relevant.text if relevant else "")
    items = [name for name in written if name in names.questions]
    if not items:
        row.refuse("rule", _("the rule refers to no question of the form."))
        return None
    flag = flag or next((n for n in items if names.questions[n] in NUMBER_TYPES), items[0])
    return EditRule(
        name=name,
        severity=severity,
        rule=condition.text,
        relevant=relevant.text if relevant else "",
        items=items if flag in items else [*items, flag],
        flag=flag,
        message=message,
        source_sheet=row.sheet.name[:255],
        source_row=row.number,
    )


def _kind_problem(given: str) -> str:
    if not given:
        return _("the type is required: hard or soft.")
    return _("the type must be hard or soft, not “%(type)s”.") % {"type": given[:40]}


def _message(row: _Row, languages: Sequence[str], default: str) -> dict[str, str]:
    """The message in each language, from message::Language (xx) columns (a bare message
    column is in the form's default language); every language of the form is required."""
    message: dict[str, str] = {}
    columns: dict[str, str] = {}
    for column, text in row.cells.items():
        base, _sep, language = column.partition("::")
        if base.strip().lower() == MESSAGE:
            match = LANGUAGE_RE.search(language)
            code = match.group(1).lower() if match else default
            columns[code] = column
            if text:
                message[code] = text
    for language in languages:
        if language not in message:
            row.refuse(
                columns.get(language, MESSAGE),
                _("a message in “%(language)s” is required: the form is answered in %(all)s.")
                % {"language": language, "all": ", ".join(languages)},
            )
    return message


def _statistics(sheet: Sheet, frame: Collection[str], problems: list[str]) -> list[EditStatistic]:
    required = ("name", "expression", "percentile")
    if _columns_problems(sheet, STATISTIC_COLUMNS, required, problems):
        return []
    seen: dict[str, int] = {}
    statistics = []
    for order, (number, cells) in enumerate(sheet.rows):
        row = _Row(sheet, number, cells)
        name = row.name(seen)
        expression = row.expression("expression", required=True)
        if expression is not None:
            _statistic_expression(row, expression, frame)
        by = row.get("by").removeprefix("${").removesuffix("}").removeprefix(FRAME)
        if by and by not in frame:
            row.refuse(
                "by",
                _("“%(name)s” is not a variable of the frame; the frame has %(variables)s.")
                % {"name": by[:80], "variables": ", ".join(frame)},
            )
        percentile = _percentile(row)
        problems.extend(row.problems)
        if expression is not None and percentile is not None and not row.problems:
            statistics.append(
                EditStatistic(
                    name=name,
                    expression=expression.text,
                    by=by,
                    percentile=percentile,
                    source_sheet=sheet.name[:255],
                    source_row=number,
                    order=order,
                )
            )
    return statistics


def _statistic_expression(row: _Row, expression: Expression, frame: Collection[str]) -> None:
    names = names_in_order(expression.text)
    if not names:
        row.refuse("expression", _("the expression refers to no frame variable."))
    for name in names:
        if not name.startswith(FRAME) or name.removeprefix(FRAME) not in frame:
            row.refuse(
                "expression",
                _(
                    "${%(name)s} is not a variable of the frame: a statistic is computed "
                    "over the frame, from ${frame.…} names only (the frame has %(variables)s)."
                )
                % {"name": name, "variables": ", ".join(frame)},
            )
    problem = column_problem(expression)
    if problem:
        row.refuse("expression", problem)


def _percentile(row: _Row) -> float | None:
    text = row.get("percentile")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:
        row.refuse("percentile", _("the percentile must be a number from 0 to 100."))
        return None
    return value


# --- storing ---------------------------------------------------------------------------------


def save(version: QuestionnaireVersion, checked: Checked) -> None:
    """Replace the version's rules (and its statistics, when the file declared any)."""
    if checked.problems:
        raise FormError(checked.problems)
    if checked.statistics is not None:
        version.edit_statistics.all().delete()
        for statistic in checked.statistics:
            statistic.questionnaire = version
        EditStatistic.objects.bulk_create(checked.statistics)
    version.edit_rules.all().delete()
    for rule in checked.rules:
        rule.questionnaire = version
    EditRule.objects.bulk_create(checked.rules)


def replace_edit_rules(version: QuestionnaireVersion, data: bytes, filename: str) -> int:
    """Replace a version's rules with an uploaded file's (XLSX or CSV), all or nothing;
    returns the number of rules now in effect."""
    rules, statistics = file_sheets(data, filename)
    with transaction.atomic():
        # One upload at a time per version: the lock orders them.
        version = QuestionnaireVersion.objects.select_for_update().get(pk=version.pk)
        declared = version.edit_statistics.values_list("name", flat=True)
        checked = check(
            rules,
            statistics,
            form=version.form,
            frame=frame_names(version.survey),
            declared=list(declared),
        )
        save(version, checked)
    forget_rules(version.pk)
    return len(checked.rules)
