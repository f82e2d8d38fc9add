"""Call-centre dispositions and keyed response batches from CSV or XLSX files.

Every row is checked first; a file with any bad row is refused whole with a report, and
nothing is recorded. Keyed answers pass exactly the rules of the web questionnaire.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine import aapor
from analytics.recompute import request_recompute
from surveys.models import AnswerChange, Editor, Response, Survey, get_form

from . import dispositions
from .models import Case, FrameUnit
from .tabular import ImportRefused, ProblemLog, Source, TemplateColumn, open_binary, read_table

if TYPE_CHECKING:
    from surveys.questionnaire import Form

# The import template is written from this table; override is optional.
DISPOSITION_TEMPLATE = (
    TemplateColumn(
        "business_id",
        gettext_lazy("Business registration number of a sampled firm."),
        "123-45-67890",
    ),
    TemplateColumn(
        "disposition",
        gettext_lazy("AAPOR disposition code, e.g. 2.111 (refusal) or 4.2 (out of scope)."),
        "2.111",
    ),
    TemplateColumn(
        "date",
        gettext_lazy("When it happened: 2024-11-05 or 2024-11-05 14:30."),
        "2024-11-05 14:30",
    ),
    TemplateColumn(
        "note", gettext_lazy("Reason or note; may be empty."), "대표자 응답 거절", False
    ),
    TemplateColumn(
        "override",
        gettext_lazy("yes to move a firm that submitted to a non-response code; else empty."),
        "",
        False,
    ),
)
DISPOSITION_COLUMNS = tuple(c.name for c in DISPOSITION_TEMPLATE if c.name != "override")
MODES = (Response.Mode.PHONE, Response.Mode.PAPER, Response.Mode.FAX)
T = TypeVar("T")


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    file_format: str


@contextmanager
def _rows(source: Source, filename: str) -> Iterator[tuple[Iterator[list[str]], str]]:
    with open_binary(source) as stream, read_table(stream, filename) as (rows, file_format):
        yield rows, file_format


def _header(rows: Iterator[list[str]], required: tuple[str, ...], log: ProblemLog) -> list[str]:
    header = [cell.strip().lower() for cell in next(rows, [])]
    for column in required:
        if column not in header:
            log.add(1, column, "", _("this column is missing"))
    return header


def _check_rows(
    rows: Iterator[list[str]],
    header: list[str],
    log: ProblemLog,
    check: Callable[[int, dict[str, str]], T | None],
) -> list[T]:
    """Every row checked (the header is line 1); any problem refuses the whole file."""
    checked = [
        row
        for line, cells in enumerate(rows, start=2)
        if (row := check(line, dict(zip(header, cells, strict=False)))) is not None
    ]
    if log.total:
        raise log.refuse(_("The file was not imported: some rows have problems."))
    if not checked:
        raise ImportRefused(_("The file has no rows."))
    return checked


def _cases(survey: Survey) -> dict[str, Case]:
    return {case.business_id: case for case in Case.objects.in_sample().filter(survey=survey)}


# --- dispositions --------------------------------------------------------------------------


@dataclass(frozen=True)
class DispositionRow:
    case: Case
    code: str
    at: dt.datetime
    note: str
    override: bool


def import_dispositions(
    survey: Survey, source: Source, *, filename: str, user: Any = None
) -> ImportSummary:
    """Record a call centre's dispositions (columns business_id, disposition, date, note,
    and optionally override = yes to move a submitted case to a non-response code)."""
    log = ProblemLog()
    with _rows(source, filename) as (rows, file_format):
        header = _header(rows, DISPOSITION_COLUMNS[:3], log)
        if log.total:
            raise log.refuse(_("The file was not imported: columns are missing."))
        cases = _cases(survey)
        submitted = set(
            Response.objects.filter(
                case__survey=survey, status=Response.Status.SUBMITTED
            ).values_list("case_id", flat=True)
        )
        checked = _check_rows(
            rows,
            header,
            log,
            lambda line, cells: _disposition_row(line, cells, cases, submitted, log),
        )
        with transaction.atomic():
            for row in checked:
                row.case.record_disposition(
                    row.code,
                    source="import",
                    by=user,
                    reason=row.note,
                    at=row.at,
                    override=row.override,
                    recompute=False,
                )
            request_recompute(survey.pk, reason="dispositions imported")
    return ImportSummary(len(checked), file_format)


def _disposition_row(
    line: int,
    cells: dict[str, str],
    cases: dict[str, Case],
    submitted: set[int],
    log: ProblemLog,
) -> DispositionRow | None:
    problems_before = log.total
    raw_id = cells.get("business_id", "").strip()
    business_id = FrameUnit.normalise_business_id(raw_id)
    case = cases.get(business_id or "")
    if case is None:
        log.add(line, "business_id", raw_id, _("is not a business ID of this survey's sample"))
    raw_code = cells.get("disposition", "").strip()
    try:
        code = aapor.parse_code(raw_code).code
    except ValueError:
        code = ""
        log.add(
            line, "disposition", raw_code, _("is not an AAPOR disposition code (e.g. 2.111, 4.2)")
        )
    at = _date(line, cells.get("date", ""), log)
    note = cells.get("note", "").strip()
    if len(note) > 1000:
        log.add(line, "note", note, _("is longer than 1,000 characters"))
    if "\x00" in note:
        log.add(line, "note", note.replace("\x00", ""), _("contains a control character"))
    override = cells.get("override", "").strip().lower() in ("yes", "y", "1", "true")
    moves_submitted = case is not None and code and case.pk in submitted
    if moves_submitted and dispositions.is_nonresponse(code) and not override:
        log.add(
            line,
            "disposition",
            raw_code,
            _("this firm has submitted its answers: a non-response code needs override = yes"),
        )
    if log.total > problems_before or case is None or at is None:
        return None
    return DispositionRow(case, code, at, note, override)


def _date(line: int, text: str, log: ProblemLog) -> dt.datetime | None:
    text = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        parsed = None
    if parsed is None:
        log.add(line, "date", text, _("must be a date such as 2024-11-05 or 2024-11-05 14:30"))
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    if parsed > timezone.now() + dt.timedelta(days=1):
        log.add(line, "date", text, _("is in the future"))
        return None
    return parsed


# --- keyed responses -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyedRow:
    case: Case
    answers: dict[str, Any]


def import_responses(
    survey: Survey, source: Source, *, filename: str, mode: str, user: Any = None
) -> ImportSummary:
    """Load keyed answers (phone, paper, fax): one row per firm, one column per question named
    as in the XLSForm; select_multiple as space-separated choice names. Each row must pass the
    web questionnaire's rules: types, options, required, relevant and constraint."""
    if mode not in MODES:
        raise ImportRefused(_("The mode must be phone, paper or fax."))
    if survey.current_questionnaire_id is None:
        raise ImportRefused(_("The survey has no questionnaire."))
    form = get_form(survey.current_questionnaire_id)
    log = ProblemLog()
    with _rows(source, filename) as (rows, file_format):
        header = _header(rows, ("business_id",), log)
        for position, column in enumerate(header, start=1):
            if column != "business_id" and (
                column not in form.questions or not form.questions[column].is_input
            ):
                log.add(
                    1, column or f"#{position}", "", _("is not a question of this questionnaire")
                )
        if log.total:
            raise log.refuse(_("The file was not imported: the header has problems."))
        cases = _cases(survey)
        done = set(
            Response.objects.filter(
                case__survey=survey, status=Response.Status.SUBMITTED
            ).values_list("case__business_id", flat=True)
        )
        seen: set[str] = set()
        checked = _check_rows(
            rows,
            header,
            log,
            lambda line, cells: _keyed_row(line, cells, form, cases, done, seen, log),
        )
        with transaction.atomic():
            for row in checked:
                _store_keyed(row, survey, form, mode, user)
            request_recompute(survey.pk, reason="keyed responses imported")
    return ImportSummary(len(checked), file_format)


