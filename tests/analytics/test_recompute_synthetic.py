"""The whole recompute (database → weights → estimates → published run) reproduces the R
survey values of the synthetic smart-manufacturing case (methodology sec. H)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from analytics import pipeline
from analytics.models import Estimate, EstimateRun, WeightingSpec
from analytics.spec import WeightingSpec as Spec
from respondents.models import Case, FrameUnit, SampleDesign, Stratum
from surveys.models import Response, Survey
from tests.factories import business_id

pytestmark = pytest.mark.django_db
FIXTURE = Path(__file__).parent / "fixtures" / "r-survey" / "smf_synthetic_sample.csv"
CODES = {
    "I": "1.1",
    "P": "1.2",
    "R": "2.111",
    "NC": "2.21",
    "O": "2.32",
    "UO": "3.19",
    "NE": "4.21",
}
REGION = {"capital": "Gyeonggi", "noncapital": "Busan"}
# The R reference (smf_expected.R) adjusts within every stratum, however few respond there.
R_REFERENCE_SPEC = Spec(min_respondents=2, max_adjustment=None)


def answers_of(row: dict[str, str]) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "sf_adopted": "yes" if row["adopted"] == "1" else "no",
        "importance": "very_important" if row["important"] == "1" else "neutral",
        "important_top2": int(row["important"]),
    }
    if row["adopted"] == "1":
        tech = [t for t in ("erp", "mes", "robot") if row[f"tech_{t}"] == "1"]
        answers.update(
            sf_level={"intermediate": "intermediate1"}.get(row["level"], row["level"]),
            main_area=row["main_area"],
            sf_tech=tech or ["other"],
        )
        if row["invest"]:
            answers.update(invest_own="yes", invest_amount=float(row["invest"]))
        else:
            answers["invest_own"] = "no"
    return answers


def load_synthetic_case(survey: Survey) -> None:
    """The R synthetic case as a survey, with the R reference's weighting spec (version 1)."""
    rows = list(csv.DictReader(FIXTURE.open()))
    WeightingSpec.objects.create(survey=survey, version=1, spec=R_REFERENCE_SPEC.to_json())
    design = SampleDesign.objects.create(
        survey=survey,
        strata_variables=["stratum_code"],
        allocation="proportional",
        sample_size=len(rows),
        seed=20250428,
        drawn_at=timezone.now(),
    )
    strata = {}
    for row in rows:
        if row["stratum"] not in strata:
            n = int(row["n_h"])
            strata[row["stratum"]] = Stratum.objects.create(
                design=design,
                key=row["stratum"],
                values={"stratum_code": row["stratum"]},
                population=int(row["N_h"]),
                allocated=n,
                sample_size=n,
            )
    for number, row in enumerate(rows, start=1):
        unit = FrameUnit.objects.create(
            survey=survey,
            business_id=business_id(number),
            name=f"firm {number}",
            ksic="29199",
            size_class=row["size"],
            region=REGION[row["region"]],
            employees=10,
            source_row=number + 1,
        )
        case = Case.objects.create(
            survey=survey,
            stratum=strata[row["stratum"]],
            frame_unit=unit,
            business_id=unit.business_id,
            selection_order=number,
            disposition=CODES[row["disposition"]],
        )
        if row["disposition"] in ("I", "P"):
            Response.objects.create(
                case=case,
                questionnaire_id=survey.questionnaire_id,
                answers=answers_of(row),
                status="submitted",
                submitted_at=timezone.now(),
                reference=f"SMF-T-{number:05d}",
            )


@pytest.fixture
def run(survey: Survey) -> EstimateRun:
    load_synthetic_case(survey)
    result = pipeline.recompute(survey, trigger="test")
    assert result is not None
    return result


def cell(
    run: EstimateRun,
    item: str,
    option: str = "",
    domain: str = "all",
    value: str = "all",
    statistic: str = "proportion",
) -> Estimate:
    return Estimate.objects.get(
        run=run, item=item, option=option, statistic=statistic, domain=domain, domain_value=value
    )


def test_weights_match_r(run: EstimateRun) -> None:
    diagnostics = run.diagnostics
    assert diagnostics["sum_weights"] == pytest.approx(150108.2024176, rel=1e-12)
    assert diagnostics["kish_deff"] == pytest.approx(1.3597156565, rel=1e-9)
    assert run.status == "published"
    assert run.snapshot["categories"] == {
        "I": 188,
        "P": 21,
        "R": 35,
        "NC": 22,
        "O": 9,
        "U": 26,
        "NE": 25,
    }


def test_adoption_matches_r_with_ci_deff_and_population(run: EstimateRun) -> None:
    adopted = cell(run, "sf_adopted", "yes")

    assert adopted.estimate == pytest.approx(0.1988641096, rel=1e-9)
    assert adopted.se == pytest.approx(0.02709899423, rel=1e-8)
    assert (adopted.ci_low, adopted.ci_high) == (
        pytest.approx(0.1507388592, rel=1e-9),
        pytest.approx(0.2576918576, rel=1e-9),
    )
    assert adopted.deff == pytest.approx(0.9600905249, rel=1e-8)
    assert adopted.df == 200 and adopted.n == 209
    assert adopted.population == pytest.approx(29851.13401, rel=1e-9)


