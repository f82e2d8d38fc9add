"""Templates of the three import files (frame, dispositions, keyed responses): the columns
the importers read and an example row, as CSV (UTF-8 for Excel) or as an Excel workbook
whose second sheet explains each column. The example row passes every rule of its import
except one on purpose: its business ID (123-45-67890) belongs to no sampled firm, so a
template uploaded unchanged records nothing about a real firm.

The columns come from the importers' own definitions (frame_import.FRAME_COLUMNS,
imports.DISPOSITION_TEMPLATE and the questionnaire for responses), so a template cannot
drift from what the import expects.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.translation import gettext as _

from config.spreadsheets import csv_writer
from surveys.models import Survey, get_form

from .frame_import import FRAME_COLUMNS
from .imports import DISPOSITION_TEMPLATE
from .tabular import TemplateColumn

if TYPE_CHECKING:
    from surveys.questionnaire import Form, Question

KINDS = ("frame", "dispositions", "responses")
EXAMPLE_ID = "123-45-67890"
FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Example values tried, in order, for a question until one passes its rules.
NUMBER_EXAMPLES = ("10", "100", "1", "1000", "0")
TEXT_EXAMPLES = ("예시 응답", "example@example.com", "02-1234-5678")


@dataclass(frozen=True)
class Template:
    kind: str
    columns: Sequence[TemplateColumn]

    @property
    def header(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def example(self) -> list[str]:
        return [column.example for column in self.columns]

    def filename(self, survey: Survey, fmt: str) -> str:
        return f"{survey.slug}-{self.kind}-template.{fmt}"


def template(survey: Survey, kind: str) -> Template:
    if kind == "frame":
        return Template(kind, FRAME_COLUMNS)
    if kind == "dispositions":
        return Template(kind, DISPOSITION_TEMPLATE)
    return Template(kind, response_columns(survey))


# --- keyed responses ------------------------------------------------------------------------


def response_columns(survey: Survey) -> list[TemplateColumn]:
    if survey.current_questionnaire_id is None:
        return [_business_id_column()]
    form = get_form(survey.current_questionnaire_id)
    answers = example_answers(form)
    return [_business_id_column()] + [
        TemplateColumn(
            q.name,
            _question_description(q, _condition(form, q)),
            _as_cell(answers.get(q.name)),
            required=bool(q.required) and not _condition(form, q),
        )
        for q in form.inputs()
    ]


def _condition(form: Form, question: Question) -> str:
    """When the question is asked: its own `relevant`, else its page's."""
    return question.relevant or form.page_by_name[question.page].relevant


def _business_id_column() -> TemplateColumn:
    return TemplateColumn(
        "business_id", _("Business registration number of a sampled firm."), EXAMPLE_ID
    )


def _question_description(question: Question, condition: str) -> str:
    parts = [question.text()]
    if question.choices:
        options = "; ".join(f"{c.name} = {c.text()}" for c in question.choices)
        if question.type == "select_multiple":
            parts.append(
                _("Options, several separated by spaces: %(options)s") % {"options": options}
            )
        else:
            parts.append(_("One option: %(options)s") % {"options": options})
    elif question.type in ("integer", "decimal"):
        parts.append(_("A number") if question.type == "decimal" else _("A whole number"))
    if condition:
        parts.append(_("Only when: %(rule)s") % {"rule": condition})
    if question.constraint:
        parts.append(_("Rule: %(rule)s") % {"rule": question.constraint})
    return " · ".join(parts)


def example_answers(form: Form) -> dict[str, Any]:
    """A set of answers that passes every rule of the form: each relevant question in order
    gets the first example value its type, constraint and the answers so far allow."""
    answers: dict[str, Any] = {}
    for question in form.inputs():
        _values, relevant = form.evaluate(answers)
        if question.name not in relevant:
            continue
        for raw in _candidates(question):
            trial = {**answers, question.name: question.parse_value(raw)}
            values, _relevant = form.evaluate(trial)
            if question.check(values.get(question.name), values) is None:
                answers = trial
                break
    values, _relevant = form.evaluate(answers)
    return values


def _candidates(question: Question) -> Iterable[str]:
    if question.type == "select_one":
        return question.choice_names
    if question.type == "select_multiple":
        return question.choice_names[:1]
    if question.type in ("integer", "decimal"):
        return NUMBER_EXAMPLES
    if question.type == "date":
        return (timezone.localdate().isoformat(),)
    return TEXT_EXAMPLES


def _as_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# --- files ------------------------------------------------------------------------------------


def write_csv(found: Template) -> bytes:
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv_writer(buffer)
    writer.writerow(found.header)
    writer.writerow(found.example)
    return buffer.getvalue().encode("utf-8")


def write_xlsx(found: Template) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    bold = book.add_format({"bold": True, "bg_color": "#ecf2fe"})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    text = book.add_format({"num_format": "@"})  # IDs and codes stay text (no 1.1 → 1.1000)
    sheet = book.add_worksheet(found.kind)
    sheet.write_row(0, 0, found.header, bold)
    for col, value in enumerate(found.example):
        sheet.write_string(1, col, value, text)
    sheet.set_column(0, len(found.columns) - 1, 18, text)
    sheet.freeze_panes(1, 0)
    notes = book.add_worksheet(_("columns")[:31])
    notes.write_row(0, 0, [_("column"), _("required"), _("what to write")], bold)
    for row, column in enumerate(found.columns, start=1):
        notes.write_row(
            row, 0, [column.name, _("yes") if column.required else _("no"), str(column.description)]
        )
    notes.set_column(0, 1, 18)
    notes.set_column(2, 2, 100, wrap)
    book.close()
    return buffer.getvalue()


def write(found: Template, fmt: str) -> bytes:
    writers: Mapping[str, Any] = {"csv": write_csv, "xlsx": write_xlsx}
    return writers[fmt](found)  # type: ignore[no-any-return]
