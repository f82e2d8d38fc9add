from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from respondents.imports import import_dispositions, import_responses
from respondents.models import DispositionEvent
from respondents.tabular import ImportRefused
from surveys.models import AnswerChange, Response, Survey
from tests import factories

pytestmark = pytest.mark.django_db
DAY = (timezone.localdate() - dt.timedelta(days=3)).isoformat()


def csv_file(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def refused(call) -> ImportRefused:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportRefused) as info:
        call()
    return info.value


# --- dispositions --------------------------------------------------------------------------


def test_a_call_centre_file_records_each_disposition_with_its_date_and_note(
    survey: Survey,
) -> None:
    first, second = factories.case(survey)[0], factories.case(survey)[0]
    data = csv_file(
        "business_id,disposition,date,note\n"
        f"{first.business_id},2.111,{DAY},대표 거절\n"
        f"{second.business_id.replace('-', '')},4.2,{DAY} 10:30,폐업 확인\n"
    )

    summary = import_dispositions(survey, data, filename="calls.csv")

    assert summary.rows == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.disposition, second.disposition) == ("2.111", "4.20")
    event = DispositionEvent.objects.get(case=first)
    assert (event.source, event.reason, timezone.localdate(event.at).isoformat()) == (
        "import",
        "대표 거절",
        DAY,
    )


def test_a_cp949_file_is_read(survey: Survey) -> None:
    case = factories.case(survey)[0]
    data = csv_file(
        f"business_id,disposition,date,note\n{case.business_id},2.21,{DAY},부재\n", "cp949"
    )

    import_dispositions(survey, data, filename="calls.csv")

    assert DispositionEvent.objects.get(case=case).reason == "부재"


def test_a_file_with_bad_rows_is_refused_whole_with_a_report(survey: Survey) -> None:
    good = factories.case(survey)[0]
    data = csv_file(
        "business_id,disposition,date,note\n"
        f"{good.business_id},2.111,{DAY},ok\n"
        f"999-99-99999,2.111,{DAY},unknown firm\n"
        f"{good.business_id},9.9,{DAY},bad code\n"
        f"{good.business_id},2.111,05/11/2024,bad date\n"
        f"{good.business_id},2.111,2999-01-01,future\n"
    )

    error = refused(lambda: import_dispositions(survey, data, filename="calls.csv"))

    where = [(p.row, p.column) for p in error.problems]
    assert where == [(3, "business_id"), (4, "disposition"), (5, "date"), (6, "date")]
    assert not DispositionEvent.objects.exists()


def test_a_missing_column_is_refused(survey: Survey) -> None:
    error = refused(
        lambda: import_dispositions(survey, csv_file("business_id,date\n"), filename="calls.csv")
    )

    assert [(p.row, p.column) for p in error.problems] == [(1, "disposition")]


def test_a_submitted_firm_is_not_moved_to_non_response_without_an_override(
    survey: Survey,
) -> None:
    case = factories.submitted_case(survey)
    data = csv_file(f"business_id,disposition,date,note\n{case.business_id},2.111,{DAY},x\n")

    error = refused(lambda: import_dispositions(survey, data, filename="calls.csv"))

    assert "override" in error.problems[0].message
    case.refresh_from_db()
    assert case.disposition == "1.1"


