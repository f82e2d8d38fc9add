"""A new questionnaire version loaded mid-fieldwork: firms in progress keep every answer and
finish on the new version; submitted responses stay on the version they were answered in."""

from __future__ import annotations

import re
from html import unescape
from io import BytesIO
from typing import Any

import pytest
from django.test import Client
from openpyxl import load_workbook

from analytics import pipeline
from analytics.models import Estimate
from respondents.models import Case
from surveys.models import QuestionnaireVersion, Response, Survey
from surveys.xlsform import load_questionnaire
from tests import factories
from tests.factories import SHIPPED_FORM
from tests.surveys.answering import ADOPTER, post_page
from tests.xlsforms import drop_edit_rules

pytestmark = pytest.mark.django_db

REMOVED = "implementing"  # on the second page; no question's rule refers to it
ADDED = {
    "type": "integer",
    "name": "ai_projects",
    "label::Korean (ko)": "귀사가 추진 중인 제조 AI 과제는 몇 개입니까?",
    "label::English (en)": "How many manufacturing AI projects is your company running?",
    "required": "yes",
    "constraint": ". >= 0 and . <= 1000",
}
ADDED_AFTER = "mfg_ai"  # the "ai" page, the seventh of eight
EARLY_PAGES = ("profile", "awareness")


def version_2024_2() -> bytes:
    """The shipped form as 2024.2: one question removed, one added on a later page."""
    book = load_workbook(SHIPPED_FORM)
    survey = book["survey"]
    header = [cell.value for cell in survey[1]]

    def row_of(name: str) -> int:
        column = header.index("name") + 1
        cells = survey.iter_rows(min_col=column, max_col=column, values_only=True)
        return [value for (value,) in cells].index(name) + 1

    survey.delete_rows(row_of(REMOVED))
    drop_edit_rules(book, REMOVED)
    position = row_of(ADDED_AFTER) + 1
    survey.insert_rows(position)
    for column, value in ADDED.items():
        survey.cell(row=position, column=header.index(column) + 1, value=value)
    settings = book["settings"]
    settings_header = [cell.value for cell in settings[1]]
    settings.cell(row=2, column=settings_header.index("version") + 1, value="2024.2")
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def load_2024_2() -> QuestionnaireVersion:
    return load_questionnaire(version_2024_2(), source_name="smart_manufacturing_2024.2.xlsx")


def sign_in(survey: Survey) -> tuple[Case, Client]:
    case, token, _code = factories.case(survey)
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.get(f"/r/{token}/").status_code == 302
    assert client.get("/q/").status_code == 200
    return case, client


def answer(client: Client, case: Case, pages: dict[str, dict[str, Any]]) -> None:
    for page, data in pages.items():
        result = post_page(client, page, data)
        assert result.status_code == 302, (page, result.content.decode()[-2000:])


def later_pages(**extra: Any) -> dict[str, dict[str, Any]]:
    pages = {page: data for page, data in ADOPTER.items() if page not in EARLY_PAGES}
    pages["ai"] = {**pages["ai"], **extra}
    return pages


