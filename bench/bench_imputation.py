"""Benchmark the imputation and editing engine (analytics.engine.imputation and editing).

Standalone (no Django). A seeded synthetic respondent file (5,000 firms, 4 size classes ×
19 industry groups, register employees and turnover, three financial items missing
together for ~20 %) and a frame of 163,273 firms. Times donor imputation (nearest
neighbour and random hot deck, joint over the three items), ratio imputation, scores,
percentiles by industry group over the frame, the Hidiroglou–Berthelot edit and error
localisation; prints the figures.

With --banff PYTHON (a Python with `pip install banff`, never the project's), it runs
Banff's DONORIMP and ERRORLOC on the same records in that Python, prints their import and
run times, and compares their donors and fields with ours (docs/banff-evaluation.md).

    .venv/bin/python bench/bench_imputation.py
    .venv/bin/python bench/bench_imputation.py --banff /tmp/banffenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.engine.editing import (
    LinearEdits,
    error_localise,
    global_score,
    hidiroglou_berthelot,
    local_scores,
    percentiles_by,
    triage,
)
from analytics.engine.imputation import (
    donate,
    nearest_donors,
    passes_edits,
    random_donors,
    ratio_impute,
)

SEED = 20250428
FRAME = 163_273
SIZE_SHARES = [0.618, 0.272, 0.097, 0.013]
ITEMS = ("sales", "costs", "invest")
T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]
# profit = sales − costs; costs ≤ 1000 · employees (thousand won per employee, a loose cap)
EDITS = LinearEdits.of([[1, -1, -1, 0], [0, 1, 0, -1000]], [0, 0], [True, False])
BANFF_EDITS = "sales - costs - profit = 0; costs - 1000 * emp <= 0;"


@dataclass(frozen=True)
class Firms:
    ident: npt.NDArray[np.str_]
    size: npt.NDArray[np.int64]
    indgroup: npt.NDArray[np.int64]
    employees: FloatArray
    turnover: FloatArray  # the register's, last year
    items: FloatArray  # sales, costs, invest; NaN where missing
    weights: FloatArray

    @property
    def cls(self) -> npt.NDArray[np.int64]:
        return self.size * 100 + self.indgroup


def make_firms(n: int, seed: int = SEED) -> Firms:
    rng = np.random.default_rng(seed + n)
    size = rng.choice(4, n, p=SIZE_SHARES)
    indgroup = rng.integers(0, 19, n)
    employees = np.ceil(rng.lognormal(np.array([1.0, 2.5, 3.8, 5.5])[size], 0.5))
    productivity = rng.lognormal(5.0 + 0.05 * indgroup, 0.4)
    turnover = np.round(employees * productivity)
    sales = np.round(turnover * rng.lognormal(0.02, 0.15, n))
    costs = np.round(sales * rng.uniform(0.55, 0.95, n))
    invest = np.round(sales * rng.beta(1, 12, n))
    return Firms(
        ident=np.array([f"F{i:06d}" for i in range(n)]),
        size=size,
        indgroup=indgroup,
        employees=employees,
        turnover=turnover,
        items=np.column_stack([sales, costs, invest]),
        weights=np.array([33.0, 30.0, 25.0, 8.0])[size] * rng.uniform(0.9, 1.1, n),
    )


def with_missing(firms: Firms, rate: float = 0.2) -> tuple[Firms, npt.NDArray[np.bool_]]:
    """The same firms with the three items missing together for `rate` of them."""
    rng = np.random.default_rng(SEED)
    recipient: npt.NDArray[np.bool_] = np.asarray(rng.random(firms.items.shape[0]) < rate)
    items = firms.items.copy()
    items[recipient] = np.nan
    return Firms(**{**firms.__dict__, "items": items}), recipient


def timed(fn: Callable[[], T], repeat: int = 5) -> tuple[T, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def line(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<64} {seconds * 1000:9.1f} ms  {note}")


# --- our engine ------------------------------------------------------------------------------


def bench_imputation(firms: Firms, recipient: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    n = firms.items.shape[0]
    match = np.column_stack([firms.employees, firms.turnover])
    classes = [firms.cls, firms.indgroup]
    impute = np.isnan(firms.items)
    print(f"Imputation: {n:,} responses, {recipient.sum():,} recipients × {len(ITEMS)} items")

    def nearest() -> object:
        donors = nearest_donors(match, recipient, ~recipient, classes, seed=SEED)
        return donate(firms.items, impute, donors)

    def limited() -> object:
        donors = nearest_donors(match, recipient, ~recipient, classes, seed=SEED, n_limit=2)
        return donate(firms.items, impute, donors)

    def checked() -> object:
        edits = LinearEdits.of([[-1, 1, 0], [-1, 0, 1]], [0, 0])  # costs, invest ≤ sales
        accept = passes_edits(firms.items, impute, edits)
        donors = nearest_donors(match, recipient, ~recipient, classes, seed=SEED, accept=accept)
        return donate(firms.items, impute, donors)

    def hot_deck() -> object:
        donors = random_donors(recipient, ~recipient, classes, seed=SEED, weights=firms.weights)
        return donate(firms.items, impute, donors)

    for label, fn in [
        ("nearest neighbour (rank, L∞, 2 matching variables) + donate", nearest),
        ("nearest neighbour, each donor used at most twice", limited),
        ("nearest neighbour passing the edits (of the 10 nearest) + donate", checked),
        ("random hot deck (weighted) + donate", hot_deck),
        (
            "ratio imputation of sales from employees",
            lambda: ratio_impute(
                firms.items[:, 0], firms.employees, recipient, ~recipient, classes
            ),
        ),
    ]:
        _, seconds = timed(fn)
        line(label, seconds, "(target < 2 s)" if "donate" in label else "")
    only_class = nearest_donors(match, recipient, ~recipient, [firms.cls], seed=SEED)
    return only_class.donor


def bench_editing(firms: Firms) -> None:
    n = firms.items.shape[0]
    anticipated = np.column_stack([firms.turnover, 0.75 * firms.turnover, 0.05 * firms.turnover])
    print(f"Selective editing: {n:,} responses × {len(ITEMS)} items")

    def scores() -> object:
        local = local_scores(firms.items, anticipated, firms.weights, firms.indgroup)
        return triage(global_score(local), 0.01, firms.weights, firms.items)

    result, seconds = timed(scores)
    reviewed = int((~result.passed).sum())  # type: ignore[attr-defined]
    line("local + global scores, triage at 1 %", seconds, f"({reviewed} to review)")


def bench_frame(frame: Firms) -> None:
    ratio = frame.turnover / frame.employees
    print(f"Edit bounds over the frame: {frame.size.shape[0]:,} firms, 19 industry groups")
    _, seconds = timed(lambda: percentiles_by(ratio, frame.indgroup, [1, 99]))
    line("turnover per employee, 1st and 99th percentiles", seconds)
    _, seconds = timed(lambda: percentiles_by(ratio, frame.indgroup, [1, 99], frame.weights))
    line("the same, weighted", seconds)
    check, seconds = timed(lambda: np.percentile(ratio[frame.indgroup == 0], [1, 99]))
    found = percentiles_by(ratio, frame.indgroup, [1, 99]).values[0]
    assert np.array_equal(found, check)
    line("numpy.percentile, one group (for scale)", seconds)
    edit, seconds = timed(
        lambda: hidiroglou_berthelot(
            frame.turnover, frame.employees, frame.size * 100 + frame.indgroup, c=4
        )
    )
    line("Hidiroglou–Berthelot, 76 classes", seconds, f"({int(edit.outlier.sum()):,} outliers)")


def errorloc_values(firms: Firms) -> FloatArray:
    """sales, costs, profit, employees, with ~8 % of records carrying one error."""
    rng = np.random.default_rng(SEED + 1)
    sales, costs = firms.items[:, 0], firms.items[:, 1]
    values = np.column_stack([sales, costs, sales - costs, firms.employees])
    wrong = rng.random(values.shape[0]) < 0.08
    field = rng.integers(0, 3, values.shape[0])
    values[wrong, field[wrong]] *= np.where(rng.random(wrong.sum()) < 0.5, 1000.0, -1.0)
    return values


def bench_errorloc(values: FloatArray) -> npt.NDArray[np.bool_]:
    failing = int(EDITS.nonnegative().failed(values).any(axis=1).sum())
    print(f"Error localisation: {values.shape[0]:,} records × 4 fields, {failing} failing")
    found, seconds = timed(lambda: error_localise(values, EDITS), repeat=1)
    line("exact Fellegi–Holt (subsets by weight + LP)", seconds)
    return found.change


# --- Banff -----------------------------------------------------------------------------------

BANFF_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
import banff
import pandas as pd
imported = time.perf_counter() - start
folder = sys.argv[1]
data = pd.read_csv(f"{folder}/donor.csv")
status = pd.read_csv(f"{folder}/status.csv")
start = time.perf_counter()
res = banff.donorimp(indata=data, instatus=status, unit_id="ident", by="cls",
    edits="costs - sales <= 0; invest - sales <= 0;", must_match="emp turnover",
    min_donors=1, percent_donors=1, n=3, seed=1, capture=True)
donorimp = time.perf_counter() - start
res.outdonormap.to_pandas().to_csv(f"{folder}/donormap.csv", index=False)
values = pd.read_csv(f"{folder}/errorloc.csv")
start = time.perf_counter()
loc = banff.errorloc(indata=values, unit_id="ident", edits=sys.argv[2], seed=1, capture=True)
errorloc = time.perf_counter() - start
loc.outstatus.to_pandas().to_csv(f"{folder}/outstatus.csv", index=False)
print("TIMES", json.dumps({"import": imported, "donorimp": donorimp, "errorloc": errorloc}))
"""


