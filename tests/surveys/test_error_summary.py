"""The error summary joins a question and its error without doubled punctuation."""

from __future__ import annotations

import pytest
from django.template import engines
from django.utils import translation
from django.utils.html import escape

from config.jinja2 import summary_item
from surveys.models import Response
from tests.factories import Respondent
from tests.surveys.answering import ADOPTER, answer_all

# The summary's line in templates/jinja2/respondent/page.jinja.
SUMMARY_LINE = (
    '{% for q, message in errors %}<li><a href="#q-{{ q.name }}">'
    "{{ summary_item(q.text(), message) }}</a></li>{% endfor %}"
)


@pytest.mark.parametrize(
    ("question", "joined"),
    [
        ("구체적으로 적어 주십시오.", "구체적으로 적어 주십시오: 오류"),
        ("귀사의 상시 근로자 수는 몇 명입니까?", "귀사의 상시 근로자 수는 몇 명입니까: 오류"),
        ("몇 명입니까？ ", "몇 명입니까: 오류"),
        ("적어 주십시오。", "적어 주십시오: 오류"),
        ("Is it ready?!", "Is it ready: 오류"),
        ("Amount:", "Amount: 오류"),
        ("Amount：", "Amount: 오류"),
        ("Sales (KRW million)", "Sales (KRW million): 오류"),
        ("응답자 성명", "응답자 성명: 오류"),
        ("?", "?: 오류"),
    ],
)
def test_trailing_punctuation_gives_way_to_the_colon(question: str, joined: str) -> None:
    assert summary_item(question, "오류") == joined


def test_the_message_keeps_its_own_punctuation() -> None:
    with translation.override("en"):
        joined = summary_item("Please specify the other area.", "Please enter a response.")

    assert joined == "Please specify the other area: Please enter a response."


def test_the_summary_line_escapes_what_it_joins() -> None:
    class Question:
        name = "other"

        def text(self) -> str:
            return "<b>기타</b>를 적어 주십시오."

    template = engines["jinja2"].from_string(SUMMARY_LINE)

    html = template.render({"errors": [(Question(), "내용을 입력해 주십시오.")]})

    assert html == (
        '<li><a href="#q-other">&lt;b&gt;기타&lt;/b&gt;를 적어 주십시오: '
        "내용을 입력해 주십시오.</a></li>"
    )


@pytest.mark.django_db
def test_the_review_page_summary_names_each_question(respondent: Respondent) -> None:
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})

    page = respondent.client.get("/q/review/").content.decode()

    summary = page[page.index('id="error-summary"') :]
    summary = summary[: summary.index("</ul>")]
    form = Response.objects.get(case=respondent.case).questionnaire.form
    with translation.override("en"):
        importance = form.questions["importance"].text().rstrip(".?")
    assert escape(importance) in summary
    assert all(": " in item for item in summary.split("<li>")[1:])
