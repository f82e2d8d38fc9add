"""Two people of one firm answering at once, reloads and a flaky network, in headless
Chromium: every answer is stored, and nobody's answer is overwritten without a decision."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from respondents.models import Case
from surveys.models import AnswerChange, Response, Survey
from tests import factories
from tests.e2e.conftest import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAVED = re.compile(r"\d{1,2}:\d{2}")


class Firm:
    """One firm's personal link, opened by as many people (browsers) as a test needs."""

    def __init__(self, browser: Browser, url: str, survey: Survey) -> None:
        self.case: Case
        self.case, self.token, _code = factories.case(survey)
        self.browser, self.url = browser, url
        self.contexts: list[Any] = []

    def person(self) -> Page:
        context = self.browser.new_context(locale="ko-KR", bypass_csp=True)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{self.url}/r/{self.token}/")
        return page

    def stored(self) -> tuple[dict[str, Any], dict[str, Any]]:
        response = Response.objects.get(case=self.case)
        return response.answers, response.drafts


@pytest.fixture
def firm(browser: Browser, live_server: Any, survey: Survey) -> Iterator[Firm]:
    firm = Firm(browser, live_server.url, survey)
    yield firm
    for context in firm.contexts:
        context.close()


def open_page(page: Page, name: str) -> None:
    page.goto(re.sub(r"/q/.*$", f"/q/p/{name}/", page.url))


def saved(page: Page) -> None:
    expect(page.locator("#autosave-status")).to_contain_text(SAVED)


def press_next(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("다음|Next")).click()


def test_two_people_changing_different_fields_both_keep_their_answers(firm: Firm) -> None:
    a, b = firm.person(), firm.person()
    open_page(a, "profile")
    open_page(b, "profile")

    a.fill("#id-employees", "46")
    saved(a)
    b.fill("#id-sales_krw_mn", "999")
    saved(b)
    # B's page now shows A's answer, which it had not seen
    expect(b.locator("#id-employees")).to_have_value("46")
    press_next(b)
    press_next(a)

    answers, drafts = firm.stored()
    assert answers == {"employees": 46, "sales_krw_mn": 999} and drafts == {}
    assert not b.locator("[data-conflict]").count()


def test_the_same_field_is_a_conflict_decided_by_a_person(firm: Firm) -> None:
    a, b = firm.person(), firm.person()
    open_page(a, "awareness")
    open_page(b, "awareness")

    a.locator("#importance-very_important").check()
    saved(a)
    b.locator("#implementing-yes").check()
    b.locator("#importance-neutral").check()

    # B is shown the stored answer beside the field, and focus moves there
    panel = b.locator("#importance-conflict")
    expect(panel).to_be_visible()
    expect(panel).to_be_focused()
    expect(panel.locator("[data-stored]")).not_to_have_text("")
    violations = axe_violations(b)
    assert violations == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]
    # Next does not overwrite the stored answer without a decision
    press_next(b)
    expect(b.locator("#importance-conflict")).to_be_visible()
    answers, drafts = firm.stored()
    assert drafts.get("importance", answers.get("importance")) == "very_important"
    assert drafts.get("implementing") == "yes", "the rest of the page saved"

    b.locator("#importance-conflict [data-decide='mine']").click()
    saved(b)
    press_next(b)

    answers, _drafts = firm.stored()
    assert answers["importance"] == "neutral" and answers["implementing"] == "yes"


def test_typing_then_reloading_at_once_then_answering_on_loses_nothing(firm: Firm) -> None:
    page = firm.person()
    open_page(page, "profile")
    page.on("dialog", lambda dialog: dialog.accept())

    page.fill("#id-employees", "999")
    page.reload()
    page.fill("#id-sales_krw_mn", "12500")
    saved(page)

    expect(page.locator("[data-conflict]")).to_have_count(0)
    expect(page.locator("#id-employees")).to_have_value("999")
    _answers, drafts = firm.stored()
    assert drafts == {"employees": "999", "sales_krw_mn": "12500"}


def test_next_while_offline_keeps_the_page_and_its_answers(firm: Firm) -> None:
    page = firm.person()
    open_page(page, "profile")
    page.context.set_offline(True)
    page.fill("#id-employees", "7")
    page.fill("#id-sales_krw_mn", "800")

    page.get_by_role("button", name=re.compile("다음|Next")).click()

    expect(page.locator("#autosave-status")).to_have_class(re.compile("autosave-status--warn"))
    expect(page.locator("#id-employees")).to_have_value("7")
    page.context.set_offline(False)
    saved(page)
    press_next(page)
    answers, _drafts = firm.stored()
    assert answers == {"employees": 7, "sales_krw_mn": 800}


def test_answers_typed_while_offline_are_saved_in_order_when_the_network_returns(
    firm: Firm,
) -> None:
    page = firm.person()
    open_page(page, "profile")
    page.fill("#id-employees", "1")
    saved(page)

    page.context.set_offline(True)
    page.fill("#id-employees", "12")
    page.fill("#id-sales_krw_mn", "300")
    expect(page.locator("#autosave-status")).not_to_contain_text(SAVED, timeout=15_000)
    page.context.set_offline(False)
    saved(page)

    _answers, drafts = firm.stored()
    assert drafts == {"employees": "12", "sales_krw_mn": "300"}
    press_next(page)
    history = list(
        AnswerChange.objects.filter(response__case=firm.case, item="employees")
        .order_by("at", "pk")
        .values_list("new", flat=True)
    )
    assert history == [12]
