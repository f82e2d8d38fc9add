"""Weighting pipeline (methodology sec. D): base weights, eligibility and nonresponse
adjustment with class collapsing, post-stratification, raking, GREG calibration, trimming
and diagnostics. Pure numpy/scipy; calibration follows R `survey` 4.1.1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analytics.engine.estimation import CalibrationProjection, factorize, group_sum

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
CalFun = Literal["linear", "raking", "logit"]
OnFailure = Literal["raise", "warn"]

UNKNOWN_CODES = frozenset({"U", "UH", "UO"})
ELIGIBLE_CODES = frozenset({"I", "P", "R", "NC", "O"})
RESPONDENT_CODES = frozenset({"I", "P"})
INELIGIBLE_CODES = frozenset({"NE"})
# R grake(): weights are rescaled when every population/sample ratio exceeds this.
GRAKE_RESCALE_THRESHOLD = 20.0
MARGIN_RTOL = 1e-8


class WeightingError(ValueError):
    """The weights cannot be computed as specified; the message says why."""


def _weights(values: npt.ArrayLike, name: str = "weights") -> FloatArray:
    w = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise WeightingError(f"{name} must be finite and non-negative")
    return w


def _mask(values: npt.ArrayLike, n: int, name: str) -> BoolArray:
    m = np.asarray(values, dtype=bool).reshape(-1)
    if m.shape[0] != n:
        raise WeightingError(f"{name} must have one value per unit ({n}), got {m.shape[0]}")
    return m


def _labels(values: npt.ArrayLike, n: int, name: str) -> npt.NDArray[np.generic]:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != n:
        raise WeightingError(f"{name} must have one value per unit ({n}), got {arr.shape[0]}")
    return arr


# --- D1-D3 -----------------------------------------------------------------------------------


def design_weights(strata: npt.ArrayLike, pop_size: npt.ArrayLike) -> FloatArray:
    """Base weights d = N_h / n_h, n_h = selected units per stratum (D1)."""
    pop = _weights(pop_size, "pop_size")
    codes, levels = factorize(_labels(strata, pop.shape[0], "strata"))
    n_h = np.bincount(codes, minlength=len(levels)).astype(np.float64)
    pop_h = np.empty(len(levels))
    pop_h[codes] = pop
    if np.any(pop != pop_h[codes]):
        raise WeightingError("pop_size (N_h) must be constant within each stratum")
    if np.any(pop_h < n_h):
        bad = levels[pop_h < n_h][0]
        raise WeightingError(f"stratum {bad}: more units selected than N_h")
    return (pop_h / n_h)[codes]


@dataclass(frozen=True)
class StatusMasks:
    """Unit status from final dispositions (sec. C categories)."""

    known: BoolArray
    eligible: BoolArray
    respondent: BoolArray


def status_masks(categories: npt.ArrayLike) -> StatusMasks:
    """Masks from AAPOR categories I, P, R, NC, O, U (or UH/UO), NE."""
    cats = np.asarray(categories).astype(str).reshape(-1)
    valid = UNKNOWN_CODES | ELIGIBLE_CODES | INELIGIBLE_CODES
    unknown_codes = sorted(set(np.unique(cats)) - valid)
    if unknown_codes:
        raise WeightingError(f"unrecognised disposition categories: {unknown_codes}")
    return StatusMasks(
        known=~np.isin(cats, sorted(UNKNOWN_CODES)),
        eligible=np.isin(cats, sorted(ELIGIBLE_CODES)),
        respondent=np.isin(cats, sorted(RESPONDENT_CODES)),
    )


def adjust_unknown(
    weights: npt.ArrayLike, known: npt.ArrayLike, classes: npt.ArrayLike
) -> FloatArray:
    """D2: spread the weight of unknown-eligibility units over known-status units per class."""
    d = _weights(weights)
    kn = _mask(known, d.shape[0], "known")
    codes, levels = factorize(_labels(classes, d.shape[0], "classes"))
    return adjust_unknown_columns(d[:, None], kn, codes, levels)[:, 0]


def adjust_unknown_columns(
    d: FloatArray, known: BoolArray, codes: IntArray, levels: npt.NDArray[np.generic]
) -> FloatArray:
    """D2 on every column of d (n x R: the full sample and its replicates) at once."""
    total = group_sum(codes, d, len(levels))
    known_total = group_sum(codes, d * known[:, None], len(levels))
    empty = (known_total == 0) & (total > 0)
    if empty.any():
        row, column = np.argwhere(empty)[0]
        raise WeightingError(
            f"class {levels[row]!s} has no unit of known eligibility status"
            f"{_replicate(column)}; collapse it before adjusting"
        )
    factor = np.divide(total, known_total, out=np.ones_like(total), where=known_total > 0)
    return np.where(known[:, None], d * factor[codes], 0.0)


def _replicate(column: int) -> str:
    return f" in replicate {column}" if column > 0 else ""


@dataclass(frozen=True)
class NonresponseAdjustment:
    """D3 result: weights (respondents adjusted, nonrespondents 0, NE kept) and per class."""

    weights: FloatArray
    classes: npt.NDArray[np.generic]  # class labels, sorted
    factors: FloatArray  # sum_E d1 / sum_resp d1 per class (NaN: no eligible unit)
    respondents: IntArray
    eligible_total: FloatArray  # estimated eligible population per class


def adjust_nonresponse(
    weights: npt.ArrayLike,
    eligible: npt.ArrayLike,
    respondent: npt.ArrayLike,
    classes: npt.ArrayLike,
) -> NonresponseAdjustment:
    """D3: respondents carry the eligible nonrespondents' weight in their class."""
    d1 = _weights(weights)
    n = d1.shape[0]
    elig, resp = _mask(eligible, n, "eligible"), _mask(respondent, n, "respondent")
    if np.any(resp & ~elig):
        raise WeightingError("every respondent must be eligible")
    codes, levels = factorize(_labels(classes, n, "classes"))
    stats = _class_stats(codes, len(levels), d1, elig, resp)
    orphan = (stats.respondents == 0) & (stats.eligible_total > 0)
    if orphan.any():
        raise WeightingError(
            f"class {levels[orphan][0]!s} has eligible units but no respondents;"
            " collapse it into its parent class (collapse_classes)"
        )
    return NonresponseAdjustment(
        weights=adjust_nonresponse_columns(d1[:, None], elig, resp, codes, levels)[:, 0],
        classes=levels,
        factors=stats.factors,
        respondents=stats.respondents,
        eligible_total=stats.eligible_total,
    )


