"""Results pages: the headline table and an item's detail, on the synthetic case's published
run (methodology sec. H), with the version they show and the versions one can pick."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import pipeline
from analytics.models import Estimate, EstimateRun
from analytics.views.results import reasons_of
from respondents.models import Wave
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def wave(survey: Survey) -> Wave:
    return Wave.objects.create(
        survey=survey,
        name="1차 조사",
        kind=Wave.Kind.INVITATION,
        starts_at=timezone.now() - dt.timedelta(days=7),
    )


@pytest.fixture
def run(survey: Survey, wave: Wave) -> EstimateRun:
    load_synthetic_case(survey)
    result = pipeline.recompute(survey, trigger="test")
    assert result is not None
    return result


def viewer(language: str | None = "en", *codenames: str) -> Client:
    user = User.objects.create_user(f"viewer{User.objects.count()}")
    permissions = Permission.objects.filter(codename__in=codenames or ("view_results",))
    user.user_permissions.add(*permissions)
    client = Client()
    if language:
        client.cookies["django_language"] = language
    client.force_login(user)
    return client


def headline_url(survey: Survey, query: str = "") -> str:
    return f"/manage/{survey.slug}/results/{query}"


def detail_url(survey: Survey, item: str, query: str = "") -> str:
    return f"/manage/{survey.slug}/results/{item}/{query}"


def text(fragment: str) -> str:
    plain = re.sub(r"<[^>]+>", " ", fragment)
    return re.sub(r"\s+", " ", html.unescape(plain)).strip()


def element(content: bytes, element_id: str, tag: str = "tr") -> str:
    page = content.decode()
    pattern = rf'<{tag}\b[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</{tag}>'
    found = re.search(pattern, page, re.S)
    assert found, f"no <{tag} id={element_id}>"
    return found.group(0)


def chart_data(content: bytes) -> dict[str, Any]:
    found = re.search(
        r'<script id="results-data" type="application/json">(.*?)</script>', content.decode()
    )
    assert found
    return json.loads(found.group(1))


def table_row(content: bytes, domain: str, label: str) -> str:
    section = element(content, f"domain-{domain}", "section")
    for row in re.findall(r"<tr[^>]*>.*?</tr>", section, re.S):
        if text(row).startswith(label):
            return text(row)
    raise AssertionError(f"no row {label} in {domain}")


# --- the headline table -----------------------------------------------------------------------


def test_the_headline_shows_weighted_percentages_with_their_ci_and_n(
    survey: Survey, run: EstimateRun
) -> None:
    # when
    response = viewer().get(headline_url(survey))

    # then: p(adopted) = .1988641096, logit CI [.1507388592, .2576918576] (sec. H)
    assert response.status_code == 200
    assert text(element(response.content, "row-sf_adopted-yes")) == "Yes 19.9 % 15.1–25.8 209"
    assert text(element(response.content, "row-sf_adopted-no")) == "No 80.1 % 74.2–84.9 209"
    # among adopters: basic level .724000363, CI [.5638926560, .8418168845]
    assert text(element(response.content, "row-sf_level-basic")) == "Basic 72.4 % 56.4–84.2 75"


def test_means_are_shown_in_their_unit(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(headline_url(survey))

    # mean investment with NAs removed: 432.5741287 (sec. H)
    row = text(element(response.content, "row-invest_amount-mean"))
    assert row.startswith("Mean (KRW million) 432.6 ")
    assert 'id="row-invest_amount-total"' not in response.content.decode()


def test_questions_follow_the_questionnaire_and_options_their_choices(
    survey: Survey, run: EstimateRun
) -> None:
    page = viewer().get(headline_url(survey)).content.decode()

    questions = ["q-importance", "q-sf_adopted", "q-sf_level", "q-sf_tech", "q-invest_amount"]
    assert [page.index(f'id="{q}"') for q in questions] == sorted(
        page.index(f'id="{q}"') for q in questions
    )
    options = ["basic", "intermediate1", "intermediate2", "advanced"]
    positions = [page.index(f'id="row-sf_level-{o}"') for o in options]
    assert positions == sorted(positions)


def test_labels_are_korean_by_default(survey: Survey, run: EstimateRun) -> None:
    response = viewer(language=None).get(headline_url(survey))

    page = text(response.content.decode())
    assert "귀사는 스마트공장을 도입(구축)하였습니까?" in page
    assert text(element(response.content, "row-sf_adopted-yes")).startswith("예 19.9 %")
    assert text(element(response.content, "row-sf_level-basic")).startswith("기초 72.4 %")
    assert "백만 원" in text(element(response.content, "row-invest_amount-mean"))


def test_labels_follow_the_active_language(survey: Survey, run: EstimateRun) -> None:
    response = viewer("en").get(headline_url(survey))

    page = text(response.content.decode())
    assert "Has your company adopted (built) a smart factory?" in page
    assert "귀사는 스마트공장을 도입(구축)하였습니까?" not in page


def test_suppressed_cells_are_blank_and_explained(survey: Survey, run: EstimateRun) -> None:
    advanced = Estimate.objects.get(run=run, item="sf_level", option="advanced", domain="all")
    production = Estimate.objects.get(
        run=run, item="main_area", option="production_mgmt", domain="all"
    )
    assert advanced.suppressed and not production.suppressed

    response = viewer().get(headline_url(survey))

    # advanced level: 2.7 % from fewer than 5 firms (confidentiality: blank); production
    # management: 39.5 % with a Korn-Graubard interval wider than 30 points (unreliable:
    # published with its grade and a warning)
    advanced_row = element(response.content, "row-sf_level-advanced")
    assert 'class="cell-suppressed"' in advanced_row
    assert text(advanced_row).startswith("Advanced — suppressed: Fewer than 5 respondents")
    assert "2.7" not in advanced_row
    production_row = element(response.content, "row-main_area-production_mgmt")
    assert "39.5" in production_row and 'class="cell-flagged"' in production_row
    legend = text(element(response.content, "legend-list", "dl"))
    assert "c Fewer than 5 respondents in the cell (confidentiality)" in legend
    assert "g CI too wide (Korn–Graubard width ≥ 30 points)" in legend
    assert "#legend-c" in advanced_row and "#legend-g" in production_row


def test_flagged_cells_are_marked(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(headline_url(survey))

    # nobody answered "somewhat important": p = 0 is flagged for review and gets the
    # Korn-Graubard (Clopper-Pearson on n = 209) interval, 0 to 1 - 0.025^(1/209) = 1.75 %
    row = element(response.content, "row-importance-somewhat_important")
    assert 'class="cell-flagged"' in row
    assert text(row) == "Somewhat important 0.0 % l 0.0–1.7 209"
    legend = text(element(response.content, "legend-list", "dl"))
    assert "l Estimate of exactly 0 or 100 per cent: no CI can be computed" in legend


def test_each_row_links_to_its_detail_in_the_same_version(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(headline_url(survey))

    row = element(response.content, "row-sf_adopted-yes")
    link = f"/manage/{survey.slug}/results/sf_adopted/?run={run.number}&amp;option=yes"
    assert link + "&amp;statistic=proportion" in row


# --- the version shown ------------------------------------------------------------------------


def test_every_page_states_its_version(survey: Survey, run: EstimateRun, wave: Wave) -> None:
    client = viewer()

    for url in (headline_url(survey), detail_url(survey, "sf_adopted")):
        response = client.get(url)

        statement = text(element(response.content, "version-statement", "dl"))
        as_of = timezone.localtime(run.data_as_of).strftime("%Y-%m-%d %H:%M")
        assert f"Data as of {as_of}" in statement
        assert "Wave 1차 조사" in statement
        assert "Respondents 209" in statement
        assert "Response rate (RR3) 62.9 %" in statement
        assert "classes: strata; collapse below 2 respondents" in statement
        title = text(element(response.content, "version-title", "h2"))
        assert title.startswith(f"Version {run.number} Provisional Latest")


def test_another_version_can_be_picked_by_number_or_by_wave(
    survey: Survey, run: EstimateRun, wave: Wave
) -> None:
    # given: a second version, and the first made the wave's official figures
    second = pipeline.recompute(survey, trigger="test", force=True)
    assert second is not None and second.number == run.number + 1
    Wave.objects.filter(pk=wave.pk).update(official_run=run)
    client = viewer()

    # when / then
    latest = text(element(client.get(headline_url(survey)).content, "version-title", "h2"))
    assert latest.startswith(f"Version {second.number} Provisional Latest")
    for query in (f"?run={run.number}", f"?wave={wave.pk}"):
        response = client.get(headline_url(survey, query))
        title = text(element(response.content, "version-title", "h2"))
        assert title == f"Version {run.number} Official figures of 1차 조사 Not the latest version"
    menu = text(element(response.content, "run-select", "select"))
    assert f"Version {run.number} · " in menu and "official figures of 1차 조사" in menu
    assert f"?wave={wave.pk}" in response.content.decode()


def test_versions_are_grouped_by_wave_with_their_true_wave(
    survey: Survey, run: EstimateRun
) -> None:
    # given: three waves; the first two closed late (the next had begun), runs in between
    start = timezone.now() - dt.timedelta(days=60)
    waves = [
        Wave.objects.create(
            survey=survey,
            name=name,
            kind=Wave.Kind.REMINDER,
            starts_at=start + dt.timedelta(days=day),
            ends_at=start + dt.timedelta(days=day + length),
        )
        for name, day, length in (("초청", 0, 20), ("1차 독려", 20, 20), ("2차 독려", 40, 30))
    ]
    Wave.objects.filter(survey=survey, name="1차 조사").delete()
    first = pipeline.close_wave(waves[0])
    pipeline.recompute(survey, trigger="test", force=True)
    second = pipeline.close_wave(waves[1])
    pipeline.recompute(survey, trigger="test", force=True)
    latest = pipeline.recompute(survey, trigger="test", force=True)
    assert first and second and latest and latest.number == run.number + 5

    # when
    response = viewer().get(headline_url(survey))

    # then: the latest (provisional, in the open wave), then each closed wave's own version
    menu = element(response.content, "run-select", "select")
    options = [text(o) for o in re.findall(r"<option.*?</option>", menu, re.S)]
    assert [o.split(" · ")[0] for o in options] == [
        f"Version {n}" for n in (latest.number, second.number, first.number)
    ]
    assert options[0].endswith("· 2차 독려")
    assert options[1].endswith("· 1차 독려 ★ official figures of 1차 독려")
    assert options[2].endswith("· 초청 ★ official figures of 초청")
    as_of = timezone.localtime(first.data_as_of).strftime("%Y-%m-%d %H:%M")
    assert f"Version {first.number} · {as_of} ·" in options[2]
    official = viewer().get(headline_url(survey, f"?wave={waves[0].pk}"))
    assert "Wave 초청" in text(element(official.content, "version-statement", "dl"))


def test_each_closed_wave_gets_a_version_of_its_own(survey: Survey, run: EstimateRun) -> None:
    start = timezone.now() - dt.timedelta(days=30)
    waves = [
        Wave.objects.create(
            survey=survey,
            name=f"wave {k}",
            kind=Wave.Kind.REMINDER,
            starts_at=start + dt.timedelta(days=k),
            ends_at=start + dt.timedelta(days=k + 1),
        )
        for k in (1, 2)
    ]

    official = [pipeline.close_wave(wave) for wave in waves]

    assert [r.number for r in official if r] == [run.number + 1, run.number + 2]
    assert [r.wave_id for r in official if r] == [w.pk for w in waves]


def test_unknown_versions_and_items_are_not_found(survey: Survey, run: EstimateRun) -> None:
    client = viewer()

    for query in ("?run=99", "?run=abc", "?wave=999999"):
        assert client.get(headline_url(survey, query)).status_code == 404, query
    assert client.get(detail_url(survey, "no_such_item")).status_code == 404
    assert client.get("/manage/no-such-survey/results/").status_code == 404


def test_without_published_estimates_the_page_says_so(survey: Survey) -> None:
    client = viewer()

    response = client.get(headline_url(survey))

    assert response.status_code == 200
    assert "No estimates have been published yet" in response.content.decode()
    assert client.get(detail_url(survey, "sf_adopted")).status_code == 404


# --- the detail -------------------------------------------------------------------------------


def test_the_detail_shows_every_domain_with_its_precision(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(detail_url(survey, "sf_adopted", "?option=yes"))

    # then: small firms .3241546885 (SE .06253463879), sec. H
    assert response.status_code == 200
    row = table_row(response.content, "size_class", "small enterprise")
    # estimate, SE, CI, CV 19.3 % (grade D), deff, n, estimated firms, df
    assert row.startswith("small enterprise 32.4 % 6.3 21.3–46.0 19.3 D 0.97 55 12,989 53")
    assert table_row(response.content, "region_area", "Capital area").startswith(
        "Capital area 24.6 %"
    )
    for domain in ("stratum_code", "size_class", "industry_group", "region_area", "region"):
        assert f'id="domain-{domain}"' in response.content.decode()
    overall = text(element(response.content, "overall", "section"))
    assert "19.9 %" in overall and "15.1–25.8" in overall and "n = 209" in overall


def test_the_detail_blanks_suppressed_cells_with_their_reason(
    survey: Survey, run: EstimateRun
) -> None:
    response = viewer().get(detail_url(survey, "sf_adopted", "?option=yes"))

    top = Estimate.objects.get(
        run=run, item="sf_adopted", option="yes", domain="stratum_code", domain_value="midsize_top"
    )
    assert top.suppressed and top.estimate is not None and top.n == 4
    row = table_row(response.content, "stratum_code", "midsize_top")
    assert f"{top.estimate * 100:.1f}" not in row
    assert row.startswith(
        "midsize_top — suppressed: Fewer than 5 respondents in the base (confidentiality) b ,"
    )
    # estimate, SE, CI, CV, grade and deff blank; n = 4
    assert " k — — — — — 4 " in row and "Suppressed: Fewer than 5 respondents in the base" in row


def test_unreliable_cells_are_published_with_a_warning(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(detail_url(survey, "sf_adopted", "?option=yes"))

    micro = Estimate.objects.get(
        run=run, item="sf_adopted", option="yes", domain="size_class", domain_value="micro"
    )
    assert not micro.suppressed and micro.grade == "E" and micro.n == 80
    assert micro.estimate is not None
    row = table_row(response.content, "size_class", "micro enterprise")
    assert f"{micro.estimate * 100:.1f}" in row
    assert "CI too wide for a small share" in row


def test_the_detail_shows_totals_with_their_rse_caution(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(detail_url(survey, "invest_amount", "?option=&statistic=total"))

    overall = text(element(response.content, "overall", "section"))
    assert overall.startswith("All firms: Total (KRW million) 11,056,548 m")
    assert "RSE 25–50 %: use with caution" in text(element(response.content, "legend", "section"))


def test_the_charts_never_carry_a_suppressed_value(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(detail_url(survey, "sf_adopted", "?option=yes"))

    data = chart_data(response.content)
    sizes = next(d for d in data["domains"] if d["key"] == "size_class")
    assert sizes["labels"] == [
        "micro enterprise",
        "small enterprise",
        "medium enterprise",
        "mid-sized enterprise",
    ]
    assert sizes["values"][0] == pytest.approx(8.627813898, abs=1e-7)
    assert sizes["values"][1] == pytest.approx(32.41546885, abs=1e-7)
    strata = next(d for d in data["domains"] if d["key"] == "stratum_code")
    top = strata["labels"].index("midsize_top")
    assert strata["values"][top] is None and strata["low"][top] is None
    assert data["percent"] is True
    assert all(d["key"] != "sf_adopted" for d in data["domains"])


def test_the_history_shows_every_version_and_marks_official_ones(
    survey: Survey, run: EstimateRun, wave: Wave
) -> None:
    pipeline.recompute(survey, trigger="test", force=True)
    Wave.objects.filter(pk=wave.pk).update(official_run=run)

    response = viewer().get(detail_url(survey, "sf_adopted", "?option=yes"))

    history = chart_data(response.content)["history"]
    assert history["runs"] == [run.number, run.number + 1]
    assert history["values"] == [pytest.approx(19.886410957, abs=1e-8)] * 2
    assert history["low"][0] == pytest.approx(15.073885918, abs=1e-8)
    assert history["official"] == ["1차 조사", None]


def test_the_detail_offers_every_answer_of_the_item(survey: Survey, run: EstimateRun) -> None:
    response = viewer().get(detail_url(survey, "sf_level", f"?run={run.number}"))

    tabs = text(element(response.content, "tabs", "ul"))
    assert tabs == "Basic Intermediate 1 Intermediate 2 Advanced"
    assert "option=intermediate1&amp;statistic=proportion" in response.content.decode()


def test_a_stored_flag_lists_its_reasons() -> None:
    assert reasons_of("NO_DATA+NCHS_N_LT_30+NCHS_NEFF_LT_30") == [
        "NO_DATA",
        "NCHS_N_LT_30",
        "NCHS_NEFF_LT_30",
    ]
    assert reasons_of("RSE_GT_50+COMPLEMENTARY") == ["RSE_GT_50", "COMPLEMENTARY"]
    assert reasons_of("OK") == []


# --- speed and access -------------------------------------------------------------------------

# Session, user, 2 for permissions, survey, waves, version menu, run, estimates (+ history on
# the detail), + the questionnaire when this process has not read it yet.
HEADLINE_QUERIES = 10
DETAIL_QUERIES = 11


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_pages_take_a_constant_number_of_queries(
    survey: Survey, run: EstimateRun, django_assert_max_num_queries: Any
) -> None:
    client = viewer()
    pages = [headline_url(survey), detail_url(survey, "sf_level", "?option=basic")]
    first = [queries(client, url) for url in pages]

    for _ in range(3):
        pipeline.recompute(survey, trigger="test", force=True)

    assert [queries(client, url) for url in pages] == first
    with django_assert_max_num_queries(HEADLINE_QUERIES):
        client.get(pages[0])
    with django_assert_max_num_queries(DETAIL_QUERIES):
        client.get(pages[1])


def test_anonymous_visitors_are_sent_to_sign_in(survey: Survey, run: EstimateRun) -> None:
    for url in (headline_url(survey), detail_url(survey, "sf_adopted")):
        response = Client().get(url)

        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_users_without_the_results_permission_are_refused(survey: Survey, run: EstimateRun) -> None:
    client = viewer("en", "manage_fieldwork")

    for url in (headline_url(survey), detail_url(survey, "sf_adopted")):
        assert client.get(url).status_code == 403


# --- charts, breadcrumbs, units ------------------------------------------------------------


def test_the_headline_draws_a_bar_chart_with_ci_for_each_choice_question(
    survey: Survey, run: EstimateRun
) -> None:
    # when
    response = viewer().get(headline_url(survey))

    # then: one chart per question answered by shares, with every published bar's interval
    data = chart_data(response.content)
    charts = {domain["key"]: domain for domain in data["domains"]}
    assert {"sf_adopted", "sf_level", "sf_tech"} <= set(charts)
    assert "invest_amount" not in charts  # a mean, not shares
    adopted = charts["sf_adopted"]
    assert adopted["labels"] == ["Yes", "No"]
    assert adopted["values"][0] == pytest.approx(19.88641096)
    assert adopted["low"][0] == pytest.approx(15.07388592)
    assert adopted["high"][0] == pytest.approx(25.76918576)
    page = response.content.decode()
    assert page.count('<canvas id="chart-') == len(data["domains"])


def test_headline_charts_leave_suppressed_bars_out(survey: Survey, run: EstimateRun) -> None:
    # given: the overall share of one option is suppressed
    suppressed = Estimate.objects.filter(
        run=run, domain="all", item="sf_level", option="basic", statistic="proportion"
    )
    assert suppressed.update(suppressed=True, flag="SUPPRESS+CONFIDENTIALITY_MIN_N") == 1

    # when
    data = chart_data(viewer().get(headline_url(survey)).content)

    # then: no value of that bar reaches the page, the others do
    level = next(d for d in data["domains"] if d["key"] == "sf_level")
    assert level["labels"][0] == "Basic"
    assert (level["values"][0], level["low"][0], level["high"][0]) == (None, None, None)
    assert any(value is not None for value in level["values"][1:])


def test_the_breadcrumb_names_the_question(survey: Survey, run: EstimateRun) -> None:
    # when
    page = viewer().get(detail_url(survey, "sf_adopted")).content.decode()

    # then
    crumbs = page[page.index('class="breadcrumb"') :]
    crumbs = crumbs[: crumbs.index("</ol>")]
    assert "Results Has your company adopted (built)" in text(crumbs)
    assert text(crumbs).endswith("…")
    assert "sf_adopted" not in text(crumbs)


def test_a_mean_is_shown_in_its_unit_on_its_page(survey: Survey, run: EstimateRun) -> None:
    # when
    response = viewer().get(detail_url(survey, "invest_amount", "?statistic=mean"))

    # then: the overall figure under its label, the tables' column, both with the unit
    assert text(element(response.content, "overall-title", "h2")) == (
        "All firms: Mean (KRW million)"
    )
    assert "Estimate (KRW million)" in response.content.decode()
