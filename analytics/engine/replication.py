"""Replicate weights and replicate variance (methodology E7), pure numpy.

Replicate factors multiply the base weights; the caller runs the whole weighting (D2-D5)
again on every replicate, so the variance carries the weighting's own variability. The
variance is R `survey`'s svrVar: scale * sum_r rscales_r (theta_r - centre)^2, centred at the
full-sample estimate (mse=TRUE) or at the replicates' mean, so that R's
svrepdesign(type=, scale=, rscales=, mse=) on the exported weights gives the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.engine.estimation import TAKE_ALL_TOLERANCE, factorize

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class ReplicationError(ValueError):
    """Replicates cannot be formed as asked; the message says why."""


@dataclass(frozen=True)
class ReplicateFactors:
    """Factors (n x R) to multiply base weights by, and how R combines the replicates."""

    factors: FloatArray
    type: str  # R svrepdesign type
    scale: float
    rscales: FloatArray
    mse: bool

    @property
    def count(self) -> int:
        return int(self.factors.shape[1])


def _strata(
    strata: npt.ArrayLike, pop_size: npt.ArrayLike
) -> tuple[IntArray, FloatArray, FloatArray]:
    codes, levels = factorize(np.asarray(strata).reshape(-1))
    n_h = np.bincount(codes, minlength=len(levels)).astype(np.float64)
    pop = np.asarray(pop_size, dtype=np.float64).reshape(-1)
    pop_h = np.empty(len(levels))
    pop_h[codes] = pop
    if np.any(pop_h < n_h):
        raise ReplicationError("a stratum has more sampled units than its population N_h")
    return codes, n_h, 1.0 - n_h / pop_h  # the fpc factor 1 - f_h


def jk1(psu: npt.ArrayLike, fpc: float | None = None) -> ReplicateFactors:
    """R as.svrepdesign() of an unstratified cluster design: JK1, one replicate per PSU
    deleted, the others times n/(n-1); scale (1-f)(n-1)/n (R jk1weights)."""
    codes, levels = factorize(np.asarray(psu).reshape(-1))
    n = len(levels)
    if n < 2:
        raise ReplicationError("the jackknife needs at least two PSUs")
    factors = np.full((codes.size, n), n / (n - 1))
    factors[np.arange(codes.size), codes] = 0.0
    keep = 1.0 if fpc is None else (fpc - n) / fpc
    return ReplicateFactors(factors, "JK1", keep * (n - 1) / n, np.ones(n), mse=False)


def delete_a_group(
    strata: npt.ArrayLike, pop_size: npt.ArrayLike, groups: int = 100, seed: int = 0
) -> ReplicateFactors:
    """Delete-a-group jackknife (Kott 2001, J. Official Statistics 17:521-26).

    Units are put in random order within strata and dealt to `groups` groups in turn, so a
    stratum's units spread over G_h = min(n_h, G) groups. Replicate r deletes group r: its
    units get factor 0, the stratum's other units n_h/(n_h - m_hr). Kott's estimator is
    (G-1)/G sum_r (theta_r - theta)^2; it overstates a stratum with fewer units than groups
    by G_h/(G_h-1) and ignores the fpc, so each stratum's deviation from 1 is scaled by
    c_h = sqrt((1-f_h) (G_h-1)/G_h / ((G-1)/G)): for linear statistics the variance is then
    the stratified grouped jackknife sum_h (1-f_h)(G_h-1)/G_h sum_g (t_hg - t_h)^2. Take-all
    strata and strata of one unit keep factor 1 (they add nothing).
    """
    if groups < 2:
        raise ReplicationError("the delete-a-group jackknife needs at least two groups")
    codes, n_h, keep = _strata(strata, pop_size)
    rng = np.random.default_rng(seed)
    n = codes.size
    order = np.lexsort((rng.random(n), codes))
    group = np.empty(n, dtype=np.intp)
    group[order] = (int(rng.integers(groups)) + np.arange(n)) % groups
    m = np.zeros((n_h.size, groups))
    np.add.at(m, (codes, group), 1.0)
    g_h = (m > 0).sum(axis=1).astype(np.float64)
    c2 = np.where(
        (g_h > 1) & (keep > TAKE_ALL_TOLERANCE),
        keep * (g_h - 1) / np.maximum(g_h, 1) * groups / (groups - 1),
        0.0,
    )
    c = np.sqrt(c2)[codes]
    with np.errstate(divide="ignore"):
        kept = n_h[codes][:, None] / (n_h[codes][:, None] - m[codes])
    plain = np.where(m[codes] > 0, kept, 1.0)
    plain[np.arange(n), group] = 0.0
    factors = 1.0 + c[:, None] * (plain - 1.0)
    return ReplicateFactors(factors, "JK1", (groups - 1) / groups, np.ones(groups), mse=True)


def rao_wu(
    strata: npt.ArrayLike, pop_size: npt.ArrayLike, replicates: int = 500, seed: int = 0
) -> ReplicateFactors:
    """Rao-Wu rescaled bootstrap (Rao, Wu and Yue 1992, Survey Methodology 18:209-17).

    In each stratum m_h = n_h - 1 units are drawn with replacement; a unit drawn r_hi times
    gets 1 - lambda_h + lambda_h (n_h/m_h) r_hi with lambda_h = sqrt(m_h (1-f_h)/(n_h-1))
    = sqrt(1-f_h), which builds the fpc in. Variance sum_b (theta_b - mean)^2/(B-1)
    (methodology E7, R type="bootstrap"). Take-all strata and strata of one unit keep 1.
    """
    if replicates < 2:
        raise ReplicationError("the bootstrap needs at least two replicates")
    codes, n_h, keep = _strata(strata, pop_size)
    rng = np.random.default_rng(seed)
    n = codes.size
    active = (n_h > 1) & (keep > TAKE_ALL_TOLERANCE)
    order = np.argsort(codes, kind="stable")
    start = np.concatenate([[0], np.cumsum(n_h)[:-1]]).astype(np.intp)
    draws_h = np.where(active, n_h - 1, 0).astype(np.intp)
    owner = np.repeat(np.arange(n_h.size), draws_h)
    counts = np.zeros((replicates, n))
    for b in range(replicates):
        picked = start[owner] + (rng.random(owner.size) * n_h[owner]).astype(np.intp)
        counts[b] = np.bincount(order[picked], minlength=n)
    lam = np.sqrt(np.where(active, keep, 0.0))[codes]
    ratio = np.where(active, n_h / np.maximum(n_h - 1, 1), 0.0)[codes]
    factors = 1.0 - lam[:, None] + (lam * ratio)[:, None] * counts.T
    return ReplicateFactors(
        factors, "bootstrap", 1.0 / (replicates - 1), np.ones(replicates), mse=False
    )


def variance(
    estimate: FloatArray, thetas: FloatArray, scale: float, rscales: FloatArray, mse: bool
) -> FloatArray:
    """R svrVar: scale sum_r rscales_r (theta_r - centre)^2 per row of thetas (k x R)."""
    centre = estimate if mse else thetas[:, rscales > 0].mean(axis=1)
    dev = thetas - centre[:, None]
    return np.asarray(scale * (dev * dev) @ rscales, dtype=np.float64)


class ReplicateDesign:
    """Full-sample weights (m,), replicate weights (m x R) and R's combination rule."""

    def __init__(
        self,
        weights: FloatArray,
        replicates: FloatArray,
        scale: float,
        rscales: FloatArray,
        mse: bool,
    ) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.replicates = replicates
        self.scale, self.rscales, self.mse = scale, rscales, mse
        # R x m, C-ordered: one BLAS product per domain without gathering rows.
        self._by_replicate = np.ascontiguousarray(replicates.T)

    @property
    def df(self) -> int:
        """R degf() of a replicate design of full rank: replicates - 1."""
        return int(min(self.replicates.shape[1], self.replicates.shape[0])) - 1

    def estimate(
        self, y: FloatArray, domain: npt.NDArray[np.bool_] | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Domain means and totals (na.rm) of every column of y (m x k) with their replicate
        variances: (mean, mean variance, total, total variance)."""
        active = ~np.isnan(y) & (self.weights > 0)[:, None]
        if domain is not None:
            active &= domain[:, None]
        values = np.where(active, y, 0.0)
        patterns, inverse = _patterns(active)
        stacked = np.hstack([values, patterns])
        k = y.shape[1]
        full = self.weights @ stacked
        reps = (self._by_replicate @ stacked).T
        num, den = full[:k], full[k:][inverse]
        rnum, rden = reps[:k], reps[k:][inverse]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean, thetas = num / den, rnum / rden
        return mean, self._variance(mean, thetas), num, self._variance(num, rnum)

    def mean(self, y: FloatArray, rows: IntArray | None = None) -> tuple[FloatArray, FloatArray]:
        """Domain means (na.rm) and their replicate variance, per column of y (m x k)."""
        mean, variance, _total, _tv = self.estimate(y, _mask(rows, y.shape[0]))
        return mean, variance

    def total(self, y: FloatArray, rows: IntArray | None = None) -> tuple[FloatArray, FloatArray]:
        _mean, _mv, total, variance = self.estimate(y, _mask(rows, y.shape[0]))
        return total, variance

    def _variance(self, est: FloatArray, thetas: FloatArray) -> FloatArray:
        var = variance(est, thetas, self.scale, self.rscales, self.mse)
        return np.where(np.isfinite(est), var, math.nan)


def _patterns(active: npt.NDArray[np.bool_]) -> tuple[FloatArray, IntArray]:
    """Items share few answered patterns: the distinct columns (as 0/1) and each column's."""
    packed = np.packbits(active, axis=0)
    seen: dict[bytes, int] = {}
    inverse = np.array(
        [seen.setdefault(packed[:, j].tobytes(), len(seen)) for j in range(active.shape[1])],
        dtype=np.intp,
    )
    first = np.unique(inverse, return_index=True)[1]
    return active[:, first].astype(np.float64), inverse


def _mask(rows: IntArray | None, m: int) -> npt.NDArray[np.bool_] | None:
    if rows is None:
        return None
    mask = np.zeros(m, dtype=bool)
    mask[rows] = True
    return mask
