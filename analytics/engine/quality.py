"""Reliability flags, quality grades and suppression of published cells (methodology sec. F).

Vectorised over arrays of estimates. Each cell gets a flag (OK, CAUTION, REVIEW, SUPPRESS),
whether it is suppressed, the primary reason code, every reason that applied and a grade.
Only confidentiality suppresses (too few respondents, dominance; then complementary cells);
unreliable cells are published with their grade and a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.engine.estimation import Estimates, ci_korn_graubard, is_extreme

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

OK, CAUTION, REVIEW, SUPPRESS = "OK", "CAUTION", "REVIEW", "SUPPRESS"

# Reason codes, most severe first (the primary reason is the first that applies).
NO_DATA = "NO_DATA"
MIN_N = "CONFIDENTIALITY_MIN_N"
MIN_CELL = "CONFIDENTIALITY_MIN_CELL"
DOMINANCE = "DOMINANCE"
NCHS_N = "NCHS_N_LT_30"
NCHS_NEFF = "NCHS_NEFF_LT_30"
NCHS_WIDTH = "NCHS_CI_WIDTH_GE_30"
NCHS_RELATIVE_WIDTH = "NCHS_REL_WIDTH_GT_130"
RSE_HIGH = "RSE_GT_50"
RSE_UNDEFINED = "RSE_UNDEFINED"
DF_LOW = "DF_LT_8"
P_EXTREME = "P_0_OR_1"
RSE_CAUTION = "RSE_25_50"
# Confidentiality: the only reasons that suppress (complementary suppression follows them).
CONFIDENTIALITY = (NO_DATA, MIN_N, MIN_CELL, DOMINANCE)
# Reliability: published with a warning and the grade.
RELIABILITY = (NCHS_N, NCHS_NEFF, NCHS_WIDTH, NCHS_RELATIVE_WIDTH, RSE_HIGH, RSE_CAUTION)

# Quality grade by CV, the letters of Statistics Canada's data-quality indicator: A excellent
# (CV < 5 %), B very good (< 10 %), C good (< 15 %), D acceptable (< 25 %), E use with
# caution (25 % and above; Statistics Canada withholds F, "too unreliable", from 50 %; here
# such cells are published as E with the RSE_GT_50 warning, and only confidentiality hides).
GRADES = ("A", "B", "C", "D", "E")
GRADE_CV_CUTS = (0.05, 0.10, 0.15, 0.25)


def grade(cv: npt.ArrayLike) -> StrArray:
    """A-E by coefficient of variation; "" where the CV is undefined (estimate 0, no data)."""
    c = np.asarray(cv, dtype=np.float64)
    finite = np.isfinite(c)
    letters = np.array(GRADES)[np.searchsorted(GRADE_CV_CUTS, np.where(finite, c, 0), "right")]
    return np.where(finite, letters, "").astype(str)


@dataclass(frozen=True)
class Thresholds:
    """Section F defaults; every value is configurable."""

    min_n: int = 5  # F1: unweighted respondents in the base
    min_cell_n: int = 5  # F1: respondents in a non-empty cell (proportions: y = 1)
    dominance_min_n: int = 3  # F1: amount tables need at least this many contributors
    dominance_max_share: float = 0.5  # F1: and the largest must hold at most this share
    nchs_min_n: int = 30  # F2
    nchs_min_neff: float = 30.0
    nchs_max_width: float = 0.30
    nchs_show_width: float = 0.05
    nchs_max_relative_width: float = 1.30
    min_df: int = 8
    rse_caution: float = 0.25  # F3
    rse_suppress: float = 0.50
    level: float = 0.95


@dataclass(frozen=True)
class Quality:
    flag: StrArray
    suppressed: BoolArray
    reason: StrArray  # primary reason ("" when OK)
    reasons: StrArray  # every reason that applied, joined by "+"


_SEVERITY = {SUPPRESS: 3, REVIEW: 2, CAUTION: 1, OK: 0}


def _combine(shape: tuple[int, ...], rules: list[tuple[str, str, BoolArray]]) -> Quality:
    severity = np.zeros(shape, dtype=np.intp)
    flag = np.full(shape, OK, dtype=object)
    reason = np.full(shape, "", dtype=object)
    reasons = np.full(shape, "", dtype=object)
    for level, code, hit in rules:
        hit = np.broadcast_to(np.asarray(hit, dtype=bool), shape)
        worse = hit & (severity < _SEVERITY[level])
        severity = np.where(worse, _SEVERITY[level], severity)
        flag = np.where(worse, level, flag)
        reason = np.where(worse, code, reason)
        reasons = np.where(hit, np.where(reasons == "", code, reasons + "+" + code), reasons)
    return Quality(
        flag=flag.astype(str),
        suppressed=severity == _SEVERITY[SUPPRESS],
        reason=reason.astype(str),
        reasons=reasons.astype(str),
    )


def _confidentiality(
    n: FloatArray, nodata: BoolArray, n_cell: npt.ArrayLike | None, t: Thresholds
) -> list[tuple[str, str, BoolArray]]:
    rules = [
        (SUPPRESS, NO_DATA, nodata | (n <= 0)),
        (SUPPRESS, MIN_N, (n > 0) & (n < t.min_n)),
    ]
    if n_cell is not None:
        cell = np.asarray(n_cell)
        # An empty cell (p = 0) discloses no respondent's value; small non-empty cells do.
        rules.append((SUPPRESS, MIN_CELL, (cell > 0) & (cell < t.min_cell_n)))
    return rules


def proportion_quality(
    p: npt.ArrayLike,
    se: npt.ArrayLike,
    n: npt.ArrayLike,
    df: npt.ArrayLike,
    n_cell: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
    design_rows: npt.ArrayLike | None = None,
) -> Quality:
    """NCHS presentation standards for proportions (Parker et al. 2017) as warnings, with the
    sec. F1 confidentiality rules (which alone suppress).

    Uses the Korn-Graubard CI (n = design_rows as R svyciprop, default n) and n_eff =
    p(1-p)/v capped at n; df < 8 and p in {0,1} (up to rounding) are flagged for review.
    """
    t = thresholds or Thresholds()
    pa, sa = np.asarray(p, dtype=np.float64), np.asarray(se, dtype=np.float64)
    na, dfa = np.asarray(n, dtype=np.float64), np.asarray(df, dtype=np.float64)
    rows = na if design_rows is None else np.asarray(design_rows, dtype=np.float64)
    var = sa * sa
    extreme = is_extreme(pa)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where((var > 0) & ~extreme, np.minimum(pa * (1.0 - pa) / var, na), na)
        lower, upper = ci_korn_graubard(pa, sa, rows, dfa, t.level)
        width = upper - lower
        relative = width / pa
    nodata = ~np.isfinite(pa)
    shape = np.broadcast_shapes(pa.shape, na.shape)
    rules = [
        *_confidentiality(na, nodata, n_cell, t),
        (CAUTION, NCHS_N, na < t.nchs_min_n),
        (CAUTION, NCHS_NEFF, n_eff < t.nchs_min_neff),
        (CAUTION, NCHS_WIDTH, width >= t.nchs_max_width),
        (
            CAUTION,
            NCHS_RELATIVE_WIDTH,
            (width > t.nchs_show_width) & (relative > t.nchs_max_relative_width),
        ),
        (REVIEW, P_EXTREME, ~nodata & extreme),
        (REVIEW, DF_LOW, dfa < t.min_df),
    ]
    return _combine(shape, rules)


def rse_quality(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    n: npt.ArrayLike,
    df: npt.ArrayLike,
    top_share: npt.ArrayLike | None = None,
    n_contributors: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
) -> Quality:
    """Means and totals: RSE 25-50 % caution, > 50 % a stronger warning (F3, published with
    the grade), minimum n and dominance suppress (F1).

    Amount tables: pass the largest unit's share of the cell total (`top_share`) and the
    number of non-zero contributors to apply the dominance rule.
    """
    t = thresholds or Thresholds()
    est, sa = np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64)
    na, dfa = np.asarray(n, dtype=np.float64), np.asarray(df, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rse = sa / np.abs(est)
    nodata = ~np.isfinite(est)
    rules = _confidentiality(na, nodata, None, t)
    if top_share is not None or n_contributors is not None:
        dominated = np.zeros(np.shape(est), dtype=bool)
        if top_share is not None:
            dominated = dominated | (np.asarray(top_share) > t.dominance_max_share)
        if n_contributors is not None:
            contributors = np.asarray(n_contributors)
            dominated = dominated | ((contributors > 0) & (contributors < t.dominance_min_n))
        rules.append((SUPPRESS, DOMINANCE, dominated))
    rules += [
        (CAUTION, RSE_HIGH, rse > t.rse_suppress),
        (REVIEW, RSE_UNDEFINED, ~nodata & ~np.isfinite(rse)),
        (REVIEW, DF_LOW, dfa < t.min_df),
        (CAUTION, RSE_CAUTION, (rse >= t.rse_caution) & (rse <= t.rse_suppress)),
    ]
    return _combine(np.broadcast_shapes(est.shape, na.shape), rules)


def assess(
    estimates: Estimates,
    proportion: npt.ArrayLike,
    top_share: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
) -> Quality:
    """Quality of every cell of an `Estimates`; ``proportion`` marks 0/1 columns (NCHS)."""
    is_prop = np.broadcast_to(np.asarray(proportion, dtype=bool), estimates.estimate.shape)
    nchs = proportion_quality(
        estimates.estimate,
        estimates.se,
        estimates.n,
        estimates.df,
        estimates.n_nonzero,
        thresholds,
        estimates.design_rows,
    )
    rse = rse_quality(
        estimates.estimate,
        estimates.se,
        estimates.n,
        estimates.df,
        top_share,
        None if top_share is None else estimates.n_nonzero,
        thresholds,
    )
    return Quality(
        flag=np.where(is_prop, nchs.flag, rse.flag),
        suppressed=np.where(is_prop, nchs.suppressed, rse.suppressed),
        reason=np.where(is_prop, nchs.reason, rse.reason),
        reasons=np.where(is_prop, nchs.reasons, rse.reasons),
    )


def top_share(
    y: npt.ArrayLike,
    weights: npt.ArrayLike,
    domain: npt.ArrayLike | None = None,
    columns: npt.ArrayLike | None = None,
) -> FloatArray:
    """Largest single unit's share of the weighted cell total, per column (dominance, F1);
    only the given columns (the amounts), NaN for the others."""
    ym = np.asarray(y, dtype=np.float64)
    ym = ym[:, None] if ym.ndim == 1 else ym
    chosen = np.arange(ym.shape[1]) if columns is None else np.flatnonzero(columns)
    w = np.asarray(weights, dtype=np.float64)
    rows = slice(None) if domain is None else np.flatnonzero(np.asarray(domain, dtype=bool))
    # Columns first: the domain's rows of every column would copy the whole matrix.
    contrib = np.abs(np.nan_to_num(ym[:, chosen][rows])) * w[rows][:, None]
    total = contrib.sum(axis=0)
    out = np.full(ym.shape[1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[chosen] = np.where(total > 0, contrib.max(axis=0, initial=0.0) / total, np.nan)
    return out


COMPLEMENTARY = "COMPLEMENTARY"


def complementary(
    suppressed: npt.ArrayLike,
    size: npt.ArrayLike,
    groups: list[tuple[npt.NDArray[np.intp], int | None]],
) -> BoolArray:
    """Secondary suppression (F4): cells of a group add up to a known total (the options of a
    single-choice item add up to 100 %; a domain variable's cells add up to the overall
    estimate), so a group with exactly one suppressed cell would give it away. The smallest
    unsuppressed cell (by estimated population) is suppressed too, preferring non-empty cells
    (an empty cell is often known to be empty), until no group gives anything away.

    groups: (cells, total cell or None when the total is known anyway).
    """
    out = np.asarray(suppressed, dtype=bool).copy()
    sizes = np.nan_to_num(np.asarray(size, dtype=np.float64), nan=0.0)
    # Empty cells rank after every non-empty one.
    rank = np.where(sizes > 0, sizes, np.inf)
    changed = True
    while changed:
        changed = False
        for cells, total in groups:
            hidden = out[cells]
            derivable = total is None or not out[total]
            if derivable and cells.size > 1 and hidden.sum() == 1:
                shown = cells[~hidden]
                out[shown[np.argmin(rank[shown])]] = True
                changed = True
    return out
