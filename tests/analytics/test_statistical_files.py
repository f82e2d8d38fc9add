"""SPSS and Stata files of the shipped questionnaire written at a late run and read back:
every name and label within the format's limits, the full texts in the codebook."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openpyxl
import pyreadstat
import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics import exports, pipeline
from analytics.exports import labels
from analytics.exports.labels import DTA, SAV
from analytics.models import EstimateRun
from surveys.models import Survey, get_form
from surveys.xlsform import load_questionnaire
from tests import factories
from tests.analytics.test_exports import csv_rows, export
from tests.analytics.test_recompute_synthetic import load_synthetic_case

pytestmark = pytest.mark.django_db
SF_TECH = ("erp", "mes", "scm", "plm", "controller", "iot_sensor", "robot", "other")
READERS = {"sav": pyreadstat.read_sav, "dta": pyreadstat.read_dta}


@pytest.fixture
def late_run(survey: Survey) -> EstimateRun:
    """The synthetic case's estimates at run 12, with a timestamp carrying microseconds."""
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None
    as_of = timezone.now().replace(microsecond=123456)
    EstimateRun.objects.filter(pk=run.pk).update(number=12, data_as_of=as_of)
    run.refresh_from_db()
    return run


def read_back(data: bytes, fmt: str, tmp_path: Path) -> tuple[Any, Any, Path]:
    path = tmp_path / f"microdata.{fmt}"
    path.write_bytes(data)
    frame, meta = READERS[fmt](str(path), user_missing=True)
    return frame, meta, path


def assert_within_limits(meta: Any, fmt: str) -> None:
    limits = SAV if fmt == "sav" else DTA
    for name in meta.column_names:
        assert len(name) <= 28 and name.isascii() and name[0].isalpha(), name
    assert len({n.lower() for n in meta.column_names}) == len(meta.column_names)
    for label in meta.column_labels:
        assert limits.fits(label, limits.variable_label), label
    for value_labels in meta.variable_value_labels.values():
        for text in value_labels.values():
            assert limits.fits(text, limits.value_label), text
    assert limits.fits(meta.file_label, limits.file_label)


@pytest.mark.parametrize("fmt", ["sav", "dta"])
@pytest.mark.parametrize("language", ["ko", "en"])
@pytest.mark.parametrize("identified", [False, True])
def test_the_shipped_questionnaire_writes_and_reads_back_at_run_12(
    late_run: EstimateRun, tmp_path: Path, fmt: str, language: str, identified: bool
) -> None:
    # when
    data = export(late_run.survey, "microdata", fmt, language=language, identified=identified)
    frame, meta, _path = read_back(data, fmt, tmp_path)

    # then: every row, every label within the format's limits
    assert len(frame) == 326
    assert_within_limits(meta, fmt)
    assert "(run 12)" in meta.file_label
    if fmt == "sav":
        assert all(len(line.encode()) <= 80 for line in meta.notes)
        assert "estimate run 12" in " ".join(meta.notes)


@pytest.mark.parametrize("fmt", ["sav", "dta"])
@pytest.mark.parametrize("language", ["ko", "en"])
def test_each_option_column_has_its_own_label_with_the_options_name(
    late_run: EstimateRun, tmp_path: Path, fmt: str, language: str
) -> None:
    # when: the internal file, which keeps the free text
    data = export(late_run.survey, "microdata", fmt, language=language, level="identified")
    _frame, meta, _path = read_back(data, fmt, tmp_path)

    # then: eight names in one scheme, beside the "other, specify" text question
    names = meta.column_names
    assert "sf_tech_other" in names and "sf_tech_other_2" not in names
    labelled = meta.column_names_to_labels
    tech = [labelled[f"sf_tech__{option}"] for option in SF_TECH]
    assert len(set(tech)) == 8
    question = get_form(late_run.survey.questionnaire_id).questions["sf_tech"]
    for option, label in zip(SF_TECH, tech, strict=True):
        assert label.endswith(": " + question.choice_text(option, language)), label
    assert labelled["sf_tech_other"] != tech[-1]


