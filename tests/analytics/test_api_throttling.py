"""API throttling, counted in Redis as in production: per token, and per client address
before the token is checked, so that floods of bad tokens are refused too. The
documentation and schema are public and throttled per address."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client, override_settings

from analytics.api import issue_token
from surveys.models import Survey

pytestmark = pytest.mark.django_db


def address() -> str:
    # Each test its own address: the counts outlive a test in Redis (one of 16 million, so
    # that two tests, or two runs within the throttle's window, do not share one).
    a, b, c = (secrets.randbelow(254) + 1 for _ in range(3))
    return f"10.{a}.{b}.{c}"


def client(token: str | None, remote: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(REMOTE_ADDR=remote, headers=headers)


@override_settings(API_RATE_PER_TOKEN="5/minute", API_RATE_PER_ADDRESS="1000/minute")
def test_a_token_gets_its_rate_and_then_429_while_another_token_goes_on(survey: Survey) -> None:
    # given
    _first, mine = issue_token(name="dashboard", surveys=[survey])
    _second, theirs = issue_token(name="other system", surveys=[survey])
    remote = address()

    # when
    answered = [client(mine, remote).get("/api/v1/surveys/").status_code for _ in range(7)]
    other = client(theirs, remote).get("/api/v1/surveys/")

    # then
    assert answered == [200] * 5 + [429] * 2
    assert other.status_code == 200
    refused = client(mine, remote).get("/api/v1/surveys/")
    assert int(refused["Retry-After"]) > 0


@override_settings(API_RATE_PER_TOKEN="1000/minute", API_RATE_PER_ADDRESS="10/minute")
def test_bad_tokens_from_one_address_are_throttled_too(survey: Survey) -> None:
    # given
    remote, elsewhere = address(), address()

    # when: a hundred guesses, as in the probe
    statuses = [
        client(f"smf_{secrets.token_urlsafe(16)}", remote).get("/api/v1/surveys/").status_code
        for _ in range(100)
    ]

    # then: ten answered 401, the rest refused before any token lookup
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert client("smf_wrong", elsewhere).get("/api/v1/surveys/").status_code == 401


@override_settings(API_RATE_PER_TOKEN="1000/minute", API_RATE_PER_ADDRESS="3/minute")
@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/schema/"])
def test_the_public_documentation_is_throttled_per_address(path: str) -> None:
    remote = address()

    statuses = [client(None, remote).get(path).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