def run_banff(
    python: str,
    firms: Firms,
    recipient: npt.NDArray[np.bool_],
    ours: npt.NDArray[np.int64],
    values: FloatArray,
    change: npt.NDArray[np.bool_],
) -> None:
    import pandas as pd  # the project's pandas, only to write and read the files

    with tempfile.TemporaryDirectory() as folder:
        table = pd.DataFrame(
            {"ident": firms.ident, "cls": firms.cls, "emp": firms.employees}
            | {"turnover": firms.turnover}
            | {name: firms.items[:, j] for j, name in enumerate(ITEMS)}
        )
        table.to_csv(f"{folder}/donor.csv", index=False)
        flagged = np.repeat(firms.ident[recipient], len(ITEMS))
        pd.DataFrame(
            {"ident": flagged, "fieldid": np.tile(ITEMS, recipient.sum()), "status": "FTI"}
        ).to_csv(f"{folder}/status.csv", index=False)
        names = ["sales", "costs", "profit", "emp"]
        pd.DataFrame(
            {"ident": firms.ident} | {k: values[:, j] for j, k in enumerate(names)}
        ).to_csv(f"{folder}/errorloc.csv", index=False)
        script = Path(folder) / "run_banff.py"
        script.write_text(BANFF_SCRIPT)
        proc = subprocess.run(
            [python, str(script), folder, BANFF_EDITS], capture_output=True, text=True, check=True
        )
        times = json.loads(proc.stdout.split("TIMES", 1)[1])
        donor_map = pd.read_csv(f"{folder}/donormap.csv")
        outstatus = pd.read_csv(f"{folder}/outstatus.csv")
    print(f"Banff 3.1.3 in {python}")
    line("import banff", times["import"])
    line(f"DONORIMP, {recipient.sum():,} recipients", times["donorimp"])
    line(f"ERRORLOC, {values.shape[0]:,} records", times["errorloc"])
    compare_donors(firms, recipient, ours, donor_map)
    compare_errorloc(firms, values, change, outstatus, names)


