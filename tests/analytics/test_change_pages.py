"""The change and trend pages: two rounds' published versions side by side, in Korean and
English, with suppressed figures blank, and only for those who may see results."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from analytics import tasks
from analytics.models import Estimate
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from tests.analytics.rounds import TwoRounds, build_two_rounds
from tests.conftest import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def rounds() -> TwoRounds:
    return build_two_rounds()


@pytest.fixture
def admin() -> Client:
    return login_as(ADMINISTRATORS)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize(
    ("language", "words"),
    [("en", ("Change between rounds", "2024", "2025", "In both")), ("ko", ("회차 간 변화",))],
)
def test_the_change_page_shows_both_rounds_and_the_change(
    rounds: TwoRounds, admin: Client, language: str, words: tuple[str, ...]
) -> None:
    # given
    admin.cookies["django_language"] = language

    # when
    response = admin.get(f"/manage/{rounds.second.slug}/change/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    for word in words:
        assert word in html
    assert 'id="row-sales_krw_mn-mean-all"' in html
    assert 'id="row-sf_adopted-yes-all"' in html


def test_a_domain_tab_shows_the_change_in_each_domain(rounds: TwoRounds, admin: Client) -> None:
    response = admin.get(f"/manage/{rounds.second.slug}/change/?domain=stratum_code")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="row-sales_krw_mn-mean-A"' in html
    # stratum D is withheld in 2025: no change is shown for it
    row = re.search(
        r'<tr id="row-sales_krw_mn-mean-D" class="cell-suppressed">(.*?)</tr>', html, re.S
    )
    assert row is not None
    change = re.search(r'<td class="text-end change[^"]*">(.*?)</td>', row.group(1), re.S)
    assert change is not None and "—" in change.group(1)


def test_a_survey_without_an_earlier_round_says_so(rounds: TwoRounds, admin: Client) -> None:
    response = admin.get(f"/manage/{rounds.first.slug}/change/")

    assert response.status_code == 200
    assert 'id="no-previous-round"' in response.content.decode()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_trend_page_gives_every_round_and_the_change(
    rounds: TwoRounds, admin: Client, language: str
) -> None:
    admin.cookies["django_language"] = language

    response = admin.get(
        f"/manage/{rounds.first.slug}/trend/sf_adopted/?option=yes&statistic=proportion"
    )

    assert response.status_code == 200
    html = response.content.decode()
    table = text_of(html[html.index('id="trend-table"') : html.index('id="steps-table"')])
    assert "2024" in table and "2025" in table
    assert "2024 → 2025" in text_of(html)
    assert 'id="trend-data"' in html


def test_the_trend_of_a_suppressed_figure_shows_no_value(rounds: TwoRounds, admin: Client) -> None:
    # given: stratum D's mean sales are withheld in 2025
    hidden = Estimate.objects.get(
        run=rounds.second_run, item="sales_krw_mn", statistic="mean", domain="stratum_code",
        domain_value="D",
    )  # fmt: skip
    assert hidden.suppressed and hidden.estimate is not None

    # when
    response = admin.get(
        f"/manage/{rounds.second.slug}/trend/sales_krw_mn/"
        "?option=&statistic=mean&domain=stratum_code&value=D"
    )

    # then: neither the table nor the chart's data carry it
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="trend-subject"' in html
    for value in (hidden.estimate, hidden.se, hidden.ci_low, hidden.ci_high):
        assert f"{value:.1f}" not in text_of(html[html.index('id="trend-table"') :])
    chart = json.loads(re.search(r'id="trend-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert chart["values"][1] is None and chart["low"][1] is None and chart["high"][1] is None


def test_fieldwork_managers_do_not_see_the_change(rounds: TwoRounds) -> None:
    manager = login_as(FIELDWORK_MANAGERS)

    assert manager.get(f"/manage/{rounds.second.slug}/change/").status_code == 403
    assert manager.get(f"/manage/{rounds.second.slug}/trend/sf_adopted/").status_code == 403


@pytest.mark.parametrize(
    ("path", "queries"),
    # The session, the user and the permissions come first; a trend reads each round's version.
    [("change/", 11), ("change/?domain=size_class", 11), ("trend/sf_adopted/", 13)],
)
def test_the_pages_run_a_fixed_number_of_queries_once_the_change_is_ready(
    rounds: TwoRounds, admin: Client, path: str, queries: int
) -> None:
    # given: the worker prepared the change when the version was published
    tasks.prepare_changes(rounds.second.pk)
    url = f"/manage/{rounds.second.slug}/{path}"
    admin.get(url)

    # then
    with CaptureQueriesContext(connection) as captured:
        assert admin.get(url).status_code == 200
    assert len(captured) == queries
