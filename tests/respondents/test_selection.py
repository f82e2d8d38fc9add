"""Stratified SRSWOR with ordered reserves (methodology sec. B)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analytics.engine.allocation import allocate_proportional
from analytics.engine.selection import SelectionError, select_stratified

STRATA = np.array(["a"] * 12 + ["b"] * 7 + ["c"] * 20 + ["d"] * 9)
N_H = {"a": 4, "b": 7, "c": 5, "d": 1}


def test_same_inputs_and_seed_give_the_same_sample() -> None:
    first = select_stratified(STRATA, N_H, seed=20250428, reserve_h={"c": 6})
    again = select_stratified(STRATA.tolist(), N_H, seed=20250428, reserve_h={"c": 6})

    assert np.array_equal(first.selected, again.selected)
    assert np.array_equal(first.strata["c"].reserve, again.strata["c"].reserve)


def test_different_seeds_give_different_samples() -> None:
    samples = {tuple(select_stratified(STRATA, N_H, seed=s).selected) for s in range(20)}

    assert len(samples) == 20


def test_each_stratum_gets_exactly_n_h_distinct_units_of_its_own() -> None:
    sample = select_stratified(STRATA, N_H, seed=1)

    for code, draw in sample.strata.items():
        assert len(draw.selected) == N_H[code]
        assert len(np.unique(draw.selected)) == N_H[code]
        assert np.all(STRATA[draw.selected] == code)
    assert len(np.unique(sample.selected)) == sum(N_H.values())


def test_reserve_is_disjoint_from_the_sample_and_keeps_its_release_order() -> None:
    reserve_h = {"a": 8, "c": 15, "d": 3}

    sample = select_stratified(STRATA, N_H, seed=7, reserve_h=reserve_h)

    for code, size in reserve_h.items():
        draw = sample.strata[code]
        assert len(draw.reserve) == size
        assert np.all(STRATA[draw.reserve] == code)
        assert not set(draw.reserve) & set(draw.selected)
        assert len(set(draw.reserve)) == size
    assert sample.strata["a"].reserve.tolist() != sorted(sample.strata["a"].reserve.tolist())
    assert len(sample.strata["b"].reserve) == 0


def test_asking_for_a_reserve_does_not_change_the_sample() -> None:
    plain = select_stratified(STRATA, N_H, seed=3)
    small = select_stratified(STRATA, N_H, seed=3, reserve_h={"c": 2})
    large = select_stratified(STRATA, N_H, seed=3, reserve_h={"c": 15})

    assert np.array_equal(plain.selected, large.selected)
    # A longer reserve list extends the shorter one: the release order is fixed.
    assert large.strata["c"].reserve[:2].tolist() == small.strata["c"].reserve.tolist()


def test_a_stratum_draw_ignores_the_other_strata_allocations() -> None:
    base = select_stratified(STRATA, N_H, seed=11)
    changed = select_stratified(STRATA, {**N_H, "a": 9, "d": 5}, seed=11)

    assert np.array_equal(base.strata["c"].selected, changed.strata["c"].selected)
    assert np.array_equal(base.strata["b"].selected, changed.strata["b"].selected)


def test_every_unit_is_included_with_probability_n_h_over_n_h() -> None:
    """2,000 draws (seeds 0..1999) of a 48-unit frame.

    Per unit the count of inclusions is Binomial(R, π_h), π_h = n_h/N_h; each must lie within
    4.5 binomial standard deviations of R·π_h (per-unit two-sided level ≈ 7e-6). Overall,
    within a stratum Σ_i (c_i − Rπ)² / (Rπ(1−π)·N/(N−1)) is χ² with N_h − 1 df (the counts
    sum to R·n_h); summed over the non-take-all strata it must lie between the 1e-6 and
    1 − 1e-6 quantiles, which also catches draws that are too even to be random.
    """
    draws = 2000
    counts = np.zeros(len(STRATA))
    for seed in range(draws):
        counts[select_stratified(STRATA, N_H, seed=seed).selected] += 1

    statistic, df = 0.0, 0
    for code, n in N_H.items():
        in_h = np.isin(STRATA, [code])
        size = int(in_h.sum())
        pi = n / size
        expected, spread = draws * pi, np.sqrt(draws * pi * (1 - pi))
        assert np.all(np.abs(counts[in_h] - expected) <= 4.5 * spread + 1e-9), code
        if n < size:
            statistic += np.sum((counts[in_h] - expected) ** 2) / (spread**2 * size / (size - 1))
            df += size - 1
    assert stats.chi2.ppf(1e-6, df) < statistic < stats.chi2.ppf(1 - 1e-6, df)


def test_a_full_scale_draw_selects_exactly_n_with_its_reserve() -> None:
    # given: 163,273 firms in 100 strata, 5,000 allocated proportionally, 20 % reserve
    rng = np.random.default_rng(0)
    strata = rng.choice([f"C{k:02d}-{s}" for k in range(10, 35) for s in range(4)], 163_273)
    codes, sizes = np.unique(strata, return_counts=True)
    allocation = allocate_proportional(sizes, 5000)
    n_h = dict(zip(codes.tolist(), allocation.n_h.tolist(), strict=True))
    reserve_h = {code: n // 5 for code, n in n_h.items()}

    # when
    sample = select_stratified(strata, n_h, seed=20250428, reserve_h=reserve_h)

    # then
    assert len(sample.selected) == 5000
    reserve = np.concatenate([draw.reserve for draw in sample.strata.values()])
    assert len(reserve) == sum(reserve_h.values())
    assert not set(reserve.tolist()) & set(sample.selected.tolist())


@pytest.mark.parametrize(
    ("n_h", "reserve_h", "seed", "message"),
    [
        ({"a": 4, "b": 7, "c": 5}, None, 1, "no sample size"),
        ({**N_H, "z": 1}, None, 1, "no units in the frame"),
        ({**N_H, "a": 13}, None, 1, "must be in 0..N_h"),
        ({**N_H, "a": -1}, None, 1, "must be in 0..N_h"),
        (N_H, {"b": 1}, 1, "fit in the 0 units"),
        (N_H, {"a": -2}, 1, "reserve"),
        (N_H, None, -5, "seed"),
    ],
)
def test_it_refuses_impossible_selections(n_h, reserve_h, seed, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select_stratified(STRATA, n_h, seed=seed, reserve_h=reserve_h)
