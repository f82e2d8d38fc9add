"""A whole recompute, process start to published run (`manage.py recompute --force` in a
fresh process: read from PostgreSQL, weight, estimate every question and domain, write), at
5,000 sampled firms and at 163,273 (a census), with Taylor and with 500 Rao-Wu bootstrap
replicates; R survey timed on the same respondent file beside each; then the estimation
engine alone beside R.

    make bench-estimates

Targets (issue 11): 5,000 under 1.5 s with Taylor and under 5 s with 500 bootstrap
replicates; the census under 5 s with Taylor and a peak RSS under 400 MB.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

SIZES = (5_000, 163_273)


def build(slug: str, respondents: int) -> object:
    """A frame of 163,273 firms, a sample of `respondents`, every case answered."""
    import numpy as np
    from django.utils import timezone

    from config import simulation
    from respondents.models import Case
    from surveys.models import Response

    survey = common.drawn_survey(slug, respondents, seed=7)
    rng = np.random.default_rng(7)
    cases = list(Case.objects.filter(survey=survey).select_related("frame_unit"))
    now = timezone.now()
    responses = [
        Response(
            case=case,
            questionnaire_id=survey.current_questionnaire_id,
            answers=simulation.answers_for(case, rng),
            status="submitted",
            submitted_at=now,
            reference=f"B-{case.pk}",
        )
        for case in cases
    ]
    Response.objects.bulk_create(responses, batch_size=5000)
    Case.objects.filter(survey=survey).update(disposition="1.1")
    return survey


RUNS: tuple[tuple[int, str, list[str]], ...] = (
    # (respondents, label, recompute arguments)
    (5_000, "taylor", []),
    (5_000, "raking", ["--calibration", "raking", "--margins", "size_class,region_area"]),
    (5_000, "bootstrap", ["--variance", "bootstrap", "--replicates", "500"]),
    (163_273, "taylor", []),
    (163_273, "raking", ["--calibration", "raking", "--margins", "size_class,region_area"]),
)
R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
items <- grep("^y", names(d), value = TRUE)
started <- proc.time()[["elapsed"]]
if (args[2] == "taylor") {
  des <- svydesign(ids = ~1, strata = ~stratum, fpc = ~N_h, weights = ~w, data = d)
} else {
  des <- svrepdesign(data = d, weights = ~w, repweights = "^rw_", type = "bootstrap",
                     scale = 1 / (sum(startsWith(names(d), "rw_")) - 1), mse = FALSE)
}
# One item at a time, as the platform: each item's own respondents (na.rm per item).
for (item in items) {
  f <- reformulate(item)
  # try(): an item nobody answered has no estimate (the platform flags it NO_DATA)
  try(svymean(f, des, na.rm = TRUE), silent = TRUE)
  for (v in c("size_class", "industry_group", "region_area", "region"))
    try(svyby(f, as.formula(paste0("~", v)), des, svymean, na.rm = TRUE), silent = TRUE)
}
cat("ELAPSED", proc.time()[["elapsed"]] - started, "\n")
"""


# Linux keeps a process's peak RSS across fork and exec, so a child forked from this
# benchmark (hundreds of MB after building the census) would report this process's peak as
# its own. A small launcher forks the recompute instead, times it and reports its peak.
LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_pid, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def timed_recompute(slug: str, arguments: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `manage.py recompute` in a fresh process."""
    command = [sys.executable, str(ROOT / "manage.py"), "recompute", slug, "--force", *arguments]
    out = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *command],
        env=common.production_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed, peak, code = out.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"recompute failed: {' '.join(command)}")
    return float(elapsed), int(peak) / 1024


def in_process_seconds(slug: str) -> float:
    """Load, weighting, estimation and write of the latest run (without process start)."""
    from analytics.models import EstimateRun

    run = EstimateRun.objects.filter(survey__slug=slug).order_by("-number").first()
    assert run is not None
    return float(sum(v for v in run.timings.values() if isinstance(v, int | float)))


def r_seconds(slug: str, label: str) -> str:
    """R survey on the run's respondent file: svymean and svyby over the same items."""
    # The census in R takes many minutes: bench_engine times R there on the same design.
    if shutil.which("Rscript") is None or label == "raking" or slug.endswith("163273"):
        return ""
    from analytics import pipeline
    from analytics.models import EstimateRun
    from surveys.models import Survey

    survey = Survey.objects.get(slug=slug)
    run = EstimateRun.objects.latest_published(survey)
    assert run is not None
    snapshot = pipeline.load_snapshot(survey)
    respondent = snapshot.respondent
    weights = pipeline.run_weights(run)
    columns = {
        "stratum": snapshot.strata[respondent],
        "N_h": snapshot.population[respondent],
        "w": np.array([weights[int(c)][1] for c in snapshot.case_ids[respondent]]),
        **{v: snapshot.variables[v][respondent] for v in
           ("size_class", "industry_group", "region_area", "region")},
        **{f"y{j}": snapshot.y[:, j] for j in range(snapshot.y.shape[1])},
    }  # fmt: skip
    stored = pipeline.run_replicates(run)
    if stored is not None:
        order = np.searchsorted(stored.case_ids, snapshot.case_ids[respondent])
        columns.update({f"rw_{k + 1}": stored.weights[order, k] for k in range(stored.count)})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "respondents.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(zip(*(c.tolist() for c in columns.values()), strict=True))
        kind = "bootstrap" if stored is not None else "taylor"
        out = subprocess.run(
            ["Rscript", "-e", R_SCRIPT, str(path), kind], capture_output=True, text=True
        )
    for line in out.stdout.splitlines():
        if line.startswith("ELAPSED"):
            return f"{float(line.split()[1]):.2f}"
    return "failed"


def main() -> None:
    common.setup_django()
    from django.db import connection

    from surveys.models import Response

    slugs = {}
    for size in sorted({size for size, _label, _args in RUNS}):
        slug = f"bench_estimates_{size}"
        if Response.objects.filter(case__survey__slug=slug).count() != size:
            build(slug, size)
        slugs[size] = slug
    # Planner statistics, as autovacuum keeps them on a deployed database (a freshly built
    # benchmark database has none, and PostgreSQL then plans the census reads badly).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print("whole recompute, process start to published run (manage.py recompute --force)")
    print(
        f"{'respondents':>12} {'run':<10} {'wall s':>8} {'in-process s':>13} "
        f"{'peak RSS MiB':>13} {'R survey s':>11}"
    )
    for size, label, arguments in RUNS:
        elapsed, rss = timed_recompute(slugs[size], arguments)
        inside = in_process_seconds(slugs[size])
        r = r_seconds(slugs[size], label)
        print(f"{size:>12,} {label:<10} {elapsed:>8.2f} {inside:>13.2f} {rss:>13.0f} {r:>11}")
    print("(R: svymean and svyby over the same items, one at a time, and 4 domain variables")
    print(" on the run's respondent file, estimation only; bootstrap: svrepdesign on the run's")
    print(" replicate weights; the census in R: see the engine benchmark below)")
    if "--no-engine" in sys.argv:
        return
    print("\nestimation engine alone, beside R's survey package (if Rscript is installed):")
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_engine.py")], check=True)


if __name__ == "__main__":
    main()
