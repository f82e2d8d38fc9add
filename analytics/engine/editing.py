"""Selective editing and the numbers edit rules need (methodology sec. L).

Pure numpy and scipy, no Django. Whole columns in, arrays out:

- local and global scores, and the triage of units by a score threshold;
- percentiles of a variable by class in one sorted pass (bounds of ratio edits);
- the Hidiroglou–Berthelot ratio edit;
- the share of an estimate that comes from imputed values;
- Fellegi–Holt error localisation for linear edits over a handful of fields.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog

from analytics.engine.estimation import factorize

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# Error localisation enumerates the subsets of the fields: 2^16 at most.
MAX_FIELDS = 16


class EditingError(ValueError):
    """The computation cannot be done as asked; the message says why."""


# --- selective editing -----------------------------------------------------------------------


def local_scores(
    values: npt.ArrayLike,
    anticipated: npt.ArrayLike,
    weights: npt.ArrayLike,
    domains: npt.ArrayLike | None = None,
    *,
    totals: npt.ArrayLike | None = None,
) -> FloatArray:
    """score_i = w_i · |y_i − ŷ_i| / T̂_d, item by item (values (n,) or (n, k)).

    ŷ is the anticipated value (last period's answer, an imputed value, the class median),
    T̂_d = Σ_{i∈d} w_i · ŷ_i the domain's anticipated total, unless `totals` (broadcast to
    the values) gives it: anticipated rather than reported, so that the error being scored
    does not inflate its own denominator (Latouche and Berthelot 1992). A score is the
    share of the domain's total that the unit's suspected error would move. A missing y or
    ŷ scores 0: a missing answer goes to imputation, not review. A non-zero deviation in a
    domain whose total is 0 scores inf (always reviewed)."""
    y = _matrix(values, "values")
    n = y.shape[0]
    expected = _matrix(anticipated, "anticipated", n)
    w = _vector(weights, n, "weights")
    if totals is None:
        codes, levels = factorize(_domain(domains, n))
        contribution = np.where(np.isnan(expected), 0.0, w[:, None] * expected)
        by_domain = np.zeros((len(levels), y.shape[1]))
        np.add.at(by_domain, codes, contribution)
        total = by_domain[codes]
    else:
        total = np.broadcast_to(np.asarray(totals, dtype=np.float64), y.shape)
    deviation = np.nan_to_num(w[:, None] * np.abs(y - expected), nan=0.0)
    scores = np.divide(deviation, np.abs(total), out=np.zeros_like(deviation), where=total != 0)
    scores[(total == 0) & (deviation > 0)] = np.inf
    return scores[:, 0] if np.ndim(values) == 1 else scores


def global_score(
    scores: npt.ArrayLike,
    how: Literal["max", "sum"] = "max",
    item_weights: npt.ArrayLike | None = None,
) -> FloatArray:
    """One score per unit from its items' local scores (n, k), each times its item weight.

    ``max`` (default): a unit is below a threshold only if every item is, so the threshold
    bounds the error any one estimate can keep from an unreviewed unit. ``sum``
    (Latouche–Berthelot's additive form): small errors on many items add up."""
    s = _matrix(scores, "scores")
    a = np.ones(s.shape[1]) if item_weights is None else _vector(item_weights, s.shape[1], "items")
    weighted = s * a
    if how == "max":
        return weighted.max(axis=1)
    if how == "sum":
        return weighted.sum(axis=1)
    raise EditingError(f"unknown global score {how!r}: use 'max' or 'sum'")


@dataclass(frozen=True)
class Triage:
    """Units accepted without review (score below the threshold) and their weight."""

    passed: BoolArray
    share: FloatArray  # per item: Σ w·y over passing units / Σ w·y over all


def triage(
    scores: npt.ArrayLike, threshold: float, weights: npt.ArrayLike, values: npt.ArrayLike
) -> Triage:
    """Which units pass (score < threshold) and the share of each item's estimate they carry.

    The units at or above the threshold go to review; the share tells how much of the
    estimate rests on unreviewed answers. Missing values count as 0."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = s.shape[0]
    w = _vector(weights, n, "weights")
    y = np.nan_to_num(_matrix(values, "values", n), nan=0.0)
    passed = s < threshold
    contribution = w[:, None] * y
    whole = contribution.sum(axis=0)
    kept = contribution[passed].sum(axis=0)
    share = np.divide(kept, whole, out=np.full_like(whole, np.nan), where=whole != 0)
    return Triage(passed, share)


# --- percentiles by class --------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """Percentiles (G, Q) of each class (sorted labels); NaN for a class without values."""

    levels: npt.NDArray[np.generic]
    values: FloatArray
    count: IntArray

    def of(self, groups: npt.ArrayLike) -> FloatArray:
        """Each row's class percentiles (n, Q), for comparing a unit with its class."""
        positions = np.searchsorted(self.levels, np.asarray(groups))
        return self.values[positions]


def percentiles_by(
    values: npt.ArrayLike,
    groups: npt.ArrayLike,
    q: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> Percentiles:
    """Percentiles q (0–100) of the finite values of each class, from one sort.

    Unweighted: numpy.percentile's default (linear interpolation between order
    statistics, Hyndman–Fan type 7). Weighted: the smallest value whose weighted
    cumulative share reaches q/100, the inverse of the weighted distribution function
    (R survey's svyquantile, qrule "math"; with equal weights numpy's "inverted_cdf")."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n = v.shape[0]
    codes, levels = factorize(_domain(groups, n))
    qs = np.asarray(q, dtype=np.float64).reshape(-1) / 100
    if np.any((qs < 0) | (qs > 1)):
        raise EditingError("percentiles must be between 0 and 100")
    keep = np.isfinite(v)
    w = None
    if weights is not None:
        w = _vector(weights, n, "weights")
        keep &= w > 0
    order = np.lexsort((v[keep], codes[keep]))
    sorted_v, sorted_codes = v[keep][order], codes[keep][order]
    count = np.bincount(sorted_codes, minlength=len(levels))
    start = np.cumsum(count) - count
    if w is None:
        out = _type7(sorted_v, start, count, qs)
    else:
        out = _inverse_cdf(sorted_v, w[keep][order], sorted_codes, start, count, qs)
    out[count == 0] = np.nan
    return Percentiles(levels, out, count.astype(np.int64))


def _type7(v: FloatArray, start: IntArray, count: IntArray, qs: FloatArray) -> FloatArray:
    if v.size == 0:
        return np.full((start.size, qs.size), np.nan)
    last = np.maximum(count - 1, 0)[:, None]
    h = last * qs[None, :]
    low = np.floor(h).astype(np.int64)
    t = h - low
    a = v[np.minimum(start[:, None] + low, v.size - 1)]
    b = v[np.minimum(start[:, None] + np.minimum(low + 1, last), v.size - 1)]
    # numpy's own interpolation formula, so that the results agree to the last bit.
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _inverse_cdf(
    v: FloatArray, w: FloatArray, codes: IntArray, start: IntArray, count: IntArray, qs: FloatArray
) -> FloatArray:
    if v.size == 0:
        return np.full((start.size, qs.size), np.nan)
    cumulative = np.cumsum(w)
    before = np.concatenate([[0.0], cumulative])[start]
    total = np.bincount(codes, weights=w, minlength=start.size)
    # Rounding in the running sum must not push an exact q past its value.
    target = before[:, None] + qs[None, :] * total[:, None] - 1e-12 * cumulative[-1]
    index = np.searchsorted(cumulative, target, side="left")
    end = start + np.maximum(count - 1, 0)
    return v[np.clip(index, start[:, None], end[:, None])]


# --- Hidiroglou–Berthelot --------------------------------------------------------------------


@dataclass(frozen=True)
class RatioEdit:
    """The Hidiroglou–Berthelot effects of each unit and its class's acceptance interval."""

    effect: FloatArray  # NaN where the ratio is not defined (y or x not positive)
    lower: FloatArray
    upper: FloatArray

    @property
    def outlier(self) -> BoolArray:
        return (self.effect < self.lower) | (self.effect > self.upper)


def hidiroglou_berthelot(
    y: npt.ArrayLike,
    x: npt.ArrayLike,
    groups: npt.ArrayLike | None = None,
    *,
    c: float,
    a: float = 0.05,
    u: float = 0.0,
) -> RatioEdit:
    """The Hidiroglou–Berthelot (1986) edit of the ratios r = y/x, by class.

    s_i = 1 − r_M/r_i below the class median r_M, r_i/r_M − 1 above (symmetric in r);
    E_i = s_i · max(x_i, y_i)^u, so that with u > 0 a large unit's deviation weighs more.
    A unit is an outlier outside [E_M − c·d_1, E_M + c·d_3], d_1 = max(E_M − E_Q1, |a·E_M|),
    d_3 = max(E_Q3 − E_M, |a·E_M|): the floor |a·E_M| keeps a class of near-identical
    ratios from flagging tiny deviations. Quartiles and medians are numpy's (type 7);
    defaults a = 0.05 and u = 0 as in Banff's OUTLIER; c is the survey's choice."""
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    n = yv.shape[0]
    xv = _vector(x, n, "x")
    g = _domain(groups, n)
    positive = (yv > 0) & (xv > 0)
    r = np.where(positive, yv / np.where(positive, xv, 1.0), np.nan)
    r_m = percentiles_by(r, g, [50]).of(g)[:, 0]
    s = np.where(r < r_m, 1 - r_m / r, r / r_m - 1)
    effect = s * np.where(positive, np.maximum(xv, yv), np.nan) ** u
    q1, e_m, q3 = percentiles_by(effect, g, [25, 50, 75]).of(g).T
    floor = np.abs(a * e_m)
    return RatioEdit(
        effect,
        e_m - c * np.maximum(e_m - q1, floor),
        e_m + c * np.maximum(q3 - e_m, floor),
    )


# --- imputed share ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImputedShare:
    """For each domain (sorted labels): how much of an estimate comes from imputation."""

    levels: npt.NDArray[np.generic]
    of_total: FloatArray  # Σ w·y·imputed / Σ w·y: for totals (and a ratio's numerator)
    of_units: FloatArray  # Σ w·imputed / Σ w: for means and proportions


def imputed_share(
    values: npt.ArrayLike,
    weights: npt.ArrayLike,
    imputed: npt.ArrayLike,
    domains: npt.ArrayLike | None = None,
) -> ImputedShare:
    """The imputed share of an estimate, over the units with a value (after imputation).

    A total is Σ w·y, so its imputed share is that of the weighted values. A mean or a
    proportion depends on every contributing unit, zeros included (an imputed "no" moves
    a proportion as much as an imputed "yes"), so its share is that of the weighted units."""
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    n = y.shape[0]
    w = _vector(weights, n, "weights")
    flag = np.asarray(imputed, dtype=bool).reshape(-1)
    if flag.shape[0] != n:
        raise EditingError(f"imputed must have one value per row ({n})")
    codes, levels = factorize(_domain(domains, n))
    present = ~np.isnan(y)
    wy = np.where(present, w * y, 0.0)
    wu = np.where(present, w, 0.0)

    def ratio(part: FloatArray, whole: FloatArray) -> FloatArray:
        sums = np.bincount(codes, weights=part, minlength=len(levels))
        base = np.bincount(codes, weights=whole, minlength=len(levels))
        return np.divide(sums, base, out=np.full_like(base, np.nan), where=base != 0)

    return ImputedShare(levels, ratio(wy * flag, wy), ratio(wu * flag, wu))


# --- error localisation ----------------------------------------------------------------------


@dataclass(frozen=True)
class LinearEdits:
    """Edits a·x ≤ b (or a·x = b where `equal`), one row per edit, one column per field."""

    a: FloatArray
    b: FloatArray
    equal: BoolArray

    @classmethod
    def of(
        cls, a: npt.ArrayLike, b: npt.ArrayLike, equal: npt.ArrayLike | None = None
    ) -> LinearEdits:
        matrix = np.atleast_2d(np.asarray(a, dtype=np.float64))
        bound = np.asarray(b, dtype=np.float64).reshape(-1)
        eq = np.zeros(bound.shape[0], bool) if equal is None else np.asarray(equal, bool)
        if matrix.shape[0] != bound.shape[0] or eq.shape[0] != bound.shape[0]:
            raise EditingError("a, b and equal must have one row per edit")
        return cls(matrix, bound, eq.reshape(-1))

    def failed(self, values: npt.ArrayLike, tol: float = 1e-9) -> BoolArray:
        """(n, edits): the edits each record fails; an edit with a missing field does not."""
        x = _matrix(values, "values")
        lhs = x @ self.a.T
        # The tolerance scales with the terms so that rounding in a sum is not an error.
        slack = tol * np.maximum(1.0, np.abs(x) @ np.abs(self.a.T) + np.abs(self.b))
        gap = lhs - self.b
        bad = np.where(self.equal, np.abs(gap) > slack, gap > slack)
        return bad & ~np.isnan(lhs)

    def nonnegative(self) -> LinearEdits:
        """These edits and x_j ≥ 0 for every field (Banff's default positivity edits)."""
        p = self.a.shape[1]
        return LinearEdits(
            np.vstack([self.a, -np.eye(p)]),
            np.concatenate([self.b, np.zeros(p)]),
            np.concatenate([self.equal, np.zeros(p, dtype=bool)]),
        )


@dataclass(frozen=True)
class Localised:
    """The fields to change (n, p); `solved` is False where no choice can pass the edits."""

    change: BoolArray
    cost: FloatArray
    solved: BoolArray


def error_localise(
    values: npt.ArrayLike,
    edits: LinearEdits,
    weights: npt.ArrayLike | None = None,
    *,
    nonnegative: bool = True,
    max_fields: int | None = None,
    tol: float = 1e-9,
) -> Localised:
    """The fewest fields (least total weight) whose change lets each record pass the edits.

    Fellegi and Holt's (1976) minimum-change principle, solved exactly: the subsets of the
    fields are tried in order of weight, then number of fields, then field order; a subset
    must hold the record's missing fields and a field of every failed edit (the set cover),
    and is kept if a linear programme finds values for its fields that pass every edit with
    the other fields as reported. The set cover alone is not enough: with x ≤ y, y ≤ 10 and
    (x, y) = (15, 5), only x ≤ y fails and y is in it, but no y passes both edits, so x is
    the one to change. `nonnegative` adds x ≥ 0 for every field, as Banff does by default
    (so a negative answer is itself an error).
    Ties go to the first subset in that order (Banff draws one at random)."""
    x = _matrix(values, "values")
    n, p = x.shape
    if edits.a.shape[1] != p:
        raise EditingError(f"the edits have {edits.a.shape[1]} fields, the values {p}")
    if p > MAX_FIELDS:
        raise EditingError(f"error localisation is exact for at most {MAX_FIELDS} fields")
    cost_of = np.ones(p) if weights is None else _vector(weights, p, "weights")
    edits = edits.nonnegative() if nonnegative else edits
    subsets = _subsets_by_cost(p, cost_of, p if max_fields is None else max_fields)
    involved = edits.a != 0
    failed = edits.failed(x, tol)
    missing = np.isnan(x)
    change = np.zeros((n, p), dtype=bool)
    solved: BoolArray = np.logical_not(failed.any(axis=1) | missing.any(axis=1))
    for row in np.flatnonzero(~solved):
        must_touch = involved[failed[row]]
        covers = np.all(subsets[:, missing[row]], axis=1)
        covers &= np.all(subsets.astype(np.int32) @ must_touch.T.astype(np.int32) > 0, axis=1)
        for subset in subsets[covers]:
            if _feasible(x[row], subset, edits):
                change[row], solved[row] = subset, True
                break
    return Localised(change, change @ cost_of, solved)


def _subsets_by_cost(p: int, cost: FloatArray, most: int) -> BoolArray:
    table = np.array(list(itertools.product([False, True], repeat=p)), dtype=bool)[:, ::-1]
    table = table[table.sum(axis=1) <= most]
    bits = table @ (1 << np.arange(p))
    order = np.lexsort((bits, table.sum(axis=1), table @ cost))
    return table[order]


def _feasible(row: FloatArray, free: BoolArray, edits: LinearEdits) -> bool:
    if not free.any():
        return not edits.failed(row[None, :])[0].any()
    rhs = edits.b - edits.a @ np.where(free, 0.0, row)
    a_free = edits.a[:, free]
    problem = linprog(
        np.zeros(int(free.sum())),
        A_ub=a_free[~edits.equal] if (~edits.equal).any() else None,
        b_ub=rhs[~edits.equal] if (~edits.equal).any() else None,
        A_eq=a_free[edits.equal] if edits.equal.any() else None,
        b_eq=rhs[edits.equal] if edits.equal.any() else None,
        bounds=(None, None),
        method="highs",
    )
    return bool(problem.status == 0)


# --- checks ----------------------------------------------------------------------------------


def _matrix(values: npt.ArrayLike, name: str, n: int | None = None) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or (n is not None and arr.shape[0] != n):
        raise EditingError(f"{name} must be (n,) or (n, k) with n = {n}, got {arr.shape}")
    return arr


def _vector(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise EditingError(f"{name} must have {n} values, got {arr.shape[0]}")
    return arr


def _domain(domains: npt.ArrayLike | None, n: int) -> npt.NDArray[np.generic]:
    if domains is None:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(domains).reshape(-1)
    if arr.shape[0] != n:
        raise EditingError(f"domains must have one value per row ({n}), got {arr.shape[0]}")
    return arr
