"""Fieldwork pages: the response-rate dashboard, its CSV, the chase list and its CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from respondents import chase, rates
from respondents.models import Case, Stratum
from surveys.models import Survey
from tests import factories
from tests.respondents.test_rates import add_cases, new_design, new_stratum, synthetic_survey

pytestmark = pytest.mark.django_db


def user_with(*codenames: str) -> User:
    user = User.objects.create_user(f"user{User.objects.count()}")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="respondents", codename__in=codenames)
    )
    return user


def client_for(user: User | None, language: str = "en") -> Client:
    client = Client()
    client.cookies["django_language"] = language
    if user is not None:
        client.force_login(user)
    return client


def urls(slug: str) -> list[str]:
    return [
        f"/manage/{slug}/fieldwork/",
        f"/manage/{slug}/fieldwork/?weighted=1",
        f"/manage/{slug}/fieldwork/rates.csv",
        f"/manage/{slug}/fieldwork/chase/",
        f"/manage/{slug}/fieldwork/chase.csv",
    ]


@pytest.fixture
def manager() -> Client:
    return client_for(user_with("manage_fieldwork"))


def sample_of(survey: Survey, cases: int) -> None:
    """`cases` cases over two strata, a mix of every disposition category."""
    design = new_design(survey)
    codes = ["1.1", "1.2", "2.11", "2.12", "2.20", "2.30", "3.19", "4.21", "2.121", "3.30"]
    for key, size in (("small", cases // 2), ("medium", cases - cases // 2)):
        stratum = new_stratum(design, key, N=size * 20, n=size)
        add_cases(stratum, [codes[i % len(codes)] for i in range(size)], size_class=key)


# --- permissions -----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(survey: Survey) -> None:
    for url in urls(survey.slug):
        response = client_for(None).get(url)

        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_a_firm_signed_in_with_its_link_sees_none_of_it(
    respondent: factories.Respondent,
) -> None:
    # given a firm's own session, opened with its personal link
    client = respondent.client

    for url in urls(respondent.case.survey.slug):
        # when
        response = client.get(url)

        # then
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_a_user_without_manage_fieldwork_is_refused(survey: Survey) -> None:
    client = client_for(user_with("view_contact_details", "manage_frame"))

    for url in urls(survey.slug):
        assert client.get(url).status_code == 403, url


def test_an_unknown_survey_is_not_found(manager: Client) -> None:
    assert manager.get("/manage/nope/fieldwork/").status_code == 404


def test_contact_details_show_only_with_their_permission(survey: Survey) -> None:
    # given
    sample_of(survey, 10)
    email = Case.objects.filter(disposition="2.20").first().frame_unit.email  # type: ignore[union-attr]
    plain = client_for(user_with("manage_fieldwork"))
    trusted = client_for(user_with("manage_fieldwork", "view_contact_details"))
    chase, chase_csv = f"/manage/{survey.slug}/fieldwork/chase/", urls(survey.slug)[-1]

    # when
    hidden = plain.get(chase).content.decode() + plain.get(chase_csv).content.decode()
    shown = trusted.get(chase).content.decode()
    shown_csv = trusted.get(chase_csv)

    # then
    assert "@example.com" not in hidden
    assert email in shown and email in shown_csv.content.decode()
    assert shown_csv["Cache-Control"] == "no-store"


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_shows_the_headline_rates_with_e_stated(manager: Client) -> None:
    # given
    survey = synthetic_survey()

    # when
    response = manager.get(f"/manage/{survey.slug}/fieldwork/")

    # then
    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'id="headline-sampled">326<', page)
    assert re.search(r'id="headline-I">188<', page)
    assert re.search(r'id="headline-RR3">62\.9 %<', page)
    assert re.search(r'id="headline-RR4">69\.9 %<', page)
    assert re.search(r'id="headline-e">0\.917<', page)
    assert "e is estimated from the resolved cases of each row" in page
    for domain in ("stratum", "size_class", "region", "region_area", "industry_group", "wave"):
        assert f'id="rates-{domain}"' in page, domain
    assert "mid-sized enterprise" in page  # size classes by their labels
    assert 'href="/manage/synthetic/fieldwork/chase/"' in page


def test_the_weighted_toggle_shows_base_weighted_figures(manager: Client) -> None:
    # given
    survey = synthetic_survey()

    # when
    response = manager.get(f"/manage/{survey.slug}/fieldwork/?weighted=1")

    # then
    page = response.content.decode()
    assert response.context["report"].weighted is True
    assert re.search(r'id="headline-RR3">60\.9 %<', page)
    assert re.search(r'id="headline-e">0\.919<', page)


def test_the_chart_data_is_json_and_no_script_is_inline(manager: Client, survey: Survey) -> None:
    # given
    sample_of(survey, 20)

    # when
    page = manager.get(f"/manage/{survey.slug}/fieldwork/").content.decode()

    # then
    blocks = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    inline = [attrs for attrs, body in blocks if "src=" not in attrs and body.strip()]
    assert inline == [' id="progress-data" type="application/json"']
    found = re.search(r'id="progress-data"[^>]*>(.*?)</script>', page, re.S)
    assert found is not None
    data = json.loads(found[1])
    assert set(data) == {"labels", "completes", "responses", "target", "names"}
    assert data["target"] == 12
    assert "vendor/chart.js/chart.umd.min.js" in page and "js/fieldwork.js" in page


def test_the_dashboard_speaks_korean_by_default(survey: Survey) -> None:
    # given
    sample_of(survey, 4)
    client = client_for(user_with("manage_fieldwork"), language="ko")

    # when
    response = client.get(f"/manage/{survey.slug}/fieldwork/")

    # then
    assert response.status_code == 200
    assert '<html lang="ko">' in response.content.decode()


def test_a_survey_without_a_sample_shows_empty_tables(manager: Client, survey: Survey) -> None:
    response = manager.get(f"/manage/{survey.slug}/fieldwork/")

    assert response.status_code == 200
    assert response.context["report"].sampled == 0
    assert "No cases yet." in response.content.decode()


# --- the rates CSV ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_rates_csv_has_the_dashboard_figures(manager: Client, weighted: bool) -> None:
    # given
    survey = synthetic_survey()
    query = "?weighted=1" if weighted else ""

    # when
    page = manager.get(f"/manage/{survey.slug}/fieldwork/{query}")
    download = manager.get(f"/manage/{survey.slug}/fieldwork/rates.csv{query}")

    # then
    text = download.content.decode("utf-8")
    assert text.startswith("\ufeff") and "attachment" in download["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(text[1:])))
    shown = page.context["report"].rows()
    assert [line["domain_value"] for line in lines] == [row.value for row in shown]
    for line, row in zip(lines, shown, strict=True):
        for column, value in row.as_dict().items():
            assert line[column] == str(rates._csv_value(value)), (row.value, column)


# --- the chase list --------------------------------------------------------------------------


def test_chase_page_lists_open_cases_of_the_most_lagging_stratum_first(
    manager: Client, survey: Survey
) -> None:
    # given: small has 1 of 5 responded, medium 4 of 5
    design = new_design(survey)
    small = new_stratum(design, "small", N=50, n=5)
    medium = new_stratum(design, "medium", N=50, n=5)
    add_cases(small, ["1.1", "3.19", "3.19", "2.11", "4.21"], size_class="small")
    add_cases(medium, ["1.1", "1.1", "1.2", "1.1", "3.19"], size_class="medium")

    # when
    response = manager.get(f"/manage/{survey.slug}/fieldwork/chase/")

    # then
    rows = response.context["rows"]
    assert [case.stratum.key for _rank, case, _summary, _lag in rows] == [
        "small",
        "small",
        "medium",
    ]
    assert [rank for rank, *_ in rows] == [1, 2, 3]
    assert "3 firms to chase" in response.content.decode()


def test_chase_list_is_paginated(manager: Client, survey: Survey) -> None:
    # given
    stratum = new_stratum(new_design(survey), "small", N=500, n=60)
    add_cases(stratum, ["3.19"] * 60)

    # when
    second = manager.get(f"/manage/{survey.slug}/fieldwork/chase/?page=2")

    # then
    assert [rank for rank, *_ in second.context["rows"]] == list(range(51, 61))


def test_chase_csv_is_for_excel(manager: Client, survey: Survey) -> None:
    # given
    sample_of(survey, 10)

    # when
    response = manager.get(f"/manage/{survey.slug}/fieldwork/chase.csv")

    # then
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert "chase-list.csv" in response["Content-Disposition"]


# --- query counts ----------------------------------------------------------------------------


# Session, user, the user's and groups' permissions, survey; then strata, waves, cases
# counted by cell, the last settled event, the events since the cached counts and their
# moves by wave and by day, strata with their responses for the lagging strata (dashboard);
# or strata with their responses, the count and one
# page (chase list).
QUERIES = {
    "fieldwork/": 13,
    "fieldwork/?weighted=1": 13,
    "fieldwork/rates.csv": 12,
    "fieldwork/chase/": 8,
    "fieldwork/chase.csv": 7,
}


@pytest.mark.parametrize("page", QUERIES)
@pytest.mark.parametrize("cases", [50, 500])
def test_query_count_does_not_grow_with_the_cases(
    page: str, cases: int, survey: Survey, django_assert_max_num_queries: Any
) -> None:
    # given
    sample_of(survey, cases)
    for case in Case.objects.all()[:20]:
        case.contacts.create(channel="phone", outcome="no_answer")
        case.record_disposition("2.21", source="manager")
    client = client_for(user_with("manage_fieldwork", "view_contact_details"))

    # when / then
    with django_assert_max_num_queries(QUERIES[page]):
        response = client.get(f"/manage/{survey.slug}/{page}")
    assert response.status_code == 200
    assert Stratum.objects.count() == 2


# --- lagging strata first, links to cases -----------------------------------------------------


def test_the_dashboard_lists_the_strata_furthest_behind_first(
    survey: Survey, manager: Client
) -> None:
    # given: "small" has every case unanswered, "medium" half complete
    design = new_design(survey)
    add_cases(new_stratum(design, "small", N=200, n=10), ["3.19"] * 10)
    add_cases(new_stratum(design, "medium", N=200, n=10), ["1.1"] * 5 + ["3.19"] * 5)

    # when
    page = manager.get(f"/manage/{survey.slug}/fieldwork/").content.decode()

    # then: the lagging table and the stratum rates both start with "small"
    lagging = page[page.index('id="lagging-table"') :]
    lagging = lagging[: lagging.index("</table>")]
    assert re.findall(r"<tr>\s*<th scope=\"row\"[^>]*>([^<]+)</th>", lagging)[0].strip() == (
        Stratum.objects.get(design=design, key="small").label
    )
    strata = page[page.index('id="rates-stratum"') :]
    keys = re.findall(r'<code class="small text-body-secondary">([^<]+)</code>', strata)
    assert keys[:2] == ["small", "medium"]


def test_the_chase_list_links_each_firm_to_its_case_and_names_dispositions(
    survey: Survey, manager: Client
) -> None:
    # given
    sample_of(survey, 20)

    # when
    page = manager.get(f"/manage/{survey.slug}/fieldwork/chase/").content.decode()

    # then
    table = page[page.index('id="chase-table"') : page.index("</table>")]
    cases = Case.objects.filter(survey=survey)
    linked = set(re.findall(rf'href="/manage/{survey.slug}/cases/(\d+)/"', table))
    assert linked and linked <= {str(c.pk) for c in cases}
    open_codes = {c.disposition for c in chase.chase_cases(survey, chase.stratum_lags(survey))}
    assert "3.19" in open_codes
    assert "Nothing ever returned" in table
