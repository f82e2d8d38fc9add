"""The access-code lockout holds under parallel requests: a live server on PostgreSQL (each
request in its own thread and database connection), thirty wrong codes sent at once for one
business ID. Counting the failures, checking the code and recording the failure are one
atomic step, so no more codes are checked than the limit allows."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.test import override_settings

from respondents.models import AccessFailure
from surveys.models import Survey
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)
ATTEMPTS = 30
LOCKED = "Too many wrong access codes"
WRONG = "is not right"


def signed_in_form(url: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    session.cookies.set("django_language", "en")
    page = session.get(f"{url}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "the sign-in form carries a CSRF token"
    return session, token.group(1)


def send_all_at_once(url: str, business_id: str, codes: list[str]) -> list[str]:
    forms = [signed_in_form(url) for _code in codes]
    start = threading.Barrier(len(codes))

    def post(index: int) -> str:
        session, token = forms[index]
        data = {"csrfmiddlewaretoken": token, "business_id": business_id,
                "access_code": codes[index]}  # fmt: skip
        start.wait()
        response = session.post(f"{url}/login/", data=data, allow_redirects=False, timeout=60)
        if response.status_code == 302:
            return "signed in"
        return "locked" if LOCKED in response.text else "wrong" if WRONG in response.text else "?"

    with ThreadPoolExecutor(len(codes)) as pool:
        return list(pool.map(post, range(len(codes))))


@override_settings(ACCESS_CODE_MAX_FAILURES=5, ACCESS_CODE_MAX_FAILURES_PER_CLIENT=1000)
def test_thirty_wrong_codes_at_once_check_no_more_than_the_limit(
    live_server: Any, survey: Survey
) -> None:
    # given
    case, _token, _code = factories.case(survey)

    # when
    outcomes = send_all_at_once(live_server.url, case.business_id, ["WRONG-CODE"] * ATTEMPTS)

    # then: five checked and recorded, every other one refused before any check
    assert outcomes.count("wrong") == 5, outcomes
    assert outcomes.count("locked") == ATTEMPTS - 5
    assert AccessFailure.objects.filter(business_id=case.business_id).count() == 5


@override_settings(ACCESS_CODE_MAX_FAILURES=5, ACCESS_CODE_MAX_FAILURES_PER_CLIENT=1000)
def test_the_right_code_among_parallel_guesses_gets_in_only_within_the_limit(
    live_server: Any, survey: Survey
) -> None:
    # given: the right code sent last, after 29 wrong ones at the same moment
    case, _token, code = factories.case(survey)
    codes = ["WRONG-CODE"] * (ATTEMPTS - 1) + [code]

    # when
    outcomes = send_all_at_once(live_server.url, case.business_id, codes)

    # then: at most five checks failed; the right code either got in or met the lock
    assert outcomes.count("wrong") <= 5
    assert outcomes.count("wrong") + outcomes.count("signed in") <= 6
    assert AccessFailure.objects.filter(business_id=case.business_id).count() <= 5
