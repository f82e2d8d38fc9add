"""Hardening: staff login lockout, access-code rate limits, production settings, response
headers and cookies, oversize posts.

The production settings are computed by config/settings.py itself in a subprocess with the
production environment (DEBUG=0, HTTPS=1, a long SECRET_KEY…), then applied to the test
client, so the headers checked are those production sends.

Cookies checked: the session cookie must be Secure, HttpOnly and SameSite=Lax; the CSRF
cookie must be Secure and SameSite=Lax. CSRF_COOKIE_HTTPONLY is left at Django's default
(off): the CSRF token is already in every form, so it would add little.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from http.cookies import Morsel
from typing import Any
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from respondents.models import AccessCodeHasher, AccessFailure, Case
from surveys.models import Response, Survey
from tests import factories
from tests.factories import ROOT

pytestmark = pytest.mark.django_db

HOST = "survey.example.go.kr"
PASSWORD = "correct horse battery staple 42"
PRODUCTION_SETTINGS = (
    "DEBUG",
    "ALLOWED_HOSTS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "CONTENT_SECURITY_POLICY",
)


def production_env(**changes: str | None) -> dict[str, str]:
    # Not the test session's own switches (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    leave_out = ("SECRET_KEY", "CREDENTIAL_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in leave_out}
    env.update(
        DEBUG="0",
        HTTPS="1",
        SECRET_KEY=secrets.token_urlsafe(64),
        CREDENTIAL_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS=HOST,
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://127.0.0.1:5432/smartsurvey"),
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def settings_under(env: dict[str, str], names: tuple[str, ...]) -> dict[str, Any]:
    """What config/settings.py computes under this environment."""
    code = (
        "import json, config.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}))"
    )
    done = run(["-c", code], env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return settings_under(production_env(), PRODUCTION_SETTINGS)


@pytest.fixture
def production_client(production: dict[str, Any]) -> Iterator[Client]:
    """A client whose middleware was built under the production settings."""
    with override_settings(**production):
        client = Client(HTTP_HOST=HOST)
        client.cookies["django_language"] = "en"
        yield client


def cookie(response: Any, name: str) -> Morsel[str]:
    assert name in response.cookies, f"{name} not set"
    return response.cookies[name]


# --- production settings ----------------------------------------------------------------------


def test_check_deploy_is_clean_with_the_production_environment() -> None:
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_fails_without_a_secret_key_in_the_environment() -> None:
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(SECRET_KEY=None),
    )

    assert done.returncode != 0
    assert "SECRET_KEY" in done.stdout + done.stderr


def test_production_settings_turn_on_every_https_protection(production: dict[str, Any]) -> None:
    assert production["DEBUG"] is False
    assert production["ALLOWED_HOSTS"] == [HOST]
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SECURE_SSL_REDIRECT"]
    assert production["SECURE_HSTS_SECONDS"] >= 31536000


def test_lockout_limits_come_from_the_environment() -> None:
    names = ("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "ACCESS_CODE_MAX_FAILURES")
    env = production_env(AXES_FAILURE_LIMIT="3", AXES_COOLOFF_HOURS="1.5")
    env["ACCESS_CODE_MAX_FAILURES"] = "4"

    assert settings_under(env, names) == {
        "AXES_FAILURE_LIMIT": 3,
        "AXES_COOLOFF_TIME": 1.5,
        "ACCESS_CODE_MAX_FAILURES": 4,
    }


# --- headers and cookies ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/accounts/login/", "/health/", "/api/v1/docs/"])
def test_production_responses_carry_the_security_headers(
    production_client: Client, path: str
) -> None:
    response = production_client.get(path, secure=True)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    hsts = response["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts


def test_production_redirects_plain_http_to_https(production_client: Client) -> None:
    response = production_client.get("/login/")

    assert response.status_code == 301
    assert response["Location"] == f"https://{HOST}/login/"


def test_production_cookies_are_secure_and_the_session_cookie_is_http_only(
    production_client: Client, survey: Survey
) -> None:
    # given
    _case, token, _code = factories.case(survey)

    # when
    login_page = production_client.get("/login/", secure=True)
    signed_in = production_client.get(f"/r/{token}/", secure=True)

    # then
    csrf = cookie(login_page, settings.CSRF_COOKIE_NAME)
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    session = cookie(signed_in, settings.SESSION_COOKIE_NAME)
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


def test_production_staff_session_cookie_is_secure_and_http_only(
    production_client: Client,
) -> None:
    User.objects.create_user("kim", password=PASSWORD)

    response = production_client.post(
        "/accounts/login/", {"username": "kim", "password": PASSWORD}, secure=True
    )

    assert response.status_code == 302
    session = cookie(response, settings.SESSION_COOKIE_NAME)
    assert session["secure"] and session["httponly"]


# --- staff login lockout (django-axes) --------------------------------------------------------


def staff_login(password: str, *, username: str = "kim", address: str = "203.0.113.7") -> Any:
    client = Client(REMOTE_ADDR=address)
    client.cookies["django_language"] = "en"
    return client.post("/accounts/login/", {"username": username, "password": password})


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("kim", password=PASSWORD)


@override_settings(AXES_FAILURE_LIMIT=3)
def test_staff_login_locks_after_repeated_failures_even_with_the_right_password(
    staff: User,
) -> None:
    # given
    for _attempt in range(3):
        staff_login("wrong password")

    # when
    response = staff_login(PASSWORD)

    # then
    assert response.status_code == 429
    assert "Account temporarily locked" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_staff_lockout_page_is_the_same_for_an_unknown_username(staff: User) -> None:
    for username in ("kim", "nobody"):
        for _attempt in range(3):
            staff_login("wrong password", username=username)

    known, unknown = staff_login("x", username="kim"), staff_login("x", username="nobody")

    assert known.status_code == unknown.status_code == 429
    assert without_csrf_token(known) == without_csrf_token(unknown)


def without_csrf_token(response: Any) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="\w+"', "", response.content.decode())


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_staff_lockout_does_not_lock_the_same_user_on_another_client(staff: User) -> None:
    for _attempt in range(3):
        staff_login("wrong password")

    response = staff_login(PASSWORD, address="198.51.100.20")

    assert response.status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=0.25)
def test_staff_login_works_again_after_the_cool_off(staff: User) -> None:
    # given
    for _attempt in range(3):
        staff_login("wrong password")
    assert staff_login(PASSWORD).status_code == 429

    # when
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
    AccessAttempt.objects.update(attempt_time=earlier)
    response = staff_login(PASSWORD)

    # then
    assert response.status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3, BEHIND_PROXY=True)
def test_behind_the_proxy_a_staff_lockout_is_per_client_not_per_balancer(staff: User) -> None:
    # given: the balancer (10.0.0.2) appends each client's address to X-Forwarded-For
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    for _attempt in range(3):
        attacker.post("/accounts/login/", {"username": "kim", "password": "guess"})

    # when
    colleague = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")
    response = colleague.post("/accounts/login/", {"username": "kim", "password": PASSWORD})

    # then
    assert response.status_code == 302


# --- access-code rate limits (what tests/surveys/test_respondent_access.py does not cover) ----

LOCKED = "Too many wrong access codes"


def sign_in(
    business_id: str, code: str, *, address: str = "203.0.113.7", forwarded: str = ""
) -> Any:
    client = Client(REMOTE_ADDR=address)
    client.cookies["django_language"] = "en"
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    data = {"business_id": business_id, "access_code": code}
    return client.post("/login/", data, headers=headers)


def error_of(response: Any) -> str:
    found = re.search(r'id="error-summary"[^>]*>(.*?)</div>', response.content.decode(), re.S)
    assert found, "no error shown"
    return found.group(1)


@override_settings(ACCESS_CODE_MAX_FAILURES_PER_CLIENT=3, ACCESS_CODE_MAX_FAILURES=100)
def test_one_client_locked_out_does_not_lock_out_another_client(survey: Survey) -> None:
    # given
    case, _token, code = factories.case(survey)
    for number in range(3):
        sign_in(factories.business_id(9_000_000 + number), "WRONG-CODE")

    # when
    locked = sign_in(case.business_id, code)
    other = sign_in(case.business_id, code, address="198.51.100.20")

    # then
    assert LOCKED in error_of(locked)
    assert other.status_code == 302 and other["Location"] == "/q/"


@override_settings(ACCESS_CODE_MAX_FAILURES=2)
def test_the_lock_message_is_the_same_whether_the_business_id_exists_or_not(
    survey: Survey,
) -> None:
    # given
    case, _token, _code = factories.case(survey)
    unknown = factories.business_id(8_000_000)
    wrong = [sign_in(bid, "WRONG-CODE", address=f"192.0.2.{n}") for n, bid in
             enumerate([case.business_id, case.business_id, unknown, unknown])]  # fmt: skip

    # when
    known_locked = sign_in(case.business_id, "WRONG-CODE", address="192.0.2.50")
    unknown_locked = sign_in(unknown, "WRONG-CODE", address="192.0.2.51")

    # then
    assert error_of(wrong[0]) == error_of(wrong[2])
    assert LOCKED in error_of(known_locked)
    assert error_of(known_locked) == error_of(unknown_locked)


@override_settings(ACCESS_CODE_MAX_FAILURES=3, ACCESS_CODE_MAX_FAILURES_PER_CLIENT=100)
def test_other_spellings_of_a_business_id_count_toward_the_same_limit(survey: Survey) -> None:
    # given
    case, _token, code = factories.case(survey)
    digits = case.business_id.replace("-", "")
    for spelling in (digits, f" {digits[:3]} {digits[3:5]} {digits[5:]} ", case.business_id):
        sign_in(spelling, "WRONG-CODE", address=f"192.0.2.{len(spelling)}")

    # when
    response = sign_in(case.business_id, code, address="192.0.2.99")

    # then
    assert LOCKED in error_of(response)


@override_settings(ACCESS_CODE_MAX_FAILURES_PER_CLIENT=3, ACCESS_CODE_MAX_FAILURES=100)
@pytest.mark.parametrize("behind_proxy", [True, False])
def test_a_forged_forwarded_for_header_does_not_evade_the_client_limit(
    survey: Survey, behind_proxy: bool
) -> None:
    # given: the client invents a new X-Forwarded-For each time; the balancer, if any,
    # appends the real address (203.0.113.7) last
    case, _token, code = factories.case(survey)
    with override_settings(BEHIND_PROXY=behind_proxy):
        for number in range(3):
            forged = f"10.9.8.{number}, 203.0.113.7" if behind_proxy else f"10.9.8.{number}"
            sign_in(factories.business_id(7_000_000 + number), "WRONG", forwarded=forged)

        # when
        forged = "10.9.8.200, 203.0.113.7" if behind_proxy else "10.9.8.200"
        response = sign_in(case.business_id, code, forwarded=forged)

    # then
    assert LOCKED in error_of(response)


def test_signing_in_with_an_unknown_business_id_costs_the_same_hashing(survey: Survey) -> None:
    # given
    case, _token, _code = factories.case(survey)
    encode = AccessCodeHasher.encode  # the PBKDF2 work, whether verifying or hashing

    # when
    with mock.patch.object(AccessCodeHasher, "encode", autospec=True, side_effect=encode) as spy:
        sign_in(case.business_id, "WRONG-CODE", address="192.0.2.1")
        known = spy.call_count
        sign_in(factories.business_id(6_000_000), "WRONG-CODE", address="192.0.2.2")
        unknown = spy.call_count - known

    # then
    assert known == unknown == 1


# --- oversize posts ---------------------------------------------------------------------------


def oversize() -> str:
    return "9" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)


@pytest.mark.parametrize("csrf", [False, True])
@pytest.mark.parametrize("target", ["page", "autosave"])
def test_an_oversize_answer_post_gets_a_clear_400_and_changes_nothing(
    survey: Survey, target: str, csrf: bool
) -> None:
    # given
    case, token, _code = factories.case(survey)
    client = Client(enforce_csrf_checks=csrf)
    client.cookies["django_language"] = "en"
    client.get(f"/r/{token}/")
    client.get("/q/")
    before = Response.objects.values_list("revision", "answers", "drafts").get(case=case)
    path = "/q/p/profile/" + ("autosave/" if target == "autosave" else "")

    # when
    response = client.post(path, {"employees": oversize(), "revision": before[0], "editor": "t"})

    # then
    assert response.status_code == 400
    assert "too large" in response.content.decode()
    assert Response.objects.values_list("revision", "answers", "drafts").get(case=case) == before


def test_an_oversize_sign_in_gets_a_400_and_counts_nothing(survey: Survey) -> None:
    case: Case = factories.case(survey)[0]

    response = sign_in(case.business_id, oversize())

    assert response.status_code == 400
    assert "too large" in response.content.decode()
    assert not AccessFailure.objects.exists()
