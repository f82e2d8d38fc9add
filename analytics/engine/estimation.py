"""Taylor-linearisation estimates for stratified (and one-stage clustered) designs.

Pure numpy/scipy; reproduces R `survey` (svydesign, svymean, svytotal, svyratio, svyciprop,
degf, deff) as specified in methodology sec. E. Every estimator takes a matrix ``Y`` (n x k,
NaN = item nonresponse) and estimates all k columns at once for one domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

# scipy.special, not scipy.stats: the same quantile functions (stats.t.ppf and stats.beta.ppf
# call them) without the second that importing scipy.stats costs every recompute process.
from scipy import special

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

LonelyPSU = Literal["fail", "remove", "certainty", "adjust", "average"]
CIMethod = Literal["wald", "logit", "beta"]
Statistic = Literal["mean", "total", "ratio"]

LONELY_PSU_RULES: tuple[str, ...] = ("fail", "remove", "certainty", "adjust", "average")
# R onestrat(): a stratum whose fpc factor is below this is self-representing (adds 0).
TAKE_ALL_TOLERANCE = 1e-7
# R qr() rank tolerance, used for the calibration projection (E4).
RANK_TOLERANCE = 1e-7
# Moment-based calibrated variance is recomputed explicitly below this share of its terms
# (rounding error ~1e-16 of the terms, so kept results are good to ~1e-10 relative).
CANCELLATION_GUARD = 1e-6
# R svyrecvar() sweeps the raking margins a fixed 10 times.
R_RAKING_SWEEPS = 10
# A proportion this close to 0 or 1 is 0 or 1 up to rounding (sums of weights in different
# orders differ by ~1e-15; a real proportion is at least min(w)/sum(w), ~1e-6 in a census).
PROPORTION_TOLERANCE = 1e-9


def is_extreme(p: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Proportions equal to 0 or 1 up to rounding (no SE-based interval, flag P_0_OR_1)."""
    pa = np.asarray(p, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(
            np.isfinite(pa) & ((pa <= PROPORTION_TOLERANCE) | (pa >= 1.0 - PROPORTION_TOLERANCE))
        )


class EstimationError(ValueError):
    """An estimate cannot be computed as specified; the message says why."""


# --- small helpers ---------------------------------------------------------------------------


def factorize(labels: npt.ArrayLike) -> tuple[IntArray, npt.NDArray[np.generic]]:
    """Integer codes 0..G-1 (sorted label order) and the labels."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "U" and arr.ndim == 1:
        return _factorize_text(arr)
    levels, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.intp).reshape(-1), levels


def _factorize_text(arr: npt.NDArray[np.str_]) -> tuple[IntArray, npt.NDArray[np.str_]]:
    """np.unique(return_inverse=True) of text by hashing: sorting 163,273 strings (a census's
    strata) costs four times as much, and few labels are distinct. Python orders str by
    code point, as numpy does."""
    values = arr.tolist()
    levels = sorted(dict.fromkeys(values))
    code = {v: k for k, v in enumerate(levels)}
    codes = np.fromiter(map(code.__getitem__, values), np.intp, len(values))
    return codes, np.array(levels, dtype=arr.dtype)


def group_sum(codes: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Sum the rows of ``values`` (m or m x k) by group code, as R rowsum()."""
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups).astype(np.float64, copy=False)
    if values.shape[1] == 1:
        return group_sum(codes, values[:, 0], n_groups)[:, None]
    m = codes.shape[0]
    agg = sp.csr_array((np.ones(m), (codes, np.arange(m))), shape=(n_groups, m))
    return np.asarray(agg @ values)


def dummies(codes: IntArray, n_groups: int, scale: FloatArray | None = None) -> sp.csr_array:
    """Sparse n x G indicator matrix, rows optionally multiplied by ``scale``."""
    n = codes.shape[0]
    data = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
    return sp.csr_array((data, (np.arange(n), codes)), shape=(n, n_groups))