def compare_donors(
    firms: Firms, recipient: npt.NDArray[np.bool_], ours: npt.NDArray[np.int64], donor_map: object
) -> None:
    import pandas as pd

    assert isinstance(donor_map, pd.DataFrame)
    position = {ident: i for i, ident in enumerate(firms.ident)}
    theirs = np.full(firms.ident.shape[0], -1)
    for rec, don in zip(donor_map["RECIPIENT"], donor_map["DONOR"], strict=True):
        theirs[position[rec]] = position[don]
    both = recipient & (theirs >= 0)
    same = both & (theirs == ours)
    # A different donor at the same distance is a tie that each tool broke its own way.
    match = np.column_stack([firms.employees, firms.turnover])
    near = _distance(match, firms.cls, recipient, ours)
    tie = both & ~same & np.isclose(near, _distance(match, firms.cls, recipient, theirs))
    print(
        f"  donors: Banff imputed {both.sum():,} of {recipient.sum():,}; same donor as ours "
        f"{same.sum():,}; a different donor at the same distance {tie.sum():,}; "
        f"otherwise {(both & ~same & ~tie).sum():,}"
    )


def _distance(
    match: FloatArray,
    cls: npt.NDArray[np.int64],
    recipient: npt.NDArray[np.bool_],
    donor: npt.NDArray[np.int64],
) -> FloatArray:
    """Our rank distance between each recipient and the given donor (NaN where none)."""
    u = np.zeros_like(match)
    for code in np.unique(cls):
        rows = np.flatnonzero(cls == code)
        u[rows] = rankdata(match[rows], axis=0) / rows.size
    served = recipient & (donor >= 0)
    out = np.full(donor.shape[0], np.nan)
    out[served] = np.abs(u[served] - u[donor[served]]).max(axis=1)
    return out


def compare_errorloc(
    firms: Firms,
    values: FloatArray,
    change: npt.NDArray[np.bool_],
    outstatus: object,
    names: list[str],
) -> None:
    import pandas as pd

    assert isinstance(outstatus, pd.DataFrame)
    position = {ident: i for i, ident in enumerate(firms.ident)}
    theirs = np.zeros_like(change)
    for ident, field in zip(outstatus["ident"], outstatus["FIELDID"], strict=True):
        theirs[position[ident], names.index(str(field).lower())] = True
    failing = change.any(axis=1) | theirs.any(axis=1)
    same = failing & (change == theirs).all(axis=1)
    same_count = failing & (change.sum(axis=1) == theirs.sum(axis=1))
    print(
        f"  error localisation: {failing.sum():,} records localised; same fields as ours "
        f"{same.sum():,}; same number of fields {same_count.sum():,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=5000)
    parser.add_argument("--banff", metavar="PYTHON", help="a Python with banff installed")
    args = parser.parse_args()
    firms, recipient = with_missing(make_firms(args.responses))
    ours = bench_imputation(firms, recipient)
    bench_editing(firms)
    frame = make_firms(FRAME)
    bench_frame(frame)
    values = errorloc_values(make_firms(args.responses))
    change = bench_errorloc(values)
    if args.banff:
        run_banff(args.banff, firms, recipient, ours, values, change)


if __name__ == "__main__":
    main()
