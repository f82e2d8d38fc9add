"""Statistical disclosure control of microdata: risk measures and protection steps.

Pure numpy, no Django. Key variables are integer-coded columns, -1 where a value is missing
or suppressed; as in sdcMicro, a missing key value stands for any value of that variable.

Risk follows sdcMicro (`freqCalc`, `indivRisk` with method "approx", `measure_risk`):
f_k is the number of sample records that share a record's key, F_k the sum of their
sampling weights (the estimated population frequency), and the individual re-identification
risk of Benedetti and Franconi is, with p_k = f_k / F_k,

    f_k = 1:  p/(1-p) · log(1/p)
    f_k = 2:  p/(1-p) - (p/(1-p))² · log(1/p)
    f_k > 2:  p / (f_k - (1-p))
    f_k = F_k (the whole population is in the sample): 1/f_k,

and 0 for a record whose key variables are all missing. The global risk is the expected
number of re-identifications Σ r_k over the number of records.

Protection keeps the weighted totals of the numeric keys: microaggregation replaces the
values of each group of at least k similar records by their weighted mean. Local
suppression then blanks key values, finest classification first, on the records whose key
is rarer than k or whose risk is above the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MISSING = -1


def encode(values: Sequence[object], missing: BoolArray | None = None) -> IntArray:
    """Integer codes of a column (0..m-1 in sorted order of the values), -1 where missing."""
    array = np.asarray(values, dtype=object)
    gone = np.zeros(array.shape[0], bool) if missing is None else np.asarray(missing, bool)
    codes = np.full(array.shape[0], MISSING, dtype=np.int64)
    if (~gone).any():
        kept = np.asarray([str(v) for v in array[~gone]])
        _unique, inverse = np.unique(kept, return_inverse=True)
        codes[~gone] = inverse
    return codes


def encode_numbers(values: FloatArray) -> IntArray:
    """Codes of a numeric column by value (NaN is missing)."""
    values = np.asarray(values, dtype=np.float64)
    codes = np.full(values.shape[0], MISSING, dtype=np.int64)
    present = ~np.isnan(values)
    if present.any():
        codes[present] = np.unique(values[present], return_inverse=True)[1]
    return codes


def frequencies(keys: IntArray, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sample frequency f_k and estimated population frequency F_k of each record's key.

    `keys` is n × p (codes, -1 missing). A missing value matches any value, in both
    directions, so a record with missing values is counted in every key it could be."""
    keys = np.asarray(keys, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    n = keys.shape[0]
    fk, big_fk = np.zeros(n), np.zeros(n)
    absent = keys < 0
    patterns, which = np.unique(absent, axis=0, return_inverse=True)
    which = which.reshape(-1)
    members = [np.flatnonzero(which == a) for a in range(len(patterns))]
    for a, pattern_a in enumerate(patterns):
        rows_a = members[a]
        for b, pattern_b in enumerate(patterns):
            rows_b = members[b]
            common = ~pattern_a & ~pattern_b
            counts, sums = _matches(keys[:, common], rows_a, rows_b, weights)
            fk[rows_a] += counts
            big_fk[rows_a] += sums
    return fk, big_fk


def _matches(
    keys: IntArray, rows_a: IntArray, rows_b: IntArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """For each row of a: how many rows of b share its key, and their summed weight."""
    if keys.shape[1] == 0:
        count = np.full(rows_a.size, float(rows_b.size))
        return count, np.full(rows_a.size, float(weights[rows_b].sum()))
    ids = row_ids(np.concatenate([keys[rows_a], keys[rows_b]]))
    ids_a, ids_b = ids[: rows_a.size], ids[rows_a.size :]
    size = int(ids.max()) + 1 if ids.size else 0
    counts = np.bincount(ids_b, minlength=size).astype(np.float64)
    sums = np.bincount(ids_b, weights=weights[rows_b], minlength=size)
    return counts[ids_a], np.asarray(sums[ids_a], dtype=np.float64)


def row_ids(rows: IntArray) -> IntArray:
    """The same id for equal rows of non-negative codes: one int64 per row when the codes fit
    (a plain sort, many times faster than comparing whole rows), else by rows."""
    rows = np.asarray(rows, dtype=np.int64)
    radix = [int(column.max()) + 1 if column.size else 1 for column in rows.T]
    if math.prod(radix) < 2**62:
        combined = np.zeros(rows.shape[0], dtype=np.int64)
        for column, base in zip(rows.T, radix, strict=True):
            combined = combined * base + column
        return np.asarray(np.unique(combined, return_inverse=True)[1].reshape(-1), np.int64)
    return np.asarray(np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1), np.int64)


def individual_risk(fk: FloatArray, big_fk: FloatArray) -> FloatArray:
    """The Benedetti-Franconi individual risk (sdcMicro indivRisk, method "approx")."""
    fk = np.asarray(fk, dtype=np.float64)
    big_fk = np.maximum(np.asarray(big_fk, dtype=np.float64), fk)
    risk = np.zeros(fk.shape[0])
    counted = fk > 0
    p = np.divide(fk, big_fk, out=np.ones_like(fk), where=counted)
    partial = counted & (p < 1)
    odds = np.divide(p, 1 - p, out=np.zeros_like(p), where=partial)
    log_inverse = np.log(np.divide(1, p, out=np.ones_like(p), where=counted))
    one, two, more = partial & (fk == 1), partial & (fk == 2), partial & (fk > 2)
    risk[one] = odds[one] * log_inverse[one]
    risk[two] = odds[two] - odds[two] ** 2 * log_inverse[two]
    risk[more] = p[more] / (fk[more] - (1 - p[more]))
    whole = counted & (p >= 1)
    risk[whole] = 1 / fk[whole]
    return risk


@dataclass
class Risk:
    """The risk measures of one file: what the report shows before and after protection."""

    records: int
    k: int
    fk: FloatArray = field(repr=False)
    big_fk: FloatArray = field(repr=False)
    risk: FloatArray = field(repr=False)

    @property
    def violations(self) -> int:
        """Records whose key occurs fewer than k times (records with no key value are safe)."""
        return int(((self.fk < self.k) & (self.fk > 0)).sum())

    @property
    def sample_uniques(self) -> int:
        return int((self.fk == 1).sum())

    @property
    def expected_reidentifications(self) -> float:
        return float(self.risk.sum())

    @property
    def global_risk(self) -> float:
        return self.expected_reidentifications / self.records if self.records else 0.0

    @property
    def max_risk(self) -> float:
        return float(self.risk.max()) if self.records else 0.0

    def above(self, threshold: float) -> int:
        return int((self.risk > threshold).sum())

    def summary(self, threshold: float) -> dict[str, float | int]:
        return {
            "records": self.records,
            "k": self.k,
            "k_anonymity_violations": self.violations,
            "sample_uniques": self.sample_uniques,
            "max_individual_risk": round(self.max_risk, 6),
            "mean_individual_risk": round(self.global_risk, 6),
            "records_above_risk_target": self.above(threshold),
            "expected_reidentifications": round(self.expected_reidentifications, 4),
            "global_risk_percent": round(100 * self.global_risk, 4),
        }


def measure(keys: IntArray, weights: FloatArray, k: int) -> Risk:
    fk, big_fk = frequencies(keys, weights)
    return Risk(int(np.asarray(keys).shape[0]), k, fk, big_fk, individual_risk(fk, big_fk))


# --- protection ------------------------------------------------------------------------------


def microaggregate(
    values: FloatArray, weights: FloatArray, cells: Sequence[IntArray], k: int | IntArray
) -> tuple[FloatArray, IntArray]:
    """Values replaced by the weighted mean of their group; returns them and the group ids.

    Records with at least one value are grouped within the finest of `cells` (fine to
    coarse; -1 is no cell) that still holds k such records missing the same columns; the
    last level should be one cell for everything. Within a cell they are sorted by the sum
    of their ranks on each column and cut into groups of k, the last taking the remainder
    (k to 2k-1). A group mean weighted by the same weights as the estimates keeps every
    weighted total of the file: Σ w·mean = Σ w·y within each group. `k` may differ by
    record (larger where the whole population is sampled); a group takes its largest."""
    values = np.array(values, dtype=np.float64, ndmin=2)
    weights = np.asarray(weights, dtype=np.float64)
    n = values.shape[0]
    wanted = np.broadcast_to(np.asarray(k, dtype=np.int64), (n,))
    valued = ~np.isnan(values).all(axis=1)
    # Group mates must lack the same values, or the missing one would set a record apart.
    pattern = np.isnan(values) @ (1 << np.arange(values.shape[1]))
    cells = [np.where(np.asarray(c) >= 0, np.asarray(c) * (1 << values.shape[1]) + pattern, -1)
             for c in cells]  # fmt: skip
    cell_of = np.full(n, MISSING, dtype=np.int64)
    level_of = np.full(n, MISSING, dtype=np.int64)
    for level, cell in enumerate(cells):
        free = valued & (cell_of < 0) & (np.asarray(cell) >= 0)
        if not free.any():
            continue
        counts = np.bincount(np.asarray(cell)[free], minlength=int(np.max(cell)) + 1)
        last = level == len(cells) - 1
        take = free & (last | (counts[np.maximum(cell, 0)] >= wanted))
        cell_of[take], level_of[take] = np.asarray(cell)[take], level
    groups = np.full(n, MISSING, dtype=np.int64)
    rows = np.flatnonzero(cell_of >= 0)
    score = _rank_score(values[rows])
    order = rows[np.lexsort((score, cell_of[rows], level_of[rows]))]
    next_group = 0
    blocks = np.flatnonzero(np.diff(level_of[order] * (cell_of.max() + 1) + cell_of[order])) + 1
    for block in np.split(order, blocks):
        m = int(wanted[block].max()) if block.size else 1
        size = max(block.size // m, 1)
        position = np.minimum(np.arange(block.size) // m, size - 1)
        groups[block] = next_group + position
        next_group += size
    return _group_means(values, weights, groups), groups


def _rank_score(values: FloatArray) -> FloatArray:
    """Sum over columns of each record's rank (missing counts as the column's middle)."""
    score = np.zeros(values.shape[0])
    for column in values.T:
        present = ~np.isnan(column)
        ranks = np.full(column.shape[0], present.sum() / 2.0)
        ranks[present] = np.argsort(np.argsort(column[present], kind="stable"), kind="stable")
        score += ranks
    return score


def _group_means(values: FloatArray, weights: FloatArray, groups: IntArray) -> FloatArray:
    out = values.copy()
    grouped = groups >= 0
    if not grouped.any():
        return out
    size = int(groups.max()) + 1
    for j in range(values.shape[1]):
        present = grouped & ~np.isnan(values[:, j])
        g, y, w = groups[present], values[present, j], weights[present]
        sum_w = np.bincount(g, weights=w, minlength=size)
        sum_wy = np.bincount(g, weights=w * y, minlength=size)
        count = np.bincount(g, minlength=size)
        plain = np.bincount(g, weights=y, minlength=size)
        mean = np.where(
            sum_w > 0, sum_wy / np.where(sum_w > 0, sum_w, 1), plain / np.maximum(count, 1)
        )
        out[present, j] = mean[g]
    return out


@dataclass
class Suppression:
    keys: IntArray  # the key columns after suppression
    suppressed: BoolArray  # n × p: which key values were blanked
    rounds: int
    unresolved: int  # records still above the targets with nothing left to suppress


def suppress(
    keys: IntArray,
    weights: FloatArray,
    *,
    k: int,
    max_risk: float,
    steps: Sequence[Sequence[int]],
    max_rounds: int = 10_000,
) -> Suppression:
    """Local suppression: while some record's key occurs fewer than k times or its risk is
    above `max_risk`, the records with the rarest such key lose the next step of `steps`
    (groups of key columns, the finest classification first) that they still have."""
    keys = np.array(keys, dtype=np.int64, copy=True)
    original = keys.copy()
    steps = [list(step) for step in steps]
    rounds = 0
    while rounds < max_rounds:
        fk, big_fk = frequencies(keys, weights)
        risk = individual_risk(fk, big_fk)
        bad = (fk > 0) & ((fk < k) | (risk > max_risk))
        able = bad & _has_step(keys, steps)
        if not able.any():
            return Suppression(keys, (keys < 0) & (original >= 0), rounds, int(bad.sum()))
        rarest = able & (fk == fk[able].min())
        blank_next_step(keys, rarest, steps)
        rounds += 1
    fk, big_fk = frequencies(keys, weights)
    bad = (fk > 0) & ((fk < k) | (individual_risk(fk, big_fk) > max_risk))
    return Suppression(keys, (keys < 0) & (original >= 0), rounds, int(bad.sum()))


def blank_next_step(keys: IntArray, rows: BoolArray, steps: Sequence[Sequence[int]]) -> None:
    """Blank, on these rows, the first step whose columns are not all blank yet."""
    left = np.column_stack([(keys[:, list(step)] >= 0).any(axis=1) for step in steps])
    first = np.argmax(left, axis=1)
    for index, step in enumerate(steps):
        chosen = rows & left.any(axis=1) & (first == index)
        columns = np.asarray(step, dtype=np.int64)
        keys[np.ix_(np.flatnonzero(chosen), columns)] = MISSING


def _has_step(keys: IntArray, steps: Sequence[Sequence[int]]) -> BoolArray:
    present = np.zeros(keys.shape[0], bool)
    for step in steps:
        present |= (keys[:, list(step)] >= 0).any(axis=1)
    return present


def frame_matches(
    released: IntArray,
    frame: IntArray,
    low: FloatArray,
    high: FloatArray,
    frame_values: FloatArray,
) -> IntArray:
    """How many frame units agree with each released record: equal on every categorical key
    the record still shows (-1 matches anything), and with every numeric value inside the
    record's [low, high] interval (NaN bounds match anything, and so does a value the
    frame lacks: it rules nothing out).

    `released` and `frame` are coded with the same codes; `low`, `high` are n × m (or
    s × n × m for s sets of intervals at once, giving s × n counts), `frame_values` N × m."""
    many = np.asarray(low).ndim == 3
    lows = np.asarray(low, dtype=np.float64).reshape(-1, *released.shape[:1], frame_values.shape[1])
    highs = np.asarray(high, dtype=np.float64).reshape(lows.shape)
    out = np.zeros((lows.shape[0], released.shape[0]), dtype=np.int64)
    patterns, which = np.unique(released < 0, axis=0, return_inverse=True)
    which = which.reshape(-1)
    for a, pattern in enumerate(patterns):
        rows = np.flatnonzero(which == a)
        shown = ~pattern
        ids = row_ids(np.concatenate([released[rows][:, shown], frame[:, shown]]))
        record_ids, frame_ids = ids[: rows.size], ids[rows.size :]
        order = np.argsort(frame_ids, kind="stable")
        starts = np.searchsorted(frame_ids[order], np.unique(record_ids), side="left")
        stops = np.searchsorted(frame_ids[order], np.unique(record_ids), side="right")
        for cell, start, stop in zip(np.unique(record_ids), starts, stops, strict=True):
            members = rows[record_ids == cell]
            values = frame_values[order[start:stop]]  # c × m
            lacking = np.isnan(values)
            for s in range(lows.shape[0]):
                lo, hi = lows[s][members], highs[s][members]  # r × m
                inside = np.ones((members.size, values.shape[0]), bool)
                for j in range(values.shape[1]):
                    free = np.isnan(lo[:, j])[:, None] | lacking[None, :, j]
                    fits = (values[None, :, j] >= lo[:, j, None]) & (
                        values[None, :, j] <= hi[:, j, None]
                    )
                    inside &= free | fits
                out[s, members] = inside.sum(axis=1)
    return out if many else out[0]


@dataclass
class Protected:
    before: Risk
    after: Risk
    released: FloatArray  # the numeric keys after microaggregation (NaN: missing or blanked)
    groups: IntArray  # each record's microaggregation group (-1: none)
    lonely: BoolArray  # records whose numbers were blanked: their group was too small
    keys: IntArray  # categorical and numeric key codes after suppression
    suppressed: BoolArray  # n × categorical columns: blanked by local suppression
    unresolved: int


def numeric_codes(values: FloatArray) -> IntArray:
    """Numbers coded by value. A number missing because the firm did not answer is a
    category of its own, not sdcMicro's wildcard: an intruder tells non-respondents
    apart, so they do not hide respondents."""
    columns = []
    for j in range(values.shape[1]):
        coded = encode_numbers(values[:, j])
        coded[coded < 0] = coded.max() + 1
        columns.append(coded)
    return np.column_stack(columns) if columns else np.empty((values.shape[0], 0), np.int64)


def protect(
    categorical: IntArray,
    values: FloatArray,
    *,
    sampling_weights: FloatArray,
    estimation_weights: FloatArray,
    cells: Sequence[IntArray],
    steps: Sequence[Sequence[int]],
    k: int,
    max_risk: float,
) -> Protected:
    """Microaggregation of the numeric keys, then local suppression of the categorical ones,
    with the risk before and after. Where the whole population is sampled (weights below 2)
    a record's risk is about one over its group's size, so its groups are made large enough
    for the risk target too. A group still smaller than k (too few records lack the same
    values) cannot hide its members: their numbers are blanked."""
    n = categorical.shape[0]
    before = measure(np.column_stack([categorical, numeric_codes(values)]), sampling_weights, k)
    census = max(k, math.ceil(1 / max_risk))
    wanted = np.where((sampling_weights > 0) & (sampling_weights < 2), census, k)
    if values.shape[1]:
        released, groups = microaggregate(values, estimation_weights, cells, wanted)
    else:
        released, groups = values.copy(), np.full(n, MISSING, dtype=np.int64)
    members = np.bincount(groups[groups >= 0], minlength=1)
    lonely = (groups >= 0) & (members[np.maximum(groups, 0)] < wanted)
    released[lonely] = np.nan
    keys = np.column_stack([categorical, numeric_codes(released)])
    # A blanked number is a wildcard (it is suppressed, not unanswered).
    width = categorical.shape[1]
    for j in range(values.shape[1]):
        keys[lonely, width + j] = MISSING
    done = suppress(keys, sampling_weights, k=k, max_risk=max_risk, steps=steps)
    return Protected(
        before=before,
        after=measure(done.keys, sampling_weights, k),
        released=released,
        groups=groups,
        lonely=lonely,
        keys=done.keys,
        suppressed=done.suppressed[:, :width],
        unresolved=done.unresolved,
    )
