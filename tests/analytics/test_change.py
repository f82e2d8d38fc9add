"""Estimates of change between rounds with overlapping samples (methodology M4-M6).

The R agreement is in test_change_r.py; these tests check the method itself."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from analytics.engine.change import (
    ChangeError,
    Round,
    change_in_mean,
    change_in_total,
    trend,
    with_variances,
)
from analytics.engine.estimation import Design, estimate_total
from analytics.engine.prn import draw_prn, new_prns, next_starts

SEED = 20250428


def census_round(firms: npt.ArrayLike, strata: npt.ArrayLike, population: dict[str, int]) -> Round:
    """A respondent file with weights N_h / r_h."""
    s = np.asarray(strata)
    counts = {h: int((s == h).sum()) for h in population}
    weights = [population[h] / counts[h] for h in s]
    return Round(firms, weights, s, [float(population[h]) for h in s])


# --- exact cases ------------------------------------------------------------------------------


def test_a_full_panel_gives_the_variance_of_the_firms_own_changes() -> None:
    # given: the same 30 firms answer in both rounds, two strata
    rng = np.random.default_rng(SEED)
    firms = np.arange(30)
    strata = np.repeat(["a", "b"], [18, 12])
    population = {"a": 200, "b": 90}
    y1 = rng.lognormal(3.0, 0.7, 30)
    y2 = y1 * rng.lognormal(0.1, 0.2, 30)
    first = second = census_round(firms, strata, population)

    # when
    change = change_in_total(first, second, y1, y2)

    # then: as if each firm's change were the item (same strata, weights and fpc)
    direct = estimate_total(first.design, y2 - y1)
    assert change.estimate[0] == pytest.approx(direct.estimate[0], rel=1e-12)
    assert change.variance[0] == pytest.approx(direct.variance[0], rel=1e-9)
    assert change.correlation[0] > 0.9
    assert change.common.tolist() == [30]


def test_disjoint_samples_carry_no_covariance() -> None:
    rng = np.random.default_rng(SEED)
    strata = np.repeat(["a", "b"], 10)
    first = census_round(np.arange(20), strata, {"a": 100, "b": 100})
    second = census_round(np.arange(20, 40), strata, {"a": 100, "b": 100})

    change = change_in_mean(first, second, rng.normal(size=20), rng.normal(size=20))

    assert change.covariance.tolist() == [0.0]
    assert change.variance[0] == pytest.approx(change.first.variance[0] + change.second.variance[0])
    assert change.common.tolist() == [0]


def test_a_take_all_stratum_everyone_answered_adds_no_variance() -> None:
    # given: both rounds take and get the whole stratum, with two births in round 2
    rng = np.random.default_rng(SEED)
    first = census_round(np.arange(12), ["t"] * 12, {"t": 12})
    second = census_round(np.arange(2, 16), ["t"] * 14, {"t": 14})

    change = change_in_total(first, second, rng.normal(size=12), rng.normal(size=14))

    assert change.first.variance[0] == 0 and change.second.variance[0] == 0
    assert change.covariance[0] == 0
    assert change.se[0] == 0


def test_a_stratum_with_one_common_firm_carries_no_covariance() -> None:
    rng = np.random.default_rng(SEED)
    first = census_round([1, 2, 3, 4], ["a"] * 4, {"a": 50})
    second = census_round([4, 5, 6, 7], ["a"] * 4, {"a": 50})

    change = change_in_mean(first, second, rng.normal(size=4), rng.normal(size=4))

    assert change.covariance.tolist() == [0.0]


def test_the_covariance_never_makes_the_variance_negative() -> None:
    # given: 2 of 40 firms in both rounds, the only ones far from the mean; everyone else
    # answers the same, so each round's variance comes almost only from those two
    first = census_round(np.arange(40), ["a"] * 40, {"a": 40_000})
    second = census_round(np.r_[0, 1, np.arange(100, 138)], ["a"] * 40, {"a": 40_000})
    y = np.r_[100.0, -100.0, np.zeros(38)]

    change = change_in_total(first, second, y, y)

    assert change.correlation[0] == pytest.approx(1.0)
    assert change.variance[0] >= -1e-9 * change.first.variance[0]


def test_other_variances_of_the_rounds_keep_the_covariance_within_its_cap() -> None:
    # given: a full panel with a strong positive covariance
    rng = np.random.default_rng(SEED)
    rounds = census_round(np.arange(30), ["a"] * 30, {"a": 300})
    y1 = rng.lognormal(3.0, 0.7, 30)
    change = change_in_total(rounds, rounds, y1, y1 * rng.lognormal(0.0, 0.1, 30))

    # when: each round's variance is another estimate (a replicate variance, say)
    same = with_variances(change, change.first, change.second)
    smaller = with_variances(
        change,
        dataclasses.replace(change.first, variance=change.first.variance / 4),
        dataclasses.replace(change.second, variance=change.second.variance / 4),
    )

    # then: the covariance is kept unless the new SEs cannot hold it
    assert same.covariance.tolist() == change.covariance.tolist()
    assert smaller.covariance[0] == pytest.approx(
        np.sqrt(smaller.first.variance[0] * smaller.second.variance[0])
    )
    assert smaller.variance[0] >= 0


def test_a_firm_that_changed_stratum_is_grouped_by_its_later_stratum() -> None:
    # given: six firms, each from a stratum of its own in round 1 (with one firm that leaves),
    # all in stratum z in round 2 (with six births): only their later stratum has them together
    rng = np.random.default_rng(SEED)
    first = census_round(np.arange(12), np.repeat(list("abcdef"), 2), dict.fromkeys("abcdef", 20))
    second = census_round(np.r_[np.arange(0, 12, 2), np.arange(20, 26)], ["z"] * 12, {"z": 120})
    y1 = rng.lognormal(2.0, 0.5, 12)
    y2 = np.r_[y1[::2] * 1.1, rng.lognormal(2.0, 0.5, 6)]

    change = change_in_total(first, second, y1, y2)

    # then: the six firms' proportional changes carry a covariance (as six strata of one
    # firm each they would carry none)
    assert change.common.tolist() == [6]
    assert change.covariance[0] > 0.1 * change.first.se[0] * change.second.se[0]


# --- the variance is right -------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    firm: npt.NDArray[np.int64]
    stratum1: npt.NDArray[np.str_]  # "" = not in the first frame
    stratum2: npt.NDArray[np.str_]  # "" = not in the second frame
    y1: npt.NDArray[np.float64]
    y2: npt.NDArray[np.float64]


def business_population(rng: np.random.Generator) -> Population:
    """Two strata sampled at 10 %, a take-all stratum, deaths, births and 40 firms that move
    from a to b; a skewed item that grows by 5 % with noise."""
    sizes = {"a": (700, 40, 60, 10.0), "b": (1100, 60, 50, 30.0), "t": (45, 3, 5, 200.0)}
    s1, s2, level = [], [], []
    for h, (stay, leave, join, mean) in sizes.items():
        s1 += [h] * (stay + leave) + [""] * join
        s2 += [h] * stay + [""] * leave + [h] * join
        level += [mean] * (stay + leave + join)
    s1 += ["a"] * 40
    s2 += ["b"] * 40
    level += [10.0] * 40
    base = rng.lognormal(np.log(level), 0.8)
    return Population(
        firm=np.arange(len(s1)),
        stratum1=np.array(s1),
        stratum2=np.array(s2),
        y1=base,
        y2=base * rng.lognormal(0.05, 0.25, base.size),
    )


def answering_round(
    pop: Population,
    stratum: npt.NDArray[np.str_],
    selected: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> Round:
    answered = selected[rng.random(selected.size) < 0.8]
    counts = {h: int((stratum == h).sum()) for h in ("a", "b", "t")}
    return census_round(pop.firm[answered], stratum[answered], counts)


def test_the_variance_of_a_change_is_unbiased_under_rotation_and_nonresponse() -> None:
    # given: a fixed population; 800 rounds of new numbers, coordinated samples with 25 %
    # rotation (take-all in t) and 80 % response in each round
    rng = np.random.default_rng(SEED)
    pop = business_population(rng)
    in1, in2 = pop.stratum1 != "", pop.stratum2 != ""
    shared = {"a": 700, "b": 1140, "t": 45}
    results = []

    # when
    for _ in range(800):
        prns = new_prns(pop.firm.size, rng)
        first = draw_prn(prns[in1], pop.stratum1[in1], {"a": 70, "b": 90, "t": 48})
        second = draw_prn(
            prns[in2], pop.stratum2[in2], {"a": 75, "b": 85, "t": 50}, next_starts(first, 0.25)
        )
        r1 = answering_round(pop, pop.stratum1, pop.firm[in1][first.selected], rng)
        r2 = answering_round(pop, pop.stratum2, pop.firm[in2][second.selected], rng)
        change = change_in_total(r1, r2, pop.y1[r1.firm], pop.y2[r2.firm], common_population=shared)
        results.append(
            (
                change.estimate[0],
                change.variance[0],
                change.first.variance[0] + change.second.variance[0],
            )
        )

    # then: the mean estimated variance is the variance of the estimates (Monte Carlo error
    # about 5 %); leaving out the covariance would double it
    estimates, variances, without = np.array(results).T
    truth = estimates.var(ddof=1)
    assert 0.85 < variances.mean() / truth < 1.15
    assert without.mean() / truth > 1.5


# --- trends ------------------------------------------------------------------------------------


def test_a_trend_gives_every_round_and_each_consecutive_change() -> None:
    # given: three rounds of a panel that loses and gains firms
    rng = np.random.default_rng(SEED)
    population = {"a": 100, "b": 80}
    firms = [np.arange(0, 20), np.arange(4, 24), np.arange(8, 28)]
    rounds = [census_round(f, np.where(f % 2 == 0, "a", "b"), population) for f in firms]
    ys = [rng.random((20, 2)) < 0.3 + 0.1 * t for t in range(3)]
    ys_float = [y.astype(float) for y in ys]

    # when
    result = trend(rounds, ys_float)
    lower, upper = result.intervals("logit")

    # then
    assert [r.estimate.shape for r in result.rounds] == [(2,)] * 3
    assert lower.shape == upper.shape == (3, 2)
    assert np.all((lower < np.stack([r.estimate for r in result.rounds])) | np.isnan(lower))
    second = change_in_mean(rounds[1], rounds[2], ys_float[1], ys_float[2])
    assert result.changes[1].estimate.tolist() == second.estimate.tolist()
    assert result.changes[1].covariance.tolist() == second.covariance.tolist()
    low, high = result.changes[0].ci()
    assert np.all(low < result.changes[0].estimate) and np.all(result.changes[0].estimate < high)


# --- refusals ----------------------------------------------------------------------------------


def test_a_firm_twice_in_one_round_is_refused() -> None:
    with pytest.raises(ChangeError, match="twice"):
        Round([1, 1, 2], [1.0, 1.0, 1.0], ["a", "a", "a"], [10, 10, 10])


def test_a_common_population_must_name_every_later_stratum_and_fit_it() -> None:
    first = census_round(np.arange(6), ["a"] * 6, {"a": 30})
    second = census_round(np.arange(6), ["a"] * 6, {"a": 30})
    y = np.arange(6.0)

    with pytest.raises(ChangeError, match="no count"):
        change_in_mean(first, second, y, y, common_population={"b": 10})
    with pytest.raises(ChangeError, match="between"):
        change_in_mean(first, second, y, y, common_population={"a": 31})


def test_the_design_of_a_round_is_its_published_design() -> None:
    survey = census_round(np.arange(8), ["a"] * 4 + ["b"] * 4, {"a": 40, "b": 20})

    assert isinstance(survey.design, Design)
    assert survey.fraction.tolist() == [0.1] * 4 + [0.2] * 4
