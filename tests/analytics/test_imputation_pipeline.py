"""The recompute on edited data: corrections replace the firm's answers in the estimates,
rejected and missing values are imputed by the specification's methods, every imputed
value is kept with its method and donor, and each estimate says its imputed share."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyreadstat
import pytest

from analytics import pipeline
from analytics.exports import unit_id
from analytics.models import Estimate, EstimateRun, ImputedValue
from analytics.spec import WeightingSpec as Spec
from surveys.models import Response, Survey, ValueEdit
from tests.analytics.test_exports import by_unit, csv_rows, export
from tests.analytics.test_recompute_synthetic import R_REFERENCE_SPEC, load_synthetic_case

pytestmark = pytest.mark.django_db


def investors(survey: Survey) -> list[Response]:
    found = Response.objects.filter(case__survey=survey, answers__invest_own="yes")
    return list(found.select_related("case__frame_unit").order_by("case_id"))


def reject(response: Response, item: str) -> None:
    response.edit(item, None, kind=ValueEdit.Kind.REJECTED, reason="implausible")


def run_with(survey: Survey, *lines: str) -> EstimateRun:
    spec = dataclasses.replace(R_REFERENCE_SPEC, imputation=lines)
    run = pipeline.recompute(survey, trigger="test", spec=spec, force=True)
    assert run is not None
    return run


def cell(run: EstimateRun, item: str, statistic: str) -> Estimate:
    return Estimate.objects.get(
        run=run, item=item, option="", statistic=statistic, domain="all", domain_value="all"
    )


def test_a_correction_replaces_the_answer_in_the_estimates(survey: Survey) -> None:
    load_synthetic_case(survey)
    before = cell(run_with(survey), "invest_amount", "total").estimate
    first = investors(survey)[0]
    old = first.answers["invest_amount"]
    first.edit("invest_amount", old + 1000.0, kind=ValueEdit.Kind.CORRECTED, reason="typo")
    after = cell(run_with(survey), "invest_amount", "total").estimate
    assert before is not None and after is not None
    assert after > before
    first.refresh_from_db()
    assert first.answers["invest_amount"] == old  # the firm's answer is kept


def test_rejected_values_take_a_random_donors_value_with_its_trace(survey: Survey) -> None:
    load_synthetic_case(survey)
    rejected = investors(survey)[:3]
    for response in rejected:
        reject(response, "invest_amount")
    run = run_with(survey, "invest_amount random")
    imputed = list(ImputedValue.objects.filter(run=run).select_related("donor"))
    assert {i.response_id for i in imputed} == {r.pk for r in rejected}
    for value in imputed:
        assert value.method == ImputedValue.Method.RANDOM
        assert value.reason == "rejected"
        assert value.donor is not None and value.donor.pk not in {r.pk for r in rejected}
        assert value.value == value.donor.answers["invest_amount"]
        assert value.imputation_class  # size class × industry group, or a coarser one
    mean = cell(run, "invest_amount", "mean")
    total = cell(run, "invest_amount", "total")
    assert mean.imputed_share is not None and total.imputed_share is not None
    assert 0 < mean.imputed_share < 0.2
    assert 0 < total.imputed_share < 0.5
    adopted = Estimate.objects.get(
        run=run, item="sf_adopted", option="yes", domain="all", domain_value="all"
    )
    assert adopted.imputed_share == 0.0


def test_the_imputed_share_is_the_weighted_share_of_imputed_units(survey: Survey) -> None:
    load_synthetic_case(survey)
    for response in investors(survey)[:4]:
        reject(response, "invest_amount")
    run = run_with(survey, "invest_amount random")
    weights = pipeline.run_weights(run)  # case id -> (base, final)
    imputed_cases = set(
        ImputedValue.objects.filter(run=run).values_list("response__case_id", flat=True)
    )
    with_value = [r.case_id for r in investors(survey)]
    final = np.array([weights[c][1] for c in with_value])
    flag = np.array([c in imputed_cases for c in with_value])
    expected = final[flag].sum() / final.sum()
    assert cell(run, "invest_amount", "mean").imputed_share == pytest.approx(expected, rel=1e-12)


def test_ratio_imputation_uses_the_register(survey: Survey) -> None:
    load_synthetic_case(survey)
    target = investors(survey)[0]
    reject(target, "invest_amount")
    run = run_with(survey, "invest_amount ratio frame.employees")
    value = ImputedValue.objects.get(run=run)
    assert value.method == ImputedValue.Method.RATIO
    assert value.donor is None
    # Every firm of the fixture has 10 employees (and one industry): the ratio gives the
    # mean of the donors of the target's size class.
    size = target.case.frame_unit.size_class
    donors = [
        r.answers["invest_amount"]
        for r in investors(survey)[1:]
        if r.case.frame_unit.size_class == size
    ]
    assert value.imputation_class.startswith(size)
    assert value.value == pytest.approx(round(float(np.mean(donors)), 6), rel=1e-12)


def test_a_derived_value_and_nothing_where_the_question_does_not_apply(survey: Survey) -> None:
    load_synthetic_case(survey)
    adopter = Response.objects.filter(case__survey=survey, answers__sf_adopted="yes").first()
    non_adopter = Response.objects.filter(case__survey=survey, answers__sf_adopted="no").first()
    assert adopter is not None and non_adopter is not None
    reject(adopter, "sf_level")
    run = run_with(survey, "sf_level derived 'basic'")
    values = list(ImputedValue.objects.filter(run=run))
    assert [(v.response_id, v.value, v.method) for v in values] == [
        (adopter.pk, "basic", ImputedValue.Method.DERIVED)
    ]


def test_imputation_is_reproducible(survey: Survey) -> None:
    load_synthetic_case(survey)
    for response in investors(survey)[:5]:
        reject(response, "invest_amount")
    spec = dataclasses.replace(R_REFERENCE_SPEC, imputation=("invest_amount random",))
    first = pipeline.recompute(survey, trigger="test", spec=spec, force=True)
    again = pipeline.recompute(survey, trigger="test", spec=spec)
    assert first is not None and again is not None
    assert again.pk == first.pk  # same data, same spec: the same version


def test_a_bad_imputation_line_is_refused() -> None:
    from analytics.spec import SpecError, parse_spec

    for line in ("invest_amount", "invest_amount magic", "x ratio", "x nearest", "x derived ${"):
        with pytest.raises(SpecError):
            parse_spec({"imputation": [line]})
    assert parse_spec({"imputation": ["invest_amount random"]}).imputation == (
        "invest_amount random",
    )
    assert Spec().editing_threshold == 0.001


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_microdata_carry_the_reported_edited_and_imputed_values(
    survey: Survey, fmt: str, tmp_path: Path
) -> None:
    load_synthetic_case(survey)
    corrected, rejected = investors(survey)[:2]
    old = corrected.answers["invest_amount"]
    corrected.edit("invest_amount", old * 2, kind=ValueEdit.Kind.CORRECTED, reason="unit")
    reject(rejected, "invest_amount")
    run = run_with(survey, "invest_amount random")
    imputed = ImputedValue.objects.get(run=run)
    rows = by_unit(
        csv_rows(export(survey, "microdata", "csv", run_number=run.number, identified=True))
    )
    first, second = rows[unit_id(corrected.case_id)], rows[unit_id(rejected.case_id)]
    assert float(first["invest_amount"]) == old * 2
    assert float(first["invest_amount_raw"]) == old
    assert first["invest_amount_status"] == "edited"
    assert float(second["invest_amount"]) == imputed.value
    assert float(second["invest_amount_raw"]) == rejected.answers["invest_amount"]
    assert second["invest_amount_status"] == "imputed"
    untouched = rows[unit_id(investors(survey)[2].case_id)]
    assert untouched["invest_amount_status"] == "reported"
    path = tmp_path / f"microdata.{fmt}"
    path.write_bytes(export(survey, "microdata", fmt, run_number=run.number, identified=True))
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    frame, meta = reader(str(path))
    labels = meta.variable_value_labels["invest_amount_status"]
    assert {labels[0], labels[1], labels[2]} == {
        "응답 그대로",
        "검토 후 수정 또는 기각",
        "대체(귀속)값",
    } or {labels[0], labels[1], labels[2]} == {
        "as reported",
        "edited (corrected or rejected)",
        "imputed",
    }
    by_id = frame.set_index("unit_id")
    assert by_id.loc[unit_id(rejected.case_id), "invest_amount_status"] == 2
    assert by_id.loc[unit_id(rejected.case_id), "invest_amount"] == pytest.approx(imputed.value)


def test_the_codebook_documents_the_rules_and_the_imputation(survey: Survey) -> None:
    load_synthetic_case(survey)
    run = run_with(survey, "invest_amount random", "sf_level derived 'basic'")
    document = json.loads(export(survey, "codebook", "json", run_number=run.number))
    editing = document["editing"]
    assert {r["name"] for r in editing["rules"]} >= {"employees_vs_register", "ai_needs_data"}
    assert editing["imputation"][0] == {
        "item": "invest_amount",
        "method": "random",
        "variables": [],
        "expression": "",
    }
    assert editing["imputation_classes"] == ["size_class", "industry_group"]
    rows = {
        r["variable"]: r
        for r in csv_rows(export(survey, "codebook", "csv", run_number=run.number, language="en"))
    }
    assert "investment_within_sales (soft)" in rows["invest_amount"]["editing"]
    assert "imputed: random" in rows["invest_amount"]["editing"]
    assert rows["invest_amount_status"]["editing"] == ""


def test_partials_may_weigh_as_nonrespondents(survey: Survey) -> None:
    load_synthetic_case(survey)
    spec = dataclasses.replace(R_REFERENCE_SPEC, partials_are_respondents=False)
    run = pipeline.recompute(survey, trigger="test", spec=spec, force=True)
    assert run is not None and run.status == "published"
    adopted = Estimate.objects.get(
        run=run, item="sf_adopted", option="yes", domain="all", domain_value="all"
    )
    # the 188 completes only, not the 21 partials
    assert adopted.n == 188
