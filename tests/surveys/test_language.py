"""The language a firm sees: Korean first, whatever the browser prefers; English once the
firm picks it with the switcher, and still English on its next visit."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from surveys.models import Survey
from tests import factories

pytestmark = pytest.mark.django_db

ENGLISH_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}


def language_of(response: object) -> str:
    content = response.content.decode()  # type: ignore[attr-defined]
    return content.split('<html lang="', 1)[1][:2]


def test_a_browser_set_to_english_gets_korean(survey: Survey) -> None:
    _case, token, _code = factories.case(survey)
    client = Client(headers=ENGLISH_BROWSER)

    welcome = client.get(f"/r/{token}/", follow=True)

    assert language_of(welcome) == "ko" and "환영합니다" in welcome.content.decode()
    assert welcome["Content-Language"] == "ko"
    assert "Accept-Language" not in welcome.get("Vary", "")


def test_english_once_picked_and_remembered(survey: Survey) -> None:
    _case, token, _code = factories.case(survey)
    client = Client(headers={"Accept-Language": "ko"})
    client.get(f"/r/{token}/")

    switched = client.post("/i18n/setlang/", {"language": "en", "next": "/q/"}, follow=True)

    assert switched.redirect_chain == [("/q/", 302)]
    assert language_of(switched) == "en" and "Welcome" in switched.content.decode()
    cookie = client.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "en" and int(cookie["max-age"]) >= 300 * 24 * 3600
    assert language_of(client.get("/q/review/")) == "en"
    # the next visit, by the personal link again, in a browser that asks for Korean
    assert language_of(client.get(f"/r/{token}/", follow=True)) == "en"


def test_korean_again_when_picked(survey: Survey) -> None:
    _case, token, _code = factories.case(survey)
    client = Client(headers=ENGLISH_BROWSER)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.get(f"/r/{token}/")

    client.post("/i18n/setlang/", {"language": "ko", "next": "/q/"})

    assert language_of(client.get("/q/")) == "ko"


@pytest.mark.parametrize("cookie", ["fr", "zz-top", "", "en-GB"])
def test_a_language_cookie_names_a_language_of_the_survey_or_is_ignored(cookie: str) -> None:
    client = Client(headers=ENGLISH_BROWSER)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = cookie

    expected = "en" if cookie.startswith("en") else "ko"
    assert language_of(client.get("/login/")) == expected


def test_staff_pages_follow_the_same_rule() -> None:
    client = Client(headers=ENGLISH_BROWSER)
    assert '<html lang="ko"' in client.get("/accounts/login/").content.decode()

    client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})

    assert '<html lang="en"' in client.get("/accounts/login/").content.decode()
