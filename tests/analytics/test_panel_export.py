"""The panel of two rounds: one row per sampled firm and round, each round's weights, a link
key that joins a firm's rows and nothing else, in CSV, Excel, SPSS and Stata."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import openpyxl
import pyreadstat
import pytest
from django.test import Client

from analytics import exports, pipeline
from analytics.exports.microdata import unit_id
from analytics.models import Download, ExportJob
from config.roles import ADMINISTRATORS
from tests.analytics.rounds import TwoRounds, build_two_rounds, common_by_stratum
from tests.conftest import login_as

pytestmark = pytest.mark.django_db
COLUMNS = [
    "link_key", "round", "unit_id", "stratum", "stratum_population", "stratum_common",
    "base_weight", "final_weight", "in_both_rounds", "disposition",
]  # fmt: skip


@pytest.fixture
def rounds() -> TwoRounds:
    return build_two_rounds()


RELEASE = "test-release"


def written(rounds: TwoRounds, fmt: str, **options: Any) -> bytes:
    chosen = exports.make_options(rounds.second, "panel", fmt, **options)
    out = io.BytesIO()
    exports.export(dataclasses.replace(chosen, release=RELEASE), out)
    return out.getvalue()


def csv_rows(data: bytes) -> dict[int, dict[str, str]]:
    """The rows by the case they are of (the file names no case: its unit_id is keyed)."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    return {case_of[row["unit_id"]]: row for row in rows}


case_of: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _unit_ids(rounds: TwoRounds) -> None:
    cases = [*rounds.first_cases.values(), *rounds.second_cases.values()]
    case_of.clear()
    case_of.update({unit_id(case.pk, RELEASE): case.pk for case in cases})


def test_each_firm_has_a_row_per_round_with_that_rounds_weights(rounds: TwoRounds) -> None:
    # given
    text = written(rounds, "csv").decode("utf-8-sig")
    rows = csv_rows(text.encode("utf-8"))
    weights = {**pipeline.run_weights(rounds.first_run), **pipeline.run_weights(rounds.second_run)}

    # then: the design columns first, every sampled case once, with its round's weights
    assert next(csv.reader(io.StringIO(text)))[: len(COLUMNS)] == COLUMNS
    assert set(rows) == {
        c.pk for c in [*rounds.first_cases.values(), *rounds.second_cases.values()]
    }
    for case in rounds.first_cases.values():
        assert rows[case.pk]["round"] == "2024"
    later = {c.pk for c in rounds.second_cases.values()}
    common = common_by_stratum()
    for pk, row in rows.items():
        base, final = weights[pk]
        expected = common[row["stratum"]] if pk in later else None
        assert (float(row["stratum_common"]) if row["stratum_common"] else None) == expected
        assert float(row["base_weight"]) == pytest.approx(base, rel=1e-12)
        assert float(row["final_weight"]) == pytest.approx(final, rel=1e-12)
        assert row["disposition"] == "1.1"


def test_the_link_key_joins_a_firms_two_rows_and_nothing_else(rounds: TwoRounds) -> None:
    rows = csv_rows(written(rounds, "csv"))
    both = rounds.first_cases.keys() & rounds.second_cases.keys()

    for firm, case in rounds.first_cases.items():
        row = rows[case.pk]
        if firm in both:
            later = rows[rounds.second_cases[firm].pk]
            assert later["link_key"] == row["link_key"]
            assert later["round"] == "2025"
            assert row["in_both_rounds"] == later["in_both_rounds"] == "1"
        else:
            assert row["in_both_rounds"] == "0"
    keys = [row["link_key"] for row in rows.values()]
    assert len(set(keys)) == len(rounds.first_cases.keys() | rounds.second_cases.keys())


def test_the_answers_are_those_each_round_used(rounds: TwoRounds) -> None:
    rows = csv_rows(written(rounds, "csv"))

    for case in [*rounds.first_cases.values(), *rounds.second_cases.values()]:
        given, row = case.response.answers, rows[case.pk]
        assert row["sf_adopted"] == given["sf_adopted"]
        if "sales_krw_mn" in given:
            assert float(row["sales_krw_mn"]) == pytest.approx(given["sales_krw_mn"])
        else:
            assert row["sales_krw_mn"] == ""
    assert "contact_name" not in row and "business_id" not in row


def test_excel_has_the_same_rows(rounds: TwoRounds) -> None:
    book = openpyxl.load_workbook(io.BytesIO(written(rounds, "xlsx")), read_only=True)
    sheet = book.worksheets[0]

    rows = list(sheet.iter_rows(values_only=True))

    assert list(rows[0][: len(COLUMNS)]) == COLUMNS
    assert len(rows) - 1 == len(rounds.first_cases) + len(rounds.second_cases)


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_files_are_labelled(rounds: TwoRounds, fmt: str, tmp_path: Path) -> None:
    # given
    path = tmp_path / f"panel.{fmt}"
    path.write_bytes(written(rounds, fmt, language="en"))

    # when
    read = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    frame, meta = read(str(path), user_missing=fmt == "sav")

    # then
    assert len(frame) == len(rounds.first_cases) + len(rounds.second_cases)
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["link_key"] == "Firm link key (pseudonym across rounds)"
    assert str(labels["final_weight"]).startswith("Final weight")
    assert meta.variable_value_labels["in_both_rounds"][1] == "sampled in both rounds"
    assert set(frame["round"]) == {2024, 2025}
    assert frame.groupby("link_key").size().max() == 2


def test_labels_in_csv_read_as_words(rounds: TwoRounds) -> None:
    rows = csv_rows(written(rounds, "csv", labelled=True, language="en"))

    assert {row["in_both_rounds"] for row in rows.values()} == {
        "sampled in both rounds",
        "sampled in one round only",
    }


def test_a_survey_without_a_previous_round_has_no_panel(rounds: TwoRounds) -> None:
    with pytest.raises(exports.ExportError, match="no previous round"):
        exports.make_options(rounds.first, "panel", "csv")


def test_the_downloads_page_prepares_the_panel_as_a_job(
    rounds: TwoRounds, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    admin: Client = login_as(ADMINISTRATORS)
    page = admin.get(f"/manage/{rounds.second.slug}/downloads/")
    assert 'id="export-panel"' in page.content.decode()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            f"/manage/{rounds.second.slug}/downloads/",
            {"what": "panel", "panel-format": "dta", "panel-language": "ko"},
        )

    # then: the worker wrote it, and its download is recorded
    assert response.status_code == 302
    job = ExportJob.objects.get(what="panel")
    assert job.status == ExportJob.Status.DONE
    assert job.parameters["previous_run"] == rounds.first_run.number
    served = admin.get(f"/manage/{rounds.second.slug}/downloads/jobs/{job.pk}/file/")
    assert served.status_code == 200
    assert Download.objects.filter(what="panel", format="dta").exists()
