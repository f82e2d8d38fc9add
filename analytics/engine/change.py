"""Estimates of change between rounds with overlapping samples (methodology M4-M6).

Each round's estimate and variance are the ones it publishes: its own respondent file as a
stratified design with fpc = N_h (sec. E; `Round.design`). The change is theta2 - theta1 with

    V = V1 + V2 - 2 C,

C being the covariance carried by the firms that answered in both rounds. C is what R gives on
the two respondent files stacked as one design, a firm one PSU holding its two records:

    svydesign(ids = ~firm, strata = ~vstratum, fpc = ~vfpc, weights = ~w, data = stacked)

with options(survey.lonely.psu = "remove"): vcov(svytotal(~y1 + y2))[1, 2] for totals,
svyratio(~y1 + y2, ~d1 + d2, covmat = TRUE)$vcov[1, 4] for means (y_r, d_r: the item and the
answering indicator on round r's records, 0 elsewhere). The variance strata:

- a firm in both rounds sits in its stratum of the later round (a firm that changed stratum is
  grouped with the firms it is now estimated with), apart from the firms of only one round:
  centring those with them would add the spread between the two rounds' levels to C;
- firms of one round only get strata of their own; they carry no covariance.

Within the both-rounds stratum g of m_g firms, C_g = (1 - phi_g) m_g / (m_g - 1) sum (z1 -
z1bar)(z2 - z2bar) over z, the rounds' influence values (E3). phi_g = c_g pi1_g pi2_g / m_g
(capped at 1) is the overlap two independent draws would give over the overlap observed (Tam
1984, Am. Stat. 38, for one stratum: Cov = N^2 (m / (n1 n2) - 1 / N) S12; Nordberg 2000, JOS
16, for PRN samples): pi_r = r_h / N_h, respondents over population of the firm's stratum in
round r (pi1_g averaged over the stratum's common firms), c_g the firms of g in the later frame
that were in the earlier one. A take-all stratum that everyone answered has phi = 1: no
covariance, as it has no variance.

A stratum with one common firm carries no covariance (R "remove"). The covariance is capped at
+/- SE1 SE2, so that V is never negative (only degenerate data reach the cap).

A calibrated round (E4) gives its influence values as residuals of its own calibration, as R
does for the stacked design calibrated round by round (the rounds' calibration variables
apart): the covariance is then that of the residuals. A round whose published variance is a
replicate variance (E7) keeps it (`with_variances`); its covariance stays the Taylor one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analytics.engine.estimation import (
    TAKE_ALL_TOLERANCE,
    CalibrationProjection,
    CIMethod,
    Design,
    Estimates,
    LonelyPSU,
    ci_wald,
    estimate_mean,
    estimate_total,
    factorize,
    group_sum,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Level = Literal["mean", "total"]


class ChangeError(ValueError):
    """A change cannot be estimated as asked; the message says why."""


class Round:
    """One round's respondent file, a row per firm, as its published estimates read it (E)."""

    def __init__(
        self,
        firm: npt.ArrayLike,
        weights: npt.ArrayLike,
        strata: npt.ArrayLike,
        population: npt.ArrayLike,
        lonely_psu: LonelyPSU = "adjust",
        calibration: CalibrationProjection | None = None,
    ) -> None:
        self.design = Design(
            weights, strata, fpc=population, lonely_psu=lonely_psu, calibration=calibration
        )
        self.firm = np.asarray(firm).reshape(-1)
        if self.firm.shape[0] != self.design.n:
            raise ChangeError(f"firm must have one id per row ({self.design.n})")
        if np.unique(self.firm).size != self.firm.size:
            raise ChangeError("a firm appears twice in one round")
        self.strata = np.asarray(strata).reshape(-1)
        self.population = np.asarray(population, dtype=np.float64).reshape(-1)

    @property
    def fraction(self) -> FloatArray:
        """r_h / N_h of each row's stratum: the fpc fraction of its published variance."""
        d = self.design
        return d.n_psu[d.strata] / self.population


