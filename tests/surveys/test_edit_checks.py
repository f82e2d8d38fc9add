"""Checking answers against the edit rules: frame values (own, derived and attribute columns),
class statistics of the frame against numpy, a page's rules in the active language, many
responses in a few queries, and a rule that raises costing only its response's check."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.utils import translation

from respondents.models import FrameUnit
from surveys import edits
from surveys.edit_sheets import replace_edit_rules
from surveys.edits import Failure, check_page, check_response, check_responses
from surveys.expressions import parse, to_number
from surveys.expressions.columns import as_numbers, evaluate_columns
from surveys.expressions.functions import FUNCTIONS, Function
from surveys.models import QuestionnaireVersion, Response, Survey
from tests import factories

pytestmark = pytest.mark.django_db
HEADER = "name,type,rule,relevant,message::Korean (ko),message::English (en)\n"


@pytest.fixture(autouse=True)
def _no_statistics_kept() -> Iterator[None]:
    edits.forget_statistics()
    yield
    edits.forget_statistics()


@pytest.fixture
def version(survey: Survey) -> QuestionnaireVersion:
    return QuestionnaireVersion.objects.get(survey=survey)


def respond(survey: Survey, answers: dict[str, Any], **unit: Any) -> Response:
    case = factories.case(survey, credentials=False, **unit)[0]
    return Response.objects.create(
        case=case, questionnaire_id=survey.questionnaire_id, answers=answers
    )


def names(failures: list[Failure]) -> list[str]:
    return [failure.rule for failure in failures]


def use_rules(version: QuestionnaireVersion, *rows: str) -> None:
    replace_edit_rules(version, (HEADER + "\n".join(rows) + "\n").encode(), "rules.csv")


def test_a_headcount_far_from_the_registers_fails_the_soft_rule(
    survey: Survey, version: QuestionnaireVersion
) -> None:
    # given
    far = respond(survey, {"employees": 350, "sales_krw_mn": 7000}, employees=20)
    near = respond(survey, {"employees": 25, "sales_krw_mn": 500}, employees=20)

    # when
    failures = check_responses(version)

    # then
    assert names(failures[far.pk]) == ["employees_vs_register"]
    failure = failures[far.pk][0]
    assert failure.severity == "soft" and failure.flag == "employees" and failure.checked
    assert failure.values == {"employees": 350, "frame.employees": 20}
    assert failures[near.pk] == []


def test_the_register_is_read_as_stored_and_blank_sales_leave_their_rule_aside(
    survey: Survey, version: QuestionnaireVersion
) -> None:
    # given: sales recorded in won instead of KRW million
    won = respond(
        survey, {"employees": 20, "sales_krw_mn": 5_000_000_000}, sales_krw_mn=Decimal("5000.5")
    )
    unknown = respond(survey, {"employees": 20, "sales_krw_mn": 5_000_000_000}, sales_krw_mn=None)

    # when
    failures = check_responses(version)

    # then
    sales = [f for f in failures[won.pk] if f.rule == "sales_vs_register"]
    assert sales[0].values == {"sales_krw_mn": 5_000_000_000, "frame.sales_krw_mn": 5000.5}
    assert "sales_vs_register" not in names(failures[unknown.pk])


def test_derived_frame_variables_follow_the_frames_own_column_first(
    survey: Survey, version: QuestionnaireVersion
) -> None:
    # given
    use_rules(
        version,
        "capital_small,soft,${employees} < 1000 or ${frame.region_area} != 'capital',,확인,Check",
        "machinery_small,soft,${employees} < 1000 or ${frame.industry_group} != 'machinery',,"
        "확인,Check",
    )
    derived = respond(survey, {"employees": 2000}, ksic="29199", region="Gyeonggi")
    given = respond(
        survey,
        {"employees": 2000},
        ksic="29199",
        region="Busan",
        attributes={"industry_group": "metal"},
    )

    # when
    failures = check_responses(version)

    # then
    assert names(failures[derived.pk]) == ["capital_small", "machinery_small"]
    assert failures[derived.pk][0].values["frame.region_area"] == "capital"
    assert failures[given.pk] == []


def frame_of_three_industries(survey: Survey, rng: np.random.Generator) -> list[FrameUnit]:
    """120 firms in three industry groups (one firm in ten says its own group), with no
    sales, zero sales and zero employees among them."""
    units = []
    for k in range(120):
        employees = int(rng.integers(0, 60))
        sales = None if k % 17 == 0 else Decimal(str(round(float(rng.lognormal(6, 1.2)), 1)))
        if k % 23 == 0:
            sales = Decimal(0)
        units.append(
            FrameUnit(
                survey=survey,
                business_id=factories.business_id(5_000_000 + k),
                name=f"firm {k}",
                ksic=("10110", "24111", "29199")[k % 3],
                size_class="small",
                region="Seoul",
                employees=employees,
                sales_krw_mn=sales,
                attributes={"industry_group": "chemical"} if k % 10 == 9 else {},
                source_row=k + 2,
            )
        )
    return FrameUnit.objects.bulk_create(units)


def expected_percentiles(units: list[FrameUnit], percentile: float) -> dict[str, float]:
    groups = {"10": "food_beverage", "24": "metal", "29": "machinery"}
    ratios: dict[str, list[float]] = {}
    for unit in units:
        group = unit.attributes.get("industry_group") or groups[unit.ksic[:2]]
        if unit.sales_krw_mn is not None and unit.employees > 0:
            ratios.setdefault(group, []).append(float(unit.sales_krw_mn) / unit.employees)
    return {group: float(np.percentile(values, percentile)) for group, values in ratios.items()}


def test_class_statistics_are_numpys_percentiles_of_each_industry_group(
    survey: Survey, version: QuestionnaireVersion
) -> None:
    # given
    units = frame_of_three_industries(survey, np.random.default_rng(7))
    columns = FrameUnit.objects.filter(survey=survey).variable_columns(
        ["sales_krw_mn", "employees", "industry_group"]
    )
    statistics = [edits.Statistic.of(s) for s in version.edit_statistics.all()]

    # when
    values = edits.class_statistics(statistics, columns)

    # then
    assert values["sales_per_employee_p1"] == expected_percentiles(units, 1)
    assert values["sales_per_employee_p99"] == expected_percentiles(units, 99)
    assert set(values["sales_per_employee_p1"]) == {
        "food_beverage",
        "metal",
        "machinery",
        "chemical",
    }


def test_a_response_is_compared_with_its_own_industry_groups_statistics(
    survey: Survey, version: QuestionnaireVersion
) -> None:
    # given
    units = frame_of_three_industries(survey, np.random.default_rng(11))
    p1, p99 = expected_percentiles(units, 1), expected_percentiles(units, 99)
    metal = respond(survey, {"employees": 10, "sales_krw_mn": 10**7}, ksic="24111", employees=10)
    textile = respond(survey, {"employees": 10, "sales_krw_mn": 10**7}, ksic="13101", employees=10)

    # when
    failures = check_responses(version)

    # then
    ratio = next(f for f in failures[metal.pk] if f.rule == "sales_per_employee")
    assert ratio.values == {
        "sales_krw_mn": 10**7,
        "employees": 10,
        "stat.sales_per_employee_p1": p1["metal"],
        "stat.sales_per_employee_p99": p99["metal"],
    }
    # No firm of the frame makes textiles: no statistic, so the rule does not apply.
    assert "sales_per_employee" not in names(failures[textile.pk])


@pytest.mark.parametrize(
    "text",
    [
        "${frame.a} div ${frame.b}",
        "-${frame.a} mod ${frame.b} + 2 * ${frame.a} - 1",
        "abs(${frame.a} - ${frame.b}) div 3",
        "min(${frame.a}, ${frame.b}, 7) * max(${frame.b}, '4')",
        "number(${frame.a}) div -${frame.b} mod 5",
    ],
)
def test_column_evaluation_gives_what_the_interpreter_gives(text: str) -> None:
    # given
    rng = np.random.default_rng(3)
    pool: list[Any] = [0, -0.0, 3, -7, 2.5, None, "12", "x", "", 1e308, float("inf"), 10**20]
    a = [pool[i] for i in rng.integers(0, len(pool), 400)]
    b = [pool[i] for i in rng.integers(0, len(pool), 400)]
    expression = parse(text)

    # when
    columns = evaluate_columns(
        expression, {"frame.a": as_numbers(a), "frame.b": as_numbers(b)}, 400
    )

    # then
    one_by_one = [
        to_number(expression.evaluate({"frame.a": x, "frame.b": y}))
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_array_equal(columns, np.asarray(one_by_one))


def test_many_responses_are_checked_in_five_queries(
    survey: Survey, version: QuestionnaireVersion, django_assert_num_queries: Any
) -> None:
    # given
    frame_of_three_industries(survey, np.random.default_rng(5))
    for employees in (3, 30, 300):
        respond(survey, {"employees": employees, "sales_krw_mn": 100}, employees=30)

    # when: the responses, the rules, the statistics declared, the firms, the frame
    with django_assert_num_queries(5):
        failures = check_responses(version, Response.objects.filter(questionnaire=version))

    # then
    assert [names(f) for f in failures.values()] == [
        ["employees_vs_register"],
        [],
        ["employees_vs_register"],
    ]


def test_a_rule_that_raises_flags_its_response_and_the_run_goes_on(
    survey: Survey,
    version: QuestionnaireVersion,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: abs() broken for one value, as a bug of the interpreter would be
    def fragile(args: Any, ctx: Any) -> float:
        value = to_number(args[0].eval(ctx))
        if value == 13:
            raise ZeroDivisionError("engineered")
        return abs(value)

    monkeypatch.setitem(FUNCTIONS, "abs", Function(1, 1, fragile))
    use_rules(
        version,
        "small,soft,abs(${employees}) < 1000,,확인,Check",
        "positive,hard,${employees} > 0,,양수,Positive",
    )
    unlucky = respond(survey, {"employees": 13})
    large = respond(survey, {"employees": 5000})
    also_unlucky = respond(survey, {"employees": 13})

    # when
    with caplog.at_level(logging.WARNING, logger="surveys.edits"):
        failures = check_responses(version)

    # then
    failure = failures[unlucky.pk][0]
    assert names(failures[unlucky.pk]) == ["small"] and not failure.checked
    assert failure.error == "ZeroDivisionError: engineered"
    assert failure.text("en") == "This answer could not be checked against rule “small”."
    assert names(failures[large.pk]) == ["small"] and failures[large.pk][0].checked
    assert names(failures[also_unlucky.pk]) == ["small"]
    assert len(caplog.records) == 1  # once per rule and run, not per response


def test_a_page_gets_its_failing_rules_with_their_messages_in_the_active_language(
    survey: Survey,
) -> None:
    # given
    response = respond(survey, {}, employees=20)
    values = {"employees": 350, "sales_krw_mn": 0, "sf_adopted": "yes", "sf_level": "basic"}

    # when
    with translation.override("ko"):
        profile = check_page(response, "profile", values)
        korean = [failure.text() for failure in profile.soft]
    with translation.override("en"):
        english = [failure.text() for failure in check_page(response, "profile", values).soft]
    status = check_page(response, "sf_status", values)

    # then
    assert names(profile.soft) == ["employees_vs_register", "sales_positive"]
    assert profile.hard == [] and profile.unchecked == []
    assert korean[0].startswith("상시 근로자 수가 조사 대상 명부에 등록된 근로자 수와")
    assert english[1] == (
        "Sales are entered as 0. Please confirm that your company had no sales at all in 2023."
    )
    assert names(status.hard) == ["adopter_has_technology"] and status.soft == []
    assert not check_page(response, "contact", values)


def test_one_response_is_checked_as_stored(survey: Survey) -> None:
    response = respond(
        survey,
        {"sf_adopted": "yes", "data_collect": "no", "data_analyze": "yes", "mfg_ai": "adopted"},
    )

    failures = check_response(response)

    assert names(failures) == ["analysis_needs_collection", "ai_needs_data"]
    assert [f.severity for f in failures] == ["hard", "soft"]


def test_a_page_reads_the_statistics_the_process_keeps(
    survey: Survey, django_assert_num_queries: Any
) -> None:
    # given
    frame_of_three_industries(survey, np.random.default_rng(2))
    response = respond(survey, {}, ksic="24111", employees=10)
    values = {"employees": 10, "sales_krw_mn": 10**7}
    first = check_page(response, "profile", values)

    # when: only the firm's frame values; the rules, the statistics declared and the frame's
    # statistics are kept by the process
    with django_assert_num_queries(1):
        again = check_page(response, "profile", values)

    # then
    assert names(again.soft) == names(first.soft) == ["sales_per_employee"]
    assert again.soft[0].values == first.soft[0].values
