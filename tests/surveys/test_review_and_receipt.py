"""What the firm reads on the review page and its receipt: numbers with their unit, in the
language it chose."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from surveys.questionnaire import Form
from tests.factories import Respondent
from tests.surveys.answering import ADOPTER, answer_all

pytestmark = pytest.mark.django_db

UNITS = {
    "ko": ["45 명", "12,500.5 백만 원", "300 백만 원"],
    "en": ["45 persons", "12,500.5 KRW million", "300 KRW million"],
}


def answers_shown(page: bytes) -> list[str]:
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dd)).strip()
        for dd in re.findall(r'<dd class="col-sm-6[^"]*">(.*?)</dd>', page.decode(), re.S)
    ]


@pytest.mark.parametrize("language", ["ko", "en"])
def test_the_review_page_gives_numbers_their_unit(respondent: Respondent, language: str) -> None:
    answer_all(respondent.client, ADOPTER)
    respondent.client.cookies["django_language"] = language

    shown = answers_shown(respondent.client.get("/q/review/").content)

    assert all(unit in shown for unit in UNITS[language]), shown
    assert "031-123-4567" in shown  # text keeps no unit


@pytest.mark.parametrize("language", ["ko", "en"])
def test_the_receipt_gives_numbers_their_unit(respondent: Respondent, language: str) -> None:
    answer_all(respondent.client, ADOPTER)
    respondent.client.post("/q/review/")
    respondent.client.cookies["django_language"] = language

    shown = answers_shown(respondent.client.get("/q/receipt/").content)

    assert all(unit in shown for unit in UNITS[language]), shown


def test_a_number_without_a_unit_is_shown_as_a_number() -> None:
    question = Form(
        {
            "form_id": "f",
            "version": "1",
            "title": {},
            "languages": ["ko"],
            "pages": [
                {
                    "name": "p",
                    "label": {},
                    "questions": [
                        {"name": "n", "type": "decimal", "page": "p", "row": 2},
                        {"name": "m", "type": "integer", "page": "p", "row": 3, "unit": {}},
                    ],
                }
            ],
        }
    ).questions

    with translation.override("en"):
        assert question["n"].display(1234.5) == "1,234.5"
        assert question["m"].display(1234) == "1,234"
        assert question["m"].display(None) == ""
