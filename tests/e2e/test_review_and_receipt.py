"""The review and receipt pages in headless Chromium, in Korean and English, at 1280 and 390
pixels wide: numbers carry their unit, Korean wraps between words, nothing is wider than
the screen. Set SCREENSHOTS=/some/dir to keep a screenshot of each page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser

from surveys.models import Survey
from tests import factories
from tests.e2e.conftest import axe_violations
from tests.e2e.test_staff_pages import WIDER_THAN_THE_SCREEN
from tests.surveys.answering import ADOPTER, answer_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1280, 390)
# An answer with no space to break at, longer than a phone's screen is wide.
LONG_ANSWER = "https://www.example.co.kr/departments/smart-manufacturing-innovation/digital-team"
UNITS = {
    "ko": ("45 명", "12,500.5 백만 원", "300 백만 원"),
    "en": ("45 persons", "12,500.5 KRW million", "300 KRW million"),
}

# Text nodes whose lines break between two Hangul syllables, i.e. inside a Korean word.
BROKEN_WORDS = r"""() => {
  const hangul = /[\uAC00-\uD7A3]/;
  const broken = [];
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    let top = null;
    for (let i = 0; i < text.length; i++) {
      if (/\s/.test(text[i])) continue;
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getBoundingClientRect();
      if (!rect.height) continue;
      if (top !== null && rect.top > top + rect.height / 2
          && hangul.test(text[i]) && i > 0 && hangul.test(text[i - 1])) {
        broken.push(text.slice(Math.max(0, i - 6), i) + "/" + text.slice(i, i + 6));
      }
      top = rect.top;
    }
  }
  return broken;
}"""


def check(browser: Browser, url: str, session: str, language: str, name: str) -> str:
    texts = []
    for width in WIDTHS:
        context = browser.new_context(
            viewport={"width": width, "height": 900}, locale="en-US", bypass_csp=True
        )
        context.add_cookies(
            [
                {"name": "sessionid", "value": session, "url": url},
                {"name": "django_language", "value": language, "url": url},
            ]
        )
        page = context.new_page()
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == language
        assert page.evaluate(WIDER_THAN_THE_SCREEN) == [], (name, width)
        assert page.evaluate(BROKEN_WORDS) == [], (name, width)
        assert axe_violations(page) == [], (name, width)
        if os.environ.get("SCREENSHOTS"):
            folder = Path(os.environ["SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}-{language}-{width}.png"), full_page=True)
        texts.append(page.locator("main").inner_text())
        context.close()
    return texts[0]


@pytest.mark.parametrize("language", ["ko", "en"])
def test_review_and_receipt_show_units_and_wrap_between_words(
    live_server: Any, browser: Browser, survey: Survey, language: str
) -> None:
    _case, token, _code = factories.case(survey)
    client = Client()
    client.get(f"/r/{token}/")
    answer_all(
        client, {**ADOPTER, "contact": {**ADOPTER["contact"], "contact_position": LONG_ANSWER}}
    )
    session = client.cookies["sessionid"].value

    review = check(browser, f"{live_server.url}/q/review/", session, language, "review")
    client.post("/q/review/")
    receipt = check(browser, f"{live_server.url}/q/receipt/", session, language, "receipt")

    for text in (review, receipt):
        for shown in UNITS[language]:
            assert shown in text, (shown, text)
        assert LONG_ANSWER in text.replace("\n", "")
