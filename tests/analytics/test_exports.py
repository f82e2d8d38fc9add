"""Exports read back: estimates, microdata (CSV, XLSX, SPSS, Stata), codebook, fieldwork
status and contact log, on the synthetic smart-manufacturing case; the export command."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import openpyxl
import pyreadstat
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics import exports, pipeline
from analytics.models import Download, Estimate, EstimateRun
from respondents.models import Case, ContactAttempt, Message, Wave
from surveys.models import QuestionnaireVersion, Response, Survey
from surveys.xlsform import load_questionnaire
from tests import factories
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.xlsforms import drop_edit_rules

pytestmark = pytest.mark.django_db
INJECTIONS = ["=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)"]


@pytest.fixture
def run(survey: Survey) -> EstimateRun:
    load_synthetic_case(survey)
    result = pipeline.recompute(survey, trigger="test")
    assert result is not None
    return result


def export(survey: Survey, what: str, fmt: str, **kwargs: Any) -> bytes:
    """The export; released microdata as a panel file, so that rows keep the stable
    unit_id these tests look firms up by (test_release.py covers per-release keys)."""
    if what == "microdata" and not kwargs.get("identified"):
        kwargs.setdefault("panel", True)
    out = io.BytesIO()
    exports.export(exports.make_options(survey, what, fmt, **kwargs), out)
    return out.getvalue()


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "CSV starts with a UTF-8 byte-order mark"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def read_stat(data: bytes, fmt: str, tmp_path: Path) -> tuple[Any, Any]:
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(data)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    return reader(str(path), user_missing=True)


def by_unit(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["unit_id"]: row for row in rows}


def a_case(survey: Survey, disposition: str, **answers: Any) -> Case:
    cases = Case.objects.filter(survey=survey, disposition=disposition).order_by("pk")
    for case in cases:
        response = getattr(case, "response", None)
        found = response.answers if response else {}
        if all(found.get(k) == v for k, v in answers.items()):
            return case
    raise AssertionError(f"no {disposition} case with {answers}")


def answer(case: Case, **changes: Any) -> None:
    response = Response.objects.get(case=case)
    response.answers = {**response.answers, **changes}
    response.save(update_fields=["answers"])


def grant(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh object: no stale permission cache


# --- estimates ------------------------------------------------------------------------------


def test_the_estimates_csv_holds_every_estimate_with_the_exact_columns(run: EstimateRun) -> None:
    # when
    rows = csv_rows(export(run.survey, "estimates", "csv"))

    # then
    assert list(rows[0]) == list(exports.ESTIMATE_COLUMNS)
    assert len(rows) == Estimate.objects.filter(run=run).count()
    total = next(r for r in rows if r["item"] == "sf_adopted" and r["option"] == "yes")
    stored = Estimate.objects.get(run=run, item="sf_adopted", option="yes", domain="all")
    assert total["domain_value"] == "all" and total["statistic"] == "proportion"
    assert float(total["estimate"]) == pytest.approx(stored.estimate)
    assert 0 < float(total["estimate"]) < 1  # a fraction, not a percentage
    numeric = next(r for r in rows if r["item"] == "invest_amount")
    assert numeric["option"] == "" and numeric["statistic"] in ("mean", "total")


VALUE_COLUMNS = ("estimate", "se", "ci_low", "ci_high", "cv", "deff", "population")


def hidden_values(run: EstimateRun) -> set[float]:
    """Values of suppressed cells that no published cell shares and that are not whole
    numbers (counts, df): they must appear nowhere."""
    published = {
        round(v, 9)
        for row in Estimate.objects.filter(run=run, suppressed=False).values_list(*VALUE_COLUMNS)
        for v in row
        if v is not None
    }
    return {
        round(v, 9)
        for row in Estimate.objects.filter(run=run, suppressed=True).values_list(*VALUE_COLUMNS)
        for v in row
        if v is not None and v != round(v) and round(v, 9) not in published
    }


def test_suppressed_estimates_are_blank_in_the_csv(run: EstimateRun) -> None:
    # given: suppressed cells whose values were computed
    hidden = hidden_values(run)
    assert len(hidden) > 20

    # when
    rows = csv_rows(export(run.survey, "estimates", "csv"))

    # then: their rows keep the reasons and n, never a value
    suppressed = [r for r in rows if r["suppressed"] == "1"]
    assert len(suppressed) == Estimate.objects.filter(run=run, suppressed=True).count()
    for row in suppressed:
        assert all(row[c] == "" for c in (*VALUE_COLUMNS, "grade")), row
        assert row["flag"] and row["n"]
    shown = {round(float(r[c]), 9) for r in rows for c in VALUE_COLUMNS if r[c] not in ("",)}
    assert not shown & hidden


def test_no_sheet_of_the_workbook_carries_a_suppressed_value(run: EstimateRun) -> None:
    hidden = hidden_values(run)

    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "estimates", "xlsx", language="en"))
    )

    numbers = {
        round(float(value), 9)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    assert hidden and not numbers & hidden, sorted(numbers & hidden)[:10]


def test_the_estimates_workbook_has_a_cover_domain_sheets_a_legend_and_every_value(
    run: EstimateRun,
) -> None:
    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "estimates", "xlsx", language="en"))
    )

    # then: the sheets
    assert book.sheetnames[0] == "Cover"
    assert {"all", "size_class", "region", "region_area", "sf_adopted"} <= set(book.sheetnames)
    assert book.sheetnames[-2:] == ["Flags", "all estimates"]
    cover = {row[0]: row[1] for row in book["Cover"].iter_rows(min_row=3, values_only=True)}
    assert cover["Estimate version (run)"] == run.number
    assert cover["Respondents (complete and partial)"] == run.snapshot["respondents"]
    assert "RR3" in " ".join(str(k) for k in cover)
    # labels in the chosen language next to the names
    overall = list(book["all"].iter_rows(min_row=2, values_only=True))
    adopted = next(r for r in overall if r[0] == "sf_adopted" and r[2] == "yes")
    assert adopted[1] == "Has your company adopted (built) a smart factory?"
    assert adopted[3] == "Yes"
    # the legend explains the flags
    legend = {row[0] for row in book["Flags"].iter_rows(min_row=2, values_only=True)}
    assert {"OK", "NCHS_N_LT_30", "RSE_25_50"} <= legend
    # every estimate in the full sheet
    full = list(book["all estimates"].iter_rows(values_only=True))
    assert list(full[0]) == list(exports.ESTIMATE_COLUMNS)
    assert len(full) - 1 == Estimate.objects.filter(run=run).count()


def test_suppressed_cells_are_blank_in_the_publication_sheets(run: EstimateRun) -> None:
    # given
    hidden = Estimate.objects.filter(
        run=run, suppressed=True, estimate__isnull=False, domain="size_class"
    ).first()
    assert hidden is not None

    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "estimates", "xlsx", language="en"))
    )

    # then
    def same(row: tuple[Any, ...], item: int, option: int, value: int) -> bool:
        return (row[item], row[option] or "", row[value]) == (
            hidden.item,
            hidden.option,
            hidden.domain_value,
        )

    sheet = book["size_class"].iter_rows(min_row=2, values_only=True)
    published = next(r for r in sheet if same(r, 0, 2, 5) and r[4] == hidden.statistic)
    assert published[7:13] == (None,) * 6 and published[14] is None
    assert published[13] == hidden.n and published[15] == hidden.flag
    everything = book["all estimates"].iter_rows(min_row=2, values_only=True)
    full = next(r for r in everything if same(r, 0, 1, 4) and r[3] == "size_class")
    assert full[5] is None and full[15] in (True, 1)


def test_estimates_can_be_exported_with_english_labels(run: EstimateRun) -> None:
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "estimates", "xlsx", language="en"))
    )
    rows = list(book["all"].iter_rows(min_row=2, values_only=True))
    adopted = next(r for r in rows if r[0] == "sf_adopted" and r[2] == "yes")
    assert adopted[1] == "Has your company adopted (built) a smart factory?"
    assert adopted[3] == "Yes"


# --- microdata --------------------------------------------------------------------------------


def test_microdata_has_one_row_per_sampled_firm_with_weights_and_design(run: EstimateRun) -> None:
    # when
    rows = csv_rows(export(run.survey, "microdata", "csv"))

    # then
    assert len(rows) == Case.objects.in_sample().filter(survey=run.survey).count() == 326
    assert list(rows[0])[:10] == [
        "unit_id", "stratum", "stratum_population", "stratum_sample", "base_weight",
        "final_weight", "disposition", "wave", "mode", "stratum_code",
    ]  # fmt: skip
    assert {"size_class", "region", "industry_group", "region_area"} <= set(rows[0])
    weights = [float(r["final_weight"]) for r in rows]
    assert sum(weights) == pytest.approx(run.diagnostics["sum_weights"])
    refused = by_unit(rows)[exports.unit_id(a_case(run.survey, "2.111").pk)]
    assert float(refused["final_weight"]) == 0.0
    case = a_case(run.survey, "1.1")
    row = by_unit(rows)[exports.unit_id(case.pk)]
    stratum = case.stratum
    assert float(row["base_weight"]) == pytest.approx(stratum.population / stratum.sample_size)
    assert row["stratum_population"] == str(stratum.population)
    assert row["disposition"] == "1.1" and row["mode"] == "web"


def test_microdata_is_pseudonymised_by_default_with_a_unit_id_per_release(
    run: EstimateRun,
) -> None:
    # when
    first = csv_rows(export(run.survey, "microdata", "csv", panel=False))
    second = csv_rows(export(run.survey, "microdata", "csv", language="en", panel=False))
    panel = csv_rows(export(run.survey, "microdata", "csv", panel=True))
    again = csv_rows(export(run.survey, "microdata", "csv", language="en", panel=True))

    # then
    assert "business_id" not in first[0]
    assert not any(name.startswith("contact_") for name in first[0])
    assert not {r["unit_id"] for r in first} & {r["unit_id"] for r in second}
    assert [r["unit_id"] for r in panel] == [r["unit_id"] for r in again]
    assert len({r["unit_id"] for r in first}) == len(first)
    assert all(len(r["unit_id"]) == 16 and "-" not in r["unit_id"] for r in first)


def test_identified_microdata_adds_business_ids_and_personal_data(run: EstimateRun) -> None:
    # given
    case = a_case(run.survey, "1.1")
    answer(case, contact_name="김담당", contact_email="kim@example.com")

    # when
    rows = csv_rows(export(run.survey, "microdata", "csv", identified=True))

    # then
    row = by_unit(rows)[exports.unit_id(case.pk)]
    assert row["business_id"] == case.business_id
    assert row["contact_name"] == "김담당" and row["contact_email"] == "kim@example.com"


def test_answers_are_exported_as_choice_names_and_option_columns(run: EstimateRun) -> None:
    # given
    case = a_case(run.survey, "1.1", sf_adopted="yes")
    stored = Response.objects.get(case=case).answers

    # when
    row = by_unit(csv_rows(export(run.survey, "microdata", "csv")))[exports.unit_id(case.pk)]

    # then
    assert row["sf_adopted"] == "yes"
    assert row["sf_level"] == stored["sf_level"]
    for option in ("erp", "mes", "scm", "plm", "controller", "iot_sensor", "robot", "other"):
        assert row[f"sf_tech/{option}"] == str(int(option in stored["sf_tech"]))
    assert row["important_top2"] == str(stored["important_top2"])


def test_empty_cells_for_questions_not_asked_or_not_answered(run: EstimateRun) -> None:
    # given
    skipped = a_case(run.survey, "1.1", sf_adopted="no")
    silent = a_case(run.survey, "3.19")

    # when
    rows = by_unit(csv_rows(export(run.survey, "microdata", "csv")))

    # then
    assert rows[exports.unit_id(skipped.pk)]["sf_level"] == ""
    assert rows[exports.unit_id(skipped.pk)]["sf_tech/erp"] == ""
    assert rows[exports.unit_id(silent.pk)]["sf_adopted"] == ""


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_files_carry_labels_value_labels_and_missing_codes(
    run: EstimateRun, fmt: str, tmp_path: Path
) -> None:
    # given: four kinds of cases
    yes = a_case(run.survey, "1.1", sf_adopted="yes")
    no = a_case(run.survey, "1.1", sf_adopted="no")
    silent = a_case(run.survey, "3.19")
    refused = a_case(run.survey, "2.111")
    level = Response.objects.get(case=yes).answers["sf_level"]

    # when
    frame, meta = read_stat(export(run.survey, "microdata", fmt), fmt, tmp_path)

    # then: variable labels (Korean), value labels with the missing codes
    labels = meta.column_names_to_labels
    assert labels["sf_level"] == "귀사 스마트공장의 수준은 어느 단계에 해당합니까?"
    assert labels["sf_tech__erp"].endswith(": ERP(전사적 자원관리)")
    values = meta.variable_value_labels["sf_level"]
    not_asked, not_answered, refusal = ("a", "b", "c") if fmt == "dta" else (-1, -2, -3)
    suppressed = "d" if fmt == "dta" else -4
    assert values[1] == "기초" and values[4] == "고도화"
    assert values[not_asked] == "비해당(질문하지 않음)"
    assert values[not_answered] == "무응답" and values[refusal] == "응답 거부"
    assert values[suppressed] == "공개 보호를 위해 비공개"
    assert meta.variable_value_labels["sf_tech__erp"][1] == "선택"
    # the missing values are declared
    if fmt == "sav":
        assert meta.missing_ranges["sf_level"] == [{"lo": -4.0, "hi": -1.0}]
        assert meta.missing_ranges["invest_amount"] == [{"lo": -99999994.0, "hi": -99999991.0}]
    else:
        assert meta.missing_user_values["sf_level"][:3] == ["a", "b", "c"]
    # and the cells hold them
    rows = frame.set_index("unit_id")
    code = {"basic": 1, "intermediate1": 2, "intermediate2": 3, "advanced": 4}[level]
    assert rows.loc[exports.unit_id(yes.pk), "sf_level"] == code
    assert rows.loc[exports.unit_id(no.pk), "sf_level"] == not_asked
    assert rows.loc[exports.unit_id(silent.pk), "sf_level"] == not_answered
    assert rows.loc[exports.unit_id(refused.pk), "sf_level"] == refusal
    assert rows.loc[exports.unit_id(no.pk), "sf_adopted"] == 2
    # data_collect applied but was left blank; data_analyze is asked only after a "yes" to it
    assert rows.loc[exports.unit_id(yes.pk), "data_collect"] == not_answered
    assert rows.loc[exports.unit_id(yes.pk), "data_analyze"] == not_asked
    assert rows.loc[exports.unit_id(silent.pk), "stratum"] != ""
    assert len(frame) == 326


def test_text_variables_are_empty_strings_in_spss_and_stata(
    run: EstimateRun, tmp_path: Path
) -> None:
    # given
    case = a_case(run.survey, "1.1", sf_adopted="yes")
    answer(case, sf_tech=["erp", "other"], sf_tech_other="자체 MES")

    for fmt in ("sav", "dta"):
        # when
        frame, _meta = read_stat(
            export(run.survey, "microdata", fmt, identified=True), fmt, tmp_path
        )

        # then
        texts = frame.set_index("unit_id")["sf_tech_other"]
        assert texts[exports.unit_id(case.pk)] == "자체 MES"
        assert set(texts.drop(exports.unit_id(case.pk))) == {""}


def test_spss_labels_can_be_english(run: EstimateRun, tmp_path: Path) -> None:
    _frame, meta = read_stat(export(run.survey, "microdata", "sav", language="en"), "sav", tmp_path)
    assert meta.column_names_to_labels["sf_adopted"] == (
        "Has your company adopted (built) a smart factory?"
    )
    assert meta.variable_value_labels["sf_adopted"][1] == "Yes"
    assert meta.variable_value_labels["sf_adopted"][-1] == "not asked"


def test_microdata_workbook_matches_the_csv(run: EstimateRun) -> None:
    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "microdata", "xlsx", language="en"))
    )
    rows = csv_rows(export(run.survey, "microdata", "csv"))

    # then
    assert book.sheetnames == ["data", "variables", "disclosure"]
    sheet = list(book["data"].iter_rows(values_only=True))
    assert list(sheet[0]) == list(rows[0])
    assert len(sheet) - 1 == len(rows)
    first = dict(zip(sheet[0], sheet[1], strict=True))
    assert first["unit_id"] == rows[0]["unit_id"]
    assert isinstance(first["stratum_population"], int)
    assert isinstance(first["base_weight"], float)
    variables = {row[0]: row[1] for row in book["variables"].iter_rows(values_only=True)}
    assert variables["sf_adopted"] == "Has your company adopted (built) a smart factory?"


# --- questionnaire versions ---------------------------------------------------------------


def second_version(survey: Survey) -> QuestionnaireVersion:
    """The shipped form without mfg_ai, with a new question cloud_use and a new option."""
    book = openpyxl.load_workbook(factories.SHIPPED_FORM)
    sheet = book["survey"]
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 2).value == "mfg_ai")
    sheet.cell(r := row, 1).value = "select_one yesno"
    sheet.cell(r, 2).value = "cloud_use"
    sheet.cell(r, 3).value = "클라우드 기반 생산관리 시스템을 사용합니까?"
    sheet.cell(r, 4).value = "Does your company use a cloud production system?"
    drop_edit_rules(book, "mfg_ai")
    book["choices"].append(["sf_tech", "vision_ai", "비전 AI", "Vision AI"])
    book["settings"].cell(2, 2).value = "2024.2"
    data = io.BytesIO()
    book.save(data)
    return load_questionnaire(data.getvalue(), survey_slug=survey.slug)


def test_microdata_keeps_the_columns_of_every_questionnaire_version(
    run: EstimateRun, tmp_path: Path
) -> None:
    # given: a new version mid-fieldwork, and a firm that answered it
    survey = run.survey
    old = a_case(survey, "1.1", sf_adopted="yes")
    version = second_version(survey)
    new = a_case(survey, "1.1", sf_adopted="no")
    response = Response.objects.get(case=new)
    response.questionnaire = version
    response.answers = {k: v for k, v in response.answers.items() if k != "mfg_ai"}
    response.answers |= {"cloud_use": "yes"}
    response.save()
    answer(old, mfg_ai="planned")

    # when
    rows = by_unit(csv_rows(export(survey, "microdata", "csv")))
    frame, meta = read_stat(export(survey, "microdata", "sav"), "sav", tmp_path)

    # then: columns of both versions, the newest version's order first
    header = list(next(iter(rows.values())))
    assert {"mfg_ai", "cloud_use", "sf_tech/vision_ai"} <= set(header)
    assert header.index("cloud_use") < header.index("mfg_ai")
    assert rows[exports.unit_id(old.pk)]["mfg_ai"] == "planned"
    assert rows[exports.unit_id(old.pk)]["cloud_use"] == ""
    assert rows[exports.unit_id(new.pk)]["cloud_use"] == "yes"
    # SPSS: not asked where the firm's version lacked the question or the option
    cells = frame.set_index("unit_id")
    assert cells.loc[exports.unit_id(old.pk), "cloud_use"] == -1
    assert cells.loc[exports.unit_id(new.pk), "mfg_ai"] == -1
    assert cells.loc[exports.unit_id(old.pk), "sf_tech__vision_ai"] == -1
    assert cells.loc[exports.unit_id(old.pk), "mfg_ai"] == 2
    assert meta.column_names_to_labels["mfg_ai"].startswith("귀사는 제조 AI")
    # the codebook says where each variable appears
    book = {r["variable"]: r for r in csv_rows(export(survey, "codebook", "csv"))}
    assert book["mfg_ai"]["versions"] == "2024.1"
    assert book["cloud_use"]["versions"] == "2024.2"
    assert book["sf_adopted"]["versions"] == "2024.2, 2024.1"
    assert book["sf_tech/vision_ai"]["versions"] == "2024.2"


# --- formula injection ------------------------------------------------------------------------


def test_free_text_that_looks_like_a_formula_is_neutralised(run: EstimateRun) -> None:
    # given
    case = a_case(run.survey, "1.1", sf_adopted="yes")
    answer(
        case,
        sf_tech=["other"],
        sf_tech_other=INJECTIONS[0],
        main_area="other",
        main_area_other=INJECTIONS[1],
        contact_name=INJECTIONS[2],
        contact_department=INJECTIONS[3],
        sales_krw_mn=-2.5,
    )
    unit = exports.unit_id(case.pk)
    columns = ["sf_tech_other", "main_area_other", "contact_name", "contact_department"]

    # when
    row = by_unit(csv_rows(export(run.survey, "microdata", "csv", identified=True)))[unit]
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "microdata", "xlsx", identified=True, language="en"))
    )

    # then: CSV
    assert [row[c] for c in columns] == ["'" + text for text in INJECTIONS]
    assert row["sales_krw_mn"] == "-2.5"
    # XLSX: text cells, not formulas; numbers stay numbers
    sheet = list(book["data"].iter_rows(values_only=True))
    cells = next(dict(zip(sheet[0], r, strict=True)) for r in sheet[1:] if r[0] == unit)
    assert [cells[c] for c in columns] == ["'" + text for text in INJECTIONS]
    assert cells["sales_krw_mn"] == -2.5


def test_free_text_survives_the_workbook_intact(run: EstimateRun) -> None:
    # given: markup characters, a line break, and a control character XML forbids
    case = a_case(run.survey, "1.1", sf_adopted="yes")
    answer(case, sf_tech=["other"], sf_tech_other="R&D <비전> 검사\n2호기\x0b")

    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "microdata", "xlsx", language="en", identified=True))
    )

    # then
    sheet = list(book["data"].iter_rows(values_only=True))
    cells = next(
        dict(zip(sheet[0], r, strict=True)) for r in sheet[1:] if r[0] == exports.unit_id(case.pk)
    )
    assert cells["sf_tech_other"] == "R&D <비전> 검사\n2호기"


def test_contact_notes_that_look_like_formulas_are_neutralised(run: EstimateRun) -> None:
    # given
    case = a_case(run.survey, "3.19")
    for note in INJECTIONS:
        ContactAttempt.objects.create(case=case, channel="phone", outcome="other", note=note)

    # when
    rows = csv_rows(export(run.survey, "contacts", "csv", language="en"))
    book = openpyxl.load_workbook(io.BytesIO(export(run.survey, "contacts", "xlsx")))

    # then
    assert sorted(r["note"] for r in rows) == sorted("'" + text for text in INJECTIONS)
    notes = [r[7] for r in book.worksheets[0].iter_rows(min_row=2, values_only=True)]
    assert sorted(notes) == sorted("'" + text for text in INJECTIONS)


# --- codebook ---------------------------------------------------------------------------------


def test_the_codebook_describes_every_variable(run: EstimateRun) -> None:
    # when
    rows = {r["variable"]: r for r in csv_rows(export(run.survey, "codebook", "csv"))}
    microdata = csv_rows(export(run.survey, "microdata", "csv", identified=True))

    # then: every microdata column, design variables included
    assert list(rows) == list(microdata[0])
    assert rows["final_weight"]["label_ko"] and rows["final_weight"]["label_en"]
    level = rows["sf_level"]
    assert level["label_ko"] == "귀사 스마트공장의 수준은 어느 단계에 해당합니까?"
    assert level["label_en"] == "At what level is your company's smart factory?"
    assert level["type"] == "select_one"
    assert "1: basic = 기초 / Basic" in level["choices"]
    assert level["universe_expression"] == "${sf_adopted} = 'yes'"
    assert "스마트공장을 도입" in level["universe"]
    assert "-1 (.a) = 비해당(질문하지 않음)" in level["missing_codes"]
    assert "-3 (.c) = 응답 거부" in level["missing_codes"]
    assert level["versions"] == "2024.1"
    assert rows["sf_tech/erp"]["sav_dta_name"] == "sf_tech__erp"
    assert rows["sf_tech_other"]["universe_expression"] == (
        "(${sf_adopted} = 'yes') and (selected(${sf_tech}, 'other'))"
    )
    assert rows["contact_name"]["identified_only"] == "1"


def test_the_codebook_universe_is_described_in_the_chosen_language(run: EstimateRun) -> None:
    rows = {
        r["variable"]: r for r in csv_rows(export(run.survey, "codebook", "csv", language="en"))
    }
    assert "Has your company adopted" in rows["sf_level"]["universe"]
    assert "-2 (.b) = not answered" in rows["sf_level"]["missing_codes"]


def test_the_codebook_as_json_and_xlsx(run: EstimateRun) -> None:
    # when
    document = json.loads(export(run.survey, "codebook", "json"))
    book = openpyxl.load_workbook(io.BytesIO(export(run.survey, "codebook", "xlsx")))

    # then
    entries = {v["variable"]: v for v in document["variables"]}
    assert entries["sf_level"]["choices"][0] == {
        "code": 1,
        "name": "basic",
        "label": {"ko": "기초", "en": "Basic"},
    }
    assert [m["tag"] for m in entries["sf_level"]["missing"]] == [".a", ".b", ".c", ".d"]
    assert entries["invest_amount"]["missing"][0]["code"] == -99999991
    sheet = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(sheet[0]) == list(exports.CODEBOOK_COLUMNS)
    assert len(sheet) - 1 == len(entries)


# --- fieldwork status and contact log -------------------------------------------------------


def test_the_fieldwork_status_lists_every_sampled_firm(run: EstimateRun) -> None:
    # given: a wave, a disposition event in it, a call and an email
    survey = run.survey
    wave = Wave.objects.create(
        survey=survey, name="Reminder 1", kind="reminder", starts_at=timezone.now()
    )
    case = a_case(survey, "3.19")
    case.record_disposition("2.21", source="manager")
    ContactAttempt.objects.create(case=case, channel="phone", outcome="no_answer", wave=wave)
    Message.objects.create(case=case, wave=wave, kind="reminder", status="sent")

    # when
    rows = csv_rows(export(survey, "fieldwork", "csv", language="en"))

    # then
    assert len(rows) == 326
    assert "email" not in rows[0] and "phone" not in rows[0]
    row = next(r for r in rows if r["business registration number"] == case.business_id)
    assert row["disposition"] == "2.21"
    assert row["disposition label"] == "Respondent never available"
    assert row["wave"] == "Reminder 1"
    assert row["response status"] == "not started"
    assert row["last contact"] and row["emails sent"] == "1"
    done = next(r for r in rows if r["disposition"] == "1.1")
    assert done["response status"] == "submitted" and done["response mode"] == "web"


def test_contact_details_only_when_asked_for(run: EstimateRun) -> None:
    # given
    case = a_case(run.survey, "3.19")
    case.frame_unit.email, case.frame_unit.phone = "firm@example.com", "02-123-4567"
    case.frame_unit.save()
    ContactAttempt.objects.create(case=case, channel="email", outcome="bounced")

    # when
    fieldwork = csv_rows(export(run.survey, "fieldwork", "csv", language="en", contact=True))
    contacts = csv_rows(export(run.survey, "contacts", "csv", language="en", contact=True))
    plain = csv_rows(export(run.survey, "contacts", "csv", language="en"))

    # then
    row = next(r for r in fieldwork if r["business registration number"] == case.business_id)
    assert (row["email"], row["phone"]) == ("firm@example.com", "02-123-4567")
    assert contacts[0]["email"] == "firm@example.com"
    assert "email" not in plain[0]


def test_the_contact_log_lists_every_attempt(run: EstimateRun) -> None:
    # given
    staff = User.objects.create_user("caller")
    wave = Wave.objects.create(
        survey=run.survey, name="Phone", kind="phone", starts_at=timezone.now()
    )
    cases = list(Case.objects.filter(survey=run.survey, disposition="3.19")[:3])
    for case in cases:
        ContactAttempt.objects.create(
            case=case, channel="phone", outcome="callback", staff=staff, wave=wave, note="다시 전화"
        )

    # when
    rows = csv_rows(export(run.survey, "contacts", "csv", language="en"))
    book = openpyxl.load_workbook(io.BytesIO(export(run.survey, "contacts", "xlsx", language="en")))

    # then
    assert len(rows) == 3
    assert rows[0]["channel"] == "phone" and rows[0]["outcome"] == "call back later"
    assert rows[0]["staff"] == "caller" and rows[0]["wave"] == "Phone"
    assert rows[0]["note"] == "다시 전화"
    assert {r["business registration number"] for r in rows} == {c.business_id for c in cases}
    sheet = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(sheet) == 4 and isinstance(sheet[1][3], type(timezone.now().replace(tzinfo=None)))


# --- the command ------------------------------------------------------------------------------


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("export", *args, stdout=out)
    return out.getvalue()


def test_the_command_writes_the_file_and_records_the_download(
    run: EstimateRun, tmp_path: Path
) -> None:
    # when
    path = tmp_path / "microdata.sav"
    message = command(run.survey.slug, "--what", "microdata", "--format", "sav", "--out", str(path))

    # then
    assert "326 rows" in message
    frame, _meta = pyreadstat.read_sav(str(path))
    assert len(frame) == 326
    download = Download.objects.get()
    assert (download.user, download.client, download.what, download.format) == (
        None,
        "command",
        "microdata",
        "sav",
    )
    assert download.parameters["run"] == run.number and not download.identified


def test_the_command_exports_an_earlier_run(run: EstimateRun, tmp_path: Path) -> None:
    # given: a second version
    newer = pipeline.recompute(run.survey, trigger="test", force=True)
    assert newer is not None and newer.number == run.number + 1
    path = tmp_path / "estimates.csv"

    # when
    command(
        run.survey.slug,
        "--what",
        "estimates",
        "--format",
        "csv",
        "--out",
        str(path),
        "--run",
        str(run.number),
    )

    # then
    assert len(csv_rows(path.read_bytes())) == Estimate.objects.filter(run=run).count()
    assert Download.objects.get().parameters["run"] == run.number


def test_the_command_exports_response_rates(run: EstimateRun, tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    command(
        run.survey.slug,
        "--what",
        "response-rates",
        "--format",
        "csv",
        "--out",
        str(path),
        "--weighted",
    )
    rows = csv_rows(path.read_bytes())
    assert rows[0]["domain"] == "all"
    assert Download.objects.get().parameters["weighted"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--what", "estimates", "--format", "sav"], "available as csv, xlsx"),
        (["--what", "codebook", "--format", "dta"], "available as csv, xlsx, json"),
        (["--what", "response-rates", "--format", "xlsx"], "available as csv"),
        (["--what", "estimates", "--format", "csv", "--run", "99"], "no published run 99"),
        (["--what", "fieldwork", "--format", "csv", "--identified"], "need --user"),
    ],
)
def test_the_command_refuses_bad_requests(
    run: EstimateRun, tmp_path: Path, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        command(run.survey.slug, *args, "--out", str(tmp_path / "x"))
    assert not Download.objects.exists()
    assert not (tmp_path / "x").exists()


def test_the_command_refuses_an_unknown_survey(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Unknown survey"):
        command("nope", "--what", "codebook", "--format", "csv", "--out", str(tmp_path / "x"))


def test_the_command_needs_a_published_run_for_estimates_and_microdata(
    survey: Survey, tmp_path: Path
) -> None:
    for what in ("estimates", "microdata"):
        with pytest.raises(CommandError, match="no published estimate run"):
            command(survey.slug, "--what", what, "--format", "csv", "--out", str(tmp_path / "x"))
    command(survey.slug, "--what", "codebook", "--format", "json", "--out", str(tmp_path / "c"))
    assert json.loads((tmp_path / "c").read_bytes())["variables"]


def test_identified_exports_from_the_command_need_a_user_with_the_permission(
    run: EstimateRun, tmp_path: Path
) -> None:
    # given
    clerk = grant(User.objects.create_user("clerk"), "download_results")
    officer = grant(User.objects.create_user("officer"), "download_results", "download_identified")
    path = tmp_path / "identified.csv"
    args = [run.survey.slug, "--what", "microdata", "--format", "csv", "--out", str(path)]

    # then
    with pytest.raises(CommandError, match="need --user"):
        command(*args, "--identified")
    with pytest.raises(CommandError, match=r"lacks analytics\.download_identified"):
        command(*args, "--identified", "--user", clerk.username)
    command(*args, "--identified", "--user", officer.username)
    assert "business_id" in csv_rows(path.read_bytes())[0]
    download = Download.objects.get()
    assert download.identified and download.user == officer and download.client == "command"


# --- labels for people ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "yes", "size", "complete"),
    [("ko", "예", "소기업", "완전 응답"), ("en", "Yes", "small enterprise", "Complete")],
)
def test_labelled_microdata_writes_labels_in_the_chosen_language(
    run: EstimateRun, language: str, yes: str, size: str, complete: str
) -> None:
    # given
    case = a_case(run.survey, "1.1", sf_adopted="yes")
    case.frame_unit.size_class = "small"
    case.frame_unit.save()

    # when
    # (the internal file: disclosure control would blank this lone firm's size class)
    kept = {"language": language, "level": "identified"}
    rows = by_unit(csv_rows(export(run.survey, "microdata", "csv", **kept, labelled=True)))
    codes = by_unit(csv_rows(export(run.survey, "microdata", "csv", **kept)))

    # then
    row = rows[exports.unit_id(case.pk)]
    assert row["sf_adopted"] == yes and row["disposition"] == complete
    assert row["size_class"] == size
    assert row["stratum"] == case.stratum.label
    assert row["sf_tech/erp"] in ("0", "1")  # option columns stay 0/1
    plain = codes[exports.unit_id(case.pk)]
    assert (plain["sf_adopted"], plain["disposition"], plain["size_class"]) == (
        "yes",
        "1.1",
        "small",
    )


def test_labelled_microdata_workbook_matches_the_labelled_csv(run: EstimateRun) -> None:
    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "microdata", "xlsx", language="en", labelled=True))
    )
    rows = csv_rows(export(run.survey, "microdata", "csv", language="en", labelled=True))

    # then
    sheet = list(book["data"].iter_rows(values_only=True))
    first = dict(zip(sheet[0], sheet[1], strict=True))
    assert first["sf_adopted"] == (rows[0]["sf_adopted"] or None)
    assert first["disposition"] == rows[0]["disposition"]


def test_the_english_estimates_workbook_has_an_english_cover(run: EstimateRun) -> None:
    # given: the shipped form names its English title (settings sheet, form_title::English)
    assert run.survey.title_en == "2024 Smart Manufacturing Innovation Status Survey"

    # when
    book = openpyxl.load_workbook(
        io.BytesIO(export(run.survey, "estimates", "xlsx", language="en"))
    )

    # then
    cover = list(book["Cover"].iter_rows(values_only=True))
    assert cover[0][0] == "2024 Smart Manufacturing Innovation Status Survey"
    assert all(not re.search(r"[가-힣]", str(value)) for row in cover[2:] for value in row[:1])
