"""Invitation letters as PDF: one Korean page per firm in the letters CSV's order, the link as
text and as a QR code that phones read back, the access code; a clear message without the
Korean font."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest
import zxingcpp
from django.core.management import call_command
from django.test import Client
from PIL import Image
from pypdf import PdfReader

from config.roles import FIELDWORK_MANAGERS
from respondents import credentials, letters
from respondents.models import Case
from surveys.models import Survey
from tests import factories
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def firms(survey: Survey) -> list[Case]:
    """Three sampled firms with credentials, created out of business-ID order."""
    cases = [factories.case(survey)[0] for _ in range(3)]
    return sorted(cases, key=lambda case: case.business_id)


def pdf_of(survey: Survey) -> bytes:
    out = io.BytesIO()
    letters.write_letters_pdf(survey, out)
    return out.getvalue()


def csv_of(survey: Survey) -> list[dict[str, str]]:
    out = io.StringIO()
    credentials.write_letters(survey, out)
    return list(csv.DictReader(io.StringIO(out.getvalue().lstrip("\ufeff"))))


def page_texts(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_one_korean_page_per_firm_in_the_order_of_the_letters_csv(
    survey: Survey, firms: list[Case]
) -> None:
    # when
    texts = page_texts(pdf_of(survey))
    rows = csv_of(survey)

    # then
    assert len(texts) == len(rows) == 3
    for text, row in zip(texts, rows, strict=True):
        assert row["business_id"] in text
        assert row["access_code"] in text
        assert row["link"] in text.replace("\n", "")
        assert f"{row['name']} 조사 담당자 귀하" in text
        assert "응답 방법" in text and "중소벤처기업부" in text


def test_the_qr_code_reads_back_as_the_personal_link(
    survey: Survey, firms: list[Case], tmp_path: Path
) -> None:
    # given
    if shutil.which("pdftoppm") is None:
        pytest.fail("Debian's poppler-utils renders the pages: apt-get install poppler-utils")
    path = tmp_path / "letters.pdf"
    path.write_bytes(pdf_of(survey))
    links = [row["link"] for row in csv_of(survey)]

    # when: each page printed at 150 dpi and read by a barcode reader
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(path), str(tmp_path / "p")], check=True)
    found = [
        [code.text for code in zxingcpp.read_barcodes(Image.open(page))]
        for page in sorted(tmp_path.glob("p-*.png"))
    ]

    # then
    assert found == [[link] for link in links]


def test_without_the_korean_font_the_manager_is_told_what_to_install(
    survey: Survey, firms: list[Case], settings: object, tmp_path: Path
) -> None:
    # given
    settings.LETTER_FONT = str(tmp_path / "missing.ttf")  # type: ignore[attr-defined]
    manager = client_for(staff_user(FIELDWORK_MANAGERS))

    # when
    response = manager.get(f"/manage/{survey.slug}/credentials/letters.pdf", follow=True)

    # then
    assert response.redirect_chain[-1][0] == f"/manage/{survey.slug}/credentials/"
    assert "apt-get install fonts-nanum" in response.content.decode()


def test_the_manager_downloads_the_letters_uncached(survey: Survey, firms: list[Case]) -> None:
    # given
    manager: Client = client_for(staff_user(FIELDWORK_MANAGERS))

    # when
    response = manager.get(f"/manage/{survey.slug}/credentials/letters.pdf")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Cache-Control"] == "no-store"
    data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert len(PdfReader(io.BytesIO(data)).pages) == 3


def test_the_command_writes_the_pdf_beside_the_csv(
    survey: Survey, firms: list[Case], tmp_path: Path
) -> None:
    # when
    out = io.StringIO()
    call_command(
        "issue_credentials",
        survey.slug,
        "--out",
        str(tmp_path / "letters.csv"),
        "--pdf",
        str(tmp_path / "letters.pdf"),
        stdout=out,
    )

    # then
    assert "Wrote 3 letters" in out.getvalue()
    assert len(PdfReader(tmp_path / "letters.pdf").pages) == 3


def test_a_survey_without_credentials_gets_one_page_saying_so(survey: Survey) -> None:
    # given
    factories.case(survey, credentials=False)

    # when
    texts = page_texts(pdf_of(survey))

    # then
    assert len(texts) == 1
    assert "개인 링크와 접속 코드가 발급된 기업이 없습니다" in texts[0]
