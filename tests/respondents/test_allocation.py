"""Stratum allocation (methodology sec. B)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.engine.allocation import (
    MINIMUM,
    TAKE_ALL,
    Allocation,
    AllocationError,
    allocate_cost_optimal,
    allocate_neyman,
    allocate_power,
    allocate_proportional,
    anticipated_precision,
    preview,
    proportion_sd,
)

# Sec. B worked example: size strata of the 163,273 firms and the published adoption rates.
SIZE_N = [100903, 44410, 15837, 2123]
SIZE_P = [0.087, 0.285, 0.542, 0.857]

# H15: PracTools Singlestage-samsize vignette (smho98 strata).
PT_N = [215, 65, 252, 50, 149, 144]
PT_S = [26787207, 10645109, 6909676, 11085034, 9817762, 44553355]
PT_C = [1400, 200, 300, 600, 450, 1000]


def printed(digits: int) -> float:
    """Half a unit in the last printed digit (sec. H tolerance)."""
    return 0.5 * 10.0**-digits + 1e-12


# --- worked example (sec. B) -----------------------------------------------------------------


def test_proportional_allocation_matches_the_worked_example() -> None:
    # when
    allocation = allocate_proportional(SIZE_N, 5000)
    s_h = proportion_sd(SIZE_P, SIZE_N)
    precision = anticipated_precision(SIZE_N, allocation.n_h, s_h)

    # then
    assert allocation.n_h.tolist() == [3090, 1360, 485, 65]
    assert precision.se_mean == pytest.approx(0.0050, abs=printed(4))
    assert precision.se_h == pytest.approx([0.0050, 0.0121, 0.0223, 0.0428], abs=printed(4))


def test_neyman_allocation_matches_the_worked_example() -> None:
    s_h = proportion_sd(SIZE_P, SIZE_N)

    allocation = allocate_neyman(SIZE_N, s_h, 5000)
    precision = anticipated_precision(SIZE_N, allocation.unrounded, s_h)

    assert allocation.unrounded == pytest.approx([2489.3, 1754.9, 690.7, 65.1], abs=printed(1))
    assert allocation.n == 5000
    assert precision.se_mean == pytest.approx(0.0049, abs=printed(4))
    assert precision.se_h == pytest.approx([0.0056, 0.0106, 0.0185, 0.0427], abs=printed(4))


def test_square_root_allocation_matches_the_worked_example() -> None:
    s_h = proportion_sd(SIZE_P, SIZE_N)

    allocation = allocate_power(SIZE_N, 5000, q=0.5)
    precision = anticipated_precision(SIZE_N, allocation.unrounded, s_h)

    assert allocation.unrounded == pytest.approx([2267.9, 1504.6, 898.5, 329.0], abs=printed(1))
    assert allocation.n == 5000
    assert precision.se_mean == pytest.approx(0.0050, abs=printed(4))
    assert precision.se_h == pytest.approx([0.0059, 0.0114, 0.0161, 0.0177], abs=printed(4))


def test_preview_shows_the_se_of_a_50_percent_proportion() -> None:
    table = preview(SIZE_N, [3090, 1360, 485, 65])

    first = table.strata[0]
    assert (first.N, first.n) == (100903, 3090)
    assert first.fraction == pytest.approx(3090 / 100903)
    # √((1 − f)·0.25·N/(N − 1)/n) for the micro stratum, and the stratified overall SE.
    assert first.se == pytest.approx(np.sqrt((1 - 3090 / 100903) * 0.25 * 100903 / 100902 / 3090))
    assert (table.overall.N, table.overall.n) == (163273, 5000)
    assert table.overall.se == pytest.approx(0.006962, abs=printed(6))


# --- H15 (PracTools) ---------------------------------------------------------------------


def test_neyman_allocation_matches_practools() -> None:
    allocation = allocate_neyman(PT_N, PT_S, 100, m_min=0)
    precision = anticipated_precision(PT_N, allocation.unrounded, PT_S)

    expected = [34.641683, 4.161947, 10.473487, 3.333804, 8.798970, 38.590108]
    assert allocation.unrounded == pytest.approx(expected, abs=printed(6))
    assert allocation.n == 100
    # PracTools prints "anticipated SE of estimated mean" (with fpc); the SE of the estimated
    # total is N = 875 times that, 1.511e9.
    assert precision.se_mean == pytest.approx(1727173, abs=printed(0))
    assert precision.se_total == pytest.approx(875 * precision.se_mean)


def test_cost_optimal_allocation_matches_practools() -> None:
    allocation = allocate_cost_optimal(PT_N, PT_S, PT_C, 100_000, m_min=0)

    expected = [30.605403, 9.728474, 19.989127, 4.499121, 13.711619, 40.340301]
    assert allocation.unrounded == pytest.approx(expected, abs=printed(6))
    assert float(np.dot(allocation.unrounded, PT_C)) == pytest.approx(100_000)
    assert int(np.dot(allocation.n_h, PT_C)) <= 100_000
    assert np.all(np.abs(allocation.n_h - allocation.unrounded) < 1)


# --- constraints ---------------------------------------------------------------------------


def test_it_makes_small_strata_take_all_and_raises_others_to_the_minimum() -> None:
    allocation = allocate_neyman([10, 1000, 5], [100.0, 1.0, 0.0], 200, m_min=3)

    assert allocation.n_h.tolist() == [10, 187, 3]
    assert allocation.take_all.tolist() == [True, False, False]
    assert allocation.at_minimum.tolist() == [False, False, True]
    assert allocation.binding == (TAKE_ALL, MINIMUM)


def test_a_stratum_smaller_than_the_minimum_is_taken_whole() -> None:
    allocation = allocate_proportional([1, 5000, 5000], 100, m_min=2)

    # 99 units over two equal strata: the 49.5/49.5 tie goes to the first stratum.
    assert allocation.n_h.tolist() == [1, 50, 49]
    assert allocation.take_all.tolist() == [True, False, False]


def test_take_all_releases_units_to_the_other_strata() -> None:
    # Unconstrained Neyman would give stratum 0 about 92 units of its 20.
    allocation = allocate_neyman([20, 500, 500], [100.0, 1.0, 1.0], 100, m_min=0)

    assert allocation.n_h.tolist() == [20, 40, 40]
    assert allocation.binding == (TAKE_ALL,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: allocate_proportional([10, 20], 31), "census"),
        (lambda: allocate_proportional([10, 20, 30], 5, m_min=2), "minimum"),
        (lambda: allocate_proportional([10, 0, 30], 5), "N_h = 0"),
        (lambda: allocate_proportional([10, 2.5], 5), "whole number"),
        (lambda: allocate_proportional([], 5), "non-empty"),
        (lambda: allocate_proportional([10, 20], 0), "positive"),
        (lambda: allocate_neyman([10, 20], [1.0, -1.0], 5), "S_h"),
        (lambda: allocate_neyman([10, 20], [1.0], 5), "one value per stratum"),
        (lambda: allocate_neyman([10, 20], [0.0, 0.0], 5, m_min=0), "S_h = 0"),
        (lambda: allocate_neyman([10, 20], [0.0, 1.0], 25, m_min=0), "S_h = 0"),
        (lambda: allocate_power([10, 20], 5, q=1.5), "between 0 and 1"),
        (lambda: allocate_cost_optimal([10, 20], [1, 1], [5, 0], 100), "c_h"),
        (lambda: allocate_cost_optimal([10, 20], [1, 1], [5, 5], 10, m_min=2), "budget"),
        (lambda: proportion_sd([0.5, 1.2], [10, 20]), "between 0 and 1"),
    ],
)
def test_it_refuses_impossible_allocations(call, message: str) -> None:
    with pytest.raises(AllocationError, match=message):
        call()


# --- properties ------------------------------------------------------------------------------


def _floats(low: float, high: float, size: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.floats(low, high), min_size=size, max_size=size)


@st.composite
def designs(draw: st.DrawFn) -> tuple[Allocation, np.ndarray, np.ndarray, int, int]:
    sizes = np.array(draw(st.lists(st.integers(1, 3000), min_size=1, max_size=12)))
    m_min = draw(st.integers(0, 6))
    lower = np.minimum(m_min, sizes)
    n = draw(st.integers(max(1, int(lower.sum())), int(sizes.sum())))
    kind = draw(st.sampled_from(["proportional", "neyman", "power"]))
    if kind == "proportional":
        measure = sizes.astype(float)
        allocation = allocate_proportional(sizes, n, m_min=m_min)
    elif kind == "neyman":
        s_h = np.array(draw(_floats(0.01, 1e4, len(sizes))))
        measure = sizes * s_h
        allocation = allocate_neyman(sizes, s_h, n, m_min=m_min)
    else:
        q = draw(st.floats(0.0, 1.0))
        measure = sizes.astype(float) ** q
        allocation = allocate_power(sizes, n, q=q, m_min=m_min)
    return allocation, sizes, measure, n, m_min


@settings(max_examples=300, deadline=None)
@given(designs())
def test_every_allocation_meets_n_and_the_constraints(design) -> None:
    allocation, sizes, _, n, m_min = design

    assert allocation.n_h.dtype == np.int64
    assert allocation.n_h.sum() == n
    assert np.all(allocation.n_h <= sizes)
    assert np.all(allocation.n_h >= np.minimum(m_min, sizes))
    assert np.array_equal(allocation.take_all, allocation.n_h == sizes)
    assert allocation.unrounded.sum() == pytest.approx(n)
    assert np.all(np.abs(allocation.n_h - allocation.unrounded) < 1)


@settings(max_examples=300, deadline=None)
@given(designs())
def test_no_constraint_is_violated_and_no_bound_stratum_should_be_freed(design) -> None:
    """The continuous solution is the fixed point of the iterate-until-no-violation rule:
    free strata share one rate t = x_h/a_h, capped strata have t·a_h ≥ N_h and raised strata
    t·a_h ≤ m_min."""
    allocation, sizes, measure, _, m_min = design
    x, lower = allocation.unrounded, np.minimum(m_min, sizes)
    free = (x > lower) & (x < sizes)
    capped = (x >= sizes) & (lower < sizes)
    raised = (x <= lower) & (lower < sizes)

    if free.any():
        t = x[free] / measure[free]
        assert t == pytest.approx(np.full(t.shape, t[0]), rel=1e-9)
        assert np.all(t[0] * measure[capped] >= sizes[capped] * (1 - 1e-9))
        assert np.all(t[0] * measure[raised] <= lower[raised] * (1 + 1e-9))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=12), st.data())
def test_unconstrained_proportional_is_within_one_unit_of_n_share(sizes, data) -> None:
    n = data.draw(st.integers(1, sum(sizes)))

    allocation = allocate_proportional(sizes, n, m_min=0)

    if not allocation.binding:
        share = n * np.array(sizes) / sum(sizes)
        assert np.all(np.abs(allocation.n_h - share) < 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=1, max_size=8), st.data())
def test_cost_optimal_allocation_stays_within_budget(sizes, data) -> None:
    costs = np.array(data.draw(_floats(1, 100, len(sizes))))
    s_h = np.array(data.draw(_floats(0.1, 100, len(sizes))))
    lower_cost, census = float(np.sum(costs * np.minimum(2, sizes))), float(costs @ sizes)
    budget = data.draw(st.floats(lower_cost, census))

    allocation = allocate_cost_optimal(sizes, s_h, costs, budget)

    assert float(costs @ allocation.n_h) <= budget + 1e-9
    assert np.all(allocation.n_h >= np.minimum(2, sizes))
    assert np.all(allocation.n_h <= sizes)