def test_an_explicit_override_is_applied_and_recorded(survey: Survey) -> None:
    case = factories.submitted_case(survey)
    later = (timezone.localtime() + dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M")
    data = csv_file(
        "business_id,disposition,date,note,override\n"
        f"{case.business_id},2.111,{later},"
        "asked to withdraw,yes\n"
    )

    import_dispositions(survey, data, filename="calls.csv")

    case.refresh_from_db()
    event = case.disposition_events.get(code="2.111")
    assert event.override and event.applied
    assert case.disposition == "2.111"


def test_the_command_prints_the_report_and_fails(survey: Survey, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "calls.csv"
    path.write_text(f"business_id,disposition,date,note\n000-00-00000,1.1,{DAY},\n")
    err = io.StringIO()

    with pytest.raises(CommandError, match="not imported"):
        call_command("import_dispositions", survey.slug, str(path), stderr=err)

    assert "Row 2, column “business_id”" in err.getvalue()


# --- keyed responses -----------------------------------------------------------------------

HEADER = (
    "business_id,employees,sales_krw_mn,importance,implementing,sf_adopted,sf_level,"
    "sf_scope,sf_tech,data_collect,data_analyze,main_area,need_advance,invest_own,"
    "invest_amount,mfg_ai,contact_name,contact_phone,contact_email\n"
)


def adopter_row(business_id: str) -> str:
    return (
        f"{business_id},45,1200,very_important,yes,yes,basic,partial,erp mes,yes,no,"
        "production_mgmt,yes,no,,planned,김민수,031-123-4567,kim@example.com\n"
    )


def non_adopter_row(business_id: str) -> str:
    return f"{business_id},7,300,neutral,no,no,,,,,,,,,,none,Lee,02-555-0101,lee@example.com\n"


def test_keyed_answers_are_stored_as_submitted_paper_responses(survey: Survey) -> None:
    adopter, other = factories.case(survey)[0], factories.case(survey)[0]
    data = csv_file(HEADER + adopter_row(adopter.business_id) + non_adopter_row(other.business_id))

    summary = import_responses(survey, data, filename="paper.csv", mode="paper")

    assert summary.rows == 2
    response = Response.objects.get(case=adopter)
    assert (response.status, response.mode) == ("submitted", "paper")
    assert response.answers["sf_tech"] == ["erp", "mes"]
    assert response.answers["important_top2"] == 1
    adopter.refresh_from_db()
    assert adopter.disposition == "1.1"
    event = adopter.disposition_events.get(code="1.1")
    assert event.source == "import" and "Keyed (%(mode)s)" in str(event.reason_parts)
    history = AnswerChange.objects.filter(response=response, item="employees").get()
    assert (history.old, history.new, history.editor) == (None, 45, "import")


@pytest.mark.parametrize(
    ("row_fix", "column", "rule"),
    [
        (lambda r: r.replace(",45,", ",many,"), "employees", "type"),
        (lambda r: r.replace(",45,", ",0,"), "employees", "constraint"),
        (lambda r: r.replace(",basic,", ",expert,"), "sf_level", "type"),
        (lambda r: r.replace(",basic,", ",,"), "sf_level", "required"),
        (lambda r: r.replace("erp mes", "erp fax"), "sf_tech", "type"),
    ],
)
def test_each_bad_answer_is_reported_with_row_column_and_rule(
    survey: Survey,
    row_fix,
    column: str,
    rule: str,  # type: ignore[no-untyped-def]
) -> None:
    case = factories.case(survey)[0]
    data = csv_file(HEADER + row_fix(adopter_row(case.business_id)))

    error = refused(lambda: import_responses(survey, data, filename="paper.csv", mode="paper"))

    assert [(p.row, p.column) for p in error.problems] == [(2, column)]
    assert error.problems[0].message.startswith(rule)
    assert not Response.objects.exists()


def test_an_answer_to_a_question_that_does_not_apply_is_refused(survey: Survey) -> None:
    case = factories.case(survey)[0]
    row = non_adopter_row(case.business_id).replace("no,,,,", "no,advanced,,,")

    error = refused(
        lambda: import_responses(survey, csv_file(HEADER + row), filename="paper.csv", mode="fax")
    )

    assert error.problems[0].column == "sf_level"
    assert error.problems[0].message.startswith("relevant")


def test_an_unknown_column_is_refused(survey: Survey) -> None:
    error = refused(
        lambda: import_responses(
            survey, csv_file("business_id,colour\n"), filename="paper.csv", mode="paper"
        )
    )

    assert [(p.row, p.column) for p in error.problems] == [(1, "colour")]


def test_a_firm_that_already_submitted_is_refused(survey: Survey) -> None:
    case = factories.submitted_case(survey)

    error = refused(
        lambda: import_responses(
            survey, csv_file(HEADER + adopter_row(case.business_id)), filename="p.csv", mode="phone"
        )
    )

    assert "already submitted" in error.problems[0].message
