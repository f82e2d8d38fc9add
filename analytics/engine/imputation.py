"""Imputation in classes: ratio imputation and donor imputation (methodology sec. L).

Pure numpy, no Django. Every function takes whole columns (one row per responding unit, in
a fixed order: the pipeline sorts by case id) and returns an `Imputed` of arrays that says,
row by row, the value used, how it was obtained, the donor's row and the class level used.

Imputation classes and their collapse. `classes` is a list of class arrays, finest first
(for example size class × industry group, then industry group). A recipient is imputed
within the finest level whose class holds at least `min_donors` usable donors; after the
last given level comes one class of every donor (level ``len(classes)``). So every recipient
of one class falls back together, and the level used is recorded: the class itself is
``classes[level][i]``, or all donors when ``level == len(classes)``.

Donors and recipients. The caller says which rows are recipients (a value to impute) and
which may donate (complete, edited, not imputed); a row cannot be both. A donor gives a
recipient every item it needs at once (joint donor imputation, as Banff's DONORIMP), so
that related answers of one unit come from one real unit and stay consistent.

Random streams. Each class draws from its own generator,
``default_rng(SeedSequence(seed, spawn_key=tuple(f"{level}:{class}".encode())))``, as
the sample draw does (selection.py): one class's donors do not change when another class's
donors, recipients or order change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analytics.engine.editing import LinearEdits
from analytics.engine.estimation import factorize

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Scale = Literal["rank", "range", "sd"]
# accept(recipient rows, donor rows) → whether each pair gives an acceptable record.
Accept = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.ArrayLike]
NO_DONOR = -1
NO_LEVEL = -1
# Rows of recipients × donors compared at once: bounds the distance block to ~32 MB.
BLOCK = 1 << 22


class ImputationError(ValueError):
    """The imputation cannot be done as asked; the message says why."""


class Method(IntEnum):
    """How a row's value was obtained (stored as int8 codes)."""

    FAILED = -1  # a recipient left as it was: no usable donor or auxiliary value
    REPORTED = 0  # not a recipient: the unit's own answer
    RATIO = 1
    NEAREST_DONOR = 2
    RANDOM_DONOR = 3


@dataclass(frozen=True)
class Donors:
    """The donor chosen for each row (-1 where none) and the class level it came from."""

    donor: IntArray
    level: IntArray
    method: npt.NDArray[np.int8]


@dataclass(frozen=True)
class Imputed:
    """The values after imputation, and for each row how, from whom and in which class."""

    values: npt.NDArray[Any]
    method: npt.NDArray[np.int8]
    donor: IntArray
    level: IntArray

    @property
    def imputed(self) -> BoolArray:
        return self.method > Method.REPORTED


@dataclass(frozen=True)
class _Class:
    level: int
    label: object
    recipients: IntArray
    donors: IntArray


@dataclass(frozen=True)
class _Rules:
    n_limit: int | None
    accept: Accept | None
    tries: int


# --- ratio imputation ------------------------------------------------------------------------


def ratio_impute(
    y: npt.ArrayLike,
    x: npt.ArrayLike,
    recipient: npt.ArrayLike,
    donor: npt.ArrayLike,
    classes: Sequence[npt.ArrayLike] = (),
    *,
    weights: npt.ArrayLike | None = None,
    min_donors: int = 1,
) -> Imputed:
    """y_i = x_i · Σ_c w·y / Σ_c w·x over the donors of the recipient's class.

    x is an auxiliary variable known for every unit (the register's employees, last year's
    sales). A class is usable when it has `min_donors` donors and Σ w·x > 0 among them.
    Recipients without a finite x are left as they were (`Method.FAILED`)."""
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    n = yv.shape[0]
    xv = _column(x, n, "x")
    w = np.ones(n) if weights is None else _column(weights, n, "weights")
    rec, don = _roles(recipient, donor, n)
    if np.any(~np.isfinite(yv[don]) | ~np.isfinite(xv[don])):
        raise ImputationError("every donor needs a finite y and x")
    rec_x = rec & np.isfinite(xv)

    def usable(rows: IntArray) -> bool:
        return rows.size >= min_donors and float(w[rows] @ xv[rows]) > 0

    out, method, level = yv.copy(), _methods(n, rec), np.full(n, NO_LEVEL, dtype=np.int64)
    for cls in _classes(rec_x, don, classes, usable):
        ratio = (w[cls.donors] @ yv[cls.donors]) / (w[cls.donors] @ xv[cls.donors])
        out[cls.recipients] = xv[cls.recipients] * ratio
        method[cls.recipients], level[cls.recipients] = Method.RATIO, cls.level
        rec_x[cls.recipients] = False
    return Imputed(out, method, np.full(n, NO_DONOR, dtype=np.int64), level)