@dataclass(frozen=True)
class Change:
    """One change per column of y (arrays of shape (k,)): second round minus first."""

    statistic: Level
    first: Estimates
    second: Estimates
    covariance: FloatArray
    common: IntArray  # firms answering the item in the domain in both rounds

    @property
    def estimate(self) -> FloatArray:
        return self.second.estimate - self.first.estimate

    @property
    def variance(self) -> FloatArray:
        return self.first.variance + self.second.variance - 2.0 * self.covariance

    @property
    def se(self) -> FloatArray:
        return np.sqrt(np.maximum(self.variance, 0.0))

    @property
    def correlation(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.covariance / (self.first.se * self.second.se)

    @property
    def df(self) -> IntArray:
        """The smaller of the rounds' degrees of freedom (E5), for the interval."""
        return np.minimum(self.first.df, self.second.df)

    def ci(self, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
        return ci_wald(self.estimate, self.se, self.df, level)


def with_variances(change: Change, first: Estimates, second: Estimates) -> Change:
    """The change with other estimates of the rounds' variances (a replicate variance, E7,
    with its df): the covariance of the common firms is kept, capped again at +/- SE1 SE2."""
    bound = np.sqrt(first.variance * second.variance)
    return Change(
        statistic=change.statistic,
        first=first,
        second=second,
        covariance=np.clip(change.covariance, -bound, bound),
        common=change.common,
    )


def change_in_mean(
    first: Round,
    second: Round,
    y1: npt.ArrayLike,
    y2: npt.ArrayLike,
    domain1: npt.ArrayLike | None = None,
    domain2: npt.ArrayLike | None = None,
    common_population: Mapping[Any, float] | None = None,
) -> Change:
    """Change in means or proportions (0/1 columns), as ratios sum(w y) / sum(w) of the firms
    answering in the domain (R svymean with na.rm = TRUE; NaN = not answered)."""
    return _change("mean", first, second, (y1, y2), (domain1, domain2), common_population)


def change_in_total(
    first: Round,
    second: Round,
    y1: npt.ArrayLike,
    y2: npt.ArrayLike,
    domain1: npt.ArrayLike | None = None,
    domain2: npt.ArrayLike | None = None,
    common_population: Mapping[Any, float] | None = None,
) -> Change:
    """Change in population totals (R svytotal with na.rm = TRUE; NaN = not answered)."""
    return _change("total", first, second, (y1, y2), (domain1, domain2), common_population)


@dataclass(frozen=True)
class Trend:
    """Every round's estimates and the changes between consecutive rounds."""

    rounds: list[Estimates]
    changes: list[Change]

    def intervals(
        self, method: CIMethod = "wald", level: float = 0.95
    ) -> tuple[FloatArray, FloatArray]:
        """Each round's interval (E5): arrays of shape (rounds, k)."""
        bounds = [r.ci(method, level) for r in self.rounds]
        return np.stack([b[0] for b in bounds]), np.stack([b[1] for b in bounds])


def trend(
    rounds: Sequence[Round],
    y: Sequence[npt.ArrayLike],
    statistic: Level = "mean",
    domains: Sequence[npt.ArrayLike | None] | None = None,
    common_population: Sequence[Mapping[Any, float] | None] | None = None,
) -> Trend:
    """Estimates of every round and the change from each round to the next.

    common_population[t - 1] goes with the change from round t - 1 to round t."""
    if len(y) != len(rounds) or len(rounds) < 2:
        raise ChangeError("a trend needs two rounds or more and one y per round")
    doms = list(domains) if domains is not None else [None] * len(rounds)
    commons = list(common_population) if common_population is not None else [None] * len(rounds)
    changes = []
    for t in range(1, len(rounds)):
        pair = (y[t - 1], y[t]), (doms[t - 1], doms[t])
        changes.append(_change(statistic, rounds[t - 1], rounds[t], *pair, commons[t - 1]))
    return Trend([changes[0].first] + [c.second for c in changes], changes)


# --- the covariance --------------------------------------------------------------------------


def _change(
    statistic: Level,
    first: Round,
    second: Round,
    ys: tuple[npt.ArrayLike, npt.ArrayLike],
    domains: tuple[npt.ArrayLike | None, npt.ArrayLike | None],
    common_population: Mapping[Any, float] | None,
) -> Change:
    est1, z1, active1 = _influence(statistic, first, ys[0], domains[0])
    est2, z2, active2 = _influence(statistic, second, ys[1], domains[1])
    if z1.shape[1] != z2.shape[1]:
        raise ChangeError("y1 and y2 must have the same number of columns")
    _, at1, at2 = np.intersect1d(first.firm, second.firm, assume_unique=True, return_indices=True)
    groups, factor = _covariance_factor(first, second, at1, at2, common_population)
    raw = _covariance(z1[at1], z2[at2], groups, factor)
    bound = np.sqrt(est1.variance * est2.variance)
    return Change(
        statistic=statistic,
        first=est1,
        second=est2,
        covariance=np.clip(raw, -bound, bound),
        common=(active1[at1] & active2[at2]).sum(axis=0).astype(np.intp),
    )


def _influence(
    statistic: Level, survey: Round, y: npt.ArrayLike, domain: npt.ArrayLike | None
) -> tuple[Estimates, FloatArray, npt.NDArray[np.bool_]]:
    """The round's published estimates and its influence values z (n x k), E3."""
    design = survey.design
    ym = np.asarray(y, dtype=np.float64)
    ym = ym[:, None] if ym.ndim == 1 else ym
    est = (estimate_mean if statistic == "mean" else estimate_total)(design, ym, domain)
    inside = np.ones(design.n, bool) if domain is None else np.asarray(domain, bool)
    active = ~np.isnan(ym) & (inside & (design.weights > 0))[:, None]
    yz = np.where(active, ym, 0.0)
    wa = design.weights[:, None] * active
    if statistic == "total":
        z = wa * yz
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = wa * ((yz - est.estimate) / est.population)
    if design.projection is not None:
        # An empty domain's z are NaN: they carry nothing either way.
        z = design.projection.residualise(np.nan_to_num(z))
    return est, z, active


def _covariance_factor(
    first: Round,
    second: Round,
    at1: IntArray,
    at2: IntArray,
    common_population: Mapping[Any, float] | None,
) -> tuple[IntArray, FloatArray]:
    """Each common firm's variance stratum (its later stratum) and 1 - phi of each."""
    groups, levels = factorize(second.strata[at2])
    m = np.bincount(groups, minlength=len(levels)).astype(np.float64)
    # A mover brings its first stratum's fraction: pi1_g is the mean over the common firms.
    pi1 = group_sum(groups, first.fraction[at1], len(levels)) / m
    pi2, pop2 = np.empty(len(levels)), np.empty(len(levels))
    pi2[groups], pop2[groups] = second.fraction[at2], second.population[at2]
    shared = _shared(levels, m, pop2, common_population)
    phi = np.minimum(shared * pi1 * pi2 / m, 1.0)
    keep = 1.0 - phi
    # As R onestrat(): a stratum whose fpc factor is below the tolerance is take-all.
    return groups, np.where(keep < TAKE_ALL_TOLERANCE, 0.0, keep)


def _shared(
    levels: npt.NDArray[np.generic],
    m: FloatArray,
    pop2: FloatArray,
    common_population: Mapping[Any, float] | None,
) -> FloatArray:
    """c_g: firms of later stratum g in both frames; N2_g when not given (the largest it can
    be, so the covariance is the smallest: the variance of the change errs on the safe side)."""
    if common_population is None:
        return pop2
    missing = [level.item() for level in levels if level.item() not in common_population]
    if missing:
        raise ChangeError(f"common_population has no count for strata {missing}")
    shared = np.array([float(common_population[level.item()]) for level in levels])
    if np.any(shared < m) or np.any(shared > pop2):
        raise ChangeError(
            "a stratum's common population must lie between its firms in both samples and N_h"
        )
    return shared


def _covariance(z1: FloatArray, z2: FloatArray, groups: IntArray, factor: FloatArray) -> FloatArray:
    """sum_g factor_g m_g / (m_g - 1) sum (z1 - z1bar_g)(z2 - z2bar_g), strata of m_g >= 2."""
    n_groups = factor.size
    m = np.bincount(groups, minlength=n_groups).astype(np.float64)
    if groups.size == 0:
        return np.zeros(z1.shape[1])
    d1 = z1 - (group_sum(groups, z1, n_groups) / m[:, None])[groups]
    d2 = z2 - (group_sum(groups, z2, n_groups) / m[:, None])[groups]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(m > 1, factor * m / (m - 1), 0.0)
    return np.asarray((scale[:, None] * group_sum(groups, d1 * d2, n_groups)).sum(axis=0))
