"""Edit rules and statistics loaded from the XLSForm's edits and edit_statistics sheets, or
from a file replacing a version's rules: what is accepted, and each kind of bad input refused
with its sheet, row and column, nothing loaded."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from surveys.edit_sheets import replace_edit_rules
from surveys.expressions import parse
from surveys.models import EditRule, EditStatistic, QuestionnaireVersion, Survey
from surveys.xlsform import FormError, load_questionnaire
from tests import factories
from tests.xlsforms import CHOICES, EVERY_TYPE, q, workbook

pytestmark = pytest.mark.django_db
Book = Any


def shipped_with(change: Callable[[Book], None]) -> bytes:
    """The shipped workbook, changed in memory."""
    book = load_workbook(io.BytesIO(factories.SHIPPED_FORM.read_bytes()))
    change(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def cell(sheet: str, ref: str, value: Any) -> Callable[[Book], None]:
    def change(book: Book) -> None:
        book[sheet][ref] = value

    return change


def refused(data: bytes) -> list[str]:
    with pytest.raises(FormError) as caught:
        load_questionnaire(data)
    assert not Survey.objects.exists()
    assert not EditRule.objects.exists() and not EditStatistic.objects.exists()
    return caught.value.problems


def test_the_shipped_questionnaire_loads_its_rules_and_statistics() -> None:
    # when
    version = factories.shipped_questionnaire()

    # then
    rules = {rule.name: rule for rule in version.edit_rules.all()}
    assert list(rules) == [
        "employees_vs_register",
        "sales_vs_register",
        "sales_per_employee",
        "sales_positive",
        "adopter_has_technology",
        "adopter_implementing",
        "analysis_needs_collection",
        "ai_needs_data",
        "investment_within_sales",
    ]
    register = rules["employees_vs_register"]
    assert (register.severity, register.items, register.flag) == (
        "soft",
        ["employees"],
        "employees",
    )
    assert (register.source_sheet, register.source_row) == ("edits", 2)
    assert register.message["ko"].startswith("상시 근로자 수가")
    assert register.message["en"].startswith("The number of employees")
    assert rules["sales_per_employee"].items == ["sales_krw_mn", "employees"]
    assert rules["adopter_has_technology"].severity == "hard"
    assert rules["adopter_has_technology"].items == ["sf_tech", "sf_adopted", "sf_level"]
    statistics = list(version.edit_statistics.values_list("name", "by", "percentile"))
    assert statistics == [
        ("sales_per_employee_p1", "industry_group", 1.0),
        ("sales_per_employee_p99", "industry_group", 99.0),
    ]


def test_frame_and_statistic_names_are_references_of_the_expression_language() -> None:
    expression = parse("${employees} <= 5 * ${frame.employees} and ${x} < ${stat.spe_p99}")

    assert expression.references == {"employees", "frame.employees", "x", "stat.spe_p99"}
    assert expression.truth({"employees": 30, "frame.employees": 10, "x": 1, "stat.spe_p99": 2})


def test_without_edit_sheets_a_form_loads_with_no_rules() -> None:
    version = load_questionnaire(workbook(EVERY_TYPE, CHOICES))

    assert not version.edit_rules.exists() and not version.edit_statistics.exists()


def test_the_flag_defaults_to_the_first_number_the_rule_reads() -> None:
    # given
    edits = [
        {
            "name": "sales_with_staff",
            "type": "soft",
            "rule": "${adopted} = 'no' or ${sales} > ${staff}",
            "message::Korean (ko)": "확인",
            "message::English (en)": "Check",
        }
    ]

    # when
    version = load_questionnaire(workbook(EVERY_TYPE, CHOICES, sheets={"edits": edits}))

    # then
    rule = version.edit_rules.get()
    assert (rule.items, rule.flag) == (["adopted", "sales", "staff"], "sales")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            cell("edits", "C2", "${employees} >= 0.2 *"),
            "edits sheet, row 2, column “rule”: unexpected end of expression at column 22",
            id="does-not-parse",
        ),
        pytest.param(
            cell("edits", "C6", "${sales} > 0"),
            "edits sheet, row 6, column “rule”: ${sales} refers to no question in this form",
            id="unknown-question",
        ),
        pytest.param(
            cell("edits", "D2", "${frame.employes} > 0"),
            "edits sheet, row 2, column “relevant”: ${frame.employes} is not a variable of the "
            "frame; the frame has size_class, region, ksic, employees, sales_krw_mn, "
            "industry_group, region_area.",
            id="unknown-frame-variable",
        ),
        pytest.param(
            cell("edits", "C4", "${sales_krw_mn} div ${employees} <= ${stat.spe_p95}"),
            "edits sheet, row 4, column “rule”: ${stat.spe_p95} is no statistic declared on "
            "the edit_statistics sheet.",
            id="unknown-statistic",
        ),
        pytest.param(
            cell("edits", "A3", "employees_vs_register"),
            "edits sheet, row 3, column “name”: the name “employees_vs_register” is already "
            "used on row 2.",
            id="duplicate-name",
        ),
        pytest.param(
            cell("edits", "A3", "sales vs register"),
            "edits sheet, row 3, column “name”: “sales vs register” is not a valid name",
            id="bad-name",
        ),
        pytest.param(
            cell("edits", "B5", "warning"),
            "edits sheet, row 5, column “type”: the type must be hard or soft, not “warning”.",
            id="unknown-type",
        ),
        pytest.param(
            cell("edits", "G6", None),
            "edits sheet, row 6, column “message::English (en)”: a message in “en” is "
            "required: the form is answered in en, ko.",
            id="missing-message",
        ),
        pytest.param(
            cell("edits", "E7", "sf_techs"),
            "edits sheet, row 7, column “flag”: “sf_techs” is no question of this form.",
            id="unknown-flag",
        ),
        pytest.param(
            cell("edits", "C3", ""),
            "edits sheet, row 3, column “rule”: an expression is required.",
            id="missing-rule",
        ),
        pytest.param(
            cell("edits", "C1", "condition"),
            "edits sheet: unknown column “condition”; the columns are name, type, rule, "
            "relevant, flag, message.",
            id="unknown-column",
        ),
        pytest.param(
            cell("edits", "C1", None),
            "edits sheet: the column “rule” is missing.",
            id="missing-column",
        ),
        pytest.param(
            cell("edit_statistics", "B2", "${frame.sales_krw_mn} div ${employees}"),
            "edit_statistics sheet, row 2, column “expression”: ${employees} is not a variable "
            "of the frame",
            id="statistic-of-an-answer",
        ),
        pytest.param(
            cell("edit_statistics", "B3", "if(${frame.employees} > 0, 1, 0)"),
            "edit_statistics sheet, row 3, column “expression”: if() cannot be used here",
            id="statistic-not-arithmetic",
        ),
        pytest.param(
            cell("edit_statistics", "C2", "industry"),
            "edit_statistics sheet, row 2, column “by”: “industry” is not a variable of the frame",
            id="statistic-unknown-classes",
        ),
        pytest.param(
            cell("edit_statistics", "D3", 101),
            "edit_statistics sheet, row 3, column “percentile”: the percentile must be a number "
            "from 0 to 100.",
            id="percentile-out-of-range",
        ),
    ],
)
def test_a_bad_rule_or_statistic_is_refused_with_its_place_and_nothing_is_loaded(
    change: Callable[[Book], None], problem: str
) -> None:
    problems = refused(shipped_with(change))

    assert any(p.startswith(problem) for p in problems), problems


def test_a_rule_that_reads_no_question_is_refused() -> None:
    def frame_only(book: Book) -> None:
        book["edits"]["C2"] = "${frame.employees} > 0"
        book["edits"]["D2"] = None

    problems = refused(shipped_with(frame_only))

    assert problems == [
        "edits sheet, row 2, column “rule”: the rule refers to no question of the form."
    ]


def test_every_problem_is_listed_at_once() -> None:
    def two(book: Book) -> None:
        book["edits"]["B2"] = "strict"
        book["edits"]["F9"] = None

    problems = refused(shipped_with(two))

    assert [p.split(": ")[0] for p in problems] == [
        "edits sheet, row 2, column “type”",
        "edits sheet, row 9, column “message::Korean (ko)”",
    ]


def test_a_question_may_not_be_named_like_the_frames_values() -> None:
    form = [q("integer", "frame.employees", "Staff")]

    problems = refused(workbook(form))

    assert problems[0].startswith(
        "survey sheet, row 2: a question may not be called “frame.employees”"
    )


def test_a_frame_attribute_column_may_be_read_once_the_frame_has_it(survey: Survey) -> None:
    # given
    version = survey.current_questionnaire
    assert version is not None
    rules = (
        "name,type,rule,message::Korean (ko),message::English (en)\n"
        "exporter_sales,soft,${frame.exporter} != 'yes' or ${sales_krw_mn} > 0,확인,Check\n"
    ).encode()
    with pytest.raises(FormError) as caught:
        replace_edit_rules(version, rules, "rules.csv")
    assert caught.value.problems[0].startswith(
        "rules.csv, row 2, column “rule”: ${frame.exporter} is not a variable of the frame"
    )

    # when
    factories.frame_unit(survey, attributes={"exporter": "yes"})
    count = replace_edit_rules(version, rules, "rules.csv")

    # then
    assert count == 1
    assert version.edit_rules.get().source_sheet == "rules.csv"
    assert version.edit_statistics.count() == 2  # a CSV file keeps the statistics


def test_a_file_with_a_problem_leaves_the_rules_as_they_were(survey: Survey) -> None:
    # given
    version = QuestionnaireVersion.objects.get(survey=survey)
    before = list(version.edit_rules.values_list("name", "rule"))
    rules = (
        "name,type,rule,message::Korean (ko),message::English (en)\n"
        "good,soft,${employees} > 0,확인,Check\n"
        "bad,soft,${employees} >,확인,Check\n"
    ).encode()

    # when
    with pytest.raises(FormError) as caught:
        replace_edit_rules(version, rules, "rules.csv")

    # then
    assert caught.value.problems == [
        "rules.csv, row 3, column “rule”: unexpected end of expression at column 15"
    ]
    assert list(version.edit_rules.values_list("name", "rule")) == before


def test_a_cp949_csv_file_is_read(survey: Survey) -> None:
    version = QuestionnaireVersion.objects.get(survey=survey)
    rules = (
        "name,type,rule,message::Korean (ko),message::English (en)\n"
        "positive,soft,${employees} > 0,근로자 수를 확인해 주십시오.,Check\n"
    ).encode("cp949")

    replace_edit_rules(version, rules, "규칙.csv")

    assert version.edit_rules.get().message["ko"] == "근로자 수를 확인해 주십시오."


def test_a_workbook_of_one_sheet_holds_the_rules(survey: Survey) -> None:
    # given
    version = QuestionnaireVersion.objects.get(survey=survey)
    book = Workbook()
    book.active.title = "규칙"
    book.active.append(["name", "type", "rule", "message::Korean (ko)", "message::English (en)"])
    book.active.append(["positive", "hard", "${employees} > 0", "양수", "Positive"])
    data = io.BytesIO()
    book.save(data)

    # when
    replace_edit_rules(version, data.getvalue(), "rules.xlsx")

    # then
    rule = version.edit_rules.get()
    assert (rule.name, rule.source_sheet, rule.source_row) == ("positive", "규칙", 2)