# --- donor imputation ------------------------------------------------------------------------


def nearest_donors(
    match: npt.ArrayLike,
    recipient: npt.ArrayLike,
    donor: npt.ArrayLike,
    classes: Sequence[npt.ArrayLike] = (),
    *,
    seed: int,
    scale: Scale = "rank",
    n_limit: int | None = None,
    accept: Accept | None = None,
    tries: int = 10,
    min_donors: int = 1,
) -> Donors:
    """For each recipient, the donor of its class nearest on the matching variables.

    Distance: the largest absolute difference over the matching variables (L∞, "minimax")
    after each is put on a common scale within the class, so that no variable dominates:

    - ``rank`` (default, as Banff DONORIMP): each value's rank among the class's donors
      and recipients (ties share their average rank) divided by their number. Scale-free
      and unmoved by the skew and outliers of sales or employees, so each variable counts
      as much as the others.
    - ``range`` / ``sd``: the value divided by the class donors' range / standard deviation.

    A recipient's missing matching value is left out of its distance (all missing: every
    donor is at distance 0, so the pick is random). Equally near donors are ordered by a
    random permutation of the class's donors drawn from the class's stream: the first
    wins.

    With `accept` (for example `passes_edits`), a recipient takes the nearest of its
    `tries` nearest donors whose values give it a record that passes (Banff's post-imputation
    edits). With `n_limit`, recipients are served in row order and a donor is skipped once
    it has given `n_limit` times (counted over all levels). A recipient left without a donor
    by either falls back to the next level."""
    m = np.asarray(match, dtype=np.float64)
    m = m[:, None] if m.ndim == 1 else m
    n = m.shape[0]
    rec, don = _roles(recipient, donor, n)
    if np.isnan(m[don]).any():
        raise ImputationError("donors need every matching value")
    if (n_limit is not None and n_limit < 1) or tries < 1:
        raise ImputationError("n_limit and tries must be at least 1")
    rules = _Rules(n_limit, accept, tries)
    used = np.zeros(n, dtype=np.int64)
    chosen, level = np.full(n, NO_DONOR, dtype=np.int64), np.full(n, NO_LEVEL, dtype=np.int64)

    def usable(rows: IntArray) -> bool:
        return rows.size >= min_donors

    pending = rec.copy()
    for cls in _classes(pending, don, classes, usable):
        order = cls.donors[_stream(seed, cls.level, cls.label).permutation(cls.donors.size)]
        picks = _nearest(m, cls.recipients, order, scale, used, rules)
        got = picks >= 0
        chosen[cls.recipients[got]], level[cls.recipients[got]] = picks[got], cls.level
        # Recipients left without a donor try the next level.
        pending[cls.recipients[got]] = False
    method = np.where(chosen >= 0, Method.NEAREST_DONOR, _methods(n, rec)).astype(np.int8)
    return Donors(chosen, level, method)


def random_donors(
    recipient: npt.ArrayLike,
    donor: npt.ArrayLike,
    classes: Sequence[npt.ArrayLike] = (),
    *,
    seed: int,
    weights: npt.ArrayLike | None = None,
    min_donors: int = 1,
) -> Donors:
    """For each recipient, a donor drawn at random (with replacement) within its class.

    Equal chances, or chances proportional to `weights` (design weights: the weighted
    hot deck, whose donated values have the donors' weighted distribution). Recipients of
    a class draw in row order from the class's own stream."""
    rec, don = _roles(recipient, donor, np.asarray(recipient).shape[0])
    n = rec.shape[0]
    w = None if weights is None else _column(weights, n, "weights")
    chosen, level = np.full(n, NO_DONOR, dtype=np.int64), np.full(n, NO_LEVEL, dtype=np.int64)

    def usable(rows: IntArray) -> bool:
        return rows.size >= min_donors and (w is None or float(w[rows].sum()) > 0)

    pending = rec.copy()
    for cls in _classes(pending, don, classes, usable):
        p = None if w is None else w[cls.donors] / w[cls.donors].sum()
        rng = _stream(seed, cls.level, cls.label)
        chosen[cls.recipients] = rng.choice(cls.donors, size=cls.recipients.size, p=p)
        level[cls.recipients], pending[cls.recipients] = cls.level, False
    method = np.where(chosen >= 0, Method.RANDOM_DONOR, _methods(n, rec)).astype(np.int8)
    return Donors(chosen, level, method)


