"""The check after submission: every response against its version's edit rules, failures
scored by how much they could move the weighted estimates, the small ones passed, the rest
queued; decisions kept while the values stay the same."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from analytics.editing import check_survey
from analytics.models import EditCheck, EditFlag
from respondents.models import Case
from surveys.models import Response, Survey, ValueEdit
from tests import factories

pytestmark = pytest.mark.django_db
CLEAN = {
    "employees": 20,
    "sales_krw_mn": 3000.0,
    "importance": "neutral",
    "implementing": "no",
    "sf_adopted": "no",
    "mfg_ai": "none",
}


def respond(survey: Survey, **answers: Any) -> Response:
    case = factories.case(survey, employees=20, sales_krw_mn=3000)[0]
    return Response.objects.create(
        case=case,
        questionnaire_id=survey.questionnaire_id,
        answers={**CLEAN, **answers},
        status="submitted",
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
    )


def weights(survey: Survey, weight: float = 50.0) -> dict[int, float]:
    return dict.fromkeys(Case.objects.filter(survey=survey).values_list("pk", flat=True), weight)


@pytest.fixture
def firms(survey: Survey) -> dict[str, Response]:
    for _ in range(20):
        respond(survey)
    return {
        "tenfold": respond(survey, employees=200),  # 10 x the register: a unit slip
        "slightly": respond(survey, employees=3),  # 0.15 x: fails, but moves little
        "contradiction": respond(
            survey,
            sf_adopted="yes",
            implementing="yes",
            sf_level="basic",
            sf_scope="partial",
            sf_tech=["erp"],
            data_collect="no",
            data_analyze="yes",
            main_area="finance",
            need_advance="no",
            invest_own="no",
        ),
    }


def flag(response: Response, rule: str) -> EditFlag:
    return EditFlag.objects.get(response=response, rule=rule)


def test_failures_are_scored_and_the_small_ones_pass(
    survey: Survey, firms: dict[str, Response]
) -> None:
    check = check_survey(survey, weights=weights(survey), threshold=0.05)
    big = flag(firms["tenfold"], "employees_vs_register")
    small = flag(firms["slightly"], "employees_vs_register")
    assert big.status == EditFlag.Status.OPEN
    assert small.status == EditFlag.Status.PASSED
    # w·|y − ŷ| / T̂ with ŷ the clean median (20) and T̂ = Σ w·y over the clean responses
    total = 50.0 * 20 * 20
    assert big.score == pytest.approx(50.0 * 180 / total)
    assert small.score == pytest.approx(50.0 * 17 / total)
    assert big.values["employees"] == 200 and big.values["frame.employees"] == 20
    assert check.responses == 23
    assert check.failed == 3
    # "tenfold" also fails sales per employee, whose blamed sales are as expected: that
    # failure passes, but the response is reviewed for its employees
    sales = flag(firms["tenfold"], "sales_per_employee")
    assert sales.status == EditFlag.Status.PASSED and sales.score == 0.0
    assert check.passed == 1
    # the firm passed untouched carries its 3 employees of the weighted total
    everyone = 50.0 * (20 * 20 + 200 + 3 + 20)
    assert check.passed_share["employees"] == pytest.approx(50.0 * 3 / everyone)
    assert check.passed_share["sales_krw_mn"] == pytest.approx(1 / 23)


def test_a_hard_rule_is_always_reviewed(survey: Survey, firms: dict[str, Response]) -> None:
    check_survey(survey, weights=weights(survey, 0.001), threshold=0.5)
    hard = flag(firms["contradiction"], "analysis_needs_collection")
    assert hard.severity == "hard"
    assert hard.status == EditFlag.Status.OPEN
    assert flag(firms["tenfold"], "employees_vs_register").status == EditFlag.Status.PASSED


def test_without_weights_every_failure_is_reviewed(
    survey: Survey, firms: dict[str, Response]
) -> None:
    check_survey(survey, weights=None, threshold=0.05)
    statuses = set(EditFlag.objects.values_list("status", flat=True))
    assert statuses == {EditFlag.Status.OPEN}


def test_a_decision_stands_until_the_values_change(
    survey: Survey, firms: dict[str, Response]
) -> None:
    check_survey(survey, weights=weights(survey), threshold=0.05)
    tenfold = firms["tenfold"]
    EditFlag.objects.filter(response=tenfold).update(status=EditFlag.Status.ACCEPTED)
    check_survey(survey, weights=weights(survey), threshold=0.05)
    assert flag(tenfold, "employees_vs_register").status == EditFlag.Status.ACCEPTED
    tenfold.edit("employees", 150, kind=ValueEdit.Kind.CORRECTED, reason="asked")
    check_survey(survey, weights=weights(survey), threshold=0.05)
    reopened = flag(tenfold, "employees_vs_register")
    assert reopened.status == EditFlag.Status.OPEN
    assert reopened.values["employees"] == 150


def test_a_corrected_value_that_passes_keeps_its_flag_as_history(
    survey: Survey, firms: dict[str, Response]
) -> None:
    check_survey(survey, weights=weights(survey), threshold=0.05)
    tenfold = firms["tenfold"]
    EditFlag.objects.filter(response=tenfold).update(status=EditFlag.Status.CORRECTED)
    tenfold.edit("employees", 20, kind=ValueEdit.Kind.CORRECTED, reason="unit slip")
    check_survey(survey, weights=weights(survey), threshold=0.05)
    assert flag(tenfold, "employees_vs_register").status == EditFlag.Status.CORRECTED
    # an undecided flag whose failure is gone is simply removed
    slightly = firms["slightly"]
    slightly.edit("employees", 19, kind=ValueEdit.Kind.CORRECTED, reason="typo")
    check_survey(survey, weights=weights(survey), threshold=0.05)
    assert not EditFlag.objects.filter(response=slightly, rule="employees_vs_register").exists()


def test_the_firms_confirmation_is_seen(survey: Survey, firms: dict[str, Response]) -> None:
    check_survey(survey, weights=weights(survey), threshold=0.05)
    tenfold = firms["tenfold"]
    seen = flag(tenfold, "employees_vs_register").values
    Response.objects.filter(pk=tenfold.pk).update(
        confirmations={"employees_vs_register": {"values": seen, "at": "2024-05-01"}}
    )
    check_survey(survey, weights=weights(survey), threshold=0.05)
    assert flag(tenfold, "employees_vs_register").status == EditFlag.Status.CONFIRMED


def test_each_check_is_recorded(survey: Survey, firms: dict[str, Response]) -> None:
    check_survey(survey, weights=weights(survey), threshold=0.05)
    check_survey(survey, weights=weights(survey), threshold=0.05)
    assert EditCheck.objects.filter(survey=survey).count() == 2
    assert EditFlag.objects.filter(response__case__survey=survey).count() == 5
