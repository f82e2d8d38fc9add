"""Coordinated samples with permanent random numbers (methodology M1-M3)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from analytics.engine import prn
from analytics.engine.prn import (
    assign_prns,
    draw_prn,
    expected_overlap,
    new_prns,
    next_starts,
    skipped,
)
from analytics.engine.selection import SelectionError

SEED = 20250428


def one_stratum(size: int) -> npt.NDArray[np.str_]:
    return np.full(size, "h")


# --- the draw ---------------------------------------------------------------------------------


def test_a_stratum_takes_the_units_whose_numbers_come_first_after_its_start() -> None:
    # given: numbers of ten units, start 0.65 in stratum "a", 0.0 in "b"
    prns = np.array([0.05, 0.70, 0.95, 0.30, 0.66, 0.10, 0.50, 0.90, 0.20, 0.65])
    strata = np.array(["a"] * 6 + ["b"] * 4)

    # when
    sample = draw_prn(prns, strata, {"a": 4, "b": 2}, starts={"a": 0.65})

    # then: going right from 0.65 and wrapping; a unit exactly at the start comes last
    assert sample.strata["a"].selected.tolist() == [4, 1, 2, 0]
    assert sample.strata["a"].numbers.tolist() == [0.66, 0.70, 0.95, 0.05]
    assert sample.strata["b"].selected.tolist() == [8, 6]
    assert sample.selected.tolist() == [0, 1, 2, 4, 6, 8]
    assert sample.starts == {"a": 0.65, "b": 0.0}
    assert sample.strata["a"].end == 0.05


def test_each_stratum_is_a_simple_random_sample_without_replacement() -> None:
    # given: 4,000 independent sets of numbers for a frame of two strata
    rng = np.random.default_rng(SEED)
    strata = np.array(["a"] * 8 + ["b"] * 20)
    n_h = {"a": 3, "b": 5}
    hits = np.zeros(28)
    subsets: dict[tuple[int, ...], int] = {}

    # when: each draws from a start point of its own
    for _ in range(4000):
        sample = draw_prn(new_prns(28, rng), strata, n_h, starts={"a": 0.3, "b": 0.85})
        hits[sample.selected] += 1
        key = tuple(sorted(sample.strata["a"].selected.tolist()))
        subsets[key] = subsets.get(key, 0) + 1

    # then: inclusion probabilities n_h / N_h within Monte Carlo error, and every one of the
    # C(8, 3) = 56 samples of stratum a equally likely
    expected = np.r_[np.full(8, 3 / 8), np.full(20, 5 / 20)]
    se = np.sqrt(expected * (1 - expected) / 4000)
    assert np.all(np.abs(hits / 4000 - expected) < 4.5 * se)
    assert len(subsets) == math.comb(8, 3)
    assert stats.chisquare(list(subsets.values())).pvalue > 0.001


def test_a_stratum_without_a_start_begins_at_zero() -> None:
    prns = np.array([0.4, 0.1, 0.3, 0.2])

    sample = draw_prn(prns, one_stratum(4), {"h": 2})

    assert sample.selected.tolist() == [1, 3]


def test_equal_numbers_go_by_frame_position() -> None:
    prns = np.array([0.5, 0.2, 0.5, 0.5])

    sample = draw_prn(prns, one_stratum(4), {"h": 3})

    assert sample.strata["h"].selected.tolist() == [1, 0, 2]


def test_the_same_seed_gives_the_same_numbers_and_samples() -> None:
    strata = np.repeat(["a", "b", "c"], [50, 30, 20])

    first = draw_prn(new_prns(100, np.random.default_rng(7)), strata, {"a": 5, "b": 3, "c": 2})
    again = draw_prn(new_prns(100, np.random.default_rng(7)), strata, {"a": 5, "b": 3, "c": 2})
    other = draw_prn(new_prns(100, np.random.default_rng(8)), strata, {"a": 5, "b": 3, "c": 2})

    assert first.selected.tolist() == again.selected.tolist()
    assert first.selected.tolist() != other.selected.tolist()


# --- numbers for new units --------------------------------------------------------------------


def test_a_new_unit_gets_a_new_number_and_the_others_keep_theirs() -> None:
    # given: last year's numbers, two births (NaN)
    rng = np.random.default_rng(SEED)
    old = new_prns(5, rng)
    frame = np.r_[old[[0, 2, 3]], np.nan, old[4], np.nan]

    # when
    numbers = assign_prns(frame, rng)

    # then
    assert numbers[[0, 1, 2, 4]].tolist() == old[[0, 2, 3, 4]].tolist()
    new = numbers[[3, 5]]
    assert np.all((new >= 0) & (new < 1)) and new[0] != new[1]
    assert not np.isin(new, old).any()


def test_new_numbers_depend_only_on_the_seed() -> None:
    frame = np.array([0.25, np.nan, 0.75, np.nan])

    first = assign_prns(frame, np.random.default_rng(3))
    again = assign_prns(frame, np.random.default_rng(3))

    assert first.tolist() == again.tolist()


# --- coordination -----------------------------------------------------------------------------


def draw_twice(
    rotation: float, size: int = 40, n1: int = 8, n2: int = 8, seed: int = SEED
) -> tuple[set[int], set[int], list[int]]:
    """Two rounds on an unchanged frame: both samples and the first in selection order."""
    prns = new_prns(size, np.random.default_rng(seed))
    strata = one_stratum(size)
    first = draw_prn(prns, strata, {"h": n1}, starts={"h": 0.42})
    second = draw_prn(prns, strata, {"h": n2}, starts=next_starts(first, rotation))
    order = first.strata["h"].selected.tolist()
    return set(order), set(second.selected.tolist()), order


def test_positive_coordination_keeps_the_panel() -> None:
    first, second, _ = draw_twice(rotation=0.0)
    _, larger, _ = draw_twice(rotation=0.0, n2=11)

    assert second == first
    assert first < larger and len(larger) == 11


def test_rotation_replaces_the_first_units_of_last_rounds_sample() -> None:
    # given: a quarter of 8 units rotate
    first, second, order = draw_twice(rotation=0.25)

    # then: the two units first after the start leave, two new units come in
    assert skipped(8, 0.25) == 2
    assert first - second == set(order[:2])
    assert len(second - first) == 2


def test_negative_coordination_avoids_last_rounds_units() -> None:
    first, second, _ = draw_twice(rotation=1.0)
    again, crowded, _ = draw_twice(rotation=1.0, size=12, n1=8, n2=7)

    assert not first & second
    assert len(again & crowded) == 8 + 7 - 12


def test_rotation_may_differ_by_stratum() -> None:
    prns = new_prns(60, np.random.default_rng(SEED))
    strata = np.repeat(["a", "b"], 30)
    first = draw_prn(prns, strata, {"a": 10, "b": 10}, starts={"a": 0.1, "b": 0.6})

    starts = next_starts(first, {"a": 0.3})

    assert starts["a"] == first.strata["a"].numbers[2]
    assert starts["b"] == 0.6


# --- expected overlap --------------------------------------------------------------------------


def overlap_by_enumeration(
    common: int, leavers: int, joiners: int, n1: int, n2: int, rotation: float
) -> float:
    """Every ordering of the units' numbers through the real draw: the exact mean overlap."""
    units = common + leavers + joiners
    frame1 = np.arange(common + leavers)
    frame2 = np.r_[np.arange(common), np.arange(common + leavers, units)]
    total = 0
    orderings = list(itertools.permutations(range(units)))
    for order in orderings:
        prns = (np.array(order) + 0.5) / units
        first = draw_prn(prns[frame1], one_stratum(frame1.size), {"h": n1})
        second = draw_prn(
            prns[frame2], one_stratum(frame2.size), {"h": n2}, next_starts(first, rotation)
        )
        both = set(frame1[first.selected]) & set(frame2[second.selected])
        total += sum(1 for unit in both if unit < common)
    return total / len(orderings)