def donate(values: npt.ArrayLike, impute: npt.ArrayLike, donors: Donors) -> Imputed:
    """Copy each recipient's items to impute from its one donor (joint donor imputation).

    `values` is one item (n,) or several (n, k) of any dtype: numbers, codes or text, so
    categorical answers are copied as they are. `impute` (same shape) marks the items to
    replace; a recipient's other items keep its own answers. All of one recipient's items
    come from the same donor, so an answer and the answers that depend on it stay
    consistent (the donor passed the edits)."""
    vals = np.asarray(values)
    flags = np.asarray(impute, dtype=bool)
    if flags.shape != vals.shape or vals.ndim not in (1, 2):
        raise ImputationError(f"impute must have the shape of values {vals.shape}")
    if donors.donor.shape[0] != vals.shape[0]:
        raise ImputationError("donors must have one entry per row of values")
    rows = np.flatnonzero(donors.donor >= 0)
    if flags[donors.donor[rows]].any():
        raise ImputationError("a donor cannot give an item that is itself to be imputed")
    out = vals.copy()
    out[rows] = np.where(flags[rows], vals[donors.donor[rows]], vals[rows])
    wanted = flags if flags.ndim == 1 else flags.any(axis=1)
    kept = ~wanted & (donors.method >= 0)
    return Imputed(
        out,
        np.where(kept, Method.REPORTED, donors.method).astype(np.int8),
        np.where(kept, NO_DONOR, donors.donor),
        np.where(kept, NO_LEVEL, donors.level),
    )


def passes_edits(values: npt.ArrayLike, impute: npt.ArrayLike, edits: LinearEdits) -> Accept:
    """An `accept` for `nearest_donors`: the recipient's record, its items to impute taken
    from the donor and the others its own, passes every edit (a missing field passes)."""
    vals = np.asarray(values, dtype=np.float64)
    flags = np.asarray(impute, dtype=bool)

    def accept(recipients: IntArray, donors: IntArray) -> BoolArray:
        merged = np.where(flags[recipients], vals[donors], vals[recipients])
        return np.logical_not(edits.failed(merged).any(axis=1))

    return accept


# --- classes and their collapse --------------------------------------------------------------


def _classes(
    pending: BoolArray,
    donor: BoolArray,
    classes: Sequence[npt.ArrayLike],
    usable: Callable[[IntArray], bool],
) -> Iterator[_Class]:
    """The pending recipients' classes, finest level first, where the donors are `usable`.

    The caller clears `pending` for the recipients it served; those it could not serve
    (a donor limit) come back in their class of the next level."""
    n = pending.shape[0]
    levels = [*classes, np.zeros(n, dtype=np.int64)]
    for number, labels in enumerate(levels):
        codes, names = factorize(_labels(labels, n))
        members = _members(codes, len(names))
        for code in np.unique(codes[pending]):
            rows = members[code]
            donors, recipients = rows[donor[rows]], rows[pending[rows]]
            if usable(donors):
                label = "all" if number == len(classes) else names[code].item()
                yield _Class(number, label, recipients, donors)


def _members(codes: IntArray, n_groups: int) -> list[IntArray]:
    order = np.argsort(codes, kind="stable").astype(np.int64)
    return np.split(order, np.cumsum(np.bincount(codes, minlength=n_groups))[:-1])


