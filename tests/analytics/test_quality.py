"""Quality flags and suppression (methodology sec. F)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.engine.estimation import Design, ci_korn_graubard, ci_logit, estimate_mean
from analytics.engine.quality import (
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
    Thresholds,
    assess,
    grade,
    proportion_quality,
    rse_quality,
    top_share,
)


def test_precise_proportion_with_a_large_base_is_shown() -> None:
    q = proportion_quality(p=0.5, se=0.01, n=2500, df=2000)

    assert (q.flag, q.suppressed, q.reason) == (OK, False, "")


def test_proportion_with_fewer_than_30_respondents_is_published_with_a_warning() -> None:
    q = proportion_quality(p=0.5, se=0.01, n=29, df=200)

    assert (q.flag, q.suppressed, q.reason) == (CAUTION, False, NCHS_N)


def test_low_effective_sample_size_is_a_warning() -> None:
    # n_eff = 0.25 / 0.1^2 = 25 < 30
    q = proportion_quality(p=0.5, se=0.1, n=400, df=200)

    assert not q.suppressed and q.reason == NCHS_NEFF


def test_wide_korn_graubard_interval_is_a_warning() -> None:
    # n_eff = 0.25/0.08^2 = 39 >= 30, but the KG width is about 0.31
    q = proportion_quality(p=0.5, se=0.08, n=400, df=200)

    assert not q.suppressed and q.reason == NCHS_WIDTH


def test_small_proportion_with_large_relative_width_is_a_warning() -> None:
    # width about 0.06 (> 0.05) but > 130 % of p = 0.03
    q = proportion_quality(p=0.03, se=0.012, n=1000, df=500)

    assert (q.flag, q.suppressed, q.reason) == (CAUTION, False, NCHS_RELATIVE_WIDTH)


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

    assert q.flag.tolist() == [OK, CAUTION, CAUTION]
    assert q.reason.tolist() == ["", RSE_CAUTION, RSE_HIGH]
    assert not q.suppressed.any()


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

    assert not q.suppressed and q.reason == RSE_HIGH


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
    from analytics.engine.quality import complementary

    # given: options a, b, c of one question (they add to 100 %); b is suppressed
    suppressed = np.array([False, True, False])
    n = np.array([40, 3, 12])

    # when
    out = complementary(suppressed, n, [(np.array([0, 1, 2]), None)])

    # then: the smallest other option (c) is suppressed too
    assert out.tolist() == [False, True, True]


def test_a_partition_whose_total_is_suppressed_gives_nothing_away() -> None:
    from analytics.engine.quality import complementary

    suppressed = np.array([True, True, False, False])  # total, then three domain cells
    out = complementary(suppressed, np.array([9, 2, 4, 3]), [(np.array([1, 2, 3]), 0)])

    assert out.tolist() == [True, True, False, False]


def test_only_confidentiality_suppresses() -> None:
    # given: every reliability rule fires on the first cell, confidentiality on the second
    q = proportion_quality(p=[0.03, 0.5], se=[0.05, 0.01], n=[20, 3], df=[5, 200])

    assert not q.suppressed[0] and q.flag[0] == REVIEW  # df < 8 is the worst of its flags
    assert set(q.reasons[0].split("+")) >= {NCHS_N, NCHS_NEFF, NCHS_RELATIVE_WIDTH, DF_LOW}
    assert q.suppressed[1] and q.reason[1] == MIN_N


@pytest.mark.parametrize(
    ("cv", "letter"),
    [(0.0, "A"), (0.0499, "A"), (0.05, "B"), (0.0999, "B"), (0.10, "C"), (0.1499, "C"),
     (0.15, "D"), (0.2499, "D"), (0.25, "E"), (0.49, "E"), (3.0, "E"), (np.nan, ""),
     (np.inf, "")],
)  # fmt: skip
def test_grades_follow_the_statistics_canada_cv_letters(cv: float, letter: str) -> None:
    assert grade([cv]).tolist() == [letter]


def test_a_proportion_of_one_up_to_rounding_is_flagged_with_a_korn_graubard_interval() -> None:
    # given: all-ones cells whose weighted mean rounds just below 1
    p = np.array([0.9999999999999999, 1.0, 1e-17, 0.999999])
    se = np.array([1e-9, 0.0, 1e-10, 0.0005])

    q = proportion_quality(p=p, se=se, n=[100, 100, 100, 100], df=90, n_cell=[100, 100, 0, 99])
    low, high = ci_korn_graubard(p, se, np.full(4, 100.0), np.full(4, 90.0))

    assert [P_EXTREME in r for r in q.reasons] == [True, True, True, False]
    # Clopper-Pearson on n = 100: [0.025^(1/100), 1] and [0, 1 - 0.025^(1/100)]
    assert low[0] == pytest.approx(0.025 ** (1 / 100), rel=1e-12) and high[0] == 1.0
    assert (low[2], high[2]) == (0.0, pytest.approx(1 - 0.025 ** (1 / 100), rel=1e-12))
    lo, hi = ci_logit(p, se, np.full(4, 90.0))
    assert np.isnan(lo[:3]).all() and lo[3] < hi[3]
