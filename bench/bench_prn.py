"""Benchmark the second survey's engine: PRN coordinated draws and estimates of change.

Standalone (no Django, no database). A seeded synthetic frame of 163,273 firms in 100 strata
(4 size classes x 25 industries) gets permanent random numbers; a square-root allocation of
5,000 is drawn; a year later 5 % of the firms have closed, 6 % are new and 1 % moved to another
stratum, and the second round is drawn with 20 % rotation. Then the expected overlap of every
stratum, and the change between the two rounds' respondent files (5,000 records each, every
sampled firm answering) for 11 items, overall and by size class. Prints the best of 3 runs.

    .venv/bin/python bench/bench_prn.py
    .venv/bin/python bench/bench_prn.py --frame 50000 --sample 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.engine.allocation import allocate_power
from analytics.engine.change import Round, change_in_mean, change_in_total
from analytics.engine.prn import PRNSample, draw_prn, expected_overlap, new_prns, next_starts

SEED = 20250428
SIZE_SHARES = np.array([0.618, 0.272, 0.097, 0.013])
ROTATION = 0.2
T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[T, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def stratum_sizes(rng: np.random.Generator, frame: int) -> npt.NDArray[np.int64]:
    industry = rng.dirichlet(np.full(25, 2.0), 4)
    raw = (SIZE_SHARES[:, None] * industry).ravel() * frame
    counts = np.maximum(np.floor(raw).astype(np.int64), 20)
    counts[np.argmax(counts)] += frame - counts.sum()
    return counts


def allocate(strata: npt.NDArray[np.int64], sample: int) -> dict[int, int]:
    sizes = np.bincount(strata)
    return dict(enumerate(allocate_power(sizes, sample).n_h.tolist()))


def next_year(
    rng: np.random.Generator, firm: npt.NDArray[np.int64], strata: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Next year's frame: 5 % closed, 1 % moved to another stratum, 6 % new firms."""
    alive = rng.random(firm.size) >= 0.05
    firm2, strata2 = firm[alive], strata[alive].copy()
    moved = rng.random(firm2.size) < 0.01
    strata2[moved] = rng.integers(0, 100, int(moved.sum()))
    births = int(0.06 * firm.size)
    new_firms = firm.max() + 1 + np.arange(births)
    new_strata = rng.choice(strata, births)
    return np.r_[firm2, new_firms], np.r_[strata2, new_strata]


