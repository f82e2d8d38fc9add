"""A soft edit rule at the firm's end: an unusual answer is questioned beside its field; the
firm corrects it or confirms it, and the confirmation is kept for the reviewers."""

from __future__ import annotations

import pytest

from analytics.editing import check_survey
from analytics.models import EditFlag
from surveys.models import Response
from tests.factories import Respondent
from tests.surveys.answering import post_page

pytestmark = pytest.mark.django_db
RULE = "employees_vs_register"  # employees within 0.2-5 x the register's (20 here)


def stored(respondent: Respondent) -> Response:
    return Response.objects.get(case=respondent.case)


def test_an_unusual_answer_is_questioned_and_not_taken(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    page = post_page(respondent.client, "profile", {"employees": "200", "sales_krw_mn": "900"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "query-summary" in text
    assert f'name="confirm" value="{RULE}"' in text
    response = stored(respondent)
    assert "employees" not in response.answers
    assert response.drafts["employees"] == "200"  # what was typed is kept


def test_a_confirmed_answer_is_taken_with_its_confirmation(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    post_page(respondent.client, "profile", {"employees": "200", "sales_krw_mn": "900"})
    page = post_page(
        respondent.client, "profile", {"employees": "200", "sales_krw_mn": "900", "confirm": RULE}
    )
    assert page.status_code == 302
    response = stored(respondent)
    assert response.answers["employees"] == 200
    confirmed = response.confirmations[RULE]
    assert confirmed["values"]["employees"] == 200
    assert confirmed["values"]["frame.employees"] == 20
    # the same values are not questioned again
    again = post_page(respondent.client, "profile", {"employees": "200", "sales_krw_mn": "900"})
    assert again.status_code == 302


def test_a_new_unusual_value_is_questioned_again(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    data = {"employees": "200", "sales_krw_mn": "900"}
    post_page(respondent.client, "profile", {**data, "confirm": RULE})
    page = post_page(respondent.client, "profile", {**data, "employees": "300"})
    assert page.status_code == 200
    assert stored(respondent).answers["employees"] == 200


def test_a_plausible_answer_goes_straight_through(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    page = post_page(respondent.client, "profile", {"employees": "25", "sales_krw_mn": "900"})
    assert page.status_code == 302
    assert stored(respondent).confirmations == {}


def test_the_reviewers_see_the_confirmation(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    data = {"employees": "200", "sales_krw_mn": "900"}
    post_page(respondent.client, "profile", {**data, "confirm": RULE})
    response = stored(respondent)
    Response.objects.filter(pk=response.pk).update(
        status="submitted", submitted_at=response.updated_at, reference="SMF-TEST1-00001"
    )
    weights = {respondent.case.pk: 1000.0}
    check_survey(respondent.case.survey, weights=weights, threshold=0.0001)
    flag = EditFlag.objects.get(response=response, rule=RULE)
    assert flag.status == EditFlag.Status.CONFIRMED


def test_the_question_reads_in_english(respondent: Respondent) -> None:
    respondent.client.cookies["django_language"] = "en"
    respondent.client.get("/q/")
    page = post_page(respondent.client, "profile", {"employees": "200", "sales_krw_mn": "900"})
    assert "Please check this answer." in page.content.decode()
