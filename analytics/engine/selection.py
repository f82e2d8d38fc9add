"""Stratified simple random sampling without replacement, with ordered reserves (sec. B).

Recipe (so an auditor can redo a draw with numpy alone): the frame is sorted by a stable key
before the call. For each stratum h, take its frame positions in frame order and permute them
with ``np.random.default_rng(SeedSequence(seed, spawn_key=tuple(str(h).encode())))``. The first
n_h positions are the sample; the next r_h are the reserve, released in that order.

Why this shape:
- the first k of a uniform random permutation is an SRSWOR of size k, so the sample plus any
  released prefix of the reserve is still an SRSWOR of the stratum;
- each stratum has its own stream keyed by its code, so a stratum's draw does not change when
  another stratum's allocation or reserve changes, and the sample does not change with r_h.
Generator streams are stable in practice but numpy does not promise it across versions:
store numpy.__version__ with the seed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]
Code = TypeVar("Code", bound=Hashable)


class SelectionError(ValueError):
    """The requested selection cannot be made."""


@dataclass(frozen=True)
class StratumDraw:
    selected: IntArray  # frame positions in the sample, ascending
    reserve: IntArray  # frame positions held in reserve, in release order


@dataclass(frozen=True)
class Sample(Generic[Code]):
    seed: int
    strata: dict[Code, StratumDraw]

    @property
    def selected(self) -> IntArray:
        """Frame positions of the whole main sample, ascending."""
        parts = [draw.selected for draw in self.strata.values()]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def select_stratified(
    strata: ArrayLike,
    n_h: Mapping[Code, int],
    *,
    seed: int,
    reserve_h: Mapping[Code, int] | None = None,
) -> Sample[Code]:
    """Draw an SRSWOR of n_h frame positions per stratum, plus r_h ordered reserve units."""
    codes, members = _group(strata)
    reserve_h = reserve_h or {}
    _check_keys(codes, n_h, reserve_h)
    draws: dict[Code, StratumDraw] = {}
    for code, units in zip(codes, members, strict=True):
        take, spare = _sizes(code, len(units), n_h[code], reserve_h.get(code, 0))
        order = _stream(seed, code).permutation(units)
        draws[code] = StratumDraw(np.sort(order[:take]), order[take : take + spare])
    return Sample(int(seed), draws)


def _group(strata: ArrayLike) -> tuple[list[Any], list[IntArray]]:
    """Stratum codes (sorted) and each stratum's frame positions in frame order."""
    labels = np.asarray(strata)
    if labels.ndim != 1 or labels.size == 0:
        raise SelectionError("strata must be a non-empty 1-D array of stratum codes")
    codes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable").astype(np.int64)
    members = np.split(order, np.cumsum(counts)[:-1])
    return [code.item() for code in codes], members


def _check_keys(codes: list[Any], n_h: Mapping[Code, int], reserve_h: Mapping[Code, int]) -> None:
    known = set(codes)
    missing = [code for code in codes if code not in n_h]
    if missing:
        raise SelectionError(f"no sample size given for frame strata {missing}")
    unknown = [code for code in [*n_h, *reserve_h] if code not in known]
    if unknown:
        raise SelectionError(f"strata {unknown} have a size but no units in the frame")


def _sizes(code: Hashable, population: int, take: int, spare: int) -> tuple[int, int]:
    if int(take) != take or not 0 <= take <= population:
        raise SelectionError(f"stratum {code!r}: n_h = {take} must be in 0..N_h = {population}")
    if int(spare) != spare or spare < 0 or take + spare > population:
        raise SelectionError(
            f"stratum {code!r}: reserve {spare} must be ≥ 0 and fit in the"
            f" {population - take} units left after the sample"
        )
    return int(take), int(spare)


def _stream(seed: int, code: Hashable) -> np.random.Generator:
    if int(seed) != seed or seed < 0:
        raise SelectionError(f"seed must be a non-negative integer, got {seed!r}")
    key = tuple(str(code).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))