def test_a_firm_in_progress_keeps_its_answers_and_finishes_on_the_new_version() -> None:
    # given: a firm that answered the first two pages under 2024.1
    first = factories.shipped_questionnaire()
    case, client = sign_in(first.survey)
    answer(client, case, {page: ADOPTER[page] for page in EARLY_PAGES})

    # when: 2024.2 is loaded and the firm comes back
    second = load_2024_2()
    welcome = client.get("/q/").content.decode()

    # then: it continues on 2024.2 with every answer kept, the removed question's too
    response = Response.objects.get(case=case)
    assert response.questionnaire == second
    kept = {name: response.answers.get(name) for name in ("employees", "importance", REMOVED)}
    assert kept == {"employees": 45, "importance": "very_important", REMOVED: "yes"}
    assert 'href="/q/p/adoption/"' in welcome
    awareness = client.get("/q/p/awareness/").content.decode()
    assert f'name="{REMOVED}"' not in awareness
    assert 'value="very_important" checked' in awareness

    # when: it answers the later pages, first leaving the new question blank
    answer(client, case, {p: ADOPTER[p] for p in ("adoption", "sf_status", "sf_data", "sf_future")})
    ai_page = client.get("/q/p/ai/").content.decode()
    blank = post_page(client, "ai", ADOPTER["ai"])
    answer(
        client, case, {"ai": {**ADOPTER["ai"], "ai_projects": "2"}, "contact": ADOPTER["contact"]}
    )
    submitted = client.post("/q/review/")

    # then: the new question was asked, and the firm submitted under 2024.2 with everything
    assert 'name="ai_projects"' in ai_page
    assert blank.status_code == 200 and 'id="error-summary"' in blank.content.decode()
    assert submitted.status_code == 302 and submitted["Location"] == "/q/receipt/"
    response.refresh_from_db()
    assert response.is_submitted and response.questionnaire == second
    assert response.answers["ai_projects"] == 2 and response.answers[REMOVED] == "yes"
    case.refresh_from_db()
    assert case.disposition == "1.1"


def test_a_response_submitted_under_the_old_version_keeps_it() -> None:
    # given: a firm that submitted under 2024.1
    first = factories.shipped_questionnaire()
    case, client = sign_in(first.survey)
    answer(client, case, ADOPTER)
    assert client.post("/q/review/").status_code == 302

    # when: 2024.2 is loaded and the firm opens its link again
    load_2024_2()
    again = client.get("/q/")
    receipt = client.get("/q/receipt/").content.decode()

    # then: its response and receipt stay on 2024.1, the removed question included
    assert again["Location"] == "/q/receipt/"
    response = Response.objects.get(case=case)
    assert response.is_submitted and response.questionnaire == first
    assert "Is your company currently implementing" in receipt


def test_estimates_count_answers_given_under_either_version() -> None:
    # given: one firm submitted under 2024.1; another started under 2024.1 and finished
    # under 2024.2
    first = factories.shipped_questionnaire()
    early, early_client = sign_in(first.survey)
    answer(early_client, early, ADOPTER)
    early_client.post("/q/review/")
    late, late_client = sign_in(first.survey)
    answer(late_client, late, {page: ADOPTER[page] for page in EARLY_PAGES})
    second = load_2024_2()
    late_client.get("/q/")
    answer(late_client, late, later_pages(ai_projects="2"))
    late_client.post("/q/review/")

    # when
    run = pipeline.recompute(first.survey, trigger="test")

    # then: the run reads both versions; the removed question counts both firms' answers
    assert run is not None and run.snapshot["questionnaire_versions"] == [first.pk, second.pk]
    overall = Estimate.objects.filter(run=run, domain="all", statistic__in=["proportion", "mean"])
    assert overall.get(item=REMOVED, option="yes").n == 2
    assert overall.get(item="ai_projects").n == 1


def test_a_page_open_while_the_new_version_loads_is_saved_when_the_firm_presses_next() -> None:
    # given: a firm with the second page open, shown under 2024.1
    first = factories.shipped_questionnaire()
    case, client = sign_in(first.survey)
    answer(client, case, {"profile": ADOPTER["profile"]})
    page = client.get("/q/p/awareness/").content.decode()
    found = re.search(r'name="shown" value="([^"]*)"', page)
    assert found is not None
    hidden = {"shown": unescape(found.group(1))}

    # when: 2024.2 is loaded, then the firm presses "Next"
    load_2024_2()
    result = client.post("/q/p/awareness/", {**ADOPTER["awareness"], **hidden, "action": "next"})

    # then: its answers are saved and it moves on
    assert result.status_code == 302 and result["Location"] == "/q/p/adoption/"
    assert Response.objects.get(case=case).answers["importance"] == "very_important"
