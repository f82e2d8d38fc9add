"""Coordinated stratified samples with permanent random numbers (methodology M1-M3).

Every unit of the frame carries a permanent random number (PRN) u in [0, 1), drawn once when
it first appears and kept for life. In each stratum the sample is the n_h units whose numbers
come first going right from the stratum's start point a_h, wrapping from 1 to 0: the order
of (u - a_h) mod 1, with a unit whose number equals a_h last (Ohlsson 1995, sequential simple
random sampling). The numbers are independent uniforms, so for a start fixed in advance that
order is a uniformly random permutation of the stratum and its first n_h units are an SRSWOR.

Coordination between rounds lives in the start points (`next_starts`): with rotation share r,
the new start is the number of the k-th unit of last round's sample, k = floor(r n_h + 1/2),
so last round's k first units are skipped. r = 0 keeps the start (positive coordination, the
panel kept); r = 1 starts after last round's last unit (negative coordination: a fresh sample,
overlap max(0, n1 + n2 - N) in an unchanged stratum).

A moved start depends on the numbers of the units it skipped. Units that left the frame do not
disturb the draw: it stays an SRSWOR of the new frame. Units that joined since (births, moves
in) did not help place the start, so with them the draw is an SRSWOR only approximately: exact
enumeration shows visible differences in strata of a handful of units, and simulations of
strata of 20 units or more keep every inclusion probability within 0.1 % of n_h / N_h (Ernst,
Valliant and Casady 2000, JOS 16, study the coverage of births in such schemes).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from analytics.engine.selection import SelectionError, _check_keys, _group, _sizes

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Code = TypeVar("Code", bound=Hashable)


def new_prns(n: int, rng: np.random.Generator) -> FloatArray:
    """Permanent random numbers for n new units: independent uniforms on [0, 1)."""
    if int(n) != n or n < 0:
        raise SelectionError(f"the number of new units must be a non-negative integer, got {n!r}")
    return rng.random(int(n))


def assign_prns(prns: ArrayLike, rng: np.random.Generator) -> FloatArray:
    """The frame's numbers with a new one for every unit that has none (NaN); others kept."""
    numbers = np.array(prns, dtype=np.float64).reshape(-1)
    missing = np.isnan(numbers)
    numbers[missing] = new_prns(int(missing.sum()), rng)
    _check_numbers(numbers)
    return numbers


@dataclass(frozen=True)
class PRNStratum:
    start: float  # the start point a_h (to be stored with the round)
    selected: IntArray  # frame positions in selection order: first after the start first
    numbers: FloatArray  # their permanent random numbers, same order

    @property
    def end(self) -> float:
        """The number of the last selected unit: where a negatively coordinated draw starts."""
        return float(self.numbers[-1]) if self.numbers.size else self.start


@dataclass(frozen=True)
class PRNSample(Generic[Code]):
    strata: dict[Code, PRNStratum]

    @property
    def selected(self) -> IntArray:
        """Frame positions of the whole sample, ascending."""
        parts = [s.selected for s in self.strata.values()]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    @property
    def starts(self) -> dict[Code, float]:
        return {code: s.start for code, s in self.strata.items()}


def draw_prn(
    prns: ArrayLike,
    strata: ArrayLike,
    n_h: Mapping[Code, int],
    starts: Mapping[Code, float] | None = None,
) -> PRNSample[Code]:
    """In each stratum, the n_h units whose numbers come first going right from its start
    (0 for a stratum without one). Ties in the numbers go by frame position."""
    numbers = np.asarray(prns, dtype=np.float64).reshape(-1)
    _check_numbers(numbers)
    codes, members = _group(strata)
    if numbers.size != sum(m.size for m in members):
        raise SelectionError("prns and strata must have one value per frame unit")
    _check_keys(codes, n_h, {})
    starts = starts or {}
    draws: dict[Code, PRNStratum] = {}
    for code, units in zip(codes, members, strict=True):
        take, _ = _sizes(code, units.size, n_h[code], 0)
        start = _check_start(code, starts.get(code, 0.0))
        u = numbers[units]
        chosen = units[np.lexsort((units, u, u <= start))][:take]
        draws[code] = PRNStratum(start, chosen, numbers[chosen])
    return PRNSample(draws)


def next_starts(
    previous: PRNSample[Code], rotation: float | Mapping[Code, float] = 0.0
) -> dict[Code, float]:
    """Start points for the next round: skip the first `skipped(n_h, r)` units of `previous`
    in each stratum. 0 = positive coordination, 1 = negative, 0 < r < 1 = rotation."""
    out: dict[Code, float] = {}
    for code, s in previous.strata.items():
        share = rotation if isinstance(rotation, int | float) else rotation.get(code, 0.0)
        k = skipped(s.selected.size, share)
        out[code] = float(s.numbers[k - 1]) if k else s.start
    return out


def skipped(n: int, rotation: float) -> int:
    """Units of last round's sample n the start moves past: floor(r n + 1/2)."""
    if not 0.0 <= rotation <= 1.0:
        raise SelectionError(f"rotation must be between 0 and 1, got {rotation!r}")
    return min(int(n), math.floor(rotation * n + 0.5))


def _check_numbers(numbers: FloatArray) -> None:
    if numbers.size and not (np.all(numbers >= 0.0) and np.all(numbers < 1.0)):
        raise SelectionError("permanent random numbers must lie in [0, 1)")