def _as_matrix(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise EstimationError(f"{name} must have {n} rows (one per unit), got shape {arr.shape}")
    return arr


def _rows(domain: npt.ArrayLike | None, n: int) -> IntArray | None:
    if domain is None:
        return None
    mask = np.asarray(domain)
    if mask.dtype != np.bool_ or mask.shape != (n,):
        raise EstimationError(f"domain must be a boolean mask of length {n}")
    return np.flatnonzero(mask)


def _t_quantile(level: float, df: npt.ArrayLike) -> FloatArray:
    dfa = np.asarray(df, dtype=np.float64)
    q = special.stdtrit(np.where(dfa > 0, dfa, 1.0), 0.5 + level / 2.0)
    q = np.asarray(q, dtype=np.float64)
    return np.where(dfa > 0, q, np.nan)


# --- calibration projection (methodology E4) -------------------------------------------------


@dataclass(frozen=True, eq=False)
class CalibrationProjection:
    """Residualises influence values after calibration: z* = z - xt @ gamma @ (a.T @ z).

    Every R calibration leaves this linear form: GREG/calibrate and postStratify project
    u = z/w on X in the metric of the pre-calibration weights (E4); rake() sweeps its margins
    ten times (R svyrecvar). Build with `greg`, `poststrat`, `raking`; chain with `then`.
    """

    a: sp.csr_array
    xt: sp.csr_array
    gamma: FloatArray

    def residualise(self, z: FloatArray) -> FloatArray:
        s = np.asarray(self.a.T @ z)
        return z - np.asarray(self.xt @ (self.gamma @ s))

    @classmethod
    def greg(
        cls, x: npt.ArrayLike | sp.sparray, prior: npt.ArrayLike, calibrated: npt.ArrayLike
    ) -> CalibrationProjection:
        """GREG/calibrate(): X, pre-calibration weights d and calibrated (pre-trim) weights."""
        xs = sp.csr_array(x) if sp.issparse(x) else sp.csr_array(_column_matrix(x))
        d = np.asarray(prior, dtype=np.float64)
        w = np.asarray(calibrated, dtype=np.float64)
        # R recvar divides by the calibrated weight; units with w = 0 carry z = 0 anyway.
        inv = np.divide(d, w, out=np.zeros_like(w), where=w != 0)
        gram = (xs.T @ xs.multiply(d[:, None])).toarray()
        return cls(
            a=sp.csr_array(xs.multiply(inv[:, None])),
            xt=sp.csr_array(xs.multiply(w[:, None])),
            gamma=_pinv_psd(gram),
        )

    @classmethod
    def poststrat(
        cls, cells: npt.ArrayLike, prior: npt.ArrayLike, calibrated: npt.ArrayLike
    ) -> CalibrationProjection:
        """postStratify(): post-stratum labels, pre- and post-stratified weights."""
        codes, levels = factorize(cells)
        return cls.greg(dummies(codes, len(levels)), prior, calibrated)

    @classmethod
    def raking(
        cls, margins: Sequence[npt.ArrayLike], margin_weights: Sequence[npt.ArrayLike]
    ) -> CalibrationProjection:
        """rake(): margin labels and the weights after each margin in the last sweep.

        R svyrecvar repeats x <- x - w_m * ave(x / w_m, margin_m) ten times over the margins
        (an unweighted mean, unlike calibrate(calfun="raking")); gamma is that iteration
        applied to the identity, so the result equals R to rounding.
        """
        blocks_a: list[sp.csr_array] = []
        blocks_x: list[sp.csr_array] = []
        counts: list[FloatArray] = []
        for labels, psw in zip(margins, margin_weights, strict=True):
            codes, levels = factorize(labels)
            wm = np.asarray(psw, dtype=np.float64)
            inv = np.divide(1.0, wm, out=np.zeros_like(wm), where=wm != 0)
            blocks_a.append(dummies(codes, len(levels), inv))
            blocks_x.append(dummies(codes, len(levels), wm))
            counts.append(np.bincount(codes, minlength=len(levels)).astype(np.float64))
        a = sp.csr_array(sp.hstack(blocks_a))
        xt = sp.csr_array(sp.hstack(blocks_x))
        cross = (a.T @ xt).toarray()
        edges = np.cumsum([0] + [len(c) for c in counts])
        gamma = np.zeros((edges[-1], edges[-1]))
        identity = np.eye(edges[-1])
        for _ in range(R_RAKING_SWEEPS):
            for m, cnt in enumerate(counts):
                block = slice(edges[m], edges[m + 1])
                gamma[block] += (identity[block] - cross[block] @ gamma) / cnt[:, None]
        return cls(a=a, xt=xt, gamma=gamma)

    def then(self, later: CalibrationProjection) -> CalibrationProjection:
        """This calibration followed by ``later`` (R applies design$postStrata in order)."""
        first = self.a.shape[1]
        coupling = (later.a.T @ self.xt).toarray()
        top = np.hstack([self.gamma, np.zeros((first, later.gamma.shape[0]))])
        bottom = later.gamma @ np.hstack([-coupling @ self.gamma, np.eye(later.gamma.shape[0])])
        return CalibrationProjection(
            a=sp.csr_array(sp.hstack([self.a, later.a])),
            xt=sp.csr_array(sp.hstack([self.xt, later.xt])),
            gamma=np.vstack([top, bottom]),
        )


def _column_matrix(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def _pinv_psd(gram: FloatArray) -> FloatArray:
    # Rank cut on singular values of sqrt(D)X, as R qr() (tol 1e-7) in svyrecvar.
    vals, vecs = np.linalg.eigh((gram + gram.T) / 2.0)
    sv = np.sqrt(np.clip(vals, 0.0, None))
    keep = sv > RANK_TOLERANCE * sv.max() if sv.size else sv.astype(bool)
    return (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T


# --- the design ------------------------------------------------------------------------------


class Design:
    """A stratified (optionally one-stage clustered) design on the respondent file.

    weights: final weights. strata: stratum labels (None = one stratum). fpc: per-unit
    population count of PSUs in the stratum, N_h (None = no fpc; inf allowed). psu: PSU ids,
    nested within strata (None = every unit is a PSU). lonely_psu: R survey.lonely.psu.
    calibration: projection(s) from the weighting step, applied in order (E4).
    domain_df: df of a domain estimate = PSUs - strata among the domain's respondents, as R
    degf(subset(design, ...)) used by svyciprop; False = the whole design's df.
    """

    def __init__(
        self,
        weights: npt.ArrayLike,
        strata: npt.ArrayLike | None = None,
        fpc: npt.ArrayLike | None = None,
        psu: npt.ArrayLike | None = None,
        lonely_psu: LonelyPSU = "adjust",
        calibration: CalibrationProjection | Sequence[CalibrationProjection] | None = None,
        domain_df: bool = True,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise EstimationError("weights must be finite and non-negative")
        if lonely_psu not in LONELY_PSU_RULES:
            raise EstimationError(f"lonely_psu must be one of {LONELY_PSU_RULES}")
        self.n = w.shape[0]
        self.weights = w
        self.lonely_psu: LonelyPSU = lonely_psu
        self.domain_df = domain_df
        self.strata, self.strata_levels = factorize(
            np.zeros(self.n, np.intp) if strata is None else self._column(strata, "strata")
        )
        self.n_strata = len(self.strata_levels)
        self._set_psus(psu)
        self._set_scale(fpc)
        self.projection = _chain(calibration)
        if self.projection is not None and self.projection.a.shape[0] != self.n:
            raise EstimationError(
                f"calibration projection has {self.projection.a.shape[0]} rows, design has {self.n}"
            )
        self._moments = (
            _Moments.of(self.projection, self.strata, self.n_strata, self.scale_ok[self.strata])
            if self.projection is not None and not self.clustered
            else None
        )
        positive = w > 0
        # Unclustered, every unit is its own PSU.
        psus = np.unique(self.psu[positive]).size if self.clustered else int(positive.sum())
        self.df = int(psus - np.unique(self.strata[positive]).size)

    def _column(self, values: npt.ArrayLike, name: str) -> npt.NDArray[np.generic]:
        arr = np.asarray(values).reshape(-1)
        if arr.shape[0] != self.n:
            raise EstimationError(f"{name} must have one value per unit ({self.n})")
        return arr

    def _set_psus(self, psu: npt.ArrayLike | None) -> None:
        self.clustered = psu is not None
        if psu is None:
            self.psu = np.arange(self.n, dtype=np.intp)
            self.psu_stratum = self.strata
        else:
            # PSU ids are nested in strata (R nest=TRUE).
            ids = factorize(self._column(psu, "psu"))[0]
            pairs = np.stack([self.strata, ids], axis=1)
            first, code = np.unique(pairs, axis=0, return_inverse=True)
            self.psu = code.reshape(-1).astype(np.intp)
            self.psu_stratum = first[:, 0].astype(np.intp)
        self.n_psu = np.bincount(self.psu_stratum, minlength=self.n_strata)

    def _set_scale(self, fpc: npt.ArrayLike | None) -> None:
        n_h = self.n_psu.astype(np.float64)
        if fpc is None:
            keep = np.ones(self.n_strata)
        else:
            pop = np.asarray(self._column(fpc, "fpc"), dtype=np.float64)
            if np.any(np.isnan(pop)) or np.any(pop <= 0):
                raise EstimationError("fpc (N_h) must be positive (inf = no fpc)")
            pop_h = np.empty(self.n_strata)
            pop_h[self.strata] = pop
            if np.any(pop != pop_h[self.strata]):
                raise EstimationError("fpc (N_h) must be constant within each stratum")
            if np.any(pop_h < n_h):
                raise EstimationError("fpc implies more than 100% sampling in some stratum")
            keep = np.where(np.isinf(pop_h), 1.0, (pop_h - n_h) / pop_h)
        self.take_all = keep < TAKE_ALL_TOLERANCE
        self.lonely = (self.n_psu == 1) & ~self.take_all
        if self.lonely_psu == "fail" and self.lonely.any():
            names = ", ".join(map(str, self.strata_levels[self.lonely][:5]))
            raise EstimationError(
                f"stratum {names} has only one PSU (lonely_psu='fail'); choose another rule"
                " or collapse strata"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(n_h > 1, keep * n_h / (n_h - 1), keep)
        self.scale = np.where(self.take_all, 0.0, scale)
        # Lonely strata are handled by the lonely_psu rule, not by the usual formula.
        self.scale_ok = np.where(self.lonely, 0.0, self.scale)

    # --- variance (methodology E3) ---------------------------------------------------------

    def variance(
        self, z: FloatArray, rows: IntArray | None = None, active: BoolArray | None = None
    ) -> FloatArray:
        """Taylor variance of totals of influence values ``z`` (m x k).

        rows: the units z belongs to (None = all); every other unit has z = 0 in its stratum.
        active: (m x k) units answering in the domain; decides which strata are present for
        lonely_psu 'adjust'/'average' (R drops the others with the subset).
        """
        if self.projection is not None and not self.clustered:
            var, magnitude = self._calibrated_variance(z, rows)
            # The moment expansion cancels when the variance is far below its terms (e.g. a
            # calibration variable, variance ~ 0): redo those columns explicitly.
            unstable = var < CANCELLATION_GUARD * magnitude
            if unstable.any():
                var[unstable] = self._explicit_variance(z[:, unstable], rows, None)
            return var
        return self._explicit_variance(z, rows, active)

    def _explicit_variance(
        self, z: FloatArray, rows: IntArray | None, active: BoolArray | None
    ) -> FloatArray:
        if self.projection is not None:
            z, rows, active = self._residualised(z, rows, active)
        psu = self.psu if rows is None else self.psu[rows]
        if self.clustered:
            present_psu, inv = np.unique(psu, return_inverse=True)
            totals = group_sum(inv.reshape(-1), z, present_psu.size)
        else:
            present_psu, totals = psu, z
        h = self.psu_stratum[present_psu]
        n_h = self.n_psu[:, None].astype(np.float64)
        s_h = group_sum(h, totals, self.n_strata)
        mean = s_h / n_h
        dev = totals - mean[h]
        # Strata PSUs outside ``rows`` are zero rows: (0 - mean)^2 each, as R pads them.
        padding = n_h - np.bincount(h, minlength=self.n_strata)[:, None]
        var = np.einsum("i,ij,ij->j", self.scale_ok[h], dev, dev)
        var += (self.scale_ok[:, None] * padding * mean * mean).sum(axis=0)
        if self.lonely.any():
            var = self._lonely(var, s_h, self._present_strata(rows, active, z.shape[1]))
        return np.asarray(var, dtype=np.float64)

    def _calibrated_variance(
        self, z: FloatArray, rows: IntArray | None
    ) -> tuple[FloatArray, FloatArray]:
        """E4 + E3 for unclustered designs without forming z* = z - xt gamma on every unit.

        Sum_h scale_h [sum z*^2 - (sum z*)^2 / n_h] expands into moments over the domain rows
        and precomputed stratum/Gram matrices of xt, so a domain costs O(rows), not O(n).
        """
        proj, moments = self.projection, self._moments
        assert proj is not None and moments is not None
        a = proj.a if rows is None else proj.a[rows]
        xt = proj.xt if rows is None else proj.xt[rows]
        h = self.strata if rows is None else self.strata[rows]
        scale = self.scale_ok[h]
        gamma = proj.gamma @ np.asarray(a.T @ z)
        s_h = group_sum(h, z, self.n_strata) - moments.stratum_xt @ gamma
        cross = np.asarray(xt.T @ (scale[:, None] * z))
        plain = np.einsum("i,ij,ij->j", scale, z, z)
        fitted = np.einsum("lj,lj->j", gamma, moments.gram @ gamma)
        squares = plain - 2.0 * np.einsum("lj,lj->j", cross, gamma) + fitted
        n_h = self.n_psu[:, None].astype(np.float64)
        var = np.maximum(squares - (self.scale_ok[:, None] * s_h * s_h / n_h).sum(axis=0), 0.0)
        if self.lonely.any():
            var = self._lonely(var, s_h, np.ones_like(s_h, dtype=bool))
        return np.asarray(var, dtype=np.float64), np.asarray(plain + fitted, dtype=np.float64)

    def _residualised(
        self, z: FloatArray, rows: IntArray | None, active: BoolArray | None
    ) -> tuple[FloatArray, None, None]:
        assert self.projection is not None
        if rows is not None:
            full = np.zeros((self.n, z.shape[1]))
            full[rows] = z
            z = full
        # A calibrated subset keeps every row in R (weights set to 0): all strata present.
        return self.projection.residualise(z), None, None

    def _present_strata(self, rows: IntArray | None, active: BoolArray | None, k: int) -> BoolArray:
        if rows is None and active is None:
            return np.ones((self.n_strata, k), dtype=bool)
        strata = self.strata if rows is None else self.strata[rows]
        act = np.ones((strata.size, k)) if active is None else active.astype(np.float64)
        return group_sum(strata, act, self.n_strata) > 0

    def _lonely(self, var: FloatArray, s_h: FloatArray, present: BoolArray) -> FloatArray:
        lonely = self.lonely[:, None] & present
        if self.lonely_psu == "adjust":
            # survey 4.1.1 (Debian's r-cran-survey, the version the fixtures and CI run):
            # onestrat() leaves a lonely PSU's total uncentred, i.e. centred at 0. Later
            # versions centre it at the grand mean of PSU totals, which differs for totals
            # and for calibrated designs, whose residualised z need not sum to 0.
            dev = np.where(lonely, s_h, 0.0)
            return var + (self.scale[:, None] * dev * dev).sum(axis=0)
        if self.lonely_psu == "average":
            n_present = present.sum(axis=0)
            n_ok = n_present - lonely.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(n_ok > 0, var * n_present / n_ok, np.nan)
        return var  # remove / certainty: a lonely PSU adds nothing

    def domain_degf(self, rows: IntArray | None, active: BoolArray) -> IntArray:
        """PSUs minus strata among active units (w > 0, answering): R degf of the subset."""
        if not self.domain_df:
            return np.full(active.shape[1], self.df, dtype=np.intp)
        act = active.astype(np.float64)
        psu = self.psu if rows is None else self.psu[rows]
        if self.clustered:
            present_psu, inv = np.unique(psu, return_inverse=True)
            act = (group_sum(inv.reshape(-1), act, present_psu.size) > 0).astype(np.float64)
            psu = present_psu
        per_stratum = group_sum(self.psu_stratum[psu], act, self.n_strata)
        return (per_stratum.sum(axis=0) - (per_stratum > 0).sum(axis=0)).astype(np.intp)


@dataclass(frozen=True)
class _Moments:
    """Stratum totals and scale-weighted Gram matrix of a projection's xt (unclustered E4)."""

    stratum_xt: FloatArray  # H x L
    gram: FloatArray  # L x L, sum_i scale_i xt_i xt_i'

    @classmethod
    def of(
        cls, proj: CalibrationProjection, strata: IntArray, n_strata: int, scale: FloatArray
    ) -> _Moments:
        return cls(
            stratum_xt=np.asarray((dummies(strata, n_strata).T @ proj.xt).toarray()),
            gram=np.asarray((proj.xt.T @ proj.xt.multiply(scale[:, None])).toarray()),
        )


def _chain(
    calibration: CalibrationProjection | Sequence[CalibrationProjection] | None,
) -> CalibrationProjection | None:
    if calibration is None:
        return None
    steps = [calibration] if isinstance(calibration, CalibrationProjection) else list(calibration)
    if not steps:
        return None
    out = steps[0]
    for step in steps[1:]:
        out = out.then(step)
    return out


# --- estimates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimates:
    """One estimate per column of Y (arrays of shape (k,), or (D, k) from `estimate_by`)."""

    statistic: Statistic
    estimate: FloatArray
    variance: FloatArray
    n: IntArray  # unweighted respondents (w > 0) in the domain answering the item
    n_nonzero: IntArray  # of those, units with a non-zero value (cell count, contributors)
    population: FloatArray  # sum of weights in the domain among units answering the item
    df: IntArray
    srs_variance: FloatArray  # with-replacement SRS variance (R deff="replace" denominator)
    # Rows of the (sub)design, R nrow(design) in svyciprop(method="beta"): the domain's
    # answering units, but every unit of a calibrated design (R keeps them with weight 0).
    design_rows: IntArray

    @property
    def se(self) -> FloatArray:
        return np.sqrt(self.variance)

    @property
    def cv(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.se / np.abs(self.estimate)

    @property
    def deff(self) -> FloatArray:
        """Design effect as R deff=TRUE: SRS variance without replacement (E6)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            fpc = 1.0 - self.n / self.population
            return np.where(fpc > 0, self.variance / (self.srs_variance * fpc), np.nan)

    @property
    def deff_replace(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.variance / self.srs_variance

    @property
    def n_eff(self) -> FloatArray:
        """Effective sample size of a proportion, p(1-p)/v capped at n (sec. F2)."""
        p = self.estimate
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = p * (1.0 - p) / self.variance
        return np.where(self.variance > 0, np.minimum(raw, self.n), self.n).astype(np.float64)

    def ci(self, method: CIMethod, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
        """Confidence interval with t_df (E5): "logit" is the platform default for
        proportions (R svyciprop), "beta" Korn-Graubard, "wald" for means and totals."""
        if method == "wald":
            return ci_wald(self.estimate, self.se, self.df, level)
        if method == "logit":
            return ci_logit(self.estimate, self.se, self.df, level)
        if method == "beta":
            return ci_korn_graubard(self.estimate, self.se, self.design_rows, self.df, level)
        raise EstimationError(f"unknown CI method {method!r}")


def ci_wald(
    est: FloatArray, se: FloatArray, df: npt.ArrayLike, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """est +/- t_{df} se (confint(svymean(), df=degf(design)))."""
    half = _t_quantile(level, df) * se
    return est - half, est + half


def ci_logit(
    p: FloatArray, se: FloatArray, df: npt.ArrayLike, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """expit(logit p +/- t_df se/(p(1-p))): R svyciprop(method="logit"). NaN for p in {0,1}
    up to rounding (is_extreme): use the Korn-Graubard interval there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.log(p / (1.0 - p))
        half = _t_quantile(level, df) * se / (p * (1.0 - p))
        lo, hi = centre - half, centre + half
    inner = ~is_extreme(p)
    return np.where(inner, _expit(lo), np.nan), np.where(inner, _expit(hi), np.nan)


def ci_korn_graubard(
    p: FloatArray, se: FloatArray, n: npt.ArrayLike, df: npt.ArrayLike, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Korn-Graubard interval, R svyciprop(method="beta").

    n* = p(1-p)/v (t_{n-1}/t_df)^2 with n = R's nrow(design) (Estimates.design_rows). Where
    p is 0 or 1 up to rounding R returns NaN; here p is taken as exactly 0 or 1 and n* = n
    (Clopper-Pearson on the unweighted n, the NCHS convention) so the flags apply.
    """
    alpha = 1.0 - level
    n_arr = np.asarray(n, dtype=np.float64)
    extreme = is_extreme(p)
    p = np.where(extreme, np.round(p), p)
    var = se * se
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _t_quantile(level, n_arr - 1.0) / _t_quantile(level, df)
        n_star = np.where((var > 0) & ~extreme, p * (1.0 - p) / var * ratio * ratio, n_arr)
        lower = _beta_quantile(alpha / 2.0, n_star * p, n_star * (1.0 - p) + 1.0)
        upper = _beta_quantile(1.0 - alpha / 2.0, n_star * p + 1.0, n_star * (1.0 - p))
    lower = np.where(p <= 0, 0.0, lower)
    upper = np.where(p >= 1, 1.0, upper)
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def _beta_quantile(q: float, a: FloatArray, b: FloatArray) -> FloatArray:
    """stats.beta.ppf: NaN where a shape parameter is not positive."""
    ok = (a > 0) & (b > 0)
    out = special.betaincinv(np.where(ok, a, 1.0), np.where(ok, b, 1.0), q)
    return np.asarray(np.where(ok, out, np.nan), dtype=np.float64)


def _expit(x: FloatArray) -> FloatArray:
    return np.asarray(special.expit(x), dtype=np.float64)


@dataclass(frozen=True)
class _Slice:
    rows: IntArray | None
    w: FloatArray  # (m,)
    y: FloatArray  # (m, k) zeros where missing
    active: BoolArray  # (m, k)
    wa: FloatArray  # (m, k) weight where active, else 0


def _take(y: FloatArray, rows: IntArray | None) -> FloatArray:
    """The domain's rows as a new C-ordered array (callers modify it in place)."""
    return np.ascontiguousarray(y[rows]) if rows is not None else np.array(y, order="C")


def _slice(design: Design, ys: FloatArray, rows: IntArray | None) -> _Slice:
    """ys: the domain's rows of Y (owned; missing items are zeroed in place)."""
    w = design.weights if rows is None else design.weights[rows]
    # A unit counts for an item if it answered it and has a positive weight (R na.rm, degf).
    active = ~np.isnan(ys) & (w > 0)[:, None]
    np.copyto(ys, 0.0, where=~active)
    return _Slice(rows, w, ys, active, w[:, None] * active)


def _colsum(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.asarray(np.einsum("ij,ij->j", a, b), dtype=np.float64)


def _finish(
    design: Design,
    statistic: Statistic,
    est: FloatArray,
    z: FloatArray,
    lin: FloatArray,
    srs_scale: FloatArray,
    s: _Slice,
) -> Estimates:
    # lin: the variable whose weighted variance gives the SRS variance (E6 / R svyvar).
    pop = s.wa.sum(axis=0)
    n = s.active.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = lin - _colsum(s.wa, lin) / pop
        s2 = np.einsum("ij,ij,ij->j", s.wa, dev, dev) / pop * n / (n - 1)
        srs = s2 * srs_scale / n
    return Estimates(
        statistic=statistic,
        estimate=est,
        variance=np.where(n > 0, design.variance(z, s.rows, s.active), np.nan),
        n=n.astype(np.intp),
        n_nonzero=(s.active & (s.y != 0)).sum(axis=0).astype(np.intp),
        population=pop,
        df=design.domain_degf(s.rows, s.active),
        srs_variance=srs,
        design_rows=np.full(n.shape, design.n, dtype=np.intp)
        if design.projection is not None
        else n.astype(np.intp),
    )


def estimate_mean(
    design: Design, y: npt.ArrayLike, domain: npt.ArrayLike | None = None
) -> Estimates:
    """Means or proportions (0/1 columns) of each column of y in a domain (R svymean)."""
    ym, rows = _as_matrix(y, design.n, "y"), _rows(domain, design.n)
    return _in_blocks(ym, rows, lambda cols: _mean(design, ym[:, cols], rows))


def estimate_total(
    design: Design, y: npt.ArrayLike, domain: npt.ArrayLike | None = None
) -> Estimates:
    """Population totals of each column of y in a domain (R svytotal, na.rm=TRUE)."""
    ym, rows = _as_matrix(y, design.n, "y"), _rows(domain, design.n)
    return _in_blocks(ym, rows, lambda cols: _total(design, ym[:, cols], rows))


def estimate_ratio(
    design: Design,
    y: npt.ArrayLike,
    x: npt.ArrayLike,
    domain: npt.ArrayLike | None = None,
) -> Estimates:
    """Ratios sum(w y)/sum(w x), column by column (x may be one column), R svyratio."""
    ym, rows = _as_matrix(y, design.n, "y"), _rows(domain, design.n)
    xm = np.broadcast_to(_as_matrix(x, design.n, "x"), ym.shape)
    return _in_blocks(ym, rows, lambda cols: _ratio(design, ym[:, cols], xm[:, cols], rows))


# Columns are processed in blocks of about this many cells to bound the temporaries
# (163,273 x 50 at once would hold ~0.5 GB; blocks keep it near 40 MB at the same speed).
BLOCK_CELLS = 1_000_000


def _in_blocks(
    y: FloatArray, rows: IntArray | None, estimate: Callable[[slice], Estimates]
) -> Estimates:
    m = y.shape[0] if rows is None else rows.size
    width = max(1, BLOCK_CELLS // max(m, 1))
    if y.shape[1] <= width:
        return estimate(slice(None))
    parts = [estimate(slice(j, j + width)) for j in range(0, y.shape[1], width)]
    return Estimates(
        statistic=parts[0].statistic,
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS},
    )


_ARRAYS = (
    "estimate", "variance", "n", "n_nonzero", "population", "df", "srs_variance", "design_rows"
)  # fmt: skip


def _mean(design: Design, y: FloatArray, rows: IntArray | None) -> Estimates:
    s = _slice(design, _take(y, rows), rows)
    pop = s.wa.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = _colsum(s.wa, s.y) / pop
        # Domain-mean influence w(y - ybar)/N_d (E3); zero outside the domain / item.
        z = s.wa * ((s.y - est) / pop)
    return _finish(design, "mean", est, z, s.y, np.ones_like(pop), s)


def _total(design: Design, y: FloatArray, rows: IntArray | None) -> Estimates:
    s = _slice(design, _take(y, rows), rows)
    z = s.wa * s.y
    pop = s.wa.sum(axis=0)
    return _finish(design, "total", z.sum(axis=0), z, s.y, pop * pop, s)


def _ratio(design: Design, y: FloatArray, x: FloatArray, rows: IntArray | None) -> Estimates:
    # A unit answers the ratio only if it answers both items (R na.rm=TRUE).
    xr = _take(x, rows)
    s = _slice(design, np.where(np.isnan(xr), np.nan, _take(y, rows)), rows)
    xs = np.where(s.active, xr, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_total = _colsum(s.wa, xs)
        est = _colsum(s.wa, s.y) / x_total
        lin = (s.y - est * xs) / x_total
    pop = s.wa.sum(axis=0)
    return _finish(design, "ratio", est, s.wa * lin, lin, pop * pop, s)


@dataclass(frozen=True)
class DomainEstimates:
    """Estimates for every level of a domain variable: arrays of shape (levels, k)."""

    levels: npt.NDArray[np.generic]
    estimates: Estimates


def estimate_by(
    design: Design,
    y: npt.ArrayLike,
    by: npt.ArrayLike,
    statistic: Statistic = "mean",
    x: npt.ArrayLike | None = None,
    domain: npt.ArrayLike | None = None,
) -> DomainEstimates:
    """One domain per level of ``by`` (R svyby), optionally within a further ``domain``."""
    ym = _as_matrix(y, design.n, "y")
    labels = np.asarray(by).reshape(-1)
    if labels.shape[0] != design.n:
        raise EstimationError(f"by must have one value per unit ({design.n})")
    base = np.ones(design.n, bool) if domain is None else np.asarray(domain, bool)
    levels = np.unique(labels[base])
    parts = [_estimate(design, statistic, ym, x, base & (labels == level)) for level in levels]
    k = ym.shape[1]

    def stack(name: str, dtype: type[np.generic]) -> npt.NDArray[Any]:
        rows = [getattr(p, name) for p in parts]
        return np.stack(rows).astype(dtype) if rows else np.empty((0, k), dtype=dtype)

    return DomainEstimates(
        levels=levels,
        estimates=Estimates(
            statistic=statistic,
            estimate=stack("estimate", np.float64),
            variance=stack("variance", np.float64),
            n=stack("n", np.intp),
            n_nonzero=stack("n_nonzero", np.intp),
            population=stack("population", np.float64),
            df=stack("df", np.intp),
            srs_variance=stack("srs_variance", np.float64),
            design_rows=stack("design_rows", np.intp),
        ),
    )


def _estimate(
    design: Design,
    statistic: Statistic,
    y: FloatArray,
    x: npt.ArrayLike | None,
    domain: BoolArray,
) -> Estimates:
    if statistic == "mean":
        return estimate_mean(design, y, domain)
    if statistic == "total":
        return estimate_total(design, y, domain)
    if statistic == "ratio":
        if x is None:
            raise EstimationError("a ratio needs x (the denominator)")
        return estimate_ratio(design, y, x, domain)
    raise EstimationError(f"unknown statistic {statistic!r}")