def test_shares_of_a_single_choice_sum_to_one(run: EstimateRun) -> None:
    shares = Estimate.objects.filter(run=run, item="sf_level", domain="all")

    assert sum(s.estimate or 0.0 for s in shares) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("item", "option", "statistic", "estimate", "se"),
    [
        ("important_top2", "", "proportion", 0.3200054421, 0.03650568289),
        ("sf_level", "basic", "proportion", 0.724000363, 0.07080099613),
        ("sf_level", "advanced", "proportion", 0.0267443902, 0.01577835475),
        ("main_area", "production_mgmt", "proportion", 0.3949532887, 0.07632988258),
        ("main_area", "planning_strategy", "proportion", 0.2751066322, 0.07266906224),
        ("sf_tech", "erp", "proportion", 0.7746817661, 0.06077821992),
        ("sf_tech", "mes", "proportion", 0.2486761055, 0.06590964725),
        ("sf_tech", "robot", "proportion", 0.06309865352, 0.03454957273),
        ("invest_amount", "", "mean", 432.5741287, 73.82250757),
    ],
)
def test_adopter_only_items_are_estimated_over_adopters_as_r_does(
    run: EstimateRun, item: str, option: str, statistic: str, estimate: float, se: float
) -> None:
    found = cell(run, item, option, statistic=statistic)

    assert found.estimate == pytest.approx(estimate, rel=1e-9)
    assert found.se == pytest.approx(se, rel=1e-8)


@pytest.mark.parametrize(
    ("size", "estimate", "se"),
    [
        ("micro", 0.08627813898, 0.03192611371),
        ("small", 0.3241546885, 0.06253463879),
        ("medium", 0.4857119579, 0.07983487462),
        ("midsize", 0.9015049206, 0.05567888553),
    ],
)
def test_domains_by_size_class_match_r(
    run: EstimateRun, size: str, estimate: float, se: float
) -> None:
    found = cell(run, "sf_adopted", "yes", domain="size_class", value=size)

    assert found.estimate == pytest.approx(estimate, rel=1e-9)
    assert found.se == pytest.approx(se, rel=1e-8)


def test_the_basic_level_logit_interval_uses_the_adopter_domain_df(run: EstimateRun) -> None:
    basic = cell(run, "sf_level", "basic")

    assert (basic.ci_low, basic.ci_high) == (
        pytest.approx(0.5638926560, rel=1e-8),
        pytest.approx(0.8418168845, rel=1e-8),
    )


def test_a_second_run_on_unchanged_data_publishes_nothing_new(
    run: EstimateRun, survey: Survey
) -> None:
    again = pipeline.recompute(survey, trigger="test")

    assert again == run
    assert EstimateRun.objects.filter(survey=survey).count() == 1


def test_answers_domains_split_adopters_and_non_adopters(run: EstimateRun) -> None:
    among_adopters = cell(run, "important_top2", domain="sf_adopted", value="yes")
    among_others = cell(run, "important_top2", domain="sf_adopted", value="no")

    assert among_adopters.n + among_others.n == 209
    assert among_adopters.estimate is not None and 0 <= among_adopters.estimate <= 1


def test_the_run_keeps_every_case_weight_for_the_microdata(run: EstimateRun) -> None:
    weights = pipeline.run_weights(run)

    assert len(weights) == 326
    assert sum(final for _base, final in weights.values()) == pytest.approx(150108.2024176)
    nonrespondents = Case.objects.filter(survey=run.survey).exclude(disposition__in=["1.1", "1.2"])
    assert all(weights[c.pk][1] == 0 for c in nonrespondents)
    assert sum(base for base, _final in weights.values()) == pytest.approx(163273)


def test_no_suppressed_value_can_be_derived_from_published_ones(run: EstimateRun) -> None:
    cells = list(Estimate.objects.filter(run=run))
    by_option_set: dict[tuple[str, str, str], list[Estimate]] = {}
    for e in cells:
        if e.item in ("sf_level", "main_area", "importance", "sf_adopted", "invest_own"):
            by_option_set.setdefault((e.item, e.domain, e.domain_value), []).append(e)

    for group in by_option_set.values():
        assert sum(e.suppressed for e in group) != 1, [(e.option, e.flag) for e in group]
    assert any("COMPLEMENTARY" in e.flag for e in cells)


def test_the_frames_own_industry_group_is_the_domain_where_it_has_one(survey: Survey) -> None:
    load_synthetic_case(survey)
    first = Case.objects.filter(survey=survey).in_sample().order_by("pk").first()
    assert first is not None
    FrameUnit.objects.filter(pk=first.frame_unit_id).update(
        attributes={"industry_group": "from_the_register"}
    )

    snapshot = pipeline.load_snapshot(survey, answers=False)

    ids, found = snapshot.case_ids.tolist(), snapshot.variables["industry_group"].tolist()
    groups = dict(zip(ids, found, strict=True))
    assert groups[first.pk] == "from_the_register"
    assert "from_the_register" not in [g for pk, g in groups.items() if pk != first.pk]