@pytest.mark.parametrize(
    ("common", "leavers", "joiners", "n1", "n2", "rotation"),
    [
        (3, 1, 2, 2, 3, 0.0),  # positive, allocation up
        (3, 2, 1, 3, 2, 0.5),  # rotation, allocation down
        (2, 2, 2, 3, 3, 1.0),  # negative, the second sample wraps round
        (4, 0, 2, 3, 5, 1.0),
    ],
)
def test_expected_overlap_is_the_mean_over_every_ordering_of_the_numbers(
    common: int, leavers: int, joiners: int, n1: int, n2: int, rotation: float
) -> None:
    exact = overlap_by_enumeration(common, leavers, joiners, n1, n2, rotation)

    found = expected_overlap(
        n1=n1, n2=n2, common=common, leavers=leavers, joiners=joiners, rotation=rotation
    )

    assert found == pytest.approx(exact, abs=1e-12)


def test_expected_overlap_of_an_unchanged_stratum() -> None:
    assert expected_overlap(n1=30, n2=25, common=200) == pytest.approx(25)
    assert expected_overlap(n1=30, n2=30, common=200, rotation=0.2) == pytest.approx(24)
    assert expected_overlap(n1=30, n2=30, common=200, rotation=1.0) == pytest.approx(0)
    assert expected_overlap(n1=120, n2=110, common=200, rotation=1.0) == pytest.approx(30)


