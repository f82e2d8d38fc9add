"""Released microdata on demo-like data: the demo built by its own command (a synthetic frame
of 20,000 firms, a sample of 2,000, four simulated waves), then scientific-use and
public-use files written as users get them, and read back as an intruder with the frame
would read them."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyreadstat
import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from analytics import exports
from analytics.engine import disclosure
from analytics.exports.release import estimate_from
from analytics.models import Estimate, EstimateRun
from respondents.classifications import KSIC_DIVISIONS, REGION_AREAS
from respondents.models import Case, FrameUnit
from surveys.models import Survey

pytestmark = pytest.mark.django_db
CLASSIFICATIONS = ("region", "region_area", "industry_group", "size_class")


@pytest.fixture(scope="module")
def demo(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Survey]:
    """Built once for the module inside a transaction rolled back at the end (as
    tests/security/conftest.py does), in its own VAR_DIR: the demo writes its frame there."""
    folder = override_settings(VAR_DIR=tmp_path_factory.mktemp("demo"))
    folder.enable()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            call_command("demo", rows=20_000, sample=2_000, stdout=io.StringIO())
            built = Survey.objects.get(slug="smart_manufacturing")
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            folder.disable()
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
    folder.disable()


def release(survey: Survey, level: str, **kwargs: Any) -> tuple[list[dict[str, str]], dict]:
    out, report = io.BytesIO(), dict[str, Any]()
    options = exports.make_options(survey, "microdata", "csv", level=level, **kwargs)
    exports.export(options, out, disclosure=report)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    return rows, report


@pytest.fixture(scope="module")
def scientific(demo: Survey, django_db_blocker: Any) -> tuple[list[dict[str, str]], dict]:
    with django_db_blocker.unblock():
        return release(demo, "scientific")


@pytest.fixture(scope="module")
def public(demo: Survey, django_db_blocker: Any) -> tuple[list[dict[str, str]], dict]:
    with django_db_blocker.unblock():
        return release(demo, "public")


def respondents(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["employees"] != ""]


# --- the report --------------------------------------------------------------------------------


def test_the_unprotected_file_would_let_most_respondents_be_singled_out(
    scientific: tuple[list[dict[str, str]], dict],
) -> None:
    rows, report = scientific
    answered = len(respondents(rows))

    before = report["before"]

    assert report["key_variables"]["numeric"] == ["employees", "sales_krw_mn"]
    assert {"stratum", "size_class", "region"} <= set(report["key_variables"]["categorical"])
    assert before["sample_uniques"] >= 0.9 * answered
    assert before["max_individual_risk"] == 1.0
    assert before["global_risk_percent"] > 1.0


@pytest.mark.parametrize(("level", "k", "risk"), [("scientific", 3, 0.2), ("public", 5, 0.1)])
def test_after_protection_the_targets_hold(
    level: str,
    k: int,
    risk: float,
    scientific: tuple[list[dict[str, str]], dict],
    public: tuple[list[dict[str, str]], dict],
) -> None:
    # (both module fixtures asked for by name: one built inside a test's transaction would
    # be rolled back with it)
    _rows, report = {"scientific": scientific, "public": public}[level]

    after = report["after"]

    assert report["targets"] == {"k": k, "max_individual_risk": risk}
    assert report["targets_met"] is True
    assert after["k_anonymity_violations"] == 0 and after["sample_uniques"] == 0
    assert after["max_individual_risk"] <= risk
    assert after["global_risk_percent"] < report["before"]["global_risk_percent"] / 5
    assert [s["step"] for s in report["steps"]][-1] == "unit_id"


def test_the_written_file_is_k_anonymous_on_its_key_variables(
    scientific: tuple[list[dict[str, str]], dict],
) -> None:
    # given: the key as the file shows it; blank means suppressed (or not answered)
    rows, report = scientific
    names = report["key_variables"]["categorical"]
    codes = np.column_stack(
        [
            disclosure.encode([r[n] for r in rows], np.array([r[n] == "" for r in rows]))
            for n in names
        ]
    )
    numbers = np.column_stack(
        [
            np.array([float(r[n]) if r[n] else np.nan for r in rows])
            for n in report["key_variables"]["numeric"]
        ]
    )
    keys = np.column_stack([codes, disclosure.numeric_codes(numbers)])
    weights = np.array([float(r["base_weight"]) if r["base_weight"] else 1.0 for r in rows])

    # when
    measured = disclosure.measure(keys, weights, k=3)

    # then
    assert measured.violations == 0


def test_no_scientific_record_is_unique_in_the_frame(
    demo: Survey, scientific: tuple[list[dict[str, str]], dict], django_db_blocker: Any
) -> None:
    # given: the frame, as an intruder holding the business register has it
    rows, report = scientific
    with django_db_blocker.unblock():
        frame = list(FrameUnit.objects.filter(survey=demo).values_list(*FRAME_FIELDS))
    cells = Counter(_cell(unit) for unit in frame)

    # when: each released firm matched on the classifications it shows
    matching = [_count(cells, tuple(r[n] for n in CLASSIFICATIONS)) for r in respondents(rows)]

    # then
    assert report["frame_check"]["unique_in_frame"] == 0
    assert report["frame_check"]["frame_units"] == 20_000
    assert min(matching) >= 2


def test_matching_the_frame_on_employees_finds_no_respondent(
    demo: Survey, django_db_blocker: Any
) -> None:
    # given: a panel file (its unit IDs tell which firm each row is, for checking only)
    with django_db_blocker.unblock():
        rows, _report = release(demo, "scientific", panel=True)
        frame = list(FrameUnit.objects.filter(survey=demo).values_list(*FRAME_FIELDS, "pk"))
        cases = dict(Case.objects.filter(survey=demo).values_list("frame_unit_id", "pk"))
    exact: dict[tuple[str, ...], list[int]] = {}
    for *unit, pk in frame:
        exact.setdefault((*_cell(unit), str(unit[3])), []).append(pk)
    own = {exports.unit_id(case): unit for unit, case in cases.items()}

    # when: the probe's attack: classifications and employees, exactly ("593 matched
    # exactly one firm of the sample list on (stratum, employees) alone")
    found = []
    for row in respondents(rows):
        key = (*(row[n] for n in CLASSIFICATIONS), _as_int(row["employees"]))
        candidates = [
            pk
            for cell, units in exact.items()
            if all(v in ("", c) for v, c in zip(key, cell, strict=True))
            for pk in units
        ]
        if len(candidates) == 1:
            found.append(candidates[0] == own[row["unit_id"]])

    # then: a unique match, if any, is never the firm itself
    assert not any(found)


FRAME_FIELDS = ("size_class", "region", "ksic", "employees")


def _cell(unit: tuple[Any, ...]) -> tuple[str, ...]:
    size, region, ksic = unit[0], unit[1], unit[2]
    group = KSIC_DIVISIONS.get(ksic[:2], "other")
    return (region, REGION_AREAS.get(region, "other"), group, size)


def _count(counts: Counter[tuple[str, ...]], key: tuple[str, ...]) -> int:
    """Frame units agreeing with a key where a blank matches anything."""
    return sum(
        n
        for cell, n in counts.items()
        if all(v == "" or v == c for v, c in zip(key, cell, strict=True))
    )


def _as_int(text: str) -> str:
    value = float(text)
    return f"{int(value)}" if value.is_integer() else text


def test_estimates_from_the_file_are_within_the_stated_bound(
    demo: Survey, scientific: tuple[list[dict[str, str]], dict], django_db_blocker: Any
) -> None:
    # given
    rows, report = scientific
    with django_db_blocker.unblock():
        run = EstimateRun.objects.published().filter(survey=demo).order_by("-number").first()
        published = list(
            Estimate.objects.filter(run=run, suppressed=False, domain="all")
            .exclude(estimate=None)
            .values_list("item", "option", "statistic", "estimate")
        )
    weight = np.array([float(r["final_weight"]) for r in rows])
    stated = report["estimates"]["max_abs_difference"]["all"]

    # when: each published whole-population estimate computed again from the CSV
    differences: dict[str, float] = {}
    for item, option, statistic, estimate in published:
        y = _column(rows, item, option)
        if y is None:
            continue
        computed = estimate_from(y, weight, np.ones(len(rows), bool), statistic)
        assert computed is not None and estimate is not None
        gap = abs(computed - estimate)
        differences[statistic] = max(differences.get(statistic, 0.0), gap)
        assert gap <= stated[statistic] + 1e-6 * max(1.0, abs(estimate)), (item, option)

    # then: proportions exact, and the means and totals of the microaggregated variables too
    assert report["estimates"]["compared"] > 100
    assert differences["proportion"] < 1e-9
    assert set(differences) == {"proportion", "mean", "total"}


def _column(rows: list[dict[str, str]], item: str, option: str) -> np.ndarray | None:
    """An item as the CSV gives it: an option's 0/1 column, a choice, or a number."""
    header = rows[0]
    if f"{item}/{option}" in header:
        return np.array([float(r[f"{item}/{option}"]) if r[f"{item}/{option}"] else np.nan
                         for r in rows])  # fmt: skip
    if item not in header:
        return None
    if option:
        return np.array([np.nan if r[item] == "" else float(r[item] == option) for r in rows])
    return np.array([float(r[item]) if r[item] else np.nan for r in rows])


