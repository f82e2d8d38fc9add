"""Quality flags and suppression (methodology sec. F)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.estimation import Design, estimate_mean
from analytics.quality import (
    CAUTION,
    DF_LOW,
    DOMINANCE,
    MIN_CELL,
    MIN_N,
    NCHS_N,
    NCHS_NEFF,
    NCHS_RELATIVE_WIDTH,
    NCHS_WIDTH,
    NO_DATA,
    OK,
    P_EXTREME,
    REVIEW,
    RSE_CAUTION,
    RSE_HIGH,
    SUPPRESS,
    Thresholds,
    assess,
    proportion_quality,
    rse_quality,
    top_share,
)


def test_precise_proportion_with_a_large_base_is_shown() -> None:
    q = proportion_quality(p=0.5, se=0.01, n=2500, df=2000)

    assert (q.flag, q.suppressed, q.reason) == (OK, False, "")


def test_proportion_with_fewer_than_30_respondents_is_suppressed() -> None:
    q = proportion_quality(p=0.5, se=0.01, n=29, df=200)

    assert q.suppressed and q.reason == NCHS_N


def test_low_effective_sample_size_is_suppressed() -> None:
    # n_eff = 0.25 / 0.1^2 = 25 < 30
    q = proportion_quality(p=0.5, se=0.1, n=400, df=200)

    assert q.suppressed and q.reason == NCHS_NEFF


def test_wide_korn_graubard_interval_is_suppressed() -> None:
    # n_eff = 0.25/0.08^2 = 39 >= 30, but the KG width is about 0.31
    q = proportion_quality(p=0.5, se=0.08, n=400, df=200)

    assert q.suppressed and q.reason == NCHS_WIDTH


def test_small_proportion_with_large_relative_width_is_suppressed() -> None:
    # width about 0.06 (> 0.05) but > 130 % of p = 0.03
    q = proportion_quality(p=0.03, se=0.012, n=1000, df=500)

    assert q.suppressed and q.reason == NCHS_RELATIVE_WIDTH


def test_low_degrees_of_freedom_are_flagged_for_review() -> None:
    q = proportion_quality(p=0.5, se=0.01, n=2500, df=7)

    assert (q.flag, q.suppressed, q.reason) == (REVIEW, False, DF_LOW)


def test_zero_proportion_is_flagged_not_suppressed_when_the_base_is_large() -> None:
    q = proportion_quality(p=0.0, se=0.0, n=400, df=200, n_cell=0)

    assert (q.flag, q.suppressed, q.reason) == (REVIEW, False, P_EXTREME)


def test_confidentiality_rules_come_first() -> None:
    q = proportion_quality(
        p=[0.5, 0.01, np.nan], se=[0.2, 0.01, np.nan], n=[4, 400, 0], df=100, n_cell=[2, 4, 0]
    )

    assert q.reason.tolist() == [MIN_N, MIN_CELL, NO_DATA]
    assert q.suppressed.all()
    assert "NCHS_N_LT_30" in q.reasons[0]


def test_rse_rules_for_means_and_totals() -> None:
    q = rse_quality(estimate=[100.0, 100.0, 100.0], se=[10.0, 30.0, 60.0], n=50, df=30)

    assert q.flag.tolist() == [OK, CAUTION, SUPPRESS]
    assert q.reason.tolist() == ["", RSE_CAUTION, RSE_HIGH]


def test_dominated_amount_cell_is_suppressed() -> None:
    q = rse_quality(
        estimate=[100.0, 100.0],
        se=[5.0, 5.0],
        n=50,
        df=30,
        top_share=[0.6, 0.2],
        n_contributors=[40, 2],
    )

    assert q.reason.tolist() == [DOMINANCE, DOMINANCE]


def test_thresholds_are_configurable() -> None:
    strict = Thresholds(rse_caution=0.05, rse_suppress=0.08)

    q = rse_quality(estimate=100.0, se=10.0, n=50, df=30, thresholds=strict)

    assert q.suppressed and q.reason == RSE_HIGH


def test_assess_applies_nchs_to_proportions_and_rse_to_amounts() -> None:
    rng = np.random.default_rng(1)
    y = np.column_stack([rng.integers(0, 2, 400), rng.gamma(2.0, 50.0, 400)]).astype(float)
    est = estimate_mean(Design(np.full(400, 10.0), np.repeat([0, 1], 200)), y)

    q = assess(est, proportion=[True, False])

    assert q.flag.tolist() == [OK, OK]
    assert est.n_eff[0] == pytest.approx(
        min(est.estimate[0] * (1 - est.estimate[0]) / est.variance[0], 400)
    )


def test_top_share_is_the_largest_weighted_contribution() -> None:
    share = top_share([1.0, 1.0, 8.0], [1.0, 1.0, 1.0])

    assert share[0] == pytest.approx(0.8)


def test_complementary_suppression_hides_the_cell_that_would_give_a_suppressed_one_away() -> None:
    from analytics.quality import complementary

    # given: options a, b, c of one question (they add to 100 %); b is suppressed
    suppressed = np.array([False, True, False])
    n = np.array([40, 3, 12])

    # when
    out = complementary(suppressed, n, [(np.array([0, 1, 2]), None)])

    # then: the smallest other option (c) is suppressed too
    assert out.tolist() == [False, True, True]


def test_a_partition_whose_total_is_suppressed_gives_nothing_away() -> None:
    from analytics.quality import complementary

    suppressed = np.array([True, True, False, False])  # total, then three domain cells
    out = complementary(suppressed, np.array([9, 2, 4, 3]), [(np.array([1, 2, 3]), 0)])

    assert out.tolist() == [True, True, False, False]
