"""Benchmark the weighting + estimation engine (analytics.engine.weighting and estimation).

Standalone (no Django). Generates a seeded synthetic stratified respondent file (100 strata =
4 size classes x 25 industries, 7 regions), runs the sec. D pipeline and the sec. E
estimates (overall + svyby over size, region and industry group = 30 domain values), prints
timings and peak memory, and, when Rscript with the survey package is available, runs the
same svydesign + svymean + svyby in R, prints R's time beside ours and the largest
difference between the two sets of estimates.

    .venv/bin/python bench/bench_engine.py                 # 5,000 and 163,273 respondents
    .venv/bin/python bench/bench_engine.py --sizes 5000 --columns 11 --no-r
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.engine.estimation import Design, estimate_by, estimate_mean
from analytics.engine.weighting import (
    adjust_nonresponse,
    adjust_unknown,
    collapse_classes,
    design_weights,
    rake,
    status_masks,
    weight_diagnostics,
)

SEED = 20250428
SIZE_SHARES = np.array([0.618, 0.272, 0.097, 0.013])
DOMAINS = ("size", "region", "indgroup")
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """Selected units (all dispositions) and their items."""

    stratum: npt.NDArray[np.intp]
    size: npt.NDArray[np.intp]
    indgroup: npt.NDArray[np.intp]
    region: npt.NDArray[np.intp]
    pop: npt.NDArray[np.float64]  # N_h per unit
    disposition: npt.NDArray[np.str_]
    items: npt.NDArray[np.float64]  # (n, k), NaN = item nonresponse
    region_totals: dict[int, float]
    size_totals: dict[int, float]


def make_sample(respondents: int, columns: int, seed: int = SEED) -> Sample:
    rng = np.random.default_rng(seed + respondents)
    population = max(163_273, 4 * respondents)
    n_h_pop = _stratum_population(rng, population)
    selected = int(respondents / 0.7)
    alloc = np.minimum(_allocate(np.sqrt(n_h_pop), selected), n_h_pop)
    stratum = np.repeat(np.arange(100), alloc)
    n = stratum.size
    disposition = rng.choice(["R", "NC", "O", "U", "NE"], n, p=[0.45, 0.25, 0.1, 0.12, 0.08])
    first = stratum_first(stratum)  # every stratum has a respondent
    others = np.setdiff1d(np.arange(n), first)
    disposition[first] = "I"
    disposition[rng.choice(others, respondents - first.size, replace=False)] = "I"
    size, industry = stratum // 25, stratum % 25
    region = rng.choice(7, n, p=[0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
    return Sample(
        stratum=stratum,
        size=size,
        indgroup=np.minimum(industry, 18),
        region=region,
        pop=n_h_pop[stratum].astype(np.float64),
        disposition=disposition,
        items=_items(rng, size, columns),
        region_totals={
            r: population * s for r, s in enumerate([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
        },
        size_totals={s: float(n_h_pop[s * 25 : (s + 1) * 25].sum()) for s in range(4)},
    )


def stratum_first(stratum: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    return np.searchsorted(stratum, np.unique(stratum))


def _stratum_population(rng: np.random.Generator, population: int) -> npt.NDArray[np.intp]:
    industry = rng.dirichlet(np.full(25, 2.0), 4)
    raw = (SIZE_SHARES[:, None] * industry).ravel() * population
    counts = np.maximum(np.floor(raw).astype(np.intp), 20)
    counts[np.argmax(counts)] += population - counts.sum()
    return counts


def _allocate(score: npt.NDArray[np.float64], total: int) -> npt.NDArray[np.intp]:
    raw = score / score.sum() * total
    base = np.maximum(np.floor(raw).astype(np.intp), 3)
    order = np.argsort(-(raw - np.floor(raw)))
    base[order[: max(total - base.sum(), 0)]] += 1
    return base


def _items(
    rng: np.random.Generator, size: npt.NDArray[np.intp], columns: int
) -> npt.NDArray[np.float64]:
    n = size.size
    adopt_rate = np.array([0.087, 0.285, 0.542, 0.857])[size]
    adopted = (rng.random(n) < adopt_rate).astype(float)
    cols = [adopted, (rng.random(n) < 0.265).astype(float)]
    for rate in (0.763, 0.169, 0.144):  # multi-response technologies, adopters only
        cols.append(np.where(adopted == 1, (rng.random(n) < rate).astype(float), np.nan))
    level = rng.choice(3, n, p=[0.755, 0.2, 0.045])
    cols += [np.where(adopted == 1, (level == k).astype(float), np.nan) for k in range(3)]
    cols.append(np.where(adopted == 1, rng.gamma(2.0, 200.0, n), np.nan))  # investment
    cols.append(rng.lognormal(3.0, 1.0, n))  # employees
    cols.append((rng.random(n) < 0.4).astype(float))
    while len(cols) < columns:
        extra = (
            (rng.random(n) < rng.uniform(0.05, 0.6)) if len(cols) % 2 else rng.gamma(2.0, 30.0, n)
        )
        cols.append(np.asarray(extra, dtype=float))
    out = np.column_stack(cols[:columns])
    out[rng.random(out.shape) < 0.03] = np.nan  # item nonresponse
    return out


# --- timed steps -----------------------------------------------------------------------------


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[T, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


@dataclass(frozen=True)
class Weighted:
    weights: npt.NDArray[np.float64]  # final weights of respondents
    respondent: npt.NDArray[np.bool_]
    raked: npt.NDArray[np.float64]
    rake_projection: object


def weighting(s: Sample) -> Weighted:
    status = status_masks(s.disposition)
    d = design_weights(s.stratum, s.pop)
    d1 = adjust_unknown(d, status.known, s.stratum)
    collapsed = collapse_classes(
        [s.stratum, s.size * 100 + s.indgroup, s.size],
        d1,
        status.eligible,
        status.respondent,
        r_min=10,
        a_max=3.0,
    )
    nr = adjust_nonresponse(d1, status.eligible, status.respondent, collapsed.classes)
    r = status.respondent
    total = nr.weights[r].sum()
    scale = total / sum(s.size_totals.values())
    rk = rake(
        nr.weights[r],
        [s.size[r], s.region[r]],
        [
            {k: v * scale for k, v in s.size_totals.items()},
            {k: v * scale for k, v in s.region_totals.items()},
        ],
    )
    weight_diagnostics(rk.weights, s.stratum[r])
    return Weighted(nr.weights[r], r, rk.weights, rk.projection)


def estimation(s: Sample, w: Weighted, raked: bool = False) -> dict[str, object]:
    r = w.respondent
    design = Design(
        w.raked if raked else w.weights,
        s.stratum[r],
        fpc=s.pop[r],
        calibration=w.rake_projection if raked else None,  # type: ignore[arg-type]
    )
    y = s.items[r]
    out: dict[str, object] = {"all": estimate_mean(design, y)}
    for name in DOMAINS:
        out[name] = estimate_by(design, y, getattr(s, name)[r])
    return out


def peak_memory(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


# --- R ---------------------------------------------------------------------------------------

R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
items <- grep("^y", names(d), value = TRUE)
t0 <- proc.time()[["elapsed"]]
des <- svydesign(ids = ~1, strata = ~stratum, fpc = ~N_h, weights = ~w, data = d)
res <- list()
for (it in items) {
  f <- as.formula(paste0("~", it))
  m <- svymean(f, des, na.rm = TRUE)
  res[[length(res) + 1]] <- data.frame(item = it, domain = "all", level = "all",
                                       est = coef(m)[[1]], se = SE(m)[[1]])
  for (dv in c("size", "region", "indgroup")) {
    b <- svyby(f, as.formula(paste0("~", dv)), des, svymean, na.rm = TRUE)
    res[[length(res) + 1]] <- data.frame(item = it, domain = dv, level = as.character(b[[dv]]),
                                         est = b[[it]], se = SE(b))
  }
}
elapsed <- proc.time()[["elapsed"]] - t0
write.csv(do.call(rbind, res), args[2], row.names = FALSE)
cat("ELAPSED", elapsed, "\n")
"""


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(survey)"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


