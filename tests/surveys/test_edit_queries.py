"""Queries to a firm about its submitted answers (sec. L): the reviewer asks, the firm gets an
email with a personal link, and on a page that shows only the questioned items confirms or
corrects each answer, once. Every change is traced; the firm's own answers stay."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from analytics.models import EditFlag, RecomputeRequest
from config.roles import FIELDWORK_MANAGERS
from config.tokens import hash_token
from respondents.models import ContactAttempt
from surveys.models import EditQuery, Response, Survey, ValueEdit
from tests import factories
from tests.conftest import client_for, staff_user
from tests.services import MailServer

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://[^\s]+/check/([0-9a-f]{32})/")


def review_url(response: Response) -> str:
    return f"/manage/{response.case.survey.slug}/editing/cases/{response.case_id}/"


def firm_client(language: str = "en") -> Client:
    client = Client()
    client.cookies["django_language"] = language
    return client


@pytest.fixture
def flagged(survey: Survey) -> tuple[Response, EditFlag, EditFlag]:
    """A submitted response with two open flags: employees and sales."""
    response = factories.submitted_response(survey, email="ceo@daehan.example", name="(주)대한")
    employees = factories.edit_flag(response, rule="employees_vs_register", score=0.4)
    sales = factories.edit_flag(response, rule="sales_per_employee", item="sales_krw_mn")
    return response, employees, sales


def ask(
    client: Client, response: Response, flags: list[EditFlag], capture: Any, note: str = ""
) -> Any:
    data = {"action": "query", "query-flags": [f.pk for f in flags], "query-note": note}
    with capture(execute=True):
        return client.post(review_url(response), data)


def query_and_token(smtp_server: MailServer) -> tuple[EditQuery, str]:
    found = LINK.search(smtp_server.body())
    assert found, smtp_server.body()
    query = EditQuery.objects.get(token_hash=hash_token(found[1]))
    return query, found[1]


def answer(client: Client, token: str, **decisions: Any) -> Any:
    return client.post(f"/check/{token}/", decisions)


# --- the reviewer asks -----------------------------------------------------------------------


def test_the_reviewer_asks_the_firm_and_the_email_brings_the_link(
    flagged: tuple[Response, EditFlag, EditFlag],
    smtp_server: MailServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    response, employees, sales = flagged
    user = staff_user(FIELDWORK_MANAGERS)

    # when
    result = ask(
        client_for(user),
        response,
        [sales, employees],
        django_capture_on_commit_callbacks,
        "Please check the units.",
    )

    # then: one query, its flags queried, the email sent to the frame's address
    assert result.status_code == 302
    query, token = query_and_token(smtp_server)
    assert [entry["item"] for entry in query.items] == ["employees", "sales_krw_mn"]
    assert query.note == "Please check the units." and query.created_by == user
    assert query.sent_at is not None and query.answered_at is None
    assert query.token_hash == hash_token(token) and token not in str(query.items)
    for flag in (employees, sales):
        flag.refresh_from_db()
        assert (flag.status, flag.query, flag.resolved_by) == ("queried", query, user)
    assert smtp_server.recipients() == ["ceo@daehan.example"]
    body = smtp_server.body()
    assert body.index("(주)대한") < body.index("Dear (주)대한")  # Korean first, then English
    assert "상시 근로자 수" in body and "How many regular employees" in body
    assert "Please check the units." in body and str(response.reference) in body
    assert (
        "스마트제조혁신 실태조사" in smtp_server.subject()
        and "please check" in smtp_server.subject()
    )
    contact = ContactAttempt.objects.get(case=response.case)
    assert (contact.channel, contact.outcome) == ("email", "sent")


def test_a_firm_without_an_email_address_cannot_be_asked(
    survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    response = factories.submitted_response(survey, email="")
    flag = factories.edit_flag(response)

    result = ask(
        client_for(staff_user(FIELDWORK_MANAGERS)),
        response,
        [flag],
        django_capture_on_commit_callbacks,
    )

    assert result.status_code == 200
    assert "no email address" in result.content.decode()
    assert not EditQuery.objects.exists()
    flag.refresh_from_db()
    assert flag.status == "open"


def test_asking_about_a_flag_already_decided_is_refused(
    flagged: tuple[Response, EditFlag, EditFlag], django_capture_on_commit_callbacks: Any
) -> None:
    response, employees, _sales = flagged
    EditFlag.objects.filter(pk=employees.pk).update(status="accepted")

    result = ask(
        client_for(staff_user(FIELDWORK_MANAGERS)),
        response,
        [employees],
        django_capture_on_commit_callbacks,
    )

    assert result.status_code == 200
    assert not EditQuery.objects.exists()


def test_an_email_that_could_not_be_sent_can_be_sent_again_with_a_new_link(
    flagged: tuple[Response, EditFlag, EditFlag],
    smtp_server: MailServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: the mail server refuses the address at first
    response, employees, _sales = flagged
    smtp_server.refuse.add("ceo@daehan.example")
    client = client_for(staff_user(FIELDWORK_MANAGERS))
    ask(client, response, [employees], django_capture_on_commit_callbacks)
    query = EditQuery.objects.get()
    first_hash = query.token_hash
    assert query.sent_at is None
    assert ContactAttempt.objects.get(case=response.case).outcome == "bounced"
    assert "not sent" in client.get(review_url(response)).content.decode()

    # when
    smtp_server.refuse.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(review_url(response), {"action": "resend", "resend-query": query.pk})

    # then
    query.refresh_from_db()
    assert query.sent_at is not None and query.token_hash != first_hash
    assert query_and_token(smtp_server)[0] == query


# --- the firm answers ------------------------------------------------------------------------


@pytest.fixture
def asked(
    flagged: tuple[Response, EditFlag, EditFlag],
    smtp_server: MailServer,
    django_capture_on_commit_callbacks: Any,
) -> tuple[Response, EditQuery, str]:
    response, employees, sales = flagged
    client = client_for(staff_user(FIELDWORK_MANAGERS))
    ask(
        client,
        response,
        [employees, sales],
        django_capture_on_commit_callbacks,
        "단위를 확인해 주세요.",
    )
    query, token = query_and_token(smtp_server)
    return response, query, token


def test_the_link_shows_only_the_questioned_items_in_korean_first(
    asked: tuple[Response, EditQuery, str],
) -> None:
    # given
    _response, _query, token = asked

    # when
    korean = firm_client("ko").get(f"/check/{token}/")
    english = firm_client("en").get(f"/check/{token}/")

    # then
    assert korean.status_code == english.status_code == 200
    ko, en = korean.content.decode(), english.content.decode()
    assert "상시 근로자 수" in ko and "45 명" in ko and "12,500.5 백만 원" in ko
    assert "응답이 모집단 명부 값과 크게 다릅니다" in ko and "단위를 확인해 주세요." in ko
    assert "How many regular employees" in en and "45 persons" in en
    assert "the answer is far from the register" in en
    for page in (ko, en):
        assert 'name="importance"' not in page and "very_important" not in page
        assert "smart factory" not in page.lower()  # no other question
        assert 'href="/i18n/setlang/' in page or "setlang" in page  # the language switch


def test_the_firm_confirms_one_answer_and_corrects_another(
    asked: tuple[Response, EditQuery, str],
) -> None:
    # given
    response, query, token = asked
    client = firm_client()

    # when
    result = answer(
        client,
        token,
        employees__decision="confirm",
        employees__comment="We hired for a new plant.",
        sales_krw_mn__decision="correct",
        sales_krw_mn="1,250.5",
    )

    # then: a correction is an edit by the firm, a confirmation the rule's confirmation
    assert result.status_code == 302
    response.refresh_from_db()
    assert response.answers["sales_krw_mn"] == 12500.5  # the firm's own answer stays
    assert response.edited == {"sales_krw_mn": 1250.5}
    edit = ValueEdit.objects.get()
    assert (edit.kind, edit.item, edit.old, edit.new, edit.rule) == (
        "firm", "sales_krw_mn", 12500.5, 1250.5, "sales_per_employee",
    )  # fmt: skip
    confirmed = response.confirmations["employees_vs_register"]
    assert confirmed["values"]["employees"] == 45 and confirmed["at"]
    assert confirmed["comment"] == "We hired for a new plant." and confirmed["query"] == query.pk
    query.refresh_from_db()
    assert query.answered_at is not None
    assert [e["answer"]["corrected"] for e in query.items] == [False, True]
    assert RecomputeRequest.objects.filter(reason="query answered").count() == 1
    thanks = client.get(f"/check/{token}/").content.decode()
    assert "We have received your answers" in thanks and "1,250.5 KRW million" in thanks


def test_the_answered_flags_come_back_to_the_reviewer(
    asked: tuple[Response, EditQuery, str],
) -> None:
    response, _query, token = asked
    answer(firm_client(), token, employees__decision="confirm", sales_krw_mn__decision="confirm")

    page = client_for(staff_user(FIELDWORK_MANAGERS)).get(
        f"/manage/{response.case.survey.slug}/editing/"
    )

    assert [row["flag"].status for row in page.context["rows"]] == ["answered", "answered"]
    assert set(EditFlag.objects.values_list("status", flat=True)) == {"answered"}


@pytest.mark.parametrize(
    ("decisions", "message"),
    [
        ({"sales_krw_mn__decision": "confirm"}, "Confirm this answer, or give the correct one."),
        ({"employees__decision": "correct", "employees": "many"}, "Enter a whole number."),
        ({"employees__decision": "correct", "employees": "0"}, "between 1 and 10,000"),
        ({"employees__decision": "correct", "employees": ""}, "Enter the correct answer."),
        ({"employees__decision": "maybe"}, "Select a valid choice"),
    ],
)
def test_a_wrong_answer_is_shown_with_its_error_and_nothing_is_saved(
    asked: tuple[Response, EditQuery, str], decisions: dict[str, str], message: str
) -> None:
    # given
    response, query, token = asked
    posted = {"employees__decision": "confirm", "sales_krw_mn__decision": "confirm", **decisions}
    if "sales_krw_mn__decision" in decisions and "employees__decision" not in decisions:
        posted.pop("employees__decision")

    # when
    result = answer(firm_client(), token, **posted)

    # then
    assert result.status_code == 200
    page = result.content.decode()
    assert message in page and 'id="error-summary"' in page
    query.refresh_from_db()
    response.refresh_from_db()
    assert query.answered_at is None and response.edited == {} and response.confirmations == {}
    assert not ValueEdit.objects.exists()


def test_answering_twice_is_refused_politely(asked: tuple[Response, EditQuery, str]) -> None:
    # given
    response, _query, token = asked
    client = firm_client()
    answer(client, token, employees__decision="confirm", sales_krw_mn__decision="confirm")

    # when
    again = answer(
        client,
        token,
        employees__decision="correct",
        employees="50",
        sales_krw_mn__decision="confirm",
    )

    # then
    assert again.status_code == 409
    assert "These questions were answered already" in again.content.decode()
    response.refresh_from_db()
    assert response.edited == {} and not ValueEdit.objects.exists()


def test_a_query_answered_meanwhile_is_not_answered_again(
    asked: tuple[Response, EditQuery, str],
) -> None:
    # given: the page was loaded, then another person of the firm answered
    response, query, _token = asked
    stale = EditQuery.objects.get(pk=query.pk)
    query.answer({"employees": _confirm(45), "sales_krw_mn": _confirm(12500.5)})

    # when
    taken = stale.answer({"employees": _confirm(50, True), "sales_krw_mn": _confirm(1.0, True)})

    # then
    assert taken is False
    response.refresh_from_db()
    assert response.edited == {}


def _confirm(value: Any, corrected: bool = False) -> Any:
    from surveys.models import QueryAnswer

    return QueryAnswer(value, corrected)


@pytest.mark.parametrize("token", ["0" * 32, "short", "g" * 32])
def test_a_forged_link_gets_a_clear_page_and_saves_nothing(
    asked: tuple[Response, EditQuery, str], token: str
) -> None:
    response, _query, _token = asked
    client = firm_client()

    shown, posted = (
        client.get(f"/check/{token}/"),
        answer(client, token, employees__decision="correct", employees="50"),
    )

    assert shown.status_code == posted.status_code == 404
    assert "This link does not work" in shown.content.decode()
    response.refresh_from_db()
    assert response.edited == {}


def test_the_query_page_does_not_sign_the_firm_in(asked: tuple[Response, EditQuery, str]) -> None:
    _response, _query, token = asked
    client = firm_client()
    client.get(f"/check/{token}/")

    welcome = client.get("/q/")
    assert welcome.status_code == 302 and welcome["Location"].startswith("/login/")


# --- the trail -------------------------------------------------------------------------------


def test_the_case_page_lists_the_edits_and_the_queries(
    asked: tuple[Response, EditQuery, str],
) -> None:
    # given
    response, _query, token = asked
    answer(
        firm_client(),
        token,
        employees__decision="confirm",
        sales_krw_mn__decision="correct",
        sales_krw_mn="1250.5",
    )
    user = staff_user(FIELDWORK_MANAGERS, name="reviewer-lee")
    response.edit("employees", 40, kind="corrected", by=user, reason="call with the CFO", rule="r9")

    # when
    page = client_for(user).get(f"/manage/{response.case.survey.slug}/cases/{response.case_id}/")

    # then
    html = page.content.decode()
    assert page.status_code == 200
    for text in (
        "reviewer-lee",
        "call with the CFO",
        "r9",
        "corrected by staff",
        "answered by the firm on a query",
        "1,250.5 KRW million",
        "12,500.5 KRW million",
    ):
        assert text in html, text
    assert "Queries to the firm" in html and "How many regular employees" in html
