"""Read an XLSForm with pyxform and turn it into the normalised definition we store.

A form that cannot work is refused with messages naming the sheet, row and problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from io import BytesIO
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from pyxform.errors import PyXFormError
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from . import edit_sheets
from .edits import FRAME, LAST, STAT
from .expressions import ExpressionError, parse
from .models import QuestionnaireUpload, QuestionnaireVersion, Survey, forget_survey
from .questionnaire import Form
from .workbooks import FormError, check_size

# pyxform's names for the types we support, mapped to ours.
TYPES = {
    "select one": "select_one",
    "select all that apply": "select_multiple",
    "integer": "integer",
    "decimal": "decimal",
    "text": "text",
    "date": "date",
    "note": "note",
    "calculate": "calculate",
}
# A `unit` column (`unit::Korean (ko)`, ...) names what a number counts; pyxform passes it
# through untouched and leaves it out of the XForm, so the form still converts.
NUMBER_TYPES = {"integer", "decimal"}
EXPRESSION_COLUMNS = ("relevant", "constraint", "calculation", "required")
LANGUAGE_RE = re.compile(r"\(([A-Za-z]{2,3})\)\s*$")
BOOLEAN_WORDS = {"yes", "no", "true", "false", "true()", "false()", "1", "0", ""}
# Last round's answers in labels and hints, ${last.employees}: pyxform knows no such name,
# so they pass through it written as ⟪last.employees⟫ and are written back after.
LAST_RE = re.compile(r"\$\{last\.([^}]*)\}")
HIDDEN_LAST_RE = re.compile(r"⟪last\.([^⟫]*)⟫")
TEXT_COLUMNS = ("label", "hint")


# Named, not imported: surveys.tasks imports this module.
LOAD_UPLOAD = "surveys.tasks.load_upload"


def read_definition(data: bytes) -> dict[str, Any]:
    """Parse and check an XLSForm file; raise FormError listing every problem found."""
    check_size(data)
    try:
        workbook = get_xlsform(xlsform=BytesIO(data))
    except Exception as exc:  # a damaged upload can fail anywhere in the readers
        raise FormError([_("The file could not be read as an XLSForm: %s") % exc]) from exc
    if not getattr(workbook, "survey", None):
        raise FormError([_("The workbook has no “survey” sheet, or it is empty.")])
    problems = list(_row_problems(workbook.survey))
    if problems:
        raise FormError(problems)
    _hide_last(workbook.survey)
    try:
        pyxform_json = workbook_to_json(
            workbook_dict=workbook, form_name="data", fallback_form_name="data", warnings=[]
        )
    except PyXFormError as exc:
        raise FormError([_describe_pyxform_error(str(exc))]) from exc
    rows = {row["name"]: number for number, row in _rows(workbook.survey) if row.get("name")}
    definition = _show_last(_normalise(pyxform_json, rows))
    # XLSForm has one form_title; a `title_en` settings column (which pyxform ignores, so the
    # form still converts to an XForm) names the survey in English.
    settings = (getattr(workbook, "settings", None) or [{}])[0]
    if settings.get("title_en"):
        definition["title"].setdefault("en", str(settings["title_en"]).strip())
    return definition


def _rows(sheet: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    # pyxform keeps blank rows in place, so the list index gives the spreadsheet row.
    for index, row in enumerate(sheet):
        if row:
            yield index + 2, row


def _row_problems(sheet: list[dict[str, Any]]) -> Iterator[str]:
    seen: dict[str, int] = {}
    for number, row in _rows(sheet):
        name = row.get("name")
        kind = str(row.get("type", "")).strip()
        if name and not kind.startswith("end"):
            if name.startswith((FRAME, STAT, LAST)):
                yield _(
                    "survey sheet, row %(row)d: a question may not be called “%(name)s”: "
                    "names beginning with frame., stat. or last. are the names of the "
                    "frame's values, statistics and last round's answers."
                ) % {"row": number, "name": name}
            if name in seen:
                yield _(
                    "survey sheet, row %(row)d: the name “%(name)s” is already used on row "
                    "%(first)d; names must be unique in the whole form."
                ) % {"row": number, "name": name, "first": seen[name]}
            else:
                seen[name] = number
    for number, row in _rows(sheet):
        yield from _last_problems(row, number, seen)
        for column in EXPRESSION_COLUMNS:
            text = str(row.get(column, "")).strip()
            if column == "required" and text.lower() in BOOLEAN_WORDS:
                continue
            if text:
                yield from _expression_problems(text, column, number, seen)


def _expression_problems(
    text: str, column: str, number: int, names: Mapping[str, int]
) -> Iterator[str]:
    where = {"row": number, "column": column}
    try:
        expression = parse(text)
    except ExpressionError as exc:
        yield _("survey sheet, row %(row)d, column “%(column)s”: %(problem)s") % {
            **where,
            "problem": exc,
        }
        return
    for name in sorted(expression.references):
        if name not in names:
            yield _(
                "survey sheet, row %(row)d, column “%(column)s”: ${%(name)s} refers to no "
                "question in this form."
            ) % {**where, "name": name}


def _text_columns(row: Mapping[str, Any]) -> Iterator[str]:
    return (key for key in row if key.split("::")[0].strip().lower() in TEXT_COLUMNS)


def _last_problems(row: Mapping[str, Any], number: int, names: Mapping[str, int]) -> Iterator[str]:
    """${last.name} must name a question of the form: its answer in the last round."""
    for column in _text_columns(row):
        for name in LAST_RE.findall(str(row[column])):
            if name not in names:
                yield _(
                    "survey sheet, row %(row)d, column “%(column)s”: ${last.%(name)s} refers to "
                    "no question in this form (last round's answer to a question of the form)."
                ) % {"row": number, "column": column, "name": name}


def _hide_last(sheet: list[dict[str, Any]]) -> None:
    for row in sheet:
        for column in list(_text_columns(row)):
            row[column] = LAST_RE.sub(r"⟪last.\1⟫", str(row[column]))


def _show_last(definition: dict[str, Any]) -> dict[str, Any]:
    for page in definition["pages"]:
        for question in page["questions"]:
            for key in TEXT_COLUMNS:
                question[key] = {
                    language: HIDDEN_LAST_RE.sub(r"${last.\1}", text)
                    for language, text in question[key].items()
                }
    return definition


def _describe_pyxform_error(message: str) -> str:
    message = message.strip()
    match = re.match(r"\[row : (\d+)\]\s*(.*)", message, re.S)
    if match:
        return _("survey sheet, row %(row)s: %(problem)s") % {
            "row": match.group(1),
            "problem": match.group(2),
        }
    return message


def _language(key: str, default: str) -> str:
    match = LANGUAGE_RE.search(key)
    if match:
        return match.group(1).lower()
    return default


def _texts(value: Any, default: str) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, str):
        return {default: value}
    return {_language(k, default): str(v) for k, v in value.items() if v}


def _normalise(data: Mapping[str, Any], rows: Mapping[str, int]) -> dict[str, Any]:
    default = _language(str(data.get("default_language") or ""), "ko")
    if not data.get("version"):
        raise FormError(
            [
                _(
                    "settings sheet: “version” is required, so that every load of "
                    "the form is a distinct version."
                )
            ]
        )
    pages: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    problems: list[str] = []
    for element in data.get("children", []):
        if element.get("name") == "meta" and element.get("type") == "group":
            continue
        if element.get("type") == "group":
            if loose:
                pages.append(_loose_page(loose))
                loose = []
            pages.append(_group_page(element, default, rows, problems))
        elif element.get("type") == "repeat":
            problems.append(_row_message(rows, element, _("repeat groups are not supported")))
        else:
            loose.extend(_questions(element, default, rows, problems, ""))
    if loose:
        pages.append(_loose_page(loose))
    if problems:
        raise FormError(problems)
    languages = sorted({lang for page in pages for q in page["questions"] for lang in q["label"]})
    return {
        "form_id": data["id_string"],
        "version": str(data["version"]),
        "title": _texts(data.get("title"), default),
        "default_language": default,
        "languages": languages or [default],
        "pages": [page for page in pages if page["questions"]],
    }


def _loose_page(questions: list[dict[str, Any]]) -> dict[str, Any]:
    # Questions outside any group: one page named after its first question.
    name = f"page_{questions[0]['name']}"
    for question in questions:
        question["page"] = name
    return {"name": name, "label": {}, "relevant": "", "questions": questions}


def _group_page(
    group: Mapping[str, Any], default: str, rows: Mapping[str, int], problems: list[str]
) -> dict[str, Any]:
    questions: list[dict[str, Any]] = []
    for child in group.get("children", []):
        questions.extend(_questions(child, default, rows, problems, group["name"]))
    return {
        "name": group["name"],
        "label": _texts(group.get("label"), default),
        "relevant": group.get("bind", {}).get("relevant", ""),
        "questions": questions,
    }


def _questions(
    element: Mapping[str, Any],
    default: str,
    rows: Mapping[str, int],
    problems: list[str],
    page: str,
    inherited: str = "",
) -> list[dict[str, Any]]:
    kind = element.get("type", "")
    if kind == "group":
        # A group inside a page: its questions join the page, under the group's condition.
        relevant = _and(inherited, element.get("bind", {}).get("relevant", ""))
        return [
            q
            for child in element.get("children", [])
            for q in _questions(child, default, rows, problems, page, relevant)
        ]
    if kind not in TYPES:
        problems.append(
            _row_message(rows, element, _("the type “%(type)s” is not supported") % {"type": kind})
        )
        return []
    if element.get("unit") and TYPES[kind] not in NUMBER_TYPES:
        problems.append(
            _row_message(rows, element, _("a “unit” applies only to integer and decimal questions"))
        )
    return [_question(element, default, rows, page, inherited)]


def _and(a: str, b: str) -> str:
    return f"({a}) and ({b})" if a and b else a or b


def _question(
    element: Mapping[str, Any], default: str, rows: Mapping[str, int], page: str, inherited: str
) -> dict[str, Any]:
    bind = element.get("bind", {})
    instance = element.get("instance", {})
    return {
        "name": element["name"],
        "type": TYPES[element["type"]],
        "page": page,
        "row": rows.get(element["name"], 0),
        "label": _texts(element.get("label"), default),
        "hint": _texts(element.get("hint"), default),
        "unit": _texts(element.get("unit"), default),
        "choices": [
            {"name": str(c["name"]), "label": _texts(c.get("label"), default)}
            for c in element.get("choices", [])
        ],
        "list_name": element.get("list_name", ""),
        "required": str(bind.get("required", "")),
        "required_message": _texts(bind.get("jr:requiredMsg"), default),
        "relevant": _and(inherited, bind.get("relevant", "")),
        "constraint": bind.get("constraint", ""),
        "constraint_message": _texts(bind.get("jr:constraintMsg"), default),
        "calculation": bind.get("calculate", ""),
        "appearance": element.get("control", {}).get("appearance", ""),
        "core": str(instance.get("core", "")).lower() in ("yes", "true", "1"),
        "pii": str(instance.get("pii", "")).lower() in ("yes", "true", "1"),
    }


def _row_message(rows: Mapping[str, int], element: Mapping[str, Any], problem: str) -> str:
    row = rows.get(element.get("name", ""), 0)
    return _("survey sheet, row %(row)d: %(problem)s") % {"row": row, "problem": problem}


def load_questionnaire(
    data: bytes, *, source_name: str = "", user: Any = None, survey_slug: str = ""
) -> QuestionnaireVersion:
    """Check and store a new questionnaire version; nothing changes if anything is wrong.

    The survey is the form's `form_id` unless `survey_slug` names another (a pilot run of
    the same form, say).
    """
    definition = read_definition(data)
    rules, statistics = edit_sheets.workbook_sheets(data)
    if survey_slug:
        definition["form_id"] = survey_slug
    with transaction.atomic():
        survey, _created = Survey.objects.get_or_create(
            slug=definition["form_id"],
            defaults={
                "title": definition["title"].get("ko")
                or next(iter(definition["title"].values()), definition["form_id"]),
                "title_en": definition["title"].get("en", ""),
            },
        )
        if not survey.title_en and definition["title"].get("en"):
            survey.title_en = definition["title"]["en"]
            survey.save(update_fields=["title_en"])
        if survey.questionnaires.filter(version=definition["version"]).exists():
            raise FormError(
                [
                    _(
                        "Version %(version)s of survey “%(survey)s” is already loaded; "
                        "change “version” on the settings sheet."
                    )
                    % {"version": definition["version"], "survey": survey.slug}
                ]
            )
        checked = edit_sheets.check(
            rules, statistics, form=Form(definition), frame=edit_sheets.frame_names(survey)
        )
        if checked.problems:
            raise FormError(checked.problems)
        version = QuestionnaireVersion.objects.create(
            survey=survey,
            version=definition["version"],
            title=survey.title,
            default_language=definition["default_language"],
            definition=definition,
            source_name=source_name[:255],
            source=data,
            loaded_by=user if getattr(user, "is_authenticated", False) else None,
        )
        edit_sheets.save(version, checked)
        survey.current_questionnaire = version
        survey.save(update_fields=["current_questionnaire"])
        forget_survey(survey.pk)
        return version


def load_upload(upload_id: int) -> str:
    """The worker's side of a large upload: claim it once, load it, keep the outcome."""
    claimed = QuestionnaireUpload.objects.filter(
        pk=upload_id, status=QuestionnaireUpload.Status.QUEUED
    ).update(status=QuestionnaireUpload.Status.RUNNING)
    if not claimed:
        return "skipped"
    upload = QuestionnaireUpload.objects.select_related("uploaded_by").get(pk=upload_id)
    try:
        version = load_questionnaire(
            bytes(upload.source), source_name=upload.source_name, user=upload.uploaded_by
        )
    except FormError as exc:
        QuestionnaireUpload.objects.filter(pk=upload_id).update(
            status=QuestionnaireUpload.Status.FAILED, problems=exc.problems[:200], source=b""
        )
        return "failed"
    QuestionnaireUpload.objects.filter(pk=upload_id).update(
        status=QuestionnaireUpload.Status.DONE, version=version, source=b""
    )
    return "done"
