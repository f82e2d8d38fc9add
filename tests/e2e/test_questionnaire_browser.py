from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from surveys.models import Response, Survey
from tests import factories
from tests.e2e.conftest import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def check_accessibility(page: Page, seen: list[str]) -> None:
    violations = axe_violations(page)
    details = [
        (v["id"], [(n["target"], n.get("failureSummary")) for n in v["nodes"][:3]])
        for v in violations
    ]
    assert violations == [], (page.url, details)
    seen.append(page.url)


def choose(page: Page, question: str, value: str) -> None:
    page.locator(f"#{question}-{value}").check()


def fill(page: Page, question: str, text: str) -> None:
    page.locator(f"#id-{question}").fill(text)


def next_page(page: Page) -> None:
    # Wait for the next page itself: on a busy machine a check run straight after the click
    # can meet the old page mid-navigation.
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("다음|Next")).click()


def answer_profile_and_awareness(page: Page, seen: list[str], adopter: bool) -> None:
    check_accessibility(page, seen)
    fill(page, "employees", "45" if adopter else "7")
    fill(page, "sales_krw_mn", "12500.5" if adopter else "800")
    next_page(page)
    check_accessibility(page, seen)
    choose(page, "importance", "very_important" if adopter else "neutral")
    choose(page, "implementing", "yes" if adopter else "no")
    next_page(page)


def test_an_adopter_completes_the_questionnaire_resuming_after_a_reload(
    live_server: Any, page: Page, survey: Survey
) -> None:
    case, token, _code = factories.case(survey)
    seen: list[str] = []
    page.goto(f"{live_server.url}/r/{token}/")
    check_accessibility(page, seen)
    page.get_by_role("link", name=re.compile("시작|Start")).click()
    answer_profile_and_awareness(page, seen, adopter=True)
    check_accessibility(page, seen)
    choose(page, "sf_adopted", "yes")
    next_page(page)

    # sf_status: typed, autosaved, then the tab reloads before "Next"
    check_accessibility(page, seen)
    choose(page, "sf_level", "basic")
    choose(page, "sf_scope", "partial")
    page.locator("#sf_tech-erp").check()
    page.locator("#sf_tech-other").check()
    expect(page.locator("#q-sf_tech_other")).to_be_visible()
    fill(page, "sf_tech_other", "자체 개발 MES")
    # the time of the save appears once the autosave has reached the server
    expect(page.locator("#autosave-status")).to_contain_text(re.compile(r"\d{1,2}:\d{2}"))
    page.reload()
    expect(page.locator("#sf_level-basic")).to_be_checked()
    expect(page.locator("#id-sf_tech_other")).to_have_value("자체 개발 MES")
    next_page(page)

    check_accessibility(page, seen)
    choose(page, "data_collect", "yes")
    expect(page.locator("#q-data_analyze")).to_be_visible()
    choose(page, "data_analyze", "yes")
    choose(page, "main_area", "production_mgmt")
    expect(page.locator("#q-main_area_other")).to_be_hidden()
    next_page(page)
    check_accessibility(page, seen)
    choose(page, "need_advance", "yes")
    choose(page, "invest_own", "yes")
    fill(page, "invest_amount", "300")
    next_page(page)
    check_accessibility(page, seen)
    choose(page, "mfg_ai", "planned")
    next_page(page)
    check_accessibility(page, seen)
    fill(page, "contact_name", "김민수")
    fill(page, "contact_phone", "031-123-4567")
    fill(page, "contact_email", "not-an-email")
    next_page(page)

    # an invalid answer: the error summary gets focus and nothing is lost
    expect(page.locator("#error-summary")).to_be_focused()
    check_accessibility(page, seen)
    fill(page, "contact_email", "minsu.kim@example.co.kr")
    next_page(page)
    check_accessibility(page, seen)
    page.get_by_role("button", name=re.compile("제출|Submit")).click()
    expect(page.locator(".reference")).to_have_text(re.compile(r"^SMF-"))
    check_accessibility(page, seen)

    answers = Response.objects.get(case=case).answers
    assert answers == {
        "employees": 45,
        "sales_krw_mn": 12500.5,
        "importance": "very_important",
        "important_top2": 1,
        "implementing": "yes",
        "sf_adopted": "yes",
        "sf_level": "basic",
        "sf_scope": "partial",
        "sf_tech": ["erp", "other"],
        "sf_tech_other": "자체 개발 MES",
        "data_collect": "yes",
        "data_analyze": "yes",
        "main_area": "production_mgmt",
        "need_advance": "yes",
        "invest_own": "yes",
        "invest_amount": 300,
        "mfg_ai": "planned",
        "contact_name": "김민수",
        "contact_phone": "031-123-4567",
        "contact_email": "minsu.kim@example.co.kr",
    }
    assert len(set(seen)) >= 10


def test_a_non_adopter_skips_adopter_pages_with_the_keyboard_only(
    live_server: Any, page: Page, survey: Survey
) -> None:
    case, token, _code = factories.case(survey)
    seen: list[str] = []
    page.goto(f"{live_server.url}/r/{token}/")
    page.get_by_role("link", name=re.compile("시작|Start")).click()
    answer_profile_and_awareness(page, seen, adopter=False)

    # keyboard only: tab to the "No" radio, select it with space, submit with Enter
    page.locator("#sf_adopted-yes").focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#sf_adopted-no")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("/q/p/ai/$"))
    choose(page, "mfg_ai", "none")
    next_page(page)
    fill(page, "contact_name", "Lee Ji-eun")
    fill(page, "contact_phone", "02-555-0101")
    fill(page, "contact_email", "jieun@example.com")
    next_page(page)
    page.get_by_role("button", name=re.compile("제출|Submit")).click()
    expect(page.locator(".reference")).to_be_visible()

    answers = Response.objects.get(case=case).answers
    assert answers["sf_adopted"] == "no" and "sf_level" not in answers
    assert answers["mfg_ai"] == "none" and answers["employees"] == 7