def stratum_counts(
    strata1: npt.NDArray[np.int64],
    firm1: npt.NDArray[np.int64],
    strata2: npt.NDArray[np.int64],
    firm2: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per stratum: firms in it both years, only the first year, only the second."""
    where1 = np.full(firm2.max() + 1, -1)
    where1[firm1] = strata1
    stays = where1[firm2] == strata2
    common = np.bincount(strata2[stays], minlength=100)
    return common, np.bincount(strata1, minlength=100) - common, np.bincount(strata2) - common


def overlaps(
    first: PRNSample[int],
    n2: dict[int, int],
    counts: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> float:
    common, leavers, joiners = counts
    return sum(
        expected_overlap(
            n1=s.selected.size,
            n2=n2[h],
            common=int(common[h]),
            leavers=int(leavers[h]),
            joiners=int(joiners[h]),
            rotation=ROTATION,
        )
        for h, s in first.strata.items()
    )


def items(rng: np.random.Generator, size: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """11 items: 6 proportions, 5 amounts (skewed), with 3 % item nonresponse."""
    n = size.size
    rate = np.array([0.087, 0.285, 0.542, 0.857])[size]
    cols = [(rng.random(n) < rate * s).astype(float) for s in (1.0, 0.8, 0.6, 1.1, 0.5, 0.9)]
    cols += [rng.lognormal(3.0 + size, 1.0) for _ in range(5)]
    out = np.column_stack(cols)
    out[rng.random(out.shape) < 0.03] = np.nan
    return out


def followed(
    rng: np.random.Generator,
    r1: Round,
    r2: Round,
    y1: npt.NDArray[np.float64],
    y2: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Round 2's items, a firm of both rounds keeping its answers (85 %) or growing."""
    _, at1, at2 = np.intersect1d(r1.firm, r2.firm, return_indices=True)
    out = y2.copy()
    keep = rng.random((at1.size, 6)) < 0.85
    out[at2, :6] = np.where(keep, y1[at1, :6], y2[at2, :6])
    out[at2, 6:] = y1[at1, 6:] * rng.lognormal(0.03, 0.2, (at1.size, 5))
    return out


def respondents(
    sample: PRNSample[int], firm: npt.NDArray[np.int64], strata: npt.NDArray[np.int64]
) -> Round:
    rows = sample.selected
    population = np.bincount(strata, minlength=100).astype(np.float64)
    taken = np.bincount(strata[rows], minlength=100)
    s = strata[rows]
    return Round(firm[rows], population[s] / taken[s], s, population[s])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frame", type=int, default=163_273)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    strata1 = np.repeat(np.arange(100), stratum_sizes(rng, args.frame))
    firm1 = np.arange(strata1.size)
    n_h = allocate(strata1, args.sample)

    prns, t_prn = timed(lambda: new_prns(strata1.size, np.random.default_rng(SEED)))
    first, t_draw = timed(lambda: draw_prn(prns, strata1, n_h))
    firm2, strata2 = next_year(rng, firm1, strata1)
    prns2 = np.r_[prns, new_prns(firm2.max() + 1 - prns.size, rng)][firm2]
    n2 = allocate(strata2, args.sample)
    second, t_next = timed(lambda: draw_prn(prns2, strata2, n2, next_starts(first, ROTATION)))
    counts = stratum_counts(strata1, firm1, strata2, firm2)
    expected, t_overlap = timed(lambda: overlaps(first, n2, counts))
    both = np.intersect1d(firm1[first.selected], firm2[second.selected])
    same = np.intersect1d(
        firm1[first.selected] * 100 + strata1[first.selected],
        firm2[second.selected] * 100 + strata2[second.selected],
    ).size

    r1, r2 = respondents(first, firm1, strata1), respondents(second, firm2, strata2)
    size1, size2 = strata1[first.selected] // 25, strata2[second.selected] // 25
    y1 = items(rng, size1)
    y2 = followed(rng, r1, r2, y1, items(rng, size2))
    mean, t_mean = timed(lambda: change_in_mean(r1, r2, y1, y2))
    _, t_total = timed(lambda: change_in_total(r1, r2, y1, y2))
    _, t_domains = timed(
        lambda: [change_in_mean(r1, r2, y1, y2, size1 == s, size2 == s) for s in range(4)]
    )

    print(f"numpy {np.__version__}; seed {SEED}; times are the best of 3 runs")
    print(f"frame {strata1.size:,} firms in 100 strata; sample {sum(n_h.values()):,}")
    print(f"  permanent random numbers for the frame            {t_prn * 1e3:9.1f} ms")
    print(f"  stratified PRN draw                               {t_draw * 1e3:9.1f} ms")
    print(
        f"next year: frame {strata2.size:,}, sample {sum(n2.values()):,}, rotation {ROTATION:.0%}"
    )
    print(f"  draw with the rotated start points                {t_next * 1e3:9.1f} ms")
    print(f"  expected overlap of the 100 strata                {t_overlap * 1e3:9.1f} ms")
    print(
        f"  firms in both samples: {both.size:,}; in the same stratum {same:,}"
        f" (expected {expected:,.1f})"
    )
    print(
        f"change between two respondent files of {r1.design.n:,} and {r2.design.n:,} firms,"
        f" 11 items"
    )
    print(f"  means and proportions, overall                    {t_mean * 1e3:9.1f} ms")
    print(f"  totals, overall                                   {t_total * 1e3:9.1f} ms")
    print(f"  means and proportions, 4 size classes             {t_domains * 1e3:9.1f} ms")
    print(
        f"  firms answering in both rounds {mean.common.max():,};"
        f" correlations {mean.correlation.min():.2f} to {mean.correlation.max():.2f}"
    )


if __name__ == "__main__":
    main()
