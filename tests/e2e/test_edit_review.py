"""Editing in headless Chromium, end to end: a reviewer opens the queue, corrects one value
and asks the firm about two others; the firm opens the emailed link, confirms one answer
and corrects the other. Each page passes axe-core and fits 1280 and 390 pixels; set
SCREENSHOTS=/some/dir to keep a screenshot of each (in Korean, as the pages open)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from analytics.models import EditCheck, EditFlag
from config.roles import FIELDWORK_MANAGERS
from surveys.models import Response, Survey, ValueEdit
from tests import factories
from tests.conftest import staff_user
from tests.e2e.conftest import axe_violations
from tests.e2e.test_staff_pages import WIDER_THAN_THE_SCREEN
from tests.services import MailServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 390)
LINK = re.compile(r"http://[^\s]+(/check/[0-9a-f]{32}/)")


def look(browser: Browser, url: str, name: str, session: str = "", language: str = "ko") -> None:
    """The page at each width: accessible, no wider than the screen, kept as a screenshot."""
    for width in WIDTHS:
        context = browser.new_context(
            viewport={"width": width, "height": 900}, locale="ko-KR", bypass_csp=True
        )
        context.add_cookies([{"name": "django_language", "value": language, "url": url}])
        if session:
            context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
        page = context.new_page()
        page.goto(url)
        if session:  # a staff page: its menu and wide tables scroll inside their own box
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (name, width, page.evaluate(WIDER_THAN_THE_SCREEN))
        else:
            assert page.evaluate(WIDER_THAN_THE_SCREEN) == [], (name, width)
        violations = [
            (v["id"], [n["target"] for n in v["nodes"][:3]]) for v in axe_violations(page)
        ]
        assert violations == [], (name, width, violations)
        if os.environ.get("SCREENSHOTS"):
            folder = Path(os.environ["SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}-{language}-{width}.png"), full_page=True)
        context.close()


def flagged_response(survey: Survey) -> Response:
    response = factories.submitted_response(survey, name="(주)한빛정밀", email="ceo@hanbit.example")
    factories.edit_flag(response, rule="employees_vs_register", score=0.42)
    factories.edit_flag(response, rule="sales_per_employee", item="sales_krw_mn", score=0.31)
    factories.edit_flag(response, rule="invest_within_sales", item="invest_amount", score=0.12)
    for number in range(3):
        other = factories.submitted_response(survey, name=f"(주)기타제조{number}")
        factories.edit_flag(other, score=0.01 * number)
    EditCheck.objects.create(
        survey=survey,
        threshold=0.05,
        responses=2268,
        failed=6,
        passed=2,
        passed_share={"employees": 0.0031, "sales_krw_mn": 0.0123},
    )
    return response


def signed_in(browser: Browser, session: str, url: str) -> Page:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="ko-KR", bypass_csp=True
    )
    if session:
        context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def test_a_reviewer_corrects_and_asks_and_the_firm_answers(
    live_server: Any, browser: Browser, survey: Survey, smtp_server: MailServer
) -> None:
    # given
    response = flagged_response(survey)
    reviewer = Client()
    reviewer.force_login(staff_user(FIELDWORK_MANAGERS, name="검토자"))
    session = reviewer.cookies["sessionid"].value
    queue = f"{live_server.url}/manage/{survey.slug}/editing/"
    look(browser, queue, "queue", session)
    review_page = f"{live_server.url}/manage/{survey.slug}/editing/cases/{response.case_id}/"
    look(browser, review_page, "review", session)

    # when: the reviewer opens the firm from the queue and corrects its headcount
    staff = signed_in(browser, session, live_server.url)
    staff.goto(queue)
    rows = staff.locator("#queue tbody tr")
    expect(rows.first).to_contain_text(response.case.business_id)
    rows.first.get_by_role("link").click()
    staff.wait_for_url(re.compile(r"/editing/cases/\d+/$"))
    employees = EditFlag.objects.get(response=response, rule="employees_vs_register")
    card = staff.locator(f"#flag-{employees.pk}")
    card.locator("summary", has_text="값 수정").click()
    card.get_by_label("올바른 값").fill("54")
    card.get_by_label("출처 또는 사유").fill("2024-05-02 회계 담당자와 통화")
    with staff.expect_navigation():
        card.get_by_role("button", name="수정 저장").click()
    expect(staff.locator(".alert-success")).to_contain_text("수정했습니다")

    # and asks the firm about its sales and its investment
    for rule in ("sales_per_employee", "invest_within_sales"):
        flag = EditFlag.objects.get(response=response, rule=rule)
        staff.locator(f'input[name="query-flags"][value="{flag.pk}"]').check()
    staff.get_by_label("기업에 전할 말 (선택)").fill("단위(백만 원)를 확인해 주십시오.")
    with staff.expect_navigation():
        staff.get_by_role("button", name="확인 요청 보내기").click()
    expect(staff.locator(".alert-success")).to_contain_text("이메일로 확인을 요청했습니다")
    look(browser, review_page, "review-after", session)

    # then: the firm gets the link by email, confirms its sales and corrects its investment
    found = LINK.search(smtp_server.body())
    assert found, smtp_server.body()
    link = live_server.url + found[1]
    look(browser, link, "query")
    look(browser, link, "query", language="en")
    firm = signed_in(browser, "", live_server.url)
    firm.goto(link)
    expect(firm.locator("h1")).to_have_text("응답 확인 요청")
    with firm.expect_navigation():
        firm.get_by_role("button", name="확인 결과 보내기").click()
    expect(firm.locator("#error-summary li")).to_have_count(2)
    expect(firm.locator("#error-summary")).to_be_focused()
    if os.environ.get("SCREENSHOTS"):
        firm.screenshot(
            path=f"{os.environ['SCREENSHOTS']}/query-errors-ko-1280.png", full_page=True
        )
    firm.locator("#sales_krw_mn-confirm").check()
    firm.locator("#invest_amount-correct").check()
    firm.locator("#id-invest_amount").fill("30")
    firm.locator("#id-invest_amount__comment").fill("3억 원을 잘못 적었습니다.")
    with firm.expect_navigation():
        firm.get_by_role("button", name="확인 결과 보내기").click()
    expect(firm.locator("h1")).to_have_text("감사합니다. 확인 결과를 받았습니다.")
    look(browser, link, "query-answered")

    response.refresh_from_db()
    assert response.edited == {"employees": 54, "invest_amount": 30}
    assert response.answers["employees"] == 45 and response.answers["invest_amount"] == 300
    assert set(response.confirmations) == {"sales_per_employee"}
    kinds = sorted(ValueEdit.objects.values_list("item", "kind"))
    assert kinds == [("employees", "corrected"), ("invest_amount", "firm")]

    # and the reviewer finds the two answered flags back in the queue
    staff.goto(queue)
    expect(staff.locator("#queue")).to_contain_text("기업 회신")
    case_page = f"{live_server.url}/manage/{survey.slug}/cases/{response.case_id}/"
    look(browser, case_page, "case-trail", session)
    statuses = dict(EditFlag.objects.filter(response=response).values_list("rule", "status"))
    assert statuses == {
        "employees_vs_register": "corrected",
        "sales_per_employee": "answered",
        "invest_within_sales": "answered",
    }