def test_a_long_title_and_long_labels_are_shortened_and_kept_whole_in_the_codebook(
    survey: Survey, tmp_path: Path
) -> None:
    # given: a questionnaire whose labels and options exceed every limit
    long_question = "스마트공장에서 사용하는 기술과 시스템을 빠짐없이 골라 주십시오. " * 6
    long_option = "클라우드 기반 제조 실행 시스템과 연동되는 현장 데이터 수집 장치 " * 4
    version = _long_form(survey, long_question, long_option)
    survey.refresh_from_db()
    survey.title = "2024년도 중소벤처기업부 스마트제조혁신 실태조사 (전국 중소 제조기업 대상) " * 3
    survey.save(update_fields=["title"])
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None and version.pk == survey.current_questionnaire_id

    for fmt in ("sav", "dta"):
        # when
        _frame, meta, _path = read_back(export(survey, "microdata", fmt), fmt, tmp_path)

        # then: shortened with an ellipsis, the option's own name still at the end
        assert_within_limits(meta, fmt)
        tech = meta.column_names_to_labels["sf_tech__erp"]
        assert tech.startswith("스마트공장에서") and "…" in tech
        assert meta.file_label.endswith("… (run 1)")
        options = meta.variable_value_labels["sf_level"]
        assert len(set(options.values())) == len(options)

    # and the codebook keeps every text whole
    book = {r["variable"]: r for r in csv_rows(export(survey, "codebook", "csv"))}
    assert book["sf_tech/erp"]["label_ko"] == f"{long_question.strip()}: ERP(전사적 자원관리)"
    assert long_option.strip() in book["sf_level"]["choices"]


def _long_form(survey: Survey, question: str, option: str) -> Any:
    book = openpyxl.load_workbook(factories.SHIPPED_FORM)
    sheet = book["survey"]
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 2).value == "sf_tech")
    sheet.cell(row, 3).value = question.strip()
    for cells in book["choices"].iter_rows(min_row=2):
        if cells[0].value == "sf_level" and cells[1].value in ("intermediate1", "intermediate2"):
            cells[2].value = f"{option.strip()} {cells[1].value[-1]}단계"
    book["settings"].cell(2, 2).value = "2024.9"
    data = io.BytesIO()
    book.save(data)
    return load_questionnaire(data.getvalue(), survey_slug=survey.slug)


def test_the_export_command_writes_spss_at_run_12(late_run: EstimateRun, tmp_path: Path) -> None:
    # when
    path = tmp_path / "microdata.sav"
    call_command(
        "export", late_run.survey.slug, "--what", "microdata", "--format", "sav",
        "--out", str(path), stdout=io.StringIO(),
    )  # fmt: skip

    # then
    _frame, meta = pyreadstat.read_sav(str(path))
    assert "estimate run 12" in " ".join(meta.notes)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
def test_r_reads_both_files_with_their_labels(late_run: EstimateRun, tmp_path: Path) -> None:
    # given
    for fmt in ("sav", "dta"):
        read_back(export(late_run.survey, "microdata", fmt), fmt, tmp_path)
    script = f"""
    sav <- haven::read_sav("{tmp_path}/microdata.sav")
    dta <- haven::read_dta("{tmp_path}/microdata.dta")
    old <- suppressWarnings(foreign::read.spss("{tmp_path}/microdata.sav", to.data.frame = TRUE))
    cat(nrow(sav), nrow(dta), nrow(old), "\\n")
    cat(attr(sav$sf_tech__mes, "label"), "\\n", sep = "")
    cat(attr(dta$sf_tech__mes, "label"), "\\n", sep = "")
    cat(names(attr(sav$sf_level, "labels"))[1], "\\n", sep = "")
    """

    # when
    done = subprocess.run(
        ["Rscript", "-e", script], capture_output=True, text=True, timeout=120, check=True
    )

    # then
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["326", "326", "326"]
    assert lines[1].endswith(": MES(생산관리시스템)") and lines[2] == lines[1]
    assert lines[3] == "기초"


@pytest.mark.parametrize("limits", [SAV, DTA])
def test_fitting_cuts_between_characters_and_ends_with_an_ellipsis(limits: Any) -> None:
    text = "가나다라마바사" * 40

    fitted = labels.fit(text, 80, limits)

    assert limits.fits(fitted, 80) and fitted.endswith("…")
    assert text.startswith(fitted[:-1])
    assert limits.size(fitted) > 80 - (4 if limits.in_bytes else 2)


def test_a_note_is_broken_into_lines_between_words() -> None:
    text = "smart_manufacturing: estimate run 10, data as of 2024-11-05 14:30:15 +0900 " * 3

    lines = labels.note_lines(text, SAV)

    assert all(len(line.encode()) <= 80 for line in lines)
    assert " ".join(lines) == " ".join(text.split())


def test_exports_module_names_every_option_column_in_one_scheme(late_run: EstimateRun) -> None:
    layout = exports.microdata_layout(late_run.survey, identified=True)
    names = {v.name: v.stat_name for v in layout.variables}
    assert [names[f"sf_tech/{o}"] for o in SF_TECH] == [f"sf_tech__{o}" for o in SF_TECH]
    assert names["sf_tech_other"] == "sf_tech_other"