# --- the file --------------------------------------------------------------------------------


def test_released_files_leave_out_identifiers_and_free_text(
    scientific: tuple[list[dict[str, str]], dict], public: tuple[list[dict[str, str]], dict]
) -> None:
    for rows, _report in (scientific, public):
        header = set(rows[0])
        assert "business_id" not in header
        assert not {"sf_tech_other", "main_area_other", "contact_name"} & header
    assert "region" in scientific[0][0] and "region" not in public[0][0]
    assert "region_area" in public[0][0]


def test_register_values_are_group_means_shared_by_at_least_k_firms(
    scientific: tuple[list[dict[str, str]], dict],
) -> None:
    rows, _report = scientific

    pairs = Counter((r["employees"], r["sales_krw_mn"]) for r in respondents(rows))

    assert min(pairs.values()) >= 3


def test_two_releases_cannot_be_joined_but_two_panel_files_can(
    demo: Survey, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock():
        first, _ = release(demo, "public")
        second, _ = release(demo, "public")
        panel, _ = release(demo, "public", panel=True)
        again, _ = release(demo, "public", panel=True)

    assert not {r["unit_id"] for r in first} & {r["unit_id"] for r in second}
    assert [r["unit_id"] for r in panel] == [r["unit_id"] for r in again]


def test_a_blanked_stratum_blanks_its_population_sample_size_and_base_weight(
    scientific: tuple[list[dict[str, str]], dict],
) -> None:
    rows, report = scientific

    blanked = [r for r in rows if r["stratum"] == ""]

    assert blanked, "the demo's smallest strata need suppression"
    assert all(r["stratum_population"] == r["base_weight"] == "" for r in blanked)
    assert all(r["final_weight"] != "" for r in blanked)
    step = next(s for s in report["steps"] if s["variables"] == ["stratum"])
    assert step["records"] == len(blanked)


def test_the_command_writes_the_report_next_to_the_file(
    demo: Survey, tmp_path: Path, django_db_blocker: Any
) -> None:
    out = tmp_path / "public.sav"

    with django_db_blocker.unblock():
        printed = io.StringIO()
        call_command(
            "export", demo.slug, "--what", "microdata", "--format", "sav", "--level", "public",
            "--out", str(out), stdout=printed,
        )  # fmt: skip

    report = json.loads((tmp_path / "public.sav.disclosure.json").read_text("utf-8"))
    assert report["level"] == "public" and report["targets_met"] is True
    assert "Disclosure report:" in printed.getvalue()
    assert out.stat().st_size > 0


def test_the_codebook_records_each_variable_s_treatment(
    demo: Survey, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock():
        out = io.BytesIO()
        exports.export(exports.make_options(demo, "codebook", "json", language="en"), out)
    entries = {v["variable"]: v["release"] for v in json.loads(out.getvalue())["variables"]}

    assert entries["employees"]["scientific"].startswith("microaggregated")
    assert entries["region"]["public"].startswith("left out")
    assert entries["sf_tech_other"]["scientific"].startswith("left out")
    assert entries["sf_adopted"]["public"] == "as collected"


def test_blanked_design_values_are_declared_missing_in_spss(
    demo: Survey, tmp_path: Path, django_db_blocker: Any
) -> None:
    # given
    path = tmp_path / "scientific.sav"
    with django_db_blocker.unblock(), path.open("wb") as out:
        exports.export(exports.make_options(demo, "microdata", "sav", level="scientific"), out)

    # when
    frame, meta = pyreadstat.read_sav(str(path), user_missing=True)

    # then: a blanked stratum's N_h and base weight carry the declared "suppressed" code
    blanked = frame[frame["stratum"] == ""]
    assert len(blanked) > 0
    for name in ("stratum_population", "stratum_sample", "base_weight"):
        declared: Any = meta.missing_ranges[name][0]
        assert (blanked[name] >= declared["lo"]).all() and (blanked[name] <= declared["hi"]).all()
        assert meta.variable_value_labels[name][declared["lo"]] == "공개 보호를 위해 비공개"