def write_respondents(s: Sample, w: Weighted, data: Path) -> None:
    """The respondent file R and svy read: design columns, domains, items (NaN = NA)."""
    r = w.respondent
    k = s.items.shape[1]
    columns = [s.stratum[r], s.pop[r], w.weights, s.size[r], s.region[r], s.indgroup[r]]
    table = np.column_stack([*columns, s.items[r]])
    header = ["stratum", "N_h", "w", *DOMAINS, *[f"y{j}" for j in range(k)]]
    # %.17g round-trips float64, so R reads exactly our numbers; NaN is R's NA.
    np.savetxt(data, table, delimiter=",", fmt="%.17g", header=",".join(header), comments="")
    data.write_text(data.read_text().replace("nan", "NA"))


def run_svy(s: Sample, w: Weighted, folder: Path, python: str) -> float:
    """The svy package's time for the same estimates (overall and by the 3 domains)."""
    data = folder / "resp.csv"
    write_respondents(s, w, data)
    runner = Path(__file__).with_name("svy_runner.py")
    proc = subprocess.run(
        [python, str(runner), str(data)], capture_output=True, text=True, check=True
    )
    return float(proc.stdout.split("ELAPSED")[1].split()[0])


def run_r(s: Sample, w: Weighted, folder: Path) -> tuple[float, float, float]:
    """R svydesign + svymean + svyby time (s), and max |est| and SE relative differences."""
    data, results, script = folder / "resp.csv", folder / "r_out.csv", folder / "bench.R"
    script.write_text(R_SCRIPT)
    write_respondents(s, w, data)
    proc = subprocess.run(
        ["Rscript", str(script), str(data), str(results)],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = float(proc.stdout.split("ELAPSED")[1].split()[0])
    return (elapsed, *compare(estimation(s, w), results))


def compare(ours: dict[str, object], r_csv: Path) -> tuple[float, float]:
    worst_est = worst_se = 0.0
    with r_csv.open() as fh:
        for row in csv.DictReader(fh):
            j = int(row["item"][1:])
            res = ours[row["domain"]]
            if row["domain"] == "all":
                est, se = res.estimate[j], res.se[j]  # type: ignore[attr-defined]
            else:
                levels = res.levels.astype(str).tolist()  # type: ignore[attr-defined]
                at = levels.index(row["level"])
                est, se = res.estimates.estimate[at, j], res.estimates.se[at, j]  # type: ignore[attr-defined]
            worst_est = max(
                worst_est, abs(est - float(row["est"])) / max(abs(float(row["est"])), 1e-300)
            )
            worst_se = max(
                worst_se, abs(se - float(row["se"])) / max(abs(float(row["se"])), 1e-300)
            )
    return worst_est, worst_se


# --- main ------------------------------------------------------------------------------------


def bench(respondents: int, columns: int, with_r: bool) -> None:
    s = make_sample(respondents, columns)
    w, t_weight = timed(lambda: weighting(s))
    _, t_est = timed(lambda: estimation(s, w))
    _, t_cal = timed(lambda: estimation(s, w, raked=True))
    mem = peak_memory(lambda: estimation(s, w))
    n_dom = 1 + sum(len(np.unique(getattr(s, d))) for d in DOMAINS)
    print(
        f"\nrespondents {int(w.respondent.sum()):>7,}  selected {s.stratum.size:>7,}  "
        f"columns {columns:>3}  domain values {n_dom} (incl. overall)"
    )
    print(f"  weighting D1-D4 (collapse, NR, rake, diagnostics) {t_weight * 1e3:9.1f} ms")
    print(f"  estimation, all columns x domains                 {t_est * 1e3:9.1f} ms")
    print(f"  estimation with raking projection (E4)            {t_cal * 1e3:9.1f} ms")
    print(f"  peak traced memory of one estimation              {mem:9.1f} MiB")
    if with_r:
        with tempfile.TemporaryDirectory() as tmp:
            r_time, d_est, d_se = run_r(s, w, Path(tmp))
        print(
            f"  R survey svydesign+svymean+svyby                  {r_time * 1e3:9.1f} ms"
            f"   -> {r_time / t_est:,.0f}x faster"
        )
        print(f"  max relative difference vs R: estimates {d_est:.1e}, SEs {d_se:.1e}")
    svy_python = os.environ.get("SVY_PYTHON")
    if svy_python:
        with tempfile.TemporaryDirectory() as tmp:
            svy_time = run_svy(s, w, Path(tmp), svy_python)
        print(
            f"  svy (Python) Sample.estimation.mean, by domains   {svy_time * 1e3:9.1f} ms"
            f"   -> {svy_time / t_est:,.1f}x faster"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 163_273])
    parser.add_argument("--columns", type=int, nargs="+", default=[11, 50])
    parser.add_argument("--no-r", action="store_true", help="skip the R comparison")
    args = parser.parse_args()
    with_r = not args.no_r and r_available()
    if not args.no_r and not with_r:
        print("Rscript with the survey package not found: R comparison skipped")
    print(f"numpy {np.__version__}; seed {SEED}; times are the best of 3 runs")
    for respondents in args.sizes:
        for columns in args.columns:
            bench(respondents, columns, with_r)
    print(f"\nprocess max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
