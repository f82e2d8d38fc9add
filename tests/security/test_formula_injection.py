"""Formula injection: every CSV the platform writes goes through config/spreadsheets.py.

The outside probe found the frame-import problem report quoting a bad cell such as
=HYPERLINK("http://evil.example","x") back verbatim. Here the report is downloaded as the
manager gets it, and every CSV writer in the code base is found and checked to be the one
that neutralises. (XLSX text cells are written as strings, never formulas, and carry the same
apostrophe; tests/analytics/test_exports.py reads them back.)"""

from __future__ import annotations

import ast
import csv
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config.roles import FIELDWORK_MANAGERS
from config.spreadsheets import safe_cell
from surveys.models import Survey
from tests.conftest import login_as
from tests.factories import ROOT

pytestmark = pytest.mark.django_db
HOSTILE = '=HYPERLINK("http://evil.example","x")'
HEADER = "business_id,name,ksic,size_class,region,employees,sales_krw_mn,email,phone\n"
# The only places allowed to build a CSV writer themselves, and why.
OWN_WRITERS = {
    "config/spreadsheets.py": "the neutralising writer itself",
    "analytics/exports/tables.py": "the exports' hot path: the same rule, cell by cell",
    "respondents/frame_import.py": "rows COPYed into PostgreSQL, never a file for people",
    "analytics/pipeline.py": "estimate rows COPYed into PostgreSQL, never a file for people",
}
APP_FOLDERS = ("analytics", "config", "respondents", "surveys")


def test_the_frame_problem_report_neutralises_a_hostile_cell(survey: Survey) -> None:
    # given: a frame whose employees cell is a formula
    manager = login_as(FIELDWORK_MANAGERS)
    quoted = HOSTILE.replace('"', '""')
    row = f'123-45-67890,"(주)대성정밀",25112,small,경기도,"{quoted}",1,,\n'
    upload = SimpleUploadedFile("frame.csv", (HEADER + row).encode("utf-8"))

    # when
    page = manager.post(f"/manage/{survey.slug}/frame/upload/", {"file": upload})
    name = re.search(r"/frame/report/([0-9a-f]+)/", page.content.decode())
    assert name, "the refusal offers its report"
    report = manager.get(
        reverse("respondents:frame_report", kwargs={"survey": survey.slug, "name": name[1]})
    )

    # then
    text = b"".join(report.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    cells = [cell for line in csv.reader(io.StringIO(text)) for cell in line]
    assert "'" + HOSTILE in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_starts_are_neutralised(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "1-2", 3, -2.5, None, ""])
def test_other_values_pass_unchanged(value: object) -> None:
    assert safe_cell(value) == value


def writer_calls() -> dict[str, list[str]]:
    """Every call of csv.writer, csv.DictWriter or a workbook writer in the apps' code."""
    found: dict[str, list[str]] = {}
    for folder in APP_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner = node.func.value
                    name = f"{getattr(owner, 'id', '')}.{node.func.attr}"
                    if name in ("csv.writer", "csv.DictWriter"):
                        found.setdefault(str(path.relative_to(ROOT)), []).append(name)
    return found


def test_no_csv_is_written_around_the_neutralising_writer() -> None:
    calls = writer_calls()

    assert set(calls) <= set(OWN_WRITERS), {p: c for p, c in calls.items() if p not in OWN_WRITERS}
    assert "config/spreadsheets.py" in calls  # the scan does find writers