def _nearest(
    m: FloatArray,
    recipients: IntArray,
    order: IntArray,
    scale: Scale,
    used: IntArray,
    rules: _Rules,
) -> IntArray:
    """Row of the nearest acceptable donor (in priority `order` on ties) for each recipient."""
    donors_u, recipients_u = _scaled(m[order], m[recipients], scale)
    picks = np.full(recipients.size, NO_DONOR, dtype=np.int64)
    step = max(1, BLOCK // max(order.size, 1))
    for start in range(0, recipients.size, step):
        block = _distance(recipients_u[start : start + step], donors_u)
        rows = recipients[start : start + step]
        if rules.accept is None and rules.n_limit is None:
            picks[start : start + step] = order[np.argmin(block, axis=1)]
            continue
        # A stable sort keeps the priority order among equally near donors.
        ranked = np.argsort(block, axis=1, kind="stable")
        ok: BoolArray = np.ones(ranked.shape, dtype=bool)
        if rules.accept is not None:
            ranked = ranked[:, : rules.tries]
            verdict = rules.accept(np.repeat(rows, ranked.shape[1]), order[ranked].ravel())
            ok = np.asarray(verdict, dtype=bool).reshape(ranked.shape)
        if rules.n_limit is None:
            line = np.arange(ok.shape[0])
            first = np.argmax(ok, axis=1)
            best = order[ranked[line, first]]
            picks[start : start + step] = np.where(ok[line, first], best, NO_DONOR)
            continue
        for offset in range(ranked.shape[0]):
            candidates = order[ranked[offset][ok[offset]]]
            free = candidates[used[candidates] < rules.n_limit]
            if free.size:
                picks[start + offset] = free[0]
                used[free[0]] += 1
    return picks


def _scaled(donors: FloatArray, recipients: FloatArray, scale: Scale) -> tuple[FloatArray, ...]:
    if scale == "rank":
        ranks = _ranks(np.vstack([donors, recipients]))
        return ranks[: donors.shape[0]], ranks[donors.shape[0] :]
    if scale == "range":
        spread = donors.max(axis=0) - donors.min(axis=0)
    elif scale == "sd":
        spread = donors.std(axis=0, ddof=1) if donors.shape[0] > 1 else np.zeros(donors.shape[1])
    else:
        raise ImputationError(f"unknown scale {scale!r}: use 'rank', 'range' or 'sd'")
    # A variable on which all donors agree cannot tell them apart: leave it unscaled.
    spread = np.where(spread > 0, spread, 1.0)
    return donors / spread, recipients / spread


def _ranks(values: FloatArray) -> FloatArray:
    """Each column's average ranks (ties share theirs) over its count; NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        column = values[:, j]
        known = ~np.isnan(column)
        ordered = np.sort(column[known])
        below = np.searchsorted(ordered, column[known], side="left")
        through = np.searchsorted(ordered, column[known], side="right")
        out[known, j] = (below + 1 + through) / 2 / ordered.size
    return out


def _distance(recipients: FloatArray, donors: FloatArray) -> FloatArray:
    """L∞ distance; a recipient's missing value (NaN) does not count (fmax skips NaN)."""
    out = np.zeros((recipients.shape[0], donors.shape[0]))
    for j in range(donors.shape[1]):
        np.fmax(out, np.abs(recipients[:, j, None] - donors[None, :, j]), out=out)
    return out


# --- checks ----------------------------------------------------------------------------------


def _roles(recipient: npt.ArrayLike, donor: npt.ArrayLike, n: int) -> tuple[BoolArray, BoolArray]:
    rec = np.asarray(recipient, dtype=bool).reshape(-1)
    don = np.asarray(donor, dtype=bool).reshape(-1)
    if rec.shape[0] != n or don.shape[0] != n:
        raise ImputationError(f"recipient and donor must have one value per row ({n})")
    if np.any(rec & don):
        first = int(np.flatnonzero(rec & don)[0])
        raise ImputationError(f"row {first} is both a recipient and a donor")
    return rec, don


def _column(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ImputationError(f"{name} must have one value per row ({n}), got {arr.shape[0]}")
    return arr


def _labels(values: npt.ArrayLike, n: int) -> npt.NDArray[Any]:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != n:
        raise ImputationError(f"each class array must have one value per row ({n})")
    return arr


def _methods(n: int, recipient: BoolArray) -> npt.NDArray[np.int8]:
    return np.where(recipient, Method.FAILED, Method.REPORTED).astype(np.int8)


def _stream(seed: int, level: int, label: object) -> np.random.Generator:
    if int(seed) != seed or seed < 0:
        raise ImputationError(f"seed must be a non-negative integer, got {seed!r}")
    key = tuple(f"{level}:{label}".encode())
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))
