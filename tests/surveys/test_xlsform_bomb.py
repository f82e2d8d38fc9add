"""A compressed XLSForm bomb is refused before any parser reads it, and large forms are
loaded by the worker, not in the request (the probe: a 5.1 MB .xlsx expanding to 151 MB of
400,000 note rows took 39 s and 2 GB of memory, and was accepted)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from surveys.models import QuestionnaireUpload, QuestionnaireVersion
from surveys.xlsform import load_upload
from tests import factories

pytestmark = pytest.mark.django_db
SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><worksheet '
    'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)


def bomb(rows: int) -> bytes:
    """An .xlsx whose survey sheet holds `rows` identical note rows, deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(SHEET_HEAD.encode())
            for number in range(1, rows + 1):
                row = (
                    f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>note</t></is></c>'
                    f'<c r="B{number}" t="inlineStr"><is><t>n{number}</t></is></c></row>'
                )
                sheet.write(row.encode())
            sheet.write(b"</sheetData></worksheet>")
    return out.getvalue()


def upload(client: Client, data: bytes) -> Any:
    file = SimpleUploadedFile("form.xlsx", data)
    return client.post("/manage/questionnaires/upload/", {"file": file})


def test_a_bomb_of_400000_rows_is_refused_by_its_expanded_size(admin_user_client: Client) -> None:
    # given: a few megabytes that unpack to far more
    data = bomb(400_000)
    assert len(data) < 10 * 2**20

    # when
    response = upload(admin_user_client, data)

    # then
    assert response.status_code == 200
    assert "unpacks to more than 30 MB" in response.content.decode()
    assert not QuestionnaireVersion.objects.exists()
    assert not QuestionnaireUpload.objects.exists()


@override_settings(MAX_FORM_EXPANDED_BYTES=200 * 2**20)
def test_too_many_rows_are_refused_while_counting_them(admin_user_client: Client) -> None:
    response = upload(admin_user_client, bomb(25_000))

    assert "more than 20,000 rows" in response.content.decode()
    assert not QuestionnaireVersion.objects.exists()


def test_a_zip_that_is_not_a_workbook_is_refused_with_a_message(
    admin_user_client: Client,
) -> None:
    response = upload(admin_user_client, b"PK\x03\x04" + b"\x00" * 200)

    assert "could not be read" in response.content.decode()


@override_settings(FORM_INLINE_BYTES=1000)
def test_a_large_form_is_loaded_by_the_worker(
    admin_user_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the shipped form, larger than what the request loads itself
    data = factories.SHIPPED_FORM.read_bytes()

    # when
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = upload(admin_user_client, data)
    page = admin_user_client.get(response["Location"])

    # then
    assert len(queued) == 1
    assert response.status_code == 302 and "/manage/questionnaires/upload/" in response["Location"]
    job = QuestionnaireUpload.objects.get()
    assert job.status == "done" and job.version is not None
    assert QuestionnaireVersion.objects.get().version == "2024.1"
    assert bytes(job.source) == b""  # the file lives on in the version, not twice
    assert "2024.1" in page.content.decode()


@override_settings(FORM_INLINE_BYTES=1000)
def test_a_large_broken_form_shows_its_problems_on_the_upload_page(
    admin_user_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given: a workbook that is a zip but no XLSForm
    data = bomb(50)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_user_client, data)
    page = admin_user_client.get(response["Location"])

    # then
    assert QuestionnaireUpload.objects.get().status == "failed"
    assert 'id="error-summary"' in page.content.decode()
    assert not QuestionnaireVersion.objects.exists()


def test_the_worker_loads_an_upload_once() -> None:
    job = QuestionnaireUpload.objects.create(source=factories.SHIPPED_FORM.read_bytes())

    first, second = load_upload(job.pk), load_upload(job.pk)

    assert (first, second) == ("done", "skipped")
    assert QuestionnaireVersion.objects.count() == 1
