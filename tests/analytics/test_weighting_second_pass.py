"""Weighting second pass on the synthetic case (issue 11): raking with ineligible firms to
the eligible population, external control totals, trimming with recalibration, collapse
defaults, Korn-Graubard intervals of calibrated domains.

R values: tests/analytics/fixtures/r-checks/issue11_reference.R (survey 4.1.1), section 1:
classes = size (D2, D3), raked on size and region to the eligible population estimated from
the whole sample, epsilon 1e-10.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analytics import pipeline
from analytics.engine.weighting import WeightingError
from analytics.models import Estimate, EstimateRun
from analytics.spec import SpecError, parse_margins_csv, parse_spec
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import R_REFERENCE_SPEC, load_synthetic_case

pytestmark = pytest.mark.django_db

RAKED = replace(
    R_REFERENCE_SPEC,
    weighting_classes=("size_class",),
    calibration="raking",
    margins=("size_class", "region"),
)
R_CONTROLS = {
    ("size_class", "medium"): 14304.4162331499,
    ("size_class", "micro"): 93695.6428571429,
    ("size_class", "midsize"): 2019.0583535418,
    ("size_class", "small"): 40084.6388495473,
    ("region", "Gyeonggi"): 70496.3188726428,  # "capital" in the R fixture
    ("region", "Busan"): 79607.4374207390,  # "noncapital"
}


def cell(run: EstimateRun, item: str, option: str = "", domain: str = "all", value: str = "all"):  # type: ignore[no-untyped-def]
    return Estimate.objects.get(
        run=run, item=item, option=option, statistic="proportion", domain=domain, domain_value=value
    )


@pytest.fixture
def raked(survey: Survey) -> EstimateRun:
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test", spec=RAKED)
    assert run is not None
    return run


def test_raking_on_two_margins_with_ineligible_firms_publishes_r_values(raked: EstimateRun) -> None:
    # given: 25 confirmed-ineligible firms and 26 of unknown eligibility in the sample
    assert raked.snapshot["categories"]["NE"] == 25 and raked.snapshot["categories"]["U"] == 26

    adopted = cell(raked, "sf_adopted", "yes")
    micro = cell(raked, "sf_adopted", "yes", "size_class", "micro")

    # then: R rake(..., control = list(epsilon = 1e-10, maxit = 100))
    assert raked.status == "published"
    assert adopted.estimate == pytest.approx(0.1979905986, rel=1e-9)
    assert adopted.se == pytest.approx(0.02703305448, rel=1e-8)
    assert micro.estimate == pytest.approx(0.08645855771, rel=1e-9)
    assert micro.se == pytest.approx(0.03188696148, rel=1e-8)
    assert raked.diagnostics["sum_weights"] == pytest.approx(150103.7562933819, rel=1e-12)


def test_the_run_records_the_controls_every_margin_sums_to_the_same_total(
    raked: EstimateRun,
) -> None:
    controls = raked.diagnostics["controls"]

    assert controls["source"] == "sample" and controls["method"] == "raking"
    found = {(m["variable"], m["level"]): m["control"] for m in controls["margins"]}
    assert found == {key: pytest.approx(value, rel=1e-12) for key, value in R_CONTROLS.items()}
    for margin in controls["margins"]:
        assert margin["weighted"] == pytest.approx(margin["control"], rel=1e-9)
    sizes = sum(v for (var, _level), v in found.items() if var == "size_class")
    regions = sum(v for (var, _level), v in found.items() if var == "region")
    assert sizes == pytest.approx(regions, rel=1e-12)


def test_korn_graubard_of_calibrated_domains_uses_the_design_rows_as_r(
    survey: Survey,
) -> None:
    load_synthetic_case(survey)
    spec = replace(RAKED, ci_method="korn_graubard")

    run = pipeline.recompute(survey, trigger="test", spec=spec)
    assert run is not None

    # svyciprop(method = "beta"): t(nrow(design) - 1) with nrow 209 in every calibrated subset
    expected = {
        ("sf_adopted", "yes", "all", "all"): (0.1471489843, 0.2572760200),
        ("sf_level", "basic", "all", "all"): (0.5593833107, 0.8557506993),
        ("sf_adopted", "yes", "size_class", "micro"): (0.0342613449, 0.1733808546),
        ("sf_adopted", "yes", "size_class", "midsize"): (0.7200881600, 0.9815788021),
    }
    for (item, option, domain, value), (low, high) in expected.items():
        found = cell(run, item, option, domain, value)
        assert (found.ci_low, found.ci_high) == (
            pytest.approx(low, rel=1e-8),
            pytest.approx(high, rel=1e-8),
        ), (item, option, domain, value)
    assert cell(run, "sf_level", "basic").df == 66


def test_external_control_totals_are_used_and_recorded(survey: Survey) -> None:
    load_synthetic_case(survey)
    totals = parse_margins_csv(
        "variable,level,N\n"
        "size_class,micro,90000\nsize_class,small,40000\nsize_class,medium,15000\n"
        "size_class,midsize,2000\nregion,Gyeonggi,70000\nregion,Busan,77000.0001\n"
    )

    run = pipeline.recompute(survey, trigger="test", spec=replace(RAKED, margin_totals=totals))

    assert run is not None and run.diagnostics["controls"]["source"] == "file"
    margins = run.diagnostics["controls"]["margins"]
    micro = next(m for m in margins if m["level"] == "micro")
    # margins within 1e-6 of each other are scaled to their mean total
    assert micro["control"] == pytest.approx(90000 * 147000.00005 / 147000, rel=1e-12)
    assert micro["weighted"] == pytest.approx(micro["control"], rel=1e-9)
    assert run.diagnostics["sum_weights"] == pytest.approx(147000.00005, rel=1e-9)


def test_margins_that_disagree_on_the_total_are_refused() -> None:
    with pytest.raises(SpecError, match="disagree on the eligible population"):
        parse_margins_csv("variable,level,N\nsize_class,micro,100\nregion,Busan,101\n")


def test_a_margins_file_naming_a_level_the_sample_lacks_is_refused(survey: Survey) -> None:
    load_synthetic_case(survey)
    path = Path(survey.slug + "-margins.csv")
    path.write_text("variable,level,N\nregion,Jeju,10\nregion,Busan,20\n")
    try:
        with pytest.raises(CommandError, match="Jeju, which no sampled firm has"):
            call_command(
                "recompute",
                survey.slug,
                "--calibration",
                "raking",
                "--margins",
                "region",
                "--margins-file",
                str(path),
                stdout=io.StringIO(),
            )
    finally:
        path.unlink()
    assert not EstimateRun.objects.filter(survey=survey).exists()


def test_a_margins_file_must_give_every_calibration_variable() -> None:
    totals = {"size_class": {"micro": 10.0}}

    with pytest.raises(SpecError, match="exactly the calibration variables"):
        parse_spec(replace(RAKED, margin_totals=totals).to_json())


def test_trimming_recalibrates_until_caps_and_controls_both_hold(survey: Survey) -> None:
    # given: the raked weights reach 1328.8 (micro firms average 1171); cap them at 1300
    load_synthetic_case(survey)
    spec = replace(RAKED, trim_upper=1300.0)

    run = pipeline.recompute(survey, trigger="test", spec=spec)

    assert run is not None
    weights = np.array([final for _base, final in pipeline.run_weights(run).values()])
    assert weights.max() <= 1300.0 * (1 + 1e-6)
    for margin in run.diagnostics["controls"]["margins"]:
        assert margin["weighted"] == pytest.approx(margin["control"], rel=1e-6)
    assert 1 <= run.diagnostics["trim_rounds"] <= 10


def test_caps_that_the_controls_cannot_meet_fail_clearly_and_publish_nothing(
    survey: Survey,
) -> None:
    # micro firms' control (93,696 for 80 respondents) needs weights averaging 1171: a cap of
    # 1000 holds for the whole sample (mean 718) but never together with the controls
    load_synthetic_case(survey)
    spec = replace(RAKED, trim_upper=1000.0)

    with pytest.raises(WeightingError, match="did not settle in 10 rounds"):
        pipeline.recompute(survey, trigger="test", spec=spec)

    run = EstimateRun.objects.get(survey=survey)
    assert run.status == "failed" and "caps [0, 1000]" in run.error
    assert not run.estimates.exists()


def test_caps_below_the_mean_weight_are_refused_at_once(survey: Survey) -> None:
    load_synthetic_case(survey)

    with pytest.raises(WeightingError, match="cannot hold, the mean weight is"):
        pipeline.recompute(survey, trigger="test", spec=replace(RAKED, trim_upper=50.0))


def test_raking_that_does_not_converge_is_an_error_and_publishes_nothing(survey: Survey) -> None:
    load_synthetic_case(survey)
    spec = replace(RAKED, raking_maxit=1)

    with pytest.raises(WeightingError, match="raking did not converge in 1 sweeps"):
        pipeline.recompute(survey, trigger="test", spec=spec)

    assert not EstimateRun.objects.published().filter(survey=survey).exists()


def test_the_defaults_collapse_small_classes_and_log_it(
    survey: Survey, caplog: pytest.LogCaptureFixture
) -> None:
    # midsize_top has 4 respondents, below the default of 10 (methodology D3)
    load_synthetic_case(survey)
    defaults = parse_spec({})
    assert (defaults.min_respondents, defaults.max_adjustment) == (10, 3.0)
    assert (defaults.raking_epsilon, defaults.raking_maxit, defaults.trim_rounds) == (
        1e-10,
        100,
        10,
    )

    with caplog.at_level(logging.INFO, logger="analytics.pipeline"):
        run = pipeline.recompute(survey, trigger="test", spec=defaults)

    assert run is not None
    moves = {step["from"]: step["reason"] for step in run.diagnostics["collapsed"]}
    assert moves["stratum=midsize_top"] == "r_min"
    assert "stratum=midsize_top collapsed into" in caplog.text


def test_confidentiality_suppression_complements_without_hiding_the_table(
    survey: Survey,
) -> None:
    # given: mid-sized firms include fewer than 5 non-adopters (confidentiality)
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None
    by_size = {
        (e.domain_value, e.option): e
        for e in Estimate.objects.filter(run=run, item="sf_adopted", domain="size_class")
    }

    # then: that cell and its complements are hidden; micro firms (62 % of the population)
    # and every reliability warning stay published
    assert by_size[("midsize", "no")].suppressed and "MIN_CELL" in by_size[("midsize", "no")].flag
    assert by_size[("midsize", "yes")].suppressed  # the other option gives it away
    assert "COMPLEMENTARY" in by_size[("midsize", "yes")].flag
    assert not by_size[("micro", "yes")].suppressed and not by_size[("micro", "no")].suppressed
    unreliable = Estimate.objects.filter(run=run, flag__contains="NCHS", suppressed=True)
    assert (
        not unreliable.exclude(flag__contains="CONFIDENTIALITY")
        .exclude(flag__contains="COMPLEMENTARY")
        .exclude(flag__contains="NO_DATA")
        .exists()
    )
    graded = Estimate.objects.filter(run=run, suppressed=False).exclude(grade="")
    assert set(graded.values_list("grade", flat=True)) <= set("ABCDE")
    assert graded.filter(grade="E").exists() and graded.filter(grade="A").exists()


def test_the_estimates_workbook_gives_the_controls(raked: EstimateRun) -> None:
    import openpyxl

    from analytics import exports

    options = exports.make_options(raked.survey, "estimates", "xlsx", language="en")
    out = io.BytesIO()
    exports.export(options, out)

    book = openpyxl.load_workbook(io.BytesIO(out.getvalue()))
    rows = list(book["Controls"].iter_rows(min_row=2, max_row=7, values_only=True))
    found = {(variable, level): control for variable, level, control, _w in rows}
    assert found == {key: pytest.approx(value, rel=1e-12) for key, value in R_CONTROLS.items()}
