"""Response rates of the fieldwork dashboard from real cases (methodology sec. C; H14 and the
synthetic case of sec. H), by domain and by wave, their export, and the chase list."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone, translation

from respondents import chase, rates
from respondents.models import (
    Case,
    ContactAttempt,
    DispositionEvent,
    FrameUnit,
    SampleDesign,
    Stratum,
    Wave,
)
from surveys.models import Response, Survey
from tests import factories
from tests.respondents.test_aapor import SYNTHETIC_RATES

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "smf_synthetic_sample.csv"
# One AAPOR code per rate category (UH and UO are both unknown eligibility).
CODES = {
    "I": "1.1",
    "P": "1.2",
    "R": "2.11",
    "NC": "2.20",
    "O": "2.30",
    "UH": "3.10",
    "UO": "3.20",
    "U": "3.19",
    "NE": "4.21",
}
AREA_REGIONS = {"capital": "Gyeonggi", "noncapital": "Gyeongnam"}


# --- builders --------------------------------------------------------------------------------


def new_survey(slug: str = "rates") -> Survey:
    return Survey.objects.create(slug=slug, title="스마트제조 실태조사")


def new_design(survey: Survey, variables: Iterable[str] = ("size_class",)) -> SampleDesign:
    return factories.design(survey, strata_variables=list(variables))


def new_stratum(design: SampleDesign, key: str, *, N: int, n: int, **values: str) -> Stratum:
    return factories.stratum(
        design,
        key,
        values=values or {"size_class": key},
        population=N,
        allocated=n,
        sample_size=n,
    )


def add_cases(
    stratum: Stratum,
    codes: Iterable[str],
    *,
    reserve: bool = False,
    since: dt.datetime | None = None,
    **unit: Any,
) -> list[Case]:
    """In-sample cases (or unreleased reserve units) of a stratum, one per disposition code."""
    survey = stratum.design.survey
    cases = []
    for code in codes:
        frame_unit = factories.frame_unit(survey, **unit)
        cases.append(
            Case.objects.create(
                survey=survey,
                stratum=stratum,
                frame_unit=frame_unit,
                business_id=frame_unit.business_id,
                selection_order=frame_unit.pk,
                is_reserve=reserve,
                reserve_rank=1 if reserve else None,
                disposition=code,
                disposition_at=since or timezone.now(),
            )
        )
    return cases


def synthetic_survey() -> Survey:
    """The 326 cases of smf_synthetic_sample.csv in their nine strata (N_h, n_h from the file)."""
    survey = new_survey("synthetic")
    design = new_design(survey, ("size_class", "capital"))
    with FIXTURE.open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    for key in dict.fromkeys(row["stratum"] for row in rows):
        members = [row for row in rows if row["stratum"] == key]
        first = members[0]
        stratum = new_stratum(
            design,
            key,
            N=int(first["N_h"]),
            n=int(first["n_h"]),
            size_class=first["size"],
            capital=first["region"],
        )
        add_cases(
            stratum,
            [CODES[row["disposition"]] for row in members],
            size_class=first["size"],
            region=AREA_REGIONS[first["region"]],
        )
    return survey


def h14_survey() -> Survey:
    survey = new_survey("h14")
    stratum = new_stratum(new_design(survey), "small", N=120, n=12)
    counts = {"I": 4, "P": 2, "R": 1, "NC": 1, "O": 1, "UH": 1, "UO": 1, "NE": 1}
    add_cases(stratum, [CODES[name] for name, n in counts.items() for _ in range(n)])
    return survey


def rows_of(report: rates.Fieldwork, domain: str) -> dict[str, rates.Row]:
    return {row.value: row for row in report.tables[domain]}


# --- AAPOR rates from real cases -------------------------------------------------------------


def test_h14_counts_give_the_outcomerate_readme_rates() -> None:
    # given the outcomerate README's dispositions as cases
    survey = h14_survey()

    # when
    total = rates.fieldwork(survey, weighted=False).total

    # then
    expected = {
        "e": 0.9,
        "RR1": 0.364, "RR2": 0.545, "RR3": 0.370, "RR4": 0.556, "RR5": 0.444, "RR6": 0.667,
        "COOP1": 0.500, "COOP2": 0.750, "COOP3": 0.571, "COOP4": 0.857,
        "REF1": 0.091, "REF2": 0.093, "REF3": 0.111,
        "CON1": 0.727, "CON2": 0.741, "CON3": 0.889,
    }  # fmt: skip
    assert total.counts == {"I": 4, "P": 2, "R": 1, "NC": 1, "O": 1, "U": 2, "NE": 1}
    for name, value in expected.items():
        assert total.rates[name] == pytest.approx(value, abs=0.0005), name


def test_synthetic_sample_unweighted_rates_match_r() -> None:
    # given
    survey = synthetic_survey()

    # when
    total = rates.fieldwork(survey, weighted=False).total

    # then
    assert total.cases == 326
    assert total.counts == {"I": 188, "P": 21, "R": 35, "NC": 22, "O": 9, "U": 26, "NE": 25}
    for name, value in SYNTHETIC_RATES.items():
        assert total.rates[name] == pytest.approx(value, abs=1e-9), name


def test_synthetic_sample_weighted_rates_match_r() -> None:
    # given
    survey = synthetic_survey()

    # when
    total = rates.fieldwork(survey, weighted=True).total

    # then
    assert total.rates["e"] == pytest.approx(0.9194746984, abs=1e-9)
    assert total.rates["RR3"] == pytest.approx(0.6089869071, abs=1e-9)
    assert sum(total.counts.values()) == pytest.approx(163_273)
    assert total.cases == 326


def test_weighted_counts_of_a_stratum_are_its_cases_times_n_h_over_N_h() -> None:
    # given
    survey = synthetic_survey()

    # when
    micro = rows_of(rates.fieldwork(survey, weighted=True), "stratum")["micro_cap"]

    # then
    assert micro.cases == 60
    assert sum(micro.counts.values()) == pytest.approx(45406)


def test_each_row_estimates_e_from_its_own_resolved_cases() -> None:
    # given micro firms with two ineligibles and small firms with none
    survey = new_survey()
    design = new_design(survey)
    micro = new_stratum(design, "micro", N=100, n=6)
    small = new_stratum(design, "small", N=100, n=4)
    add_cases(micro, ["1.1", "1.1", "4.21", "4.22", "3.19", "3.19"], size_class="micro")
    add_cases(small, ["1.1", "1.1", "1.1", "3.19"], size_class="small")

    # when
    report = rates.fieldwork(survey, weighted=False)

    # then
    by_size = rows_of(report, "size_class")
    assert by_size["micro"].rates["e"] == pytest.approx(0.5)
    assert by_size["micro"].rates["RR3"] == pytest.approx(2 / (2 + 0.5 * 2))
    assert by_size["small"].rates["e"] == pytest.approx(1.0)
    assert by_size["small"].rates["RR3"] == pytest.approx(3 / 4)
    assert report.total.rates["e"] == pytest.approx(5 / 7)
    assert report.total.rates["RR3"] == pytest.approx(5 / (5 + 5 / 7 * 3))


def test_a_row_without_resolved_cases_has_no_e_and_no_rr3() -> None:
    # given
    survey = new_survey()
    add_cases(new_stratum(new_design(survey), "small", N=10, n=2), ["3.11", "3.19"])

    # when
    total = rates.fieldwork(survey, weighted=False).total

    # then
    assert math.isnan(total.rates["e"]) and math.isnan(total.rates["RR3"])
    assert total.e is None and total.percents["RR3"] is None
    assert total.rates["RR1"] == 0.0


def test_unreleased_reserve_units_are_not_counted() -> None:
    # given
    survey = new_survey()
    stratum = new_stratum(new_design(survey), "small", N=100, n=2)
    add_cases(stratum, ["1.1", "3.19"])
    add_cases(stratum, ["3.11", "3.11"], reserve=True)
    released = add_cases(stratum, ["1.1"], reserve=True)[0]
    Case.objects.filter(pk=released.pk).update(released_at=timezone.now())

    # when
    report = rates.fieldwork(survey, weighted=False)

    # then
    assert report.sampled == 3
    assert report.total.counts["I"] == 2 and report.total.counts["U"] == 1


def test_domains_are_size_class_region_area_and_industry_group_of_the_frame_unit() -> None:
    # given
    survey = new_survey()
    stratum = new_stratum(new_design(survey), "small", N=100, n=3)
    add_cases(stratum, ["1.1"], region="Busan", ksic="10110")
    add_cases(stratum, ["2.11", "4.21"], region="Seoul", ksic="29199")

    # when
    with translation.override("en"):
        report = rates.fieldwork(survey, weighted=False)

    # then
    assert rows_of(report, "region")["Busan"].counts["I"] == 1
    assert rows_of(report, "region_area")["capital"].cases == 2
    assert rows_of(report, "region_area")["dongnam"].label == "Dongnam (south-east)"
    assert set(rows_of(report, "industry_group")) == {"food_beverage", "machinery"}
    assert rows_of(report, "industry_group")["machinery"].counts["R"] == 1
    assert rows_of(report, "stratum")["small"].cases == 3


# --- by wave, and completes per day ----------------------------------------------------------


@pytest.fixture
def waves_survey() -> tuple[Survey, dict[str, Case], list[Wave], dt.datetime]:
    """Three waves of ten days from day 0 (noon); the third is under way on day 25."""
    survey = new_survey("waves")
    stratum = new_stratum(new_design(survey), "small", N=50, n=5)
    t0 = timezone.localtime(timezone.now() - dt.timedelta(days=25)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    waves = [
        Wave.objects.create(
            survey=survey,
            name=name,
            kind=kind,
            starts_at=t0 + dt.timedelta(days=start),
            ends_at=None if end is None else t0 + dt.timedelta(days=end),
        )
        for name, kind, start, end in [
            ("초대", "invitation", 0, 10),
            ("1차 독려", "reminder", 10, 20),
            ("전화 독려", "phone", 20, None),
        ]
    ]
    names = ["early", "late", "ineligible", "silent", "refused"]
    cases = dict(zip(names, add_cases(stratum, ["3.11"] * 5, since=t0), strict=True))
    add_cases(stratum, ["3.11"], reserve=True, since=t0)

    def day(n: float) -> dt.datetime:
        return t0 + dt.timedelta(days=n)

    for name in ("early", "late", "ineligible", "refused"):
        cases[name].record_disposition("3.19", source="email", at=day(0.5))
    cases["early"].record_disposition("1.1", source="respondent", at=day(5))
    cases["late"].record_disposition("2.121", source="respondent", at=day(12))
    cases["late"].record_disposition("1.2", source="respondent", at=day(15))
    cases["ineligible"].record_disposition("4.21", source="manager", at=day(22))
    cases["refused"].record_disposition("2.11", source="manager", at=day(8))
    # Recorded late with an earlier time: not applied, so it changes nothing.
    cases["refused"].record_disposition("1.1", source="manager", at=day(3))
    return survey, cases, waves, t0


def test_each_closed_wave_shows_the_dispositions_at_its_end(waves_survey: Any) -> None:
    # given
    survey, _cases, _waves, _t0 = waves_survey

    # when
    with translation.override("en"):
        report = rates.fieldwork(survey, weighted=False)

    # then
    first, second, current = report.tables["wave"]
    assert (first.value, second.value, current.value) == ("초대", "1차 독려", "전화 독려")
    assert first.counts == {"I": 1, "P": 0, "R": 1, "NC": 0, "O": 0, "U": 3, "NE": 0}
    assert second.counts == {"I": 1, "P": 1, "R": 1, "NC": 0, "O": 0, "U": 2, "NE": 0}
    assert current.counts == {"I": 1, "P": 1, "R": 1, "NC": 0, "O": 0, "U": 1, "NE": 1}
    assert current.counts == report.total.counts
    assert first.rates["RR1"] == pytest.approx(1 / 5)
    assert current.label == "전화 독려 (so far)"


def test_weighted_wave_rows_use_base_weights(waves_survey: Any) -> None:
    # given
    survey, _cases, _waves, _t0 = waves_survey

    # when
    first = rates.fieldwork(survey, weighted=True).tables["wave"][0]

    # then: d = 50 / 5
    assert first.counts["I"] == pytest.approx(10.0)
    assert first.counts["U"] == pytest.approx(30.0)
    assert first.cases == 5


def test_waves_not_yet_started_are_not_shown(waves_survey: Any) -> None:
    # given
    survey, _cases, waves, _t0 = waves_survey
    Wave.objects.create(
        survey=survey,
        name="later",
        kind="reminder",
        starts_at=timezone.now() + dt.timedelta(days=3),
    )

    # when
    report = rates.fieldwork(survey, weighted=False)

    # then
    assert [row.value for row in report.tables["wave"]] == [w.name for w in waves]


def test_completes_per_day_follow_the_disposition_history(waves_survey: Any) -> None:
    # given
    survey, _cases, _waves, t0 = waves_survey

    # when
    progress = rates.fieldwork(survey, weighted=False).progress

    # then: from day 0 to today (the phone wave has no end), None after today
    start = timezone.localdate(t0)
    assert progress.days[0] == start and progress.days[-1] == timezone.localdate()
    by_day = dict(
        zip(progress.days, zip(progress.completes, progress.responses, strict=True), strict=True)
    )
    assert by_day[start + dt.timedelta(days=4)] == (0, 0)
    assert by_day[start + dt.timedelta(days=5)] == (1, 1)
    assert by_day[start + dt.timedelta(days=15)] == (1, 2)
    assert progress.completes[-1] == 1 and progress.responses[-1] == 2
    assert progress.target == 3  # 60 % of 5 without a survey target


def test_settled_events_are_counted_once_and_new_ones_added_to_them(waves_survey: Any) -> None:
    # given: the history recorded two hours ago (settled), counted once
    survey, cases, waves, _t0 = waves_survey
    DispositionEvent.objects.update(recorded_at=timezone.now() - dt.timedelta(hours=2))
    rates.fieldwork(survey, weighted=False)
    settled = DispositionEvent.objects.order_by("-pk").first()
    assert settled is not None
    key = rates._moves_key(survey, [w.ends_at for w in waves[:2]], 5)

    # when: a case completes now, and the page is shown again
    cases["silent"].record_disposition("1.1", source="respondent")
    again = rates.fieldwork(survey, weighted=False)

    # then: the settled counts were kept, and the result is that of a count from scratch
    assert cache.get(key).upto == settled.pk
    cache.delete(key)
    fresh = rates.fieldwork(survey, weighted=False)
    assert [r.counts for r in again.tables["wave"]] == [r.counts for r in fresh.tables["wave"]]
    assert again.progress == fresh.progress and again.progress.completes[-1] == 2


def test_the_curve_runs_to_the_planned_end_with_nothing_after_today(waves_survey: Any) -> None:
    # given
    survey, _cases, waves, t0 = waves_survey
    Wave.objects.filter(pk=waves[-1].pk).update(ends_at=t0 + dt.timedelta(days=40))
    Survey.objects.filter(pk=survey.pk).update(target_responses=4)
    survey.refresh_from_db()

    # when
    progress = rates.fieldwork(survey, weighted=False).progress

    # then
    assert progress.days[-1] == timezone.localdate(t0 + dt.timedelta(days=40))
    assert progress.completes[-1] is None
    assert progress.target == 4
    assert progress.chart_data()["labels"][0] == timezone.localdate(t0).isoformat()


# --- export ----------------------------------------------------------------------------------


def test_export_rows_have_the_documented_columns_total_first() -> None:
    # given
    survey = synthetic_survey()

    # when
    rows = rates.response_rate_rows(survey, weighted=False)

    # then
    assert all(list(row) == list(rates.EXPORT_COLUMNS) for row in rows)
    assert (rows[0]["domain"], rows[0]["domain_value"], rows[0]["cases"]) == ("all", "all", 326)
    assert {row["domain"] for row in rows} == {"all", *rates.DOMAINS}
    strata = [row for row in rows if row["domain"] == "stratum"]
    assert len(strata) == 9 and sum(row["cases"] for row in strata) == 326


def test_weighted_export_counts_are_sums_of_base_weights() -> None:
    # given
    survey = synthetic_survey()

    # when
    total = rates.response_rate_rows(survey, weighted=True)[0]

    # then
    assert total["cases"] == 326
    assert sum(total[c] for c in rates.CATEGORIES) == pytest.approx(163_273)
    assert total["RR3"] == pytest.approx(0.6089869071, abs=1e-9)


def test_csv_export_writes_the_same_figures_with_empty_cells_for_nan(tmp_path: Path) -> None:
    # given
    survey = h14_survey()
    add_cases(new_stratum(survey.designs.get(), "micro", N=10, n=1), ["3.19"], size_class="micro")
    path = tmp_path / "rates.csv"

    # when
    written = rates.export_response_rates(survey, path, weighted=False)

    # then
    with path.open(encoding="utf-8", newline="") as source:
        lines = list(csv.DictReader(source))
    rows = rates.response_rate_rows(survey, weighted=False)
    assert written == len(lines) == len(rows)
    assert lines[0]["RR3"] == repr(rows[0]["RR3"])
    micro = next(line for line in lines if line["domain_value"] == "micro")
    assert micro["e"] == "" and micro["RR3"] == "" and micro["RR1"] == "0.0"


def test_csv_export_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv"):
        rates.export_response_rates(new_survey(), tmp_path / "x", weighted=False, fmt="xlsx")


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    # given a wave named like a formula
    survey = h14_survey()
    Wave.objects.create(
        survey=survey,
        name="=HYPERLINK(1)",
        kind="other",
        starts_at=timezone.now() - dt.timedelta(days=1),
    )
    out = io.StringIO()

    # when
    rates.write_response_rates_csv(survey, out, weighted=False, bom=True)

    # then
    assert out.getvalue().startswith("\ufeffdomain,")
    assert "'=HYPERLINK(1)" in out.getvalue()


# --- chase list ------------------------------------------------------------------------------


@pytest.fixture
def chase_survey(survey: Survey) -> tuple[Survey, dict[str, Case]]:
    """Stratum "lagging" at 1 of 10 responses, "ahead" at 5 of 10 (target 60 %)."""
    design = new_design(survey)
    lagging = new_stratum(design, "lagging", N=100, n=10)
    ahead = new_stratum(design, "ahead", N=100, n=10)
    names = ["lag_busy", "lag_quiet", "lag_broke_off", "lag_submitted_break_off", "lag_opened"]
    codes = ["3.19", "3.19", "2.12", "2.12", "2.121"]
    cases = dict(zip(names, add_cases(lagging, codes), strict=True))
    closed = ["lag_done", "lag_refused", "lag_ineligible", "lag_closed", "lag_firm_refused"]
    closed_codes = ["1.1", "2.11", "4.21", "4.22", "2.111"]
    cases |= dict(zip(closed, add_cases(lagging, closed_codes), strict=True))
    cases |= dict(zip(["ahead_1", "ahead_2"], add_cases(ahead, ["3.19", "2.20"]), strict=True))
    add_cases(ahead, ["1.1", "1.1", "1.1", "1.2", "1.1", "4.21", "2.11", "1.1"][:8])
    add_cases(lagging, ["3.19"], reserve=True)
    for _ in range(3):
        ContactAttempt.objects.create(case=cases["lag_busy"], channel="phone", outcome="no_answer")
    ContactAttempt.objects.create(case=cases["ahead_1"], channel="email", outcome="sent")
    Response.objects.create(
        case=cases["lag_submitted_break_off"],
        questionnaire=survey.questionnaires.get(),
        status="submitted",
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
    )
    return survey, cases


def test_strata_lag_is_their_shortfall_against_sixty_percent_of_n_h(chase_survey: Any) -> None:
    # given
    survey, _cases = chase_survey

    # when
    lags = {lag.stratum.key: lag for lag in chase.stratum_lags(survey).values()}

    # then: lagging has 1 of a target of 6; ahead has 6 (I+P), its target
    assert lags["lagging"].responded == 1 and lags["lagging"].target == pytest.approx(6)
    assert lags["lagging"].shortfall == pytest.approx(0.5)
    assert lags["ahead"].responded == 6 and lags["ahead"].shortfall == 0.0


def test_chase_list_puts_lagging_strata_first_then_the_least_contacted(chase_survey: Any) -> None:
    # given
    survey, cases = chase_survey

    # when
    chased = list(chase.chase_cases(survey, chase.stratum_lags(survey)))

    # then
    order = ["lag_quiet", "lag_broke_off", "lag_opened", "lag_busy", "ahead_2", "ahead_1"]
    assert chased == [cases[name] for name in order]
    annotated: list[Any] = chased
    assert [case.attempts for case in annotated] == [0, 0, 0, 3, 0, 1]
    assert [case.shortfall for case in annotated] == pytest.approx([0.5] * 4 + [0.0] * 2)


def test_completers_refusers_ineligibles_and_submitted_cases_are_not_chased(
    chase_survey: Any,
) -> None:
    # given
    survey, cases = chase_survey

    # when
    chased = set(chase.chase_cases(survey, chase.stratum_lags(survey)))

    # then
    for name in ("lag_done", "lag_refused", "lag_ineligible", "lag_closed", "lag_firm_refused"):
        assert cases[name] not in chased, name
    assert cases["lag_submitted_break_off"] not in chased
    assert cases["lag_broke_off"] in chased and cases["lag_opened"] in chased
    assert len(chased) == 6  # the reserve unit is not in the sample


def test_a_survey_target_sets_the_strata_targets(chase_survey: Any) -> None:
    # given a target of 4 responses out of 20: 20 % per stratum
    survey, _cases = chase_survey
    survey.target_responses = 4
    survey.save(update_fields=["target_responses"])

    # when
    lags = {lag.stratum.key: lag for lag in chase.stratum_lags(survey).values()}

    # then
    assert lags["lagging"].target == pytest.approx(2)
    assert lags["lagging"].shortfall == pytest.approx(0.1)


def test_chase_csv_has_a_bom_the_contact_summary_and_safe_cells(chase_survey: Any) -> None:
    # given
    survey, cases = chase_survey
    FrameUnit.objects.filter(pk=cases["lag_quiet"].frame_unit_id).update(name="=cmd|' /C calc'!A0")
    out = io.StringIO()

    # when
    with translation.override("en"):
        written = chase.write_chase_csv(survey, out, contact=True)

    # then
    text = out.getvalue()
    assert text.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(text[1:])))
    assert written == len(lines) - 1 == 6
    header, first = lines[0], lines[1]
    assert first[header.index("name")] == "'=cmd|' /C calc'!A0"
    busy = next(line for line in lines if line[1] == cases["lag_busy"].business_id)
    assert busy[header.index("contact attempts")] == "3"
    assert busy[header.index("phone attempts")] == "3"
    assert busy[header.index("last outcome")] == "no answer"
    assert busy[header.index("email")] == cases["lag_busy"].frame_unit.email


def test_chase_csv_leaves_out_contact_details_without_permission(chase_survey: Any) -> None:
    # given
    survey, _cases = chase_survey
    out = io.StringIO()

    # when
    chase.write_chase_csv(survey, out, contact=False)

    # then
    assert "@example.com" not in out.getvalue()