def adjust_nonresponse_columns(
    d1: FloatArray,
    eligible: BoolArray,
    respondent: BoolArray,
    codes: IntArray,
    levels: npt.NDArray[np.generic],
) -> FloatArray:
    """D3 on every column of d1 (n x R) within fixed classes (the full sample's collapse map)."""
    g = len(levels)
    e_tot = group_sum(codes, d1 * eligible[:, None], g)
    r_tot = group_sum(codes, d1 * respondent[:, None], g)
    orphan = (r_tot == 0) & (e_tot > 0)
    if orphan.any():
        row, column = np.argwhere(orphan)[0]
        raise WeightingError(
            f"class {levels[row]!s} has eligible units but no respondents{_replicate(column)};"
            " collapse it into its parent class (collapse_classes)"
        )
    factors = np.divide(e_tot, r_tot, out=np.ones_like(e_tot), where=r_tot > 0)
    w = np.where(respondent[:, None], d1 * factors[codes], 0.0)
    return np.where(~eligible[:, None], d1, w)  # NE units keep d1 (outside the population)


@dataclass(frozen=True)
class _ClassStats:
    respondents: IntArray
    eligible_total: FloatArray
    factors: FloatArray


def _class_stats(
    codes: IntArray, g: int, d1: FloatArray, elig: BoolArray, resp: BoolArray
) -> _ClassStats:
    e_tot = group_sum(codes, d1 * elig, g)
    r_tot = group_sum(codes, d1 * resp, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(e_tot > 0, e_tot / r_tot, np.nan)
    return _ClassStats(
        respondents=group_sum(codes, resp.astype(float), g).astype(np.intp),
        eligible_total=e_tot,
        factors=factors,
    )


# --- class collapsing (D3) -------------------------------------------------------------------


@dataclass(frozen=True)
class CollapseStep:
    """One class folded into its parent, and why."""

    level: int
    source: str
    target: str
    reason: str  # "r_min", "a_max", "sibling" (a sibling failed) or "kept: top level"
    respondents: int
    factor: float


@dataclass(frozen=True)
class CollapsedClasses:
    """Final weighting class of each unit (a node of the hierarchy) and the collapse log."""

    classes: npt.NDArray[np.str_]
    level: IntArray  # hierarchy level of each unit's final class
    log: tuple[CollapseStep, ...]


def collapse_classes(
    hierarchy: Sequence[npt.ArrayLike],
    weights: npt.ArrayLike,
    eligible: npt.ArrayLike,
    respondent: npt.ArrayLike,
    r_min: int = 2,
    a_max: float | None = None,
    names: Sequence[str] | None = None,
) -> CollapsedClasses:
    """Collapse weighting classes along a declared hierarchy (finest level first).

    A class with fewer than r_min respondents, or a factor above a_max, is folded into its
    parent node together with its siblings, so every final class is a node of the declared
    hierarchy (stable definitions for the log and for the next wave). A top-level class
    that still fails is kept and logged, unless it has no respondents (WeightingError).
    """
    d1 = _weights(weights)
    n = d1.shape[0]
    elig, resp = _mask(eligible, n, "eligible"), _mask(respondent, n, "respondent")
    if not hierarchy:
        raise WeightingError("the hierarchy needs at least one level")
    names = list(names) if names is not None else [f"level{i}" for i in range(len(hierarchy))]
    if len(names) != len(hierarchy):
        raise WeightingError("names must match the hierarchy levels")
    levels = [factorize(_labels(lab, n, f"hierarchy[{i}]")) for i, lab in enumerate(hierarchy)]
    _check_nested(levels, names)
    unit_level = np.zeros(n, dtype=np.intp)
    log: list[CollapseStep] = []
    for lvl, (codes, labels) in enumerate(levels):
        here = unit_level == lvl
        stats = _class_stats(codes[here], len(labels), d1[here], elig[here], resp[here])
        failing = _failing(stats, r_min, a_max)
        if not failing.any():
            continue
        if lvl == len(levels) - 1:
            log.extend(_kept_top(stats, failing, labels, names[lvl], lvl))
            continue
        parent_codes = levels[lvl + 1][0]
        # The whole parent node becomes the class, including finer classes kept earlier.
        moving = np.isin(parent_codes, np.unique(parent_codes[here & failing[codes]]))
        current = _Current(levels, names, unit_level, d1, elig, resp)
        log.extend(current.moves(moving, lvl, failing, r_min))
        unit_level[moving] = lvl + 1
    return CollapsedClasses(
        classes=_Current(levels, names, unit_level, d1, elig, resp).labels(),
        level=unit_level,
        log=tuple(log),
    )


@dataclass(frozen=True)
class _Current:
    """Units' current classes during collapsing (for labels and the log)."""

    levels: list[tuple[IntArray, npt.NDArray[np.generic]]]
    names: list[str]
    unit_level: IntArray
    d1: FloatArray
    elig: BoolArray
    resp: BoolArray

    def name(self, lvl: int, code: int) -> str:
        return f"{self.names[lvl]}={self.levels[lvl][1][code]}"

    def labels(self) -> npt.NDArray[np.str_]:
        out = np.empty(self.unit_level.shape[0], dtype=object)
        for lvl, (codes, labels) in enumerate(self.levels):
            at = self.unit_level == lvl
            names = np.array([f"{self.names[lvl]}={lab}" for lab in labels], dtype=object)
            out[at] = names[codes[at]]
        return out.astype(str)

    def moves(
        self, moving: BoolArray, lvl: int, failing: BoolArray, r_min: int
    ) -> list[CollapseStep]:
        code = np.zeros_like(self.unit_level)
        for k, (codes, _) in enumerate(self.levels):
            code = np.where(self.unit_level == k, codes, code)
        parent = self.levels[lvl + 1][0]
        pairs = np.unique(np.stack([self.unit_level[moving], code[moving]], axis=1), axis=0)
        steps = []
        for src_level, src in pairs:
            unit = moving & (self.unit_level == src_level) & (code == src)
            respondents = int(self.resp[unit].sum())
            eligible = float(self.d1[unit & self.elig].sum())
            factor = eligible / float(self.d1[unit & self.resp].sum()) if respondents else math.inf
            failed = src_level == lvl and failing[src]
            steps.append(
                CollapseStep(
                    level=int(src_level),
                    source=self.name(int(src_level), int(src)),
                    target=self.name(lvl + 1, int(parent[unit][0])),
                    reason=("r_min" if respondents < r_min else "a_max") if failed else "sibling",
                    respondents=respondents,
                    factor=factor if eligible > 0 else math.nan,
                )
            )
        return steps


def _check_nested(levels: list[tuple[IntArray, npt.NDArray[np.generic]]], names: list[str]) -> None:
    for lvl in range(len(levels) - 1):
        child, (parent, parents) = levels[lvl][0], levels[lvl + 1]
        # Each (child, parent) pair as one integer: unique rows of an n x 2 array sort slowly.
        pairs = np.unique(child.astype(np.int64) * max(len(parents), 1) + parent)
        if np.unique(child).size != pairs.size:
            raise WeightingError(f"hierarchy is not nested: {names[lvl]} splits across parents")


def _failing(stats: _ClassStats, r_min: int, a_max: float | None) -> BoolArray:
    has_eligible = stats.eligible_total > 0
    too_few = has_eligible & (stats.respondents < r_min)
    if a_max is None:
        return np.asarray(too_few, dtype=bool)
    too_big = has_eligible & (np.nan_to_num(stats.factors, nan=np.inf) > a_max)
    return np.asarray(too_few | too_big, dtype=bool)


def _kept_top(
    stats: _ClassStats, failing: BoolArray, labels: npt.NDArray[np.generic], name: str, lvl: int
) -> list[CollapseStep]:
    empty = failing & (stats.respondents == 0)
    if empty.any():
        raise WeightingError(
            f"class {name}={labels[empty][0]!s} has eligible units but no respondents"
            " and cannot collapse further"
        )
    return [
        CollapseStep(
            level=lvl,
            source=f"{name}={labels[c]}",
            target=f"{name}={labels[c]}",
            reason="kept: top level",
            respondents=int(stats.respondents[c]),
            factor=float(stats.factors[c]),
        )
        for c in np.flatnonzero(failing)
    ]


# --- D4 calibration --------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated weights, g = w/d, and the projection the variance needs (Design calibration)."""

    weights: FloatArray
    g: FloatArray
    projection: CalibrationProjection
    iterations: int = 0
    converged: bool = True
    max_misfit: float = 0.0


def _cell_totals(
    codes: IntArray, levels: npt.NDArray[np.generic], totals: Mapping[Any, float], what: str
) -> FloatArray:
    """Control totals aligned with the sample levels; checks R postStratify's conditions."""
    keys = {_key(k): float(v) for k, v in totals.items()}
    present = {_key(lev) for lev in levels}
    absent = [k for k in levels if _key(k) not in keys]
    if absent:
        raise WeightingError(f"{what}: sample cell {absent[0]!s} has no control total")
    empty = [k for k, v in keys.items() if v > 0 and k not in present]
    if empty:
        raise WeightingError(
            f"{what}: cell {empty[0]!s} has a control total but no sample units (empty cell)"
        )
    out = np.array([keys[_key(lev)] for lev in levels])
    if np.any(out <= 0) or not np.all(np.isfinite(out)):
        raise WeightingError(f"{what}: control totals of sampled cells must be positive")
    return out


def _key(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def poststratify(
    weights: npt.ArrayLike, cells: npt.ArrayLike, totals: Mapping[Any, float]
) -> CalibrationResult:
    """w <- w T_g / sum_g w (R postStratify; empty cells are an error)."""
    d = _weights(weights)
    codes, levels = factorize(_labels(cells, d.shape[0], "cells"))
    target = _cell_totals(codes, levels, totals, "post-stratification")
    current = group_sum(codes, d, len(levels))
    if np.any(current <= 0):
        raise WeightingError("post-stratification: a cell has units but zero weight")
    w = d * (target / current)[codes]
    return CalibrationResult(
        weights=w, g=_ratio(w, d), projection=CalibrationProjection.poststrat(codes, d, w)
    )


def _ratio(w: FloatArray, d: FloatArray) -> FloatArray:
    return np.divide(w, d, out=np.ones_like(w), where=d > 0)


@dataclass(frozen=True)
class RakeResult(CalibrationResult):
    """rake() result; ``projection`` reproduces R's raking variance."""

    margin_weights: tuple[FloatArray, ...] = ()


def rake(
    weights: npt.ArrayLike,
    margins: Sequence[npt.ArrayLike],
    totals: Sequence[Mapping[Any, float]],
    epsilon: float = 1.0,
    maxit: int = 10,
    on_nonconvergence: OnFailure = "raise",
) -> RakeResult:
    """Iterative proportional fitting with R rake() semantics (D4).

    Sweeps post-stratify each margin in turn; stop when the largest change of any cell of
    the joint margin table between sweeps is below epsilon (epsilon < 1: a fraction of the
    initial sum of weights). Defaults are R's control=list(epsilon=1, maxit=10).
    """
    d = _weights(weights)
    n = d.shape[0]
    if len(margins) != len(totals) or not margins:
        raise WeightingError("margins and totals must be non-empty and of the same length")
    coded = [factorize(_labels(m, n, f"margin {i}")) for i, m in enumerate(margins)]
    targets = [
        _cell_totals(c, lev, t, f"margin {i}")
        for i, ((c, lev), t) in enumerate(zip(coded, totals, strict=True))
    ]
    sums = [float(t.sum()) for t in targets]
    if not all(math.isclose(s, sums[0], rel_tol=MARGIN_RTOL) for s in sums):
        raise WeightingError(
            f"inconsistent margins: control totals sum to {', '.join(f'{s:.10g}' for s in sums)}"
        )
    raked = rake_columns(
        d[:, None],
        [(codes, len(levels)) for codes, levels in coded],
        [t[:, None] for t in targets],
        epsilon=epsilon,
        maxit=maxit,
    )
    if not raked.converged.all():
        _fail(
            on_nonconvergence,
            f"raking did not converge in {raked.sweeps} sweeps: largest cell "
            f"change {raked.delta[0]:.4g} >= epsilon {raked.tolerance[0]:.4g};"
            " raise maxit or check the margins",
        )
    w = raked.weights[:, 0]
    return RakeResult(
        weights=w,
        g=_ratio(w, d),
        projection=CalibrationProjection.raking([c for c, _ in coded], raked.first_steps),
        iterations=raked.sweeps,
        converged=bool(raked.converged[0]),
        max_misfit=float(raked.delta[0]),
        margin_weights=tuple(raked.first_steps),
    )


@dataclass(frozen=True)
class RakedColumns:
    """rake_columns(): raked weights (n x R) and, for column 0, each margin's weights in the
    last sweep (what the variance projection needs)."""

    weights: FloatArray
    sweeps: int
    converged: BoolArray  # per column
    delta: FloatArray  # last sweep's largest cell change, per column
    tolerance: FloatArray
    first_steps: list[FloatArray]


def rake_columns(
    d: FloatArray,
    margins: Sequence[tuple[IntArray, int]],
    targets: Sequence[FloatArray],
    epsilon: float = 1.0,
    maxit: int = 10,
) -> RakedColumns:
    """R rake() on every column of d (n x R) at once; margins are (codes, levels) and targets
    (levels x R) control totals (one column per weight column, or one for all).

    A column stops counting as unconverged once its largest change of a joint-table cell
    between sweeps is below epsilon (epsilon < 1: a fraction of that column's sum); sweeps
    go on until every column has converged or maxit is reached. Extra sweeps of an already
    converged column change it by less than its tolerance.
    """
    sizes = [levels for _codes, levels in margins]
    for m, ((codes, levels), target) in enumerate(zip(margins, targets, strict=True)):
        weighted = group_sum(codes, d, levels)
        empty = ((np.asarray(target).reshape(levels, -1) > 0) & (weighted <= 0)).any(axis=1)
        if empty.any():
            raise WeightingError(
                f"margin {m}: cell {int(np.argmax(empty))} has a control total but no sample"
                " units (empty cell)"
            )
    tol = epsilon * d.sum(axis=0) if epsilon < 1 else np.full(d.shape[1], float(epsilon))
    # R compares the full cross-table of all margin variables between sweeps.
    joint = factorize(np.ravel_multi_index([c for c, _ in margins], sizes))[0]
    n_cells = int(joint.max()) + 1
    old = group_sum(joint, d, n_cells)
    w = d
    delta = np.full(d.shape[1], np.inf)
    converged = np.zeros(d.shape[1], dtype=bool)
    steps: list[FloatArray] = []
    sweeps = 0
    while sweeps < maxit and not converged.all():
        steps = []
        for (codes, levels), target in zip(margins, targets, strict=True):
            current = group_sum(codes, w, levels)
            ratio = np.divide(target, current, out=np.ones_like(current), where=current > 0)
            w = w * ratio[codes]
            steps.append(w[:, 0].copy())
        new = group_sum(joint, w, n_cells)
        delta = np.max(np.abs(old - new), axis=0)
        converged |= delta < tol
        sweeps += 1
        old = new
    return RakedColumns(
        weights=w,
        sweeps=sweeps,
        converged=converged,
        delta=delta,
        tolerance=tol,
        first_steps=steps,
    )


def _fail(mode: OnFailure, message: str) -> None:
    if mode == "raise":
        raise WeightingError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@dataclass(frozen=True)
class _CalFun:
    fm1: Callable[[FloatArray], FloatArray]  # g - 1 as a function of x'lambda
    deriv: Callable[[FloatArray], FloatArray]


def _calfun(name: CalFun, lower: float, upper: float) -> _CalFun:
    # R cal.linear / cal.raking / cal.logit.
    if name == "linear":
        return _CalFun(
            fm1=lambda u: np.clip(u + 1.0, lower, upper) - 1.0,
            deriv=lambda u: ((u < upper - 1.0) & (u > lower - 1.0)).astype(np.float64),
        )
    if name == "raking":
        return _CalFun(
            fm1=lambda u: np.clip(np.exp(u), lower, upper) - 1.0,
            deriv=lambda u: np.where((u < upper - 1.0) & (u > lower - 1.0), np.exp(u), 0.0),
        )
    if name == "logit":
        if not (math.isfinite(lower) and math.isfinite(upper)) or not lower < 1.0 < upper:
            raise WeightingError("logit calibration needs finite bounds with lower < 1 < upper")
        a = (upper - lower) / ((upper - 1.0) * (1.0 - lower))

        def fm1(u: FloatArray) -> FloatArray:
            e = np.exp(a * u)
            return (lower * (upper - 1.0) + upper * (1.0 - lower) * e) / (
                upper - 1.0 + (1.0 - lower) * e
            ) - 1.0

        def deriv(u: FloatArray) -> FloatArray:
            e = np.exp(a * u)
            den = upper - 1.0 + (1.0 - lower) * e
            num = lower * (upper - 1.0) + upper * (1.0 - lower) * e
            return upper * (1.0 - lower) * e * a / den - num * ((1.0 - lower) * e * a) / den**2

        return _CalFun(fm1=fm1, deriv=deriv)
    raise WeightingError(f"unknown calfun {name!r}")


def calibrate(
    weights: npt.ArrayLike,
    x: npt.ArrayLike,
    totals: npt.ArrayLike,
    calfun: CalFun = "linear",
    bounds: tuple[float, float] = (-math.inf, math.inf),
    maxit: int = 50,
    epsilon: float = 1e-7,
    on_nonconvergence: OnFailure = "raise",
) -> CalibrationResult:
    """GREG calibration to totals T of the columns of X, as R calibrate() (D4).

    Unbounded linear: g = 1 + X (X'DX)^-1 (T - t_x). Otherwise R grake(): Newton steps until
    max |T - t_x| / (1 + |T|) < epsilon. Include an intercept column in X for the count.
    """
    d = _weights(weights)
    xm = np.asarray(x, dtype=np.float64)
    xm = xm[:, None] if xm.ndim == 1 else xm
    pop = np.atleast_1d(np.asarray(totals, dtype=np.float64))
    if xm.shape != (d.shape[0], pop.shape[0]):
        raise WeightingError(
            f"x must be n x p with p = len(totals); got {xm.shape}, p={pop.shape[0]}"
        )
    # R drops columns that are zero in the sample and in the population.
    keep = ~((pop == 0) & np.all(xm == 0, axis=0))
    xm, pop = xm[:, keep], pop[keep]
    lower, upper = bounds
    if calfun == "linear" and math.isinf(lower) and math.isinf(upper):
        g, iterations, misfit = _regcalibrate(xm, d, pop), 1, 0.0
        converged = True
    else:
        g, iterations, misfit = _grake(xm, d, pop, _calfun(calfun, lower, upper), maxit, epsilon)
        converged = misfit < epsilon
        if not converged:
            _fail(
                on_nonconvergence,
                f"calibration ({calfun}) did not converge in {maxit} "
                f"iterations: max relative misfit {misfit:.3g}; check bounds and totals",
            )
    w = d * g
    return CalibrationResult(
        weights=w,
        g=g,
        projection=CalibrationProjection.greg(xm, d, w),
        iterations=iterations,
        converged=converged,
        max_misfit=misfit,
    )


def _regcalibrate(xm: FloatArray, d: FloatArray, pop: FloatArray) -> FloatArray:
    gram = xm.T @ (xm * d[:, None])
    try:
        lam = np.linalg.solve(gram, pop - xm.T @ d)
    except np.linalg.LinAlgError as exc:
        raise WeightingError(
            "calibration matrix X'DX is singular: drop a redundant column"
        ) from exc
    return 1.0 + xm @ lam


def _grake(
    xm: FloatArray, d: FloatArray, pop: FloatArray, fun: _CalFun, maxit: int, epsilon: float
) -> tuple[FloatArray, int, float]:
    """R grake(): Newton-Raphson on lambda with step halving; returns g, iterations, misfit."""
    ww = d
    sample = xm.T @ ww
    with np.errstate(divide="ignore"):
        scales = pop / sample
    scale = float(scales.mean()) if scales.min() > GRAKE_RESCALE_THRESHOLD else 1.0
    ww, sample = ww * scale, sample * scale
    eta = np.zeros(xm.shape[1])
    xeta = xm @ eta
    deriv = fun.deriv(xeta)
    iteration, achieved = 1, math.inf
    while True:
        tmat = xm.T @ (xm * (ww * deriv)[:, None])
        misfit = pop - sample - xm.T @ (ww * fun.fm1(xeta))
        step = np.linalg.pinv(tmat, rcond=256 * np.finfo(float).eps) @ misfit
        eta = eta + step
        xeta = xm @ eta
        g, deriv = 1.0 + fun.fm1(xeta), fun.deriv(xeta)
        while iteration < maxit and not (np.all(np.isfinite(g)) and np.all(np.isfinite(deriv))):
            iteration += 1
            step = step / 2.0
            eta = eta - step
            xeta = xm @ eta
            g, deriv = 1.0 + fun.fm1(xeta), fun.deriv(xeta)
        misfit = pop - sample - xm.T @ (ww * fun.fm1(xeta))
        achieved = float(np.max(np.abs(misfit) / (1.0 + np.abs(pop))))
        if achieved < epsilon:
            break
        iteration += 1
        if iteration > maxit:
            break
    return g * scale, iteration, achieved


# --- D5 trimming -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimResult:
    weights: FloatArray
    trimmed: BoolArray  # units outside [lower, upper] in the first pass
    passes: int


def trim(
    weights: npt.ArrayLike,
    lower: float = -math.inf,
    upper: float = math.inf,
    strict: bool = False,
    max_passes: int = 100,
) -> TrimResult:
    """R trimWeights(): clip to [lower, upper], spread the excess equally over the others.

    Sum of weights is kept. strict=True repeats the pass until no weight is outside (survey
    4.1.1 semantics); the default single pass is the version-stable result (D5). The
    calibration projection of the untrimmed weights stays valid for the variance (E4).
    """
    w = _weights(weights)
    if lower > upper:
        raise WeightingError("trim: lower bound above upper bound")
    first: BoolArray | None = None
    passes = 0
    while True:
        outside = (w < lower) | (w > upper)
        first = outside if first is None else first
        if not outside.any():
            break
        if outside.all():
            raise WeightingError("trim: every weight is outside the bounds; nothing to spread to")
        if passes >= max_passes:
            raise WeightingError(f"trim: strict trimming did not settle in {max_passes} passes")
        clipped = np.clip(w, lower, upper)
        excess = float((w - clipped).sum())
        w = np.where(outside, clipped, clipped + excess / int((~outside).sum()))
        passes += 1
        if not strict:
            break
    return TrimResult(weights=w, trimmed=first, passes=passes)


# --- D6 diagnostics --------------------------------------------------------------------------


def kish_deff(weights: npt.ArrayLike) -> float:
    """Kish design effect from unequal weights, n sum w^2 / (sum w)^2 (D6)."""
    w = _weights(weights)
    return float(w.shape[0] * np.dot(w, w) / w.sum() ** 2)


@dataclass(frozen=True)
class WeightDiagnostics:
    n: int
    total: float
    minimum: float
    maximum: float
    max_min_ratio: float
    cv: float
    kish_deff: float
    class_totals: dict[str, float]  # sum of weights per class
    class_targets: dict[str, float]  # targets given for comparison (e.g. N^E_h)


def weight_diagnostics(
    weights: npt.ArrayLike,
    classes: npt.ArrayLike | None = None,
    targets: Mapping[Any, float] | None = None,
) -> WeightDiagnostics:
    """min, max, max/min, CV, Kish deff, and sum of weights per class (D6)."""
    w = _weights(weights)
    if w.size == 0:
        raise WeightingError("no weights to describe")
    by_class: dict[str, float] = {}
    if classes is not None:
        codes, levels = factorize(_labels(classes, w.shape[0], "classes"))
        sums = group_sum(codes, w, len(levels))
        by_class = {str(lev): float(s) for lev, s in zip(levels, sums, strict=True)}
    mean = float(w.mean())
    return WeightDiagnostics(
        n=int(w.shape[0]),
        total=float(w.sum()),
        minimum=float(w.min()),
        maximum=float(w.max()),
        max_min_ratio=float(w.max() / w.min()) if w.min() > 0 else math.inf,
        cv=float(w.std() / mean) if mean > 0 else math.nan,
        kish_deff=kish_deff(w),
        class_totals=by_class,
        class_targets={str(k): float(v) for k, v in (targets or {}).items()},
    )


# --- D2-D5 for the full sample and its replicates -------------------------------------------

# Trimming with recalibration (D5): caps and controls count as holding within these.
CAP_RTOL = 1e-6
CONTROL_RTOL = 1e-6


def trim_columns(
    w: FloatArray, lower: float, upper: float, strict: bool = True, max_passes: int = 100
) -> FloatArray:
    """trim() on every column of w (n x R); strict repeats the pass until the caps hold."""
    check_caps(w, lower, upper)
    for _pass in range(max_passes):
        outside = (w < lower) | (w > upper)
        if not outside.any():
            return w
        if (outside.all(axis=0) & (w.shape[0] > 0)).any():
            raise WeightingError("trim: every weight is outside the bounds; nothing to spread to")
        clipped = np.clip(w, lower, upper)
        excess = (w - clipped).sum(axis=0)
        inside = (~outside).sum(axis=0)
        w = np.where(outside, clipped, clipped + excess / np.maximum(inside, 1))
        if not strict:
            return w
    raise WeightingError(f"trim: strict trimming did not settle in {max_passes} passes")


def check_caps(w: FloatArray, lower: float, upper: float) -> None:
    """Caps that the mean weight lies outside can never hold together with the total."""
    mean = w.mean(axis=0) if w.shape[0] else np.zeros(0)
    bad = (mean > upper * (1 + CAP_RTOL)) | (mean < lower * (1 - CAP_RTOL))
    if bad.any():
        raise WeightingError(
            f"trim: the caps [{max(lower, 0):g}, {upper:g}] cannot hold, the mean weight is"
            f" {mean[bad][0]:.6g}; widen the caps"
        )


@dataclass(frozen=True)
class Margin:
    """A calibration variable: its levels, every sampled case's level code (-1 = none) and
    external control totals (None: estimated from the whole sample, D4)."""

    name: str
    levels: npt.NDArray[np.str_]
    codes: IntArray
    fixed: FloatArray | None = None


@dataclass(frozen=True)
class PlanResult:
    weights: FloatArray  # n x R: respondents' final weights, 0 for everyone else
    controls: list[FloatArray]  # per margin, levels x R
    projection: CalibrationProjection | None  # Taylor residualisation of column 0
    trim_rounds: int


@dataclass(frozen=True)
class WeightingPlan:
    """Steps D2-D5 with every data-dependent choice frozen on the full sample (collapsed
    classes, margins, control source, caps), so that the full sample and each replicate
    are weighted alike: `apply` takes base weights n x R (column 0 the full sample)."""

    known: BoolArray
    eligible: BoolArray
    respondent: BoolArray
    unknown_classes: tuple[IntArray, npt.NDArray[np.generic]]
    classes: tuple[IntArray, npt.NDArray[np.generic]]
    calibration: str = "none"  # none, poststratify, raking, linear, logit
    margins: tuple[Margin, ...] = ()
    bounds: tuple[float, float] = (-math.inf, math.inf)
    epsilon: float = 1e-10
    maxit: int = 100
    trim_lower: float | None = None
    trim_upper: float | None = None
    trim_rounds: int = 10

    def apply(self, base: FloatArray) -> PlanResult:
        d1 = adjust_unknown_columns(base, self.known, *self.unknown_classes)
        adjusted = adjust_nonresponse_columns(d1, self.eligible, self.respondent, *self.classes)
        w = adjusted[self.respondent]
        controls = self.controls(d1)
        projection = None
        if self.calibration != "none":
            w, projection = self._calibrate(w, controls)
        rounds = 0
        if self.trim_lower is not None or self.trim_upper is not None:
            w, projection, rounds = self._trim(w, controls, projection)
        out = np.zeros_like(base)
        out[self.respondent] = w
        return PlanResult(out, controls, projection, rounds)

    def controls(self, d1: FloatArray) -> list[FloatArray]:
        """Each margin's controls: the file's, or the sum of d1 over known-eligible cases."""
        out = []
        for margin in self.margins:
            if margin.fixed is not None:
                shape = (margin.levels.size, d1.shape[1])
                out.append(np.broadcast_to(margin.fixed[:, None], shape))
                continue
            inside = self.eligible & (margin.codes >= 0)
            out.append(group_sum(margin.codes[inside], d1[inside], margin.levels.size))
        return out

    def _codes(self) -> list[IntArray]:
        codes = []
        for margin in self.margins:
            here = margin.codes[self.respondent]
            if (here < 0).any():
                raise WeightingError(
                    f"calibration: {margin.name} has respondents in a level without a control total"
                )
            codes.append(here)
        return codes

    def _calibrate(
        self, w: FloatArray, controls: list[FloatArray]
    ) -> tuple[FloatArray, CalibrationProjection]:
        codes = self._codes()
        for margin, code, target in zip(self.margins, codes, controls, strict=True):
            counts = np.bincount(code, minlength=margin.levels.size)
            empty = (target > 0).any(axis=1) & (counts == 0)
            if empty.any():
                raise WeightingError(
                    f"calibration: {margin.name}={margin.levels[np.argmax(empty)]} has eligible"
                    " firms but no respondents; calibrate to a coarser variable"
                )
        if self.calibration == "poststratify":
            current = group_sum(codes[0], w, self.margins[0].levels.size)
            new = (
                w
                * np.divide(controls[0], current, out=np.ones_like(current), where=current > 0)[
                    codes[0]
                ]
            )
            return new, CalibrationProjection.poststrat(codes[0], w[:, 0], new[:, 0])
        if self.calibration == "raking":
            return self._rake(w, codes, controls)
        return self._greg(w, codes, controls)

    def _rake(
        self, w: FloatArray, codes: list[IntArray], controls: list[FloatArray]
    ) -> tuple[FloatArray, CalibrationProjection]:
        sums = np.stack([c.sum(axis=0) for c in controls])
        if np.any(np.abs(sums - sums[0]) > MARGIN_RTOL * np.abs(sums[0])):
            raise WeightingError(
                "inconsistent margins: control totals sum to "
                + ", ".join(f"{s:.10g}" for s in sums[:, 0])
            )
        raked = rake_columns(
            w,
            [(c, m.levels.size) for c, m in zip(codes, self.margins, strict=True)],
            controls,
            epsilon=self.epsilon,
            maxit=self.maxit,
        )
        if not raked.converged.all():
            column = int(np.argmin(raked.converged))
            raise WeightingError(
                f"raking did not converge in {raked.sweeps} sweeps{_replicate(column)}: largest"
                f" cell change {raked.delta[column]:.4g} >= epsilon"
                f" {raked.tolerance[column]:.4g}; raise the sweeps or check the margins"
            )
        return raked.weights, CalibrationProjection.raking(codes, raked.first_steps)

    def _greg(
        self, w: FloatArray, codes: list[IntArray], controls: list[FloatArray]
    ) -> tuple[FloatArray, CalibrationProjection]:
        # Intercept plus all but the first level of each margin: a full-rank model.
        columns = [np.ones(w.shape[0])]
        rows = [controls[0].sum(axis=0)]
        for margin, code, target in zip(self.margins, codes, controls, strict=True):
            for level in range(1, margin.levels.size):
                columns.append((code == level).astype(np.float64))
                rows.append(target[level])
        x, population = np.column_stack(columns), np.stack(rows)
        bounds = self.bounds if self.calibration == "logit" else (-math.inf, math.inf)
        out = np.empty_like(w)
        projection = None
        for column in range(w.shape[1]):
            try:
                result = calibrate(
                    w[:, column],
                    x,
                    population[:, column],
                    self.calibration,  # type: ignore[arg-type]
                    bounds,
                )
            except WeightingError as exc:
                raise WeightingError(f"{exc}{_replicate(column)}") from None
            out[:, column] = result.weights
            projection = result.projection if projection is None else projection
        assert projection is not None
        return out, projection

    def _trim(
        self,
        w: FloatArray,
        controls: list[FloatArray],
        projection: CalibrationProjection | None,
    ) -> tuple[FloatArray, CalibrationProjection | None, int]:
        """Clip to the caps and calibrate the other weights again, until both the caps and
        the controls hold, at most trim_rounds times (D5). A weight once clipped stays at
        its cap and the others are calibrated to what the controls leave them, so each
        round can only add capped units. Without calibration the clipped excess is spread
        equally over the other weights (R trimWeights), keeping the sum of weights."""
        lower = -math.inf if self.trim_lower is None else self.trim_lower
        upper = math.inf if self.trim_upper is None else self.trim_upper
        if self.calibration == "none":
            return trim_columns(w, lower, upper), projection, 1
        check_caps(w, lower, upper)
        fixed = np.zeros(w.shape, dtype=bool)
        for rounds in range(1, self.trim_rounds + 1):
            fixed |= (w > upper) | (w < lower)
            w = np.clip(w, lower, upper)
            if self._controls_hold(w, controls).all():
                return w, projection, rounds
            held = np.where(fixed, w, 0.0)
            left = [
                target - group_sum(code, held, margin.levels.size)
                for code, margin, target in zip(self._codes(), self.margins, controls, strict=True)
            ]
            if any((rest < 0).any() for rest in left):
                break
            try:
                free, projection = self._calibrate(np.where(fixed, 0.0, w), left)
            except WeightingError:
                break
            w = held + free
            if (self._caps_hold(w, lower, upper) & self._controls_hold(w, controls)).all():
                return w, projection, rounds
        raise WeightingError(self._trim_failure(w, lower, upper))

    def _caps_hold(self, w: FloatArray, lower: float, upper: float) -> BoolArray:
        low = lower - CAP_RTOL * abs(lower) if math.isfinite(lower) else -math.inf
        return np.asarray(((w >= low) & (w <= upper * (1 + CAP_RTOL))).all(axis=0))

    def _controls_hold(self, w: FloatArray, controls: list[FloatArray]) -> BoolArray:
        ok = np.ones(w.shape[1], dtype=bool)
        for code, margin, target in zip(self._codes(), self.margins, controls, strict=True):
            achieved = group_sum(code, w, margin.levels.size)
            ok &= (np.abs(achieved - target) <= CONTROL_RTOL * np.abs(target)).all(axis=0)
        return ok

    def _trim_failure(self, w: FloatArray, lower: float, upper: float) -> str:
        column = int(np.argmin(self._caps_hold(w, lower, upper)))
        return (
            f"trimming and calibration did not settle in {self.trim_rounds} rounds"
            f"{_replicate(column)}: the weights range from {w[:, column].min():.6g} to"
            f" {w[:, column].max():.6g} against the caps [{max(lower, 0):g}, {upper:g}] when the"
            " controls hold; widen the caps or calibrate to fewer margins"
        )
