from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from analytics.models import RecomputeRequest
from respondents.models import DispositionEvent
from surveys.models import Response, Survey
from tests import factories
from tests.factories import Respondent
from tests.surveys.answering import ADOPTER, NON_ADOPTER, answer_all, post_page

pytestmark = pytest.mark.django_db


def test_the_review_page_lists_every_answer_with_a_link_to_change_it(
    respondent: Respondent,
) -> None:
    answer_all(respondent.client, ADOPTER)

    page = respondent.client.get("/q/review/").content.decode()

    assert "ERP" in page and "12,500.5" in page and 'href="/q/p/sf_status/"' in page
    assert 'id="error-summary"' not in page


def test_submitting_gives_a_receipt_and_records_a_complete(respondent: Respondent) -> None:
    answer_all(respondent.client, ADOPTER)

    result = respondent.client.post("/q/review/")

    assert result.status_code == 302 and result["Location"] == "/q/receipt/"
    response = Response.objects.get(case=respondent.case)
    assert response.is_submitted and (response.reference or "").startswith("SMF-")
    receipt = respondent.client.get("/q/receipt/").content.decode()
    assert response.reference in receipt and "minsu.kim@example.co.kr" in receipt
    respondent.case.refresh_from_db()
    assert respondent.case.disposition == "1.1"


def test_the_non_adopter_path_submits_as_complete(respondent: Respondent) -> None:
    answer_all(respondent.client, NON_ADOPTER)

    respondent.client.post("/q/review/")

    respondent.case.refresh_from_db()
    assert respondent.case.disposition == "1.1"
    answers = Response.objects.get(case=respondent.case).answers
    assert answers["sf_adopted"] == "no" and "sf_level" not in answers


def test_submitting_with_missing_required_answers_is_refused(respondent: Respondent) -> None:
    answer_all(respondent.client, {k: ADOPTER[k] for k in ("profile", "awareness")})

    result = respondent.client.post("/q/review/")

    assert result.status_code == 200
    assert 'id="error-summary"' in result.content.decode()
    assert not Response.objects.get(case=respondent.case).is_submitted


def test_a_double_submit_produces_one_submission(respondent: Respondent) -> None:
    answer_all(respondent.client, ADOPTER)

    first = respondent.client.post("/q/review/")
    second = respondent.client.post("/q/review/")

    assert first["Location"] == second["Location"] == "/q/receipt/"
    assert Response.objects.filter(case=respondent.case).count() == 1
    codes = DispositionEvent.objects.filter(case=respondent.case, code="1.1")
    assert codes.count() == 1


def test_after_submission_the_link_shows_the_receipt_and_pages_are_closed(
    respondent: Respondent,
) -> None:
    answer_all(respondent.client, ADOPTER)
    respondent.client.post("/q/review/")
    before = Response.objects.get(case=respondent.case).answers

    again = Client()
    again.get(f"/r/{respondent.token}/")
    welcome = again.get("/q/")
    change = post_page(again, "profile", {"employees": "1", "sales_krw_mn": "1"})

    assert welcome["Location"] == "/q/receipt/"
    assert change["Location"] == "/q/receipt/"
    assert Response.objects.get(case=respondent.case).answers == before


@pytest.mark.django_db(transaction=True)
def test_simultaneous_submits_from_two_tabs_produce_one_submission(survey: Survey) -> None:
    case, token, _code = factories.case(survey)
    tabs = [Client(), Client()]
    for tab in tabs:
        tab.get(f"/r/{token}/")
    answer_all(tabs[0], ADOPTER)
    barrier = threading.Barrier(len(tabs))
    results: list[int] = []

    def submit(tab: Client) -> None:
        barrier.wait()
        try:
            results.append(tab.post("/q/review/").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(tab,)) for tab in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [302, 302]
    assert Response.objects.filter(case=case, status="submitted").count() == 1
    assert DispositionEvent.objects.filter(case=case, code="1.1").count() == 1


def test_a_submission_asks_for_a_recompute_even_when_the_disposition_stays_complete(
    respondent: Respondent,
) -> None:
    # given: the call centre already recorded the firm as complete
    respondent.case.record_disposition("1.1", source="manager", reason="by phone")
    RecomputeRequest.objects.all().delete()
    answer_all(respondent.client, NON_ADOPTER)

    # when
    respondent.client.post("/q/review/")

    # then: the answers change the estimates, so the survey's estimates are stale
    assert Response.objects.get(case=respondent.case).is_submitted
    assert RecomputeRequest.objects.filter(survey_id=respondent.case.survey_id).exists()
