"""AAPOR outcome rates and disposition codes (methodology sec. C; H14 and the synthetic case)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from analytics.engine.aapor import (
    CATEGORIES,
    DISPOSITION_CODES,
    RATE_NAMES,
    category_of,
    outcome_rates,
    parse_code,
    rates_by_group,
    tally,
)

FIXTURE = Path(__file__).parent / "fixtures" / "smf_synthetic_sample.csv"

# Sec. H, synthetic case: smf_expected_output_survey4.1.1.txt (R 4.2.2, survey 4.1.1).
SYNTHETIC_RATES = {
    "e": 0.9166666667,
    "RR1": 0.6245847176,
    "RR2": 0.6943521595,
    "RR3": 0.6291132181,
    "RR4": 0.6993865031,
    "RR5": 0.6836363636,
    "RR6": 0.7600000000,
    "COOP1": 0.7430830040,
    "COOP2": 0.8260869565,
    "COOP3": 0.7704918033,
    "COOP4": 0.8565573770,
    "REF1": 0.1162790698,
    "REF2": 0.1171221417,
    "REF3": 0.1272727273,
    "CON1": 0.8405315615,
    "CON2": 0.8466257669,
    "CON3": 0.9200000000,
}


def read_fixture() -> tuple[list[str], np.ndarray, list[str]]:
    """Dispositions (UO counted as U), base weights d = N_h/n_h and strata."""
    with FIXTURE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    dispositions = ["U" if row["disposition"] == "UO" else row["disposition"] for row in rows]
    base = np.array([float(row["N_h"]) / float(row["n_h"]) for row in rows])
    return dispositions, base, [row["stratum"] for row in rows]


# --- H14 -------------------------------------------------------------------------------------


def test_rates_match_the_outcomerate_readme_example() -> None:
    counts = {"I": 4, "P": 2, "R": 1, "NC": 1, "O": 1, "UH": 1, "UO": 1, "NE": 1}

    rates = outcome_rates(counts)

    expected = {
        "e": 0.9,
        **dict(
            zip(
                ["RR1", "RR2", "RR3", "RR4", "RR5", "RR6"],
                [0.364, 0.545, 0.370, 0.556, 0.444, 0.667],
                strict=True,
            )
        ),
        **dict(
            zip(["COOP1", "COOP2", "COOP3", "COOP4"], [0.500, 0.750, 0.571, 0.857], strict=True)
        ),
        **dict(zip(["REF1", "REF2", "REF3"], [0.091, 0.093, 0.111], strict=True)),
        **dict(zip(["CON1", "CON2", "CON3"], [0.727, 0.741, 0.889], strict=True)),
    }
    assert list(rates) == list(RATE_NAMES)
    for name, value in expected.items():
        assert rates[name] == pytest.approx(value, abs=0.0005), name


# --- synthetic case ------------------------------------------------------------------------


def test_synthetic_sample_has_the_reference_disposition_counts() -> None:
    dispositions, _, _ = read_fixture()

    counts = tally(dispositions)

    assert counts == {"I": 188, "P": 21, "R": 35, "NC": 22, "O": 9, "U": 26, "NE": 25}


def test_synthetic_sample_unweighted_rates_match_r() -> None:
    dispositions, _, _ = read_fixture()

    rates = outcome_rates(tally(dispositions))

    for name, value in SYNTHETIC_RATES.items():
        assert rates[name] == pytest.approx(value, abs=1e-9), name


def test_synthetic_sample_base_weighted_rates_match_r() -> None:
    dispositions, base, _ = read_fixture()

    rates = outcome_rates(tally(dispositions, base))

    assert rates["e"] == pytest.approx(0.9194746984, abs=1e-9)
    assert rates["RR3"] == pytest.approx(0.6089869071, abs=1e-9)


def test_grouped_rates_estimate_e_within_each_group() -> None:
    dispositions, base, strata = read_fixture()

    grouped = rates_by_group(dispositions, weights=base, groups=strata)

    # The total row uses all cases, as the ungrouped call does.
    overall = outcome_rates(tally(dispositions, base))
    assert grouped.total == pytest.approx(overall, abs=1e-12)
    assert grouped.total["RR3"] == pytest.approx(0.6089869071, abs=1e-9)
    # Each stratum row uses only that stratum's cases, e included.
    assert set(grouped.groups) == set(strata)
    for stratum, rates in grouped.groups.items():
        mine = [i for i, s in enumerate(strata) if s == stratum]
        alone = outcome_rates(tally([dispositions[i] for i in mine], base[mine]))
        assert rates == pytest.approx(alone, abs=1e-12, nan_ok=True), stratum
        assert grouped.group_counts[stratum] == pytest.approx(
            tally([dispositions[i] for i in mine], base[mine])
        )


def test_unweighted_grouped_counts_are_case_counts() -> None:
    grouped = rates_by_group(["I", "P", "NE", "UH", "I"], groups=["x", "x", "y", "y", "x"])

    assert grouped.group_counts["x"] == {**dict.fromkeys(CATEGORIES, 0.0), "I": 2.0, "P": 1.0}
    assert grouped.groups["y"]["e"] == 0.0
    assert grouped.total["e"] == pytest.approx(3 / 4)


# --- zero denominators and bad input -------------------------------------------------------


def test_a_rate_with_a_zero_denominator_is_nan() -> None:
    rates = outcome_rates({"U": 3})

    assert math.isnan(rates["e"])
    assert math.isnan(rates["RR3"]) and math.isnan(rates["RR5"]) and math.isnan(rates["COOP1"])
    assert rates["RR1"] == 0.0


def test_without_ineligibles_e_is_one() -> None:
    rates = outcome_rates({"I": 3, "U": 2})

    assert rates["e"] == 1.0
    assert rates["RR3"] == rates["RR1"] == pytest.approx(3 / 5)


def test_an_explicit_e_overrides_the_proportional_estimate() -> None:
    rates = outcome_rates({"I": 4, "R": 4, "U": 4, "NE": 4}, e=0.25)

    assert rates["e"] == 0.25
    assert rates["RR3"] == pytest.approx(4 / 9)


@pytest.mark.parametrize("bad", [{"X": 1}, {"I": -1}, {"I": float("nan")}])
def test_it_refuses_bad_counts(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        outcome_rates(bad)


def test_it_refuses_unknown_categories_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="unknown disposition category"):
        tally(["I", "Q"])
    with pytest.raises(ValueError, match="weights"):
        tally(["I", "P"], [1.0, -1.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        outcome_rates({"I": 1}, e=1.5)


# --- disposition codes ---------------------------------------------------------------------

LEADING = {"1.1": "I", "1.2": "P", "2.1": "R", "2.2": "NC", "2.3": "O", "3.": "U", "4.": "NE"}


@pytest.mark.parametrize("code", list(DISPOSITION_CODES))
def test_every_code_parses_to_the_category_of_its_aapor_branch(code: str) -> None:
    parsed = parse_code(code)

    branch = next(prefix for prefix in LEADING if code.startswith(prefix))
    assert parsed.code == code
    assert parsed.category == LEADING[branch] == category_of(code)
    assert parsed.label and isinstance(parsed.label, str)


def test_the_platform_ineligibility_reasons_are_coded() -> None:
    labels = {c.label for c in DISPOSITION_CODES.values() if c.category == "NE"}

    for reason in [
        "Closed or dormant",
        "No factory",
        "No longer manufacturing",
        "Not an SME (large enterprise)",
        "Duplicate listing",
        "Merged into another firm",
    ]:
        assert reason in labels


@pytest.mark.parametrize("code", ["5.1", "2.13", "1.10", "", "I", "2.4", "3.5", "4.3", "4.2x"])
def test_unknown_codes_are_refused(code: str) -> None:
    with pytest.raises(ValueError, match="unknown AAPOR disposition code"):
        parse_code(code)


@pytest.mark.parametrize(("short", "full"), [("2.1", "2.10"), ("3.9", "3.90"), ("4.2", "4.20")])
def test_short_two_digit_codes_mean_their_zero_subcode(short: str, full: str) -> None:
    assert parse_code(short).code == full


def test_numeric_codes_are_refused_because_2_10_equals_2_1() -> None:
    with pytest.raises(ValueError, match="strings"):
        parse_code(2.10)  # type: ignore[arg-type]