def _check_start(code: Hashable, start: float) -> float:
    if not 0.0 <= start < 1.0:
        raise SelectionError(f"stratum {code!r}: start point {start!r} must lie in [0, 1)")
    return float(start)


# --- expected overlap (methodology M3) -------------------------------------------------------


def expected_overlap(
    *, n1: int, n2: int, common: int, leavers: int = 0, joiners: int = 0, rotation: float = 0.0
) -> float:
    """Expected number of a stratum's units in both rounds' samples.

    The stratum holds `common` units in both rounds, `leavers` only in the first (deaths,
    moves out) and `joiners` only in the second (births, moves in); the first sample has n1
    units, the second n2, drawn from the start that skips `skipped(n1, rotation)` of the first.
    Expected is the mean over the units' permanent random numbers (independent uniforms),
    frames, sizes and rule fixed. Exact: see `_forward` and `_wrapped`.
    """
    pop1, pop2 = common + leavers, common + joiners
    if min(common, leavers, joiners) < 0 or not (0 <= n1 <= pop1 and 0 <= n2 <= pop2):
        raise SelectionError(
            f"need 0 <= n1 <= {pop1} and 0 <= n2 <= {pop2} with non-negative unit counts"
        )
    k = skipped(n1, rotation)
    frame = _Frame(common, leavers, joiners)
    return _forward(frame, n1 - k, n2) + _wrapped(frame, k, pop2 - n2)


@dataclass(frozen=True)
class _Frame:
    common: int
    leavers: int
    joiners: int

    @property
    def first(self) -> int:
        return self.common + self.leavers


# Rows of m processed at once in `_forward`, to bound its (rows x n2) temporaries.
BLOCK_CELLS = 1_000_000


def _forward(frame: _Frame, kept: int, n2: int) -> float:
    """Common units among the `kept` first-round units after the new start.

    Take the first round's units in PRN order from the new start. The m-th of them is the
    j-th common unit with probability `_jth_common(m, j)` (a random ordering); it is in the
    second sample iff the j - 1 common units before it and the joiners in the m gaps before it
    number at most n2 - 1. Joiners fall into the first round's N1 + 1 gaps as a uniform
    composition, independently of that ordering (`_joiners_in`).
    """
    width = min(kept, frame.common, n2)
    if width == 0:
        return 0.0
    j = np.arange(1, width + 1)
    rows = max(1, BLOCK_CELLS // n2)
    total = 0.0
    for first in range(1, kept + 1, rows):
        m = np.arange(first, min(first + rows, kept + 1))[:, None]
        room = np.cumsum(_joiners_in(frame, m, n2 - 1), axis=1)
        total += float((_jth_common(frame, m, j) * room[:, n2 - j]).sum())
    return total


def _wrapped(frame: _Frame, k: int, unselected2: int) -> float:
    """Common units among the k skipped ones that the second sample reaches after wrapping.

    Counting back from the k-th, the m-th skipped unit, when it is the j-th common one, is in
    the second sample iff at least N2 - n2 second-round units lie between it and the start:
    its j - 1 common followers and the joiners in the m - 1 gaps after it. Only the m with
    m - 1 + joiners >= N2 - n2 can, so this is empty unless the samples fill the stratum.
    """
    total = 0.0
    for m in range(max(1, unselected2 - frame.joiners + 1), k + 1):
        j = np.arange(1, min(m, frame.common) + 1)
        pmf = _joiners_in(frame, np.array([[m - 1]]), frame.joiners)[0]
        tail = np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])
        need = np.clip(unselected2 - (j - 1), 0, frame.joiners + 1)
        total += float(_jth_common(frame, np.array([[m]]), j)[0] @ tail[need])
    return total


def _jth_common(frame: _Frame, m: IntArray, j: IntArray) -> FloatArray:
    """P(the m-th of the first round's units, in a random order, is the j-th common one),
    for a column of m and a row of j."""
    n, c, a = frame.first, frame.common, frame.leavers
    ok = (j <= m) & (m - j <= a) & (j <= c)
    jj = np.where(ok, j, 1)
    log_p = (
        _log_choose(c, jj - 1)
        + _log_choose(a, np.where(ok, m - jj, 0))
        - _log_choose(n, m - 1)
        + np.log(c - jj + 1)
        - np.log(n - m + 1)
    )
    return np.where(ok, np.exp(log_p), 0.0)


def _joiners_in(frame: _Frame, gaps: IntArray, upto: int) -> FloatArray:
    """P(z of the joiners lie in `gaps` given gaps of the first round's N1 + 1), z = 0..upto,
    for a column of gap counts.

    Every composition of the joiners into the gaps is equally likely, so
    P(z) = C(z + g - 1, g - 1) C(b - z + N1 - g, N1 - g) / C(b + N1, N1).
    """
    z = np.arange(0, upto + 1)[None, :]
    b, n = frame.joiners, frame.first
    ok = (z <= b) & (gaps > 0)
    zz, g = np.where(ok, z, 0), np.maximum(gaps, 1)
    log_p = (
        _log_choose(zz + g - 1, g - 1) + _log_choose(b - zz + n - g, n - g) - _log_choose(b + n, n)
    )
    no_gap = (gaps == 0) & (z == 0)
    return np.where(ok, np.exp(log_p), no_gap.astype(np.float64))


def _log_choose(n: ArrayLike, k: ArrayLike) -> FloatArray:
    n_arr, k_arr = np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    return np.asarray(
        special.gammaln(n_arr + 1) - special.gammaln(k_arr + 1) - special.gammaln(n_arr - k_arr + 1)
    )