def _keyed_row(
    line: int,
    cells: dict[str, str],
    form: Form,
    cases: dict[str, Case],
    done: set[str],
    seen: set[str],
    log: ProblemLog,
) -> KeyedRow | None:
    problems_before = log.total
    raw_id = cells.pop("business_id", "").strip()
    business_id = FrameUnit.normalise_business_id(raw_id) or ""
    case = cases.get(business_id)
    if case is None:
        log.add(line, "business_id", raw_id, _("is not a business ID of this survey's sample"))
    elif business_id in done:
        log.add(line, "business_id", raw_id, _("this firm has already submitted its answers"))
    elif business_id in seen:
        log.add(line, "business_id", raw_id, _("appears on an earlier row of this file"))
    seen.add(business_id)
    answers: dict[str, Any] = {}
    unreadable: set[str] = set()
    for name, raw in cells.items():
        if not raw.strip():
            continue
        try:
            value = form.questions[name].parse_value(raw)
        except ValueError as exc:
            log.add(line, name, raw, _("type: %(problem)s") % {"problem": exc})
            unreadable.add(name)
            continue
        if value is not None:
            answers[name] = value
    values, relevant = form.evaluate(answers)
    for name in answers:
        if name not in relevant:
            rule = (
                form.questions[name].relevant
                or form.page_by_name[form.questions[name].page].relevant
            )
            log.add(
                line,
                name,
                cells[name],
                _("relevant: the question does not apply (%(rule)s)") % {"rule": rule},
            )
    for name, message in form.validate_all(values).items():
        if name in unreadable:
            continue
        question = form.questions[name]
        rule = "required" if values.get(name) is None else f"constraint: {question.constraint}"
        log.add(line, name, cells.get(name, ""), f"{rule}: {message}")
    if log.total > problems_before or case is None:
        return None
    return KeyedRow(case, values)


def _store_keyed(row: KeyedRow, survey: Survey, form: Form, mode: str, user: Any) -> None:
    response = Response.objects.start(row.case, mode=mode, by=user)
    editor = Editor("", AnswerChange.Editor.IMPORT, user=user)
    _response, errors = response.submit(
        editor=editor, answers=row.answers, mode=mode, recompute=False
    )
    if errors:  # the rows were checked against the same rules: a changed form, say
        raise ValueError(f"{row.case.business_id}: {errors}")