@pytest.mark.parametrize(
    ("rotation", "size", "n1", "n2"),
    [(0.0, 400, 40, 50), (0.25, 400, 40, 40), (1.0, 90, 50, 45)],
    ids=["positive", "rotation", "negative"],
)
def test_realised_overlap_over_200_rounds_matches_the_expected_overlap(
    rotation: float, size: int, n1: int, n2: int
) -> None:
    # given: a stratum that loses 10 % of its units and gains 15 % between the rounds, and an
    # unchanged second stratum coordinated the same way
    rng = np.random.default_rng(SEED)
    leavers, joiners = size // 10, size * 15 // 100
    common = size - leavers
    frame1 = np.arange(size)
    frame2 = np.r_[np.arange(common), np.arange(size, size + joiners)]
    strata1 = np.r_[np.zeros(size, int), np.ones(60, int)]
    strata2 = np.r_[np.zeros(frame2.size, int), np.ones(60, int)]
    other = np.arange(size + joiners, size + joiners + 60)
    ids1, ids2 = np.r_[frame1, other], np.r_[frame2, other]
    realised, other_realised = [], []

    # when: 200 independent sets of numbers, each giving two coordinated rounds
    for _ in range(200):
        prns = new_prns(size + joiners + 60, rng)
        first = draw_prn(prns[ids1], strata1, {0: n1, 1: 12}, starts={0: 0.3, 1: 0.7})
        second = draw_prn(prns[ids2], strata2, {0: n2, 1: 12}, next_starts(first, rotation))
        both = set(ids1[first.selected]) & set(ids2[second.selected])
        realised.append(sum(1 for unit in both if unit < common))
        other_realised.append(sum(1 for unit in both if unit >= size + joiners))

    # then: the mean within 4 standard errors of the expected overlap
    expected = expected_overlap(
        n1=n1, n2=n2, common=common, leavers=leavers, joiners=joiners, rotation=rotation
    )
    mean, se = np.mean(realised), np.std(realised, ddof=1) / np.sqrt(200)
    assert se > 0
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    unchanged = 12 - skipped(12, rotation) if rotation < 1 else 0
    assert set(other_realised) == {unchanged}
    assert expected_overlap(n1=12, n2=12, common=60, rotation=rotation) == pytest.approx(unchanged)


def test_expected_overlap_is_the_same_computed_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"n1": 600, "n2": 650, "common": 15000, "leavers": 900, "joiners": 1200}
    whole = expected_overlap(**sizes, rotation=0.2)

    monkeypatch.setattr(prn, "BLOCK_CELLS", 5000)
    blocks = expected_overlap(**sizes, rotation=0.2)

    assert blocks == pytest.approx(whole, rel=1e-12)
    assert 0 < whole < 480


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prns", "n_h", "starts", "message"),
    [
        ([0.1, 1.0, 0.3], {"h": 1}, None, r"\[0, 1\)"),
        ([0.1, -0.2, 0.3], {"h": 1}, None, r"\[0, 1\)"),
        ([0.1, 0.2, 0.3], {"h": 4}, None, "N_h = 3"),
        ([0.1, 0.2, 0.3], {"h": 1}, {"h": 1.5}, "start point"),
        ([0.1, 0.2], {"h": 1}, None, "one value per frame unit"),
    ],
)
def test_a_draw_that_cannot_be_made_is_refused(
    prns: list[float], n_h: dict[str, int], starts: dict[str, float] | None, message: str
) -> None:
    with pytest.raises(SelectionError, match=message):
        draw_prn(prns, one_stratum(3), n_h, starts)


def test_a_rotation_outside_zero_to_one_is_refused() -> None:
    sample = draw_prn([0.1, 0.2, 0.3], one_stratum(3), {"h": 2})

    with pytest.raises(SelectionError, match="rotation"):
        next_starts(sample, 1.2)
    with pytest.raises(SelectionError, match="n1"):
        expected_overlap(n1=5, n2=2, common=3)
