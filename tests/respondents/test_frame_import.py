"""Importing the sampling frame: formats, validation report, replacement, command, upload page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from io import StringIO
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from respondents.classifications import KSIC_DIVISIONS
from respondents.frame_import import ImportResult, import_frame
from respondents.models import FrameUnit, frame_variable
from respondents.synthetic import business_ids, frame_rows
from respondents.tabular import MAX_PROBLEMS, ImportRefused, Problem
from surveys.models import Survey
from tests import factories

pytestmark = pytest.mark.django_db

HEADER = [
    "business_id",
    "name",
    "ksic",
    "size_class",
    "region",
    "employees",
    "sales_krw_mn",
    "email",
    "phone",
    "industry_group",
]
ROWS = [
    ["123-45-67890", "(주)대성정밀", "25112", "small", "경기도", "25", "4,500.5",
     "info@daesung1.co.kr", "031-555-1234", "metal"],
    ["2208162517", "한빛테크 주식회사", "26299", "micro", "부산광역시", "4", "", "",
     "051-555-0000", "electronics"],
    ["314-86-12345", "삼우식품", "10711", "medium", "Chungcheongbuk-do", "1,250", "98000",
     "sales@samwoo.kr", "", "food_beverage"],
]  # fmt: skip


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


def table(*rows: list[str], header: list[str] = HEADER) -> list[list[str]]:
    return [header, *rows]


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buffer = StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def load(survey: Survey, data: bytes, filename: str = "frame.csv") -> ImportResult:
    return import_frame(survey, io.BytesIO(data), filename=filename)


def refusal(survey: Survey, data: bytes, filename: str = "frame.csv") -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        load(survey, data, filename)
    return info.value


def frame(survey: Survey) -> list[str]:
    return list(survey.frame_units.order_by("source_row").values_list("business_id", flat=True))


@pytest.fixture
def earlier_frame(survey: Survey) -> list[str]:
    """A frame already imported, which a refused file must leave as it was."""
    load(survey, csv_bytes(table(*ROWS)))
    return frame(survey)


# --- Formats and values -------------------------------------------------------------------


def test_a_utf8_csv_is_imported_with_its_values_normalised(survey: Survey) -> None:
    # given
    data = csv_bytes(table(*ROWS))

    # when
    result = load(survey, data)

    # then
    assert result.rows == 3 and result.file_format == "CSV (UTF-8)"
    first, second, third = survey.frame_units.order_by("source_row")
    assert (first.business_id, first.name, first.region) == (
        "123-45-67890",
        "(주)대성정밀",
        "Gyeonggi",
    )
    assert first.sales_krw_mn is not None and float(first.sales_krw_mn) == 4500.5
    assert first.attributes == {"industry_group": "metal"}
    assert first.source_row == 2
    assert second.business_id == "220-81-62517" and second.sales_krw_mn is None
    assert second.email == "" and second.region == "Busan"
    assert third.employees == 1250 and third.region == "Chungbuk" and third.phone == ""


def test_the_result_counts_firms_by_size_class_and_region(survey: Survey) -> None:
    result = load(survey, csv_bytes(table(*ROWS)))

    assert result.by_size_class == {"micro": 1, "small": 1, "medium": 1}
    assert result.by_region == {"Busan": 1, "Gyeonggi": 1, "Chungbuk": 1}
    assert result.seconds > 0 and result.replaced == 0


def test_a_utf8_csv_with_a_byte_order_mark_is_imported(survey: Survey) -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(table(*ROWS))

    result = load(survey, data)

    assert result.file_format == "CSV (UTF-8, BOM)"
    assert frame(survey) == ["123-45-67890", "220-81-62517", "314-86-12345"]


def test_a_cp949_csv_is_imported_with_its_korean_text_intact(survey: Survey) -> None:
    data = csv_bytes(table(*ROWS), encoding="cp949")

    result = load(survey, data)

    assert result.file_format == "CSV (CP949)"
    names = set(survey.frame_units.values_list("name", flat=True))
    assert names == {"(주)대성정밀", "한빛테크 주식회사", "삼우식품"}


def test_an_xlsx_workbook_is_imported_with_numbers_read_as_text(survey: Survey) -> None:
    # given: IDs, codes and counts stored as numbers; the last row ends at its last filled cell
    rows: list[list[object]] = [
        [*HEADER],
        [1234567890, "(주)대성정밀", 25112, "small", "경기도", 25, 4500.5, None, None, "metal"],
        ["220-81-62517", "한빛테크 주식회사", "26299", "micro", "부산", 4.0, None, "", "", ""],
        [3148612345, "삼우식품", 10711, "소기업", "충북", 12],
    ]

    # when
    result = load(survey, xlsx_bytes(rows), "frame.xlsx")

    # then
    assert result.rows == 3 and result.file_format == "XLSX"
    first = survey.frame_units.get(source_row=2)
    assert (first.business_id, first.ksic, first.employees) == ("123-45-67890", "25112", 25)
    assert survey.frame_units.get(source_row=3).employees == 4
    last = survey.frame_units.get(source_row=4)
    assert (last.email, last.attributes) == ("", {"industry_group": ""})


def test_headers_match_whatever_their_case_and_surrounding_spaces(survey: Survey) -> None:
    header = [f"  {name.upper()} " for name in HEADER]

    load(survey, csv_bytes(table(*ROWS, header=header)))

    assert survey.frame_units.count() == 3
    assert survey.frame_units.get(source_row=2).attributes == {"industry_group": "metal"}


@pytest.mark.parametrize(
    ("spelling", "size_class"),
    [("소상공인", "micro"), ("소기업", "small"), ("중기업", "medium"), ("중견기업", "midsize"),
     ("MICRO", "micro"), ("Midsize", "midsize")],
)  # fmt: skip
def test_size_classes_are_read_in_korean_or_english(
    survey: Survey, spelling: str, size_class: str
) -> None:
    row = [*ROWS[0][:3], spelling, *ROWS[0][4:]]

    load(survey, csv_bytes(table(row)))

    assert survey.frame_units.get().size_class == size_class


@pytest.mark.parametrize(
    ("spelling", "region"),
    [("경기도", "Gyeonggi"), ("Gyeonggi-do", "Gyeonggi"), ("GYEONGGI", "Gyeonggi"),
     ("Gangwon State", "Gangwon"), ("충청북도", "Chungbuk"), ("Chungcheongbuk-do", "Chungbuk")],
)  # fmt: skip
def test_regions_are_read_in_any_usual_spelling(survey: Survey, spelling: str, region: str) -> None:
    row = [*ROWS[0][:4], spelling, *ROWS[0][5:]]

    load(survey, csv_bytes(table(row)))

    assert survey.frame_units.get().region == region


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers(survey: Survey) -> None:
    data = csv_bytes(table(ROWS[0], [], ROWS[1]))

    load(survey, data)

    assert list(survey.frame_units.values_list("source_row", flat=True).order_by("pk")) == [2, 4]


# --- Refused files ------------------------------------------------------------------------


def with_cell(row: list[str], column: str, value: str) -> list[str]:
    changed = list(row)
    changed[HEADER.index(column)] = value
    return changed


BAD_CELLS = [
    ("business_id", "12345", "10-digit business registration number"),
    ("name", "", "is required"),
    ("ksic", "2519", "5-digit KSIC code"),
    ("ksic", "47190", "not a manufacturing code"),
    ("size_class", "large", "must be one of micro, small, medium, midsize"),
    ("region", "Atlantis", "not a Korean province"),
    ("employees", "many", "whole number of 0 or more"),
    ("employees", "-3", "whole number of 0 or more"),
    ("employees", "12.5", "whole number of 0 or more"),
    ("sales_krw_mn", "a lot", "must be a number"),
    ("email", "info@", "not a valid email address"),
    ("email", "두 단어@example.com", "not a valid email address"),
]


@pytest.mark.parametrize(("column", "value", "message"), BAD_CELLS)
def test_a_file_with_a_bad_cell_is_refused_and_the_earlier_frame_kept(
    survey: Survey, earlier_frame: list[str], column: str, value: str, message: str
) -> None:
    # given: a new file whose third data row (line 4) has one bad cell
    rows = [["111-11-11111", *ROWS[0][1:]], ["222-22-22222", *ROWS[1][1:]], ROWS[2]]
    rows[2] = with_cell(["333-33-33333", *ROWS[2][1:]], column, value)

    # when
    error = refusal(survey, csv_bytes(table(*rows)))

    # then
    assert [(p.row, p.column, p.value) for p in error.problems] == [(4, column, value)]
    assert message in error.problems[0].message
    assert frame(survey) == earlier_frame


def test_a_duplicate_business_id_is_reported_on_both_rows(
    survey: Survey, earlier_frame: list[str]
) -> None:
    # given: the same number written two ways, on lines 2 and 4
    rows = [ROWS[0], ROWS[1], ["1234567890", *ROWS[2][1:]]]

    # when
    error = refusal(survey, csv_bytes(table(*rows)))

    # then
    assert [(p.row, p.column, p.value) for p in error.problems] == [
        (2, "business_id", "123-45-67890"),
        (4, "business_id", "123-45-67890"),
    ]
    assert "rows 2, 4" in error.problems[0].message
    assert frame(survey) == earlier_frame


def test_a_missing_required_column_is_reported_once_for_the_file(
    survey: Survey, earlier_frame: list[str]
) -> None:
    # given: a file without the ksic column
    drop = HEADER.index("ksic")
    rows = [[cell for i, cell in enumerate(row) if i != drop] for row in table(*ROWS)]

    # when
    error = refusal(survey, csv_bytes(rows))

    # then
    assert [(p.row, p.column) for p in error.problems] == [(1, "ksic")]
    assert "required column is missing" in error.problems[0].message
    assert frame(survey) == earlier_frame


def test_a_row_with_the_wrong_number_of_cells_is_refused(
    survey: Survey, earlier_frame: list[str]
) -> None:
    rows = table(ROWS[0], ROWS[1][:-2], [*ROWS[2], "extra"])

    error = refusal(survey, csv_bytes(rows))

    assert [p.row for p in error.problems] == [3, 4]
    assert "has 8 cells; the header has 10" in error.problems[0].message
    assert "has 11 cells" in error.problems[1].message
    assert frame(survey) == earlier_frame


def test_every_problem_of_a_row_is_reported(survey: Survey) -> None:
    row = with_cell(with_cell(ROWS[0], "region", "Mars"), "email", "nobody")

    error = refusal(survey, csv_bytes(table(row)))

    assert [(p.row, p.column) for p in error.problems] == [(2, "region"), (2, "email")]


def test_a_bad_cell_in_a_workbook_is_reported_with_its_spreadsheet_row(survey: Survey) -> None:
    # given: a workbook with an empty row 3, and a bad KSIC code on row 4
    rows = [HEADER, ROWS[0], [], with_cell(ROWS[1], "ksic", "4719")]

    # when
    error = refusal(survey, xlsx_bytes(rows), "frame.xlsx")

    # then
    assert [(p.row, p.column, p.value) for p in error.problems] == [(4, "ksic", "4719")]
    assert not survey.frame_units.exists()


def test_a_row_with_a_nul_character_is_refused(survey: Survey) -> None:
    data = csv_bytes(table(ROWS[0], with_cell(ROWS[1], "name", "a\x00b")))

    error = refusal(survey, data)

    assert [p.row for p in error.problems] == [3]
    assert "NUL character" in error.problems[0].message


def test_a_garbage_file_reports_the_first_problems_and_counts_the_rest(survey: Survey) -> None:
    # given: 1,500 rows, each with a bad employee count
    rows = [with_cell(ROWS[0], "employees", "x") for _ in range(1500)]
    rows = [with_cell(row, "business_id", f"{i:010d}") for i, row in enumerate(rows)]

    # when
    error = refusal(survey, csv_bytes(table(*rows)))

    # then
    assert len(error.problems) == MAX_PROBLEMS
    assert error.total == 1500 and error.omitted == 500
    assert not survey.frame_units.exists()


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "frame.csv", "The file is empty"),
        (",".join(HEADER).encode(), "frame.csv", "has no firms"),
        (b"\xff\xfe\xfa\x00\x81" * 50, "frame.csv", "neither UTF-8 nor CP949"),
        (b"PK\x03\x04 broken", "frame.xlsx", "not a readable XLSX"),
        (b"anything", "frame.xls", "Upload a CSV or XLSX file"),
    ],
)
def test_an_unreadable_or_empty_file_is_refused(
    survey: Survey, earlier_frame: list[str], data: bytes, filename: str, message: str
) -> None:
    error = refusal(survey, data, filename)

    assert message in error.message
    assert frame(survey) == earlier_frame


def test_the_report_lines_name_row_column_value_and_problem() -> None:
    problem = Problem(7, "employees", "-3", "must be a whole number of 0 or more")

    assert str(problem) == (
        "Row 7, column “employees”, value “-3”: must be a whole number of 0 or more"
    )


# --- Replacing the frame ------------------------------------------------------------------


def test_importing_again_before_the_draw_replaces_the_frame(
    survey: Survey, earlier_frame: list[str]
) -> None:
    # given: an earlier frame of three firms
    new_row = ["999-88-77777", "새솔화학", "20119", "small", "울산", "30", "", "", "", "chemical"]

    # when
    result = load(survey, csv_bytes(table(ROWS[1], new_row)))

    # then
    assert result.replaced == 3
    assert frame(survey) == ["220-81-62517", "999-88-77777"]


def test_importing_after_the_draw_is_refused(survey: Survey, earlier_frame: list[str]) -> None:
    # given
    factories.design(survey)

    # when
    error = refusal(survey, csv_bytes(table(ROWS[0])))

    # then
    assert "already been drawn" in error.message
    assert frame(survey) == earlier_frame


def test_another_survey_keeps_its_frame(survey: Survey, earlier_frame: list[str]) -> None:
    other = Survey.objects.create(slug="other", title="Other")

    load(other, csv_bytes(table(ROWS[0])))

    assert frame(survey) == earlier_frame and frame(other) == ["123-45-67890"]


# --- The synthetic frame ------------------------------------------------------------------


def test_the_synthetic_frame_is_the_same_for_the_same_seed() -> None:
    assert list(frame_rows(50, seed=7)) == list(frame_rows(50, seed=7))
    assert list(frame_rows(50, seed=7)) != list(frame_rows(50, seed=8))


def test_synthetic_business_ids_are_distinct_and_carry_a_valid_check_digit() -> None:
    ids = business_ids(np.arange(200_000), offset=12345)

    assert len(set(ids)) == 200_000
    for value in ids[:2000]:
        digits = [int(ch) for ch in value.replace("-", "")]
        total = sum(d * w for d, w in zip(digits, [1, 3, 7, 1, 3, 7, 1, 3, 5], strict=False))
        total += digits[8] * 5 // 10
        assert (10 - total % 10) % 10 == digits[9]


def test_the_synthetic_frame_looks_like_korean_manufacturers() -> None:
    header, *rows = frame_rows(20_000)

    column = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    sizes = np.array(column["size_class"])
    employees = np.array(column["employees"], dtype=int)
    assert abs((sizes == "micro").mean() - 0.618) < 0.02
    assert abs((sizes == "midsize").mean() - 0.013) < 0.005
    assert employees[sizes == "micro"].max() < 10 and employees[sizes == "small"].min() >= 10
    assert (column["region"].count("경기도") / len(rows)) > 0.28
    divisions = [code[:2] for code in column["ksic"]]
    assert set(divisions) <= set(KSIC_DIVISIONS)
    assert divisions.count("25") > 10 * divisions.count("19")


@pytest.mark.parametrize(
    ("file_format", "encoding"), [("csv", "utf-8"), ("csv", "cp949"), ("xlsx", "utf-8")]
)
def test_the_synthetic_frame_command_writes_a_file_that_imports_cleanly(
    survey: Survey, tmp_path: Path, file_format: str, encoding: str
) -> None:
    # given
    out = tmp_path / f"frame.{file_format}"
    call_command(
        "make_synthetic_frame",
        rows=1000,
        out=out,
        format=file_format,
        encoding=encoding,
        stdout=StringIO(),
    )

    # when
    result = import_frame(survey, out, filename=out.name)

    # then
    assert result.rows == 1000
    unit = survey.frame_units.first()
    assert unit is not None and set(unit.attributes) == {"industry_group", "region_area"}


# --- The command --------------------------------------------------------------------------


def test_the_command_imports_and_prints_a_summary(survey: Survey, tmp_path: Path) -> None:
    # given
    path = tmp_path / "frame.csv"
    path.write_bytes(csv_bytes(table(*ROWS)))
    out = StringIO()

    # when
    call_command("import_frame", survey.slug, str(path), stdout=out)

    # then
    assert "Imported 3 firms from CSV (UTF-8)" in out.getvalue()
    assert "micro 1, small 1, medium 1" in out.getvalue()
    assert survey.frame_units.count() == 3


def test_the_command_prints_the_problems_and_fails_on_a_bad_file(
    survey: Survey, tmp_path: Path
) -> None:
    # given
    path = tmp_path / "frame.csv"
    path.write_bytes(csv_bytes(table(with_cell(ROWS[0], "employees", "-3"))))
    err = StringIO()

    # when
    with pytest.raises(CommandError) as info:
        call_command("import_frame", survey.slug, str(path), stderr=err)

    # then: manage.py turns a CommandError into exit status 1
    assert info.value.returncode == 1
    assert "file has problems" in str(info.value)
    assert "Row 2, column “employees”, value “-3”" in err.getvalue()
    assert not survey.frame_units.exists()


def test_the_command_refuses_an_unknown_survey(tmp_path: Path, db: None) -> None:
    with pytest.raises(CommandError, match="no survey"):
        call_command("import_frame", "nope", str(tmp_path / "frame.csv"))


# --- The upload page ----------------------------------------------------------------------


@pytest.fixture
def manager(client: Client) -> Client:
    user = User.objects.create_user("manager", password="x")
    user.user_permissions.add(Permission.objects.get(codename="manage_frame"))
    client.force_login(user)
    client.cookies["django_language"] = "en"
    return client


@pytest.fixture(autouse=True)
def media(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"  # type: ignore[attr-defined]


def upload_url(survey: Survey) -> str:
    return reverse("respondents:frame_upload", kwargs={"survey": survey.slug})


def test_an_anonymous_visitor_is_sent_to_log_in(survey: Survey, client: Client) -> None:
    response = client.get(upload_url(survey))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_user_without_the_permission_is_refused(survey: Survey, client: Client) -> None:
    # given
    client.force_login(User.objects.create_user("clerk", password="x"))
    data = SimpleUploadedFile("frame.csv", csv_bytes(table(*ROWS)))

    # when
    page = client.get(upload_url(survey))
    post = client.post(upload_url(survey), {"file": data})
    summary = client.get(reverse("respondents:frame_summary", kwargs={"survey": survey.slug}))

    # then
    assert (page.status_code, post.status_code, summary.status_code) == (403, 403, 403)
    assert not survey.frame_units.exists()


def test_a_manager_uploads_a_frame_and_sees_its_summary(survey: Survey, manager: Client) -> None:
    # given
    data = SimpleUploadedFile("frame.csv", csv_bytes(table(*ROWS)))

    # when
    response = manager.post(upload_url(survey), {"file": data}, follow=True)

    # then
    assert response.redirect_chain[-1][0] == reverse(
        "respondents:frame_summary", kwargs={"survey": survey.slug}
    )
    page = response.content.decode()
    assert "Imported 3 firms" in page and "3 firms in the frame" in page
    assert "Gyeonggi" in page and "Capital area" in page
    assert "Basic and fabricated metals" in page
    assert survey.frame_units.count() == 3


def test_a_large_upload_kept_on_disk_is_imported_too(
    survey: Survey, manager: Client, settings: object
) -> None:
    # given: uploads above this size go to a temporary file rather than memory
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # type: ignore[attr-defined]
    data = SimpleUploadedFile("frame.csv", csv_bytes(table(*ROWS), encoding="cp949"))

    # when
    response = manager.post(upload_url(survey), {"file": data})

    # then
    assert response.status_code == 302
    assert survey.frame_units.count() == 3


def test_a_bad_upload_shows_the_problems_and_the_report_downloads(
    survey: Survey, manager: Client, earlier_frame: list[str]
) -> None:
    # given
    bad = table(ROWS[0], with_cell(ROWS[1], "region", "Atlantis"))
    data = SimpleUploadedFile("frame.csv", csv_bytes(bad))

    # when
    response = manager.post(upload_url(survey), {"file": data})

    # then: the page lists the problem and links to the whole report
    assert response.status_code == 200
    page = response.content.decode()
    assert "Atlantis" in page and "not a Korean province" in page
    report_url = reverse(
        "respondents:frame_report",
        kwargs={"survey": survey.slug, "name": response.context["report"]},
    )
    assert report_url in page
    download = manager.get(report_url)
    assert download.status_code == 200
    content = b"".join(download.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    assert list(csv.reader(StringIO(content)))[1][:3] == ["3", "region", "Atlantis"]
    assert frame(survey) == earlier_frame


def test_a_report_needs_the_permission_and_an_existing_name(
    survey: Survey, manager: Client
) -> None:
    # given: a report made by a manager, and a clerk without the permission
    bad = csv_bytes(table(with_cell(ROWS[0], "ksic", "1")))
    response = manager.post(upload_url(survey), {"file": SimpleUploadedFile("f.csv", bad)})
    name = response.context["report"]
    url = reverse("respondents:frame_report", kwargs={"survey": survey.slug, "name": name})
    other = Survey.objects.create(slug="other", title="Other")
    clerk = Client()
    clerk.force_login(User.objects.create_user("clerk", password="x"))

    # when
    own = manager.get(url)
    wrong_name = manager.get(
        reverse("respondents:frame_report", kwargs={"survey": survey.slug, "name": "0" * 32})
    )
    wrong_survey = manager.get(
        reverse("respondents:frame_report", kwargs={"survey": other.slug, "name": name})
    )
    no_permission = clerk.get(url)

    # then
    assert own.status_code == 200
    assert (wrong_name.status_code, wrong_survey.status_code) == (404, 404)
    assert no_permission.status_code == 403


def test_the_summary_page_takes_a_fixed_number_of_queries(
    survey: Survey, manager: Client, earlier_frame: list[str], django_assert_num_queries: object
) -> None:
    url = reverse("respondents:frame_summary", kwargs={"survey": survey.slug})

    # session, user, permissions (2), survey, the counts in one pass, the design, and
    # which derived variables the frame brings as its own columns
    with django_assert_num_queries(8):  # type: ignore[operator]
        response = manager.get(url)

    assert response.status_code == 200
    assert "3 firms in the frame" in response.content.decode()


def test_a_frame_that_brings_its_own_industry_group_is_the_authority(
    survey: Survey, manager: Client
) -> None:
    # given: two food manufacturers, one classified by the frame itself as chemical
    factories.frame_unit(survey, ksic="10711", attributes={"industry_group": "chemical"})
    factories.frame_unit(survey, ksic="10711", attributes={"industry_group": ""})

    # when
    groups = (
        FrameUnit.objects.filter(survey=survey)
        .annotate(group=frame_variable("industry_group"), area=frame_variable("region_area"))
        .order_by("pk")
        .values_list("group", "area")
    )
    page = manager.get(reverse("respondents:frame_summary", kwargs={"survey": survey.slug}))

    # then: the frame's column as given, derivation only where it is blank; the page says so
    assert list(groups) == [("chemical", "capital"), ("food_beverage", "capital")]
    text = page.content.decode()
    assert "Industry group: as given in the frame's own column" in text
    assert "Region area: derived from the frame's classification" in text
