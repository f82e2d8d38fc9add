"""Estimates of change between two rounds against R survey (methodology M4-M6).

Data and values: tests/analytics/fixtures/r-checks/change_reference.R (survey 4.1.1), which
generated change_data.csv and change_strata.csv and printed change_reference_output.txt: each
round from its own design, the covariance from the two rounds stacked as one design with a
firm as PSU. When Rscript is installed the script runs again on the CSVs (about a second).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from analytics.engine.change import Change, Round, change_in_mean, change_in_total
from analytics.engine.weighting import poststratify

FOLDER = Path(__file__).resolve().parent / "fixtures" / "r-checks"
RTOL = 1e-10

# label: statistic, item, domain (column, value), common population given, post-stratified
CHECKS = {
    "total_y": ("total", "y", None, True, False),
    "mean_y": ("mean", "y", None, True, False),
    "p_adopted": ("mean", "adopted", None, True, False),
    "mean_y_small": ("mean", "y", ("size", "small"), True, False),
    "p_adopted_large": ("mean", "adopted", ("size", "large"), True, False),
    "total_y_large": ("total", "y", ("size", "large"), True, False),
    "mean_y_default_c": ("mean", "y", None, False, False),
    "mean_y_poststratified": ("mean", "y", None, True, True),
    "total_y_poststratified": ("total", "y", None, True, True),
    "p_adopted_poststratified": ("mean", "adopted", None, True, True),
}
# The script's size-class totals of each round (E4: R postStratify).
SIZE_TOTALS = ({"small": 480.0, "large": 249.0}, {"small": 470.0, "large": 264.0})

Columns = dict[str, npt.NDArray[np.str_]]


def read(name: str) -> Columns:
    with (FOLDER / name).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def num(values: npt.NDArray[np.str_]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if v == "NA" else float(v) for v in values])


def parse(text: str) -> dict[str, dict[str, float]]:
    out = {}
    for line in text.splitlines():
        label, *pairs = line.split()
        if label in CHECKS:
            out[label] = {k: float(v) for k, v in (pair.split("=") for pair in pairs)}
    return out


def rounds(poststratified: bool = False) -> tuple[list[Round], list[Columns]]:
    data = read("change_data.csv")
    made, parts = [], []
    for r, totals in zip(("1", "2"), SIZE_TOTALS, strict=True):
        part = {key: values[data["round"] == r] for key, values in data.items()}
        weights, projection = num(part["w"]), None
        if poststratified:
            calibrated = poststratify(weights, part["size"], totals)
            weights, projection = calibrated.weights, calibrated.projection
        firm, strata, population = part["firm"].astype(int), part["stratum"], num(part["N_h"])
        made.append(Round(firm, weights, strata, population, calibration=projection))
        parts.append(part)
    return made, parts


def python_change(label: str) -> Change:
    statistic, item, domain, given, poststratified = CHECKS[label]
    (first, second), (part1, part2) = rounds(poststratified)
    strata = read("change_strata.csv")
    common = dict(zip(strata["stratum"], num(strata["common_population"]), strict=True))
    inside = [None, None] if domain is None else [p[domain[0]] == domain[1] for p in (part1, part2)]
    estimate = change_in_total if statistic == "total" else change_in_mean
    return estimate(
        first,
        second,
        num(part1[item]),
        num(part2[item]),
        inside[0],
        inside[1],
        common_population=common if given else None,
    )


def assert_matches(change: Change, expected: dict[str, float]) -> None:
    scale = change.first.se[0] * change.second.se[0]
    assert change.first.estimate[0] == pytest.approx(expected["est1"], rel=RTOL)
    assert change.second.estimate[0] == pytest.approx(expected["est2"], rel=RTOL)
    assert change.first.se[0] == pytest.approx(expected["se1"], rel=RTOL)
    assert change.second.se[0] == pytest.approx(expected["se2"], rel=RTOL)
    assert change.covariance[0] == pytest.approx(expected["cov"], abs=RTOL * scale)
    assert change.se[0] == pytest.approx(expected["se_diff"], rel=RTOL)


@pytest.mark.parametrize("label", list(CHECKS))
def test_change_matches_the_values_r_printed(label: str) -> None:
    expected = parse((FOLDER / "change_reference_output.txt").read_text())

    change = python_change(label)

    assert_matches(change, expected[label])


def test_r_prints_the_same_values_again() -> None:
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed (Debian: apt-get install r-base-core r-cran-survey)")
    done = subprocess.run(
        ["Rscript", "change_reference.R"],
        cwd=FOLDER,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    fresh = parse(done.stdout)

    assert fresh.keys() == CHECKS.keys()
    for label, values in fresh.items():
        assert_matches(python_change(label), values)


def test_the_fixture_has_what_the_method_must_handle() -> None:
    # The cases the covariance rules exist for are really in the data.
    (first, second), _ = rounds()
    both = np.intersect1d(first.firm, second.firm)
    stratum1 = dict(zip(first.firm.tolist(), first.strata, strict=True))
    stratum2 = dict(zip(second.firm.tolist(), second.strata, strict=True))
    moved = [f for f in both.tolist() if stratum1[f] != stratum2[f]]
    in_d = [f for f in both.tolist() if stratum2[f] == "D"]

    assert moved, "a firm that changed stratum"
    assert len(in_d) == 1, "a stratum with one firm in both rounds"
    assert np.setdiff1d(first.firm, second.firm).size and np.setdiff1d(second.firm, first.firm).size
    take_all = read("change_data.csv")
    assert (num(take_all["N_h"])[take_all["stratum"] == "C"] <= 15).all()
    assert python_change("mean_y").correlation[0] > 0.3
