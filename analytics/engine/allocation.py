"""Sample allocation across strata for stratified SRSWOR (docs/methodology.md, sec. B).

Every allocation has the form n_h = clip(t·a_h, L_h, N_h) with Σ c_h n_h = C, where a_h is
the allocation's size measure (N_h, N_h S_h, N_h S_h/√c_h or N_h^q), L_h = min(m_min, N_h), and
c_h = 1, C = n unless unit costs are given. This is the point where SAS SURVEYSELECT's
iterative rule stops: strata whose target exceeds N_h become take-all, strata below the
minimum are raised to it, and the remainder is re-allocated among the free strata until no
constraint is violated. The scale t is found exactly by scanning the breakpoints of the
piecewise-linear Σ c_h n_h(t), so the iteration cannot cycle. Integers come from the largest
remainder method, which never moves a stratum outside [L_h, N_h].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

TAKE_ALL = "take_all"
MINIMUM = "minimum"

# B2: m_min = 2 is the least that lets a stratum estimate its own variance (sec. E3).
DEFAULT_M_MIN = 2


class AllocationError(ValueError):
    """The requested allocation cannot be made."""


@dataclass(frozen=True)
class Allocation:
    n_h: IntArray  # integer sample sizes, Σ n_h = n (or Σ c_h n_h ≤ budget)
    unrounded: FloatArray  # continuous solution after the constraints, before rounding
    take_all: BoolArray  # n_h == N_h: f_h = 1, the stratum adds no sampling variance
    at_minimum: BoolArray  # the target fell below m_min and was raised to it
    binding: tuple[str, ...]  # which constraints bound: TAKE_ALL and/or MINIMUM

    @property
    def n(self) -> int:
        return int(self.n_h.sum())


@dataclass(frozen=True)
class Precision:
    se_h: FloatArray  # SE of each stratum mean: √((1 − f_h) S_h² / n_h)
    se_mean: float  # SE of the stratified mean ȳ_st
    se_total: float  # SE of the estimated total, N · se_mean


@dataclass(frozen=True)
class PreviewRow:
    N: int
    n: int
    fraction: float  # sampling fraction n/N
    se: float  # anticipated SE of the proportion


@dataclass(frozen=True)
class Preview:
    strata: tuple[PreviewRow, ...]
    overall: PreviewRow


# --- public allocations -------------------------------------------------------------------


def allocate_proportional(N_h: ArrayLike, n: int, *, m_min: int = DEFAULT_M_MIN) -> Allocation:
    """n_h ∝ N_h (B, proportional)."""
    sizes = _sizes(N_h)
    return _allocate_fixed_n(sizes, sizes.astype(np.float64), n, m_min)


def allocate_neyman(
    N_h: ArrayLike, S_h: ArrayLike, n: int, *, m_min: int = DEFAULT_M_MIN
) -> Allocation:
    """n_h ∝ N_h S_h (B, Neyman); for a proportion pass S_h = proportion_sd(P_h, N_h)."""
    sizes = _sizes(N_h)
    sd = _nonnegative(S_h, "S_h", len(sizes))
    return _allocate_fixed_n(sizes, sizes * sd, n, m_min)


def allocate_power(
    N_h: ArrayLike, n: int, q: float = 0.5, *, m_min: int = DEFAULT_M_MIN
) -> Allocation:
    """n_h ∝ N_h^q, 0 ≤ q ≤ 1 (B, Bankier power allocation; q = 0.5 is square-root)."""
    if not 0.0 <= q <= 1.0:
        raise AllocationError(f"power q must be between 0 and 1, got {q}")
    sizes = _sizes(N_h)
    return _allocate_fixed_n(sizes, sizes.astype(np.float64) ** q, n, m_min)


def allocate_cost_optimal(
    N_h: ArrayLike,
    S_h: ArrayLike,
    c_h: ArrayLike,
    budget: float,
    *,
    m_min: int = DEFAULT_M_MIN,
) -> Allocation:
    """n_h = C·(N_h S_h/√c_h) / Σ N_k S_k √c_k (B, cost-optimal); rounding keeps Σ c_h n_h ≤ C."""
    sizes = _sizes(N_h)
    sd = _nonnegative(S_h, "S_h", len(sizes))
    cost = _positive(c_h, "c_h", len(sizes))
    lower = _lower(sizes, m_min)
    raw = _targets(sizes * sd / np.sqrt(cost), lower, sizes, cost, float(budget), "budget")
    x = np.clip(raw, lower, sizes)
    n_h = _round_within_budget(x, lower, sizes, cost, float(budget))
    return _result(n_h, x, raw, sizes, lower)


def proportion_sd(P_h: ArrayLike, N_h: ArrayLike) -> FloatArray:
    """S_h = √(P_h(1 − P_h)·N_h/(N_h − 1)) (B); 0 for a one-unit stratum, which has no spread."""
    sizes = _sizes(N_h)
    p = np.broadcast_to(np.asarray(P_h, dtype=np.float64), sizes.shape)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise AllocationError("every P_h must be between 0 and 1")
    ratio = np.divide(sizes, sizes - 1, out=np.zeros(sizes.shape), where=sizes > 1)
    return np.sqrt(p * (1 - p) * ratio)


def anticipated_precision(N_h: ArrayLike, n_h: ArrayLike, S_h: ArrayLike) -> Precision:
    """V(ȳ_st) = Σ W_h²(1 − n_h/N_h)S_h²/n_h, W_h = N_h/N (B); n_h may be fractional."""
    sizes = _sizes(N_h).astype(np.float64)
    taken = np.asarray(n_h, dtype=np.float64)
    sd = _nonnegative(S_h, "S_h", len(sizes))
    if taken.shape != sizes.shape or np.any(taken < 0) or np.any(taken > sizes):
        raise AllocationError("n_h must have one value per stratum with 0 ≤ n_h ≤ N_h")
    # A take-all stratum adds no variance; an empty one leaves the variance undefined (inf).
    with np.errstate(divide="ignore", invalid="ignore"):
        var_h = np.where(taken >= sizes, 0.0, (1 - taken / sizes) * sd**2 / taken)
    var_h[taken == 0] = np.inf
    weights = sizes / sizes.sum()
    se_mean = float(np.sqrt(np.sum(weights**2 * var_h)))
    return Precision(np.sqrt(var_h), se_mean, float(sizes.sum()) * se_mean)


def preview(N_h: ArrayLike, n_h: ArrayLike, P_h: ArrayLike = 0.5) -> Preview:
    """Table for the allocation screen: N_h, n_h, f_h and the anticipated SE of p̂ (P_h = 0.5)."""
    sizes = _sizes(N_h)
    taken = _integers(n_h, "n_h", len(sizes))
    precision = anticipated_precision(sizes, taken, proportion_sd(P_h, sizes))
    rows = tuple(
        PreviewRow(int(big), int(small), float(small / big), float(se))
        for big, small, se in zip(sizes, taken, precision.se_h, strict=True)
    )
    total = int(sizes.sum())
    overall = PreviewRow(total, int(taken.sum()), float(taken.sum() / total), precision.se_mean)
    return Preview(rows, overall)


# --- constrained continuous solution ---------------------------------------------------------


def _allocate_fixed_n(sizes: IntArray, measure: FloatArray, n: int, m_min: int) -> Allocation:
    target = _total(n)
    lower = _lower(sizes, m_min)
    ones = np.ones(len(sizes))
    raw = _targets(measure, lower, sizes, ones, float(target), "n")
    x = np.clip(raw, lower, sizes)
    return _result(_round_largest_remainder(x, lower, sizes, target), x, raw, sizes, lower)


def _targets(
    measure: FloatArray,
    lower: IntArray,
    upper: IntArray,
    cost: FloatArray,
    resource: float,
    name: str,
) -> FloatArray:
    """Unconstrained targets t·a_h, with t such that Σ c_h clip(t·a_h, L_h, U_h) = resource."""
    _check_resource(resource, measure, lower, upper, cost, name)
    positive = measure > 0
    if not positive.any():  # only possible when the resource is exactly Σ c_h L_h
        return np.zeros_like(measure)
    a = measure[positive]
    breaks = np.unique(np.concatenate([lower[positive] / a, upper[positive] / a]))
    spent = np.array([np.sum(cost * np.clip(t * measure, lower, upper)) for t in breaks])
    # Σ c_h n_h(t) is piecewise linear in t: find the piece that reaches the resource.
    j = min(int(np.searchsorted(spent, resource)), len(breaks) - 1)
    mid = (breaks[j] + (breaks[j - 1] if j > 0 else 0.0)) / 2
    free = positive & (lower < mid * measure) & (mid * measure < upper)
    if not np.any(free):
        return float(breaks[j]) * measure
    fixed = np.clip(mid * measure, lower, upper)
    rest = resource - float(np.sum((cost * fixed)[~free]))
    return rest / float(np.sum((cost * measure)[free])) * measure


# --- rounding --------------------------------------------------------------------------------


def _round_largest_remainder(
    x: FloatArray, lower: IntArray, upper: IntArray, target: int
) -> IntArray:
    x = np.clip(x, lower, upper)
    n_h = np.floor(x).astype(np.int64)
    short = target - int(n_h.sum())
    for h in _by_remainder(x, n_h, upper)[:short]:
        n_h[h] += 1
    return n_h


def _round_within_budget(
    x: FloatArray, lower: IntArray, upper: IntArray, cost: FloatArray, budget: float
) -> IntArray:
    # No fixed n here: extra units go by largest remainder only while the budget covers them.
    x = np.clip(x, lower, upper)
    n_h = np.floor(x).astype(np.int64)
    left = budget - float(np.sum(cost * n_h))
    for h in _by_remainder(x, n_h, upper):
        if x[h] > n_h[h] and cost[h] <= left:
            n_h[h] += 1
            left -= cost[h]
    return n_h


def _by_remainder(x: FloatArray, n_h: IntArray, upper: IntArray) -> IntArray:
    """Strata that can take one more unit, largest remainder first (ties: stratum order)."""
    room = np.flatnonzero(n_h < upper)
    return room[np.argsort(-(x[room] - n_h[room]), kind="stable")]


def _result(
    n_h: IntArray, x: FloatArray, raw: FloatArray, sizes: IntArray, lower: IntArray
) -> Allocation:
    if np.any(n_h < lower) or np.any(n_h > sizes):
        raise AllocationError("internal error: rounding broke a stratum constraint")
    capped, raised = raw > sizes, raw < lower
    binding = tuple(name for name, hit in ((TAKE_ALL, capped), (MINIMUM, raised)) if hit.any())
    return Allocation(n_h, x, n_h == sizes, raised, binding)


# --- validation ------------------------------------------------------------------------------


def _sizes(N_h: ArrayLike) -> IntArray:
    raw = np.asarray(N_h, dtype=np.float64)
    if raw.ndim != 1 or raw.size == 0:
        raise AllocationError("N_h must be a non-empty list of stratum sizes")
    if np.any(~np.isfinite(raw)) or np.any(raw != np.round(raw)):
        raise AllocationError("every N_h must be a whole number")
    empty = np.flatnonzero(raw <= 0)
    if empty.size:
        raise AllocationError(f"stratum {int(empty[0])} has N_h = {raw[empty[0]]:g}; drop it")
    return raw.astype(np.int64)


def _integers(values: ArrayLike, name: str, length: int) -> IntArray:
    raw = np.asarray(values, dtype=np.float64)
    if raw.shape != (length,) or np.any(raw != np.round(raw)):
        raise AllocationError(f"{name} must hold {length} whole numbers")
    return raw.astype(np.int64)


def _nonnegative(values: ArrayLike, name: str, length: int) -> FloatArray:
    raw = np.asarray(values, dtype=np.float64)
    if raw.shape != (length,):
        raise AllocationError(f"{name} must have one value per stratum ({length})")
    if np.any(~np.isfinite(raw)) or np.any(raw < 0):
        raise AllocationError(f"every {name} must be a finite number ≥ 0")
    return raw


def _positive(values: ArrayLike, name: str, length: int) -> FloatArray:
    raw = _nonnegative(values, name, length)
    if np.any(raw == 0):
        raise AllocationError(f"every {name} must be > 0")
    return raw


def _total(n: int) -> int:
    if int(n) != n or n < 1:
        raise AllocationError(f"n must be a positive whole number, got {n}")
    return int(n)


def _lower(sizes: IntArray, m_min: int) -> IntArray:
    if int(m_min) != m_min or m_min < 0:
        raise AllocationError(f"m_min must be a whole number ≥ 0, got {m_min}")
    return np.minimum(int(m_min), sizes)


def _check_resource(
    resource: float,
    measure: FloatArray,
    lower: IntArray,
    upper: IntArray,
    cost: FloatArray,
    name: str,
) -> None:
    need, census = float(np.sum(cost * lower)), float(np.sum(cost * upper))
    reachable = float(np.sum(cost * np.where(measure > 0, upper, lower)))
    if resource < need:
        raise AllocationError(
            f"{name} = {resource:g} is below the {need:g} needed to give every stratum its"
            f" minimum of min(m_min, N_h) units"
        )
    if resource > census:
        raise AllocationError(f"{name} = {resource:g} exceeds a census of the frame ({census:g})")
    if resource > reachable:
        raise AllocationError(
            f"{name} = {resource:g} cannot be placed: strata with S_h = 0 only get their"
            f" minimum, so at most {reachable:g} is usable"
        )
