"""The review queue and the review of one response (sec. L): flags by selective-editing
score, the latest check's figures, and the reviewer's actions on a flag, each traced, each
taken once, whatever the double clicks, the races and the bad input."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from typing import Any

import openpyxl
import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from analytics import review
from analytics.models import Download, EditCheck, EditFlag, RecomputeRequest
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from surveys.models import EditQuery, Response, Survey, ValueEdit
from tests import factories
from tests.conftest import client_for, login_as, staff_user

pytestmark = pytest.mark.django_db


def queue_url(survey: Survey, query: str = "") -> str:
    return f"/manage/{survey.slug}/editing/{query}"


def review_url(response: Response) -> str:
    return f"/manage/{response.case.survey.slug}/editing/cases/{response.case_id}/"


def reviewer() -> Client:
    return login_as(FIELDWORK_MANAGERS)


def html(response: Any) -> str:
    return str(response.content.decode())


def flag_state(flag: EditFlag) -> tuple[str, int, int]:
    flag.refresh_from_db()
    return (
        flag.status,
        ValueEdit.objects.count(),
        RecomputeRequest.objects.filter(reason="edit").count(),
    )


# --- the queue -------------------------------------------------------------------------------


def test_the_queue_lists_open_flags_highest_score_first(survey: Survey) -> None:
    # given
    low = factories.edit_flag(factories.submitted_response(survey, name="(주)낮은점수"), score=0.01)
    high = factories.edit_flag(factories.submitted_response(survey, name="(주)높은점수"), score=0.9)
    decided = factories.edit_flag(
        factories.submitted_response(survey, name="(주)결정됨"), score=0.99, status="accepted"
    )

    # when
    page = html(reviewer().get(queue_url(survey)))

    # then
    assert page.index(high.response.case.business_id) < page.index(low.response.case.business_id)
    assert "(주)높은점수" in page and "0.9000" in page
    assert decided.response.case.business_id not in page


def test_each_row_shows_the_firm_the_rule_message_in_the_active_language_and_the_value(
    survey: Survey,
) -> None:
    # given
    response = factories.submitted_response(survey, name="(주)대한정밀")
    factories.edit_flag(response, rule="sales_per_employee", item="sales_krw_mn")
    korean = reviewer()
    korean.cookies["django_language"] = "ko"

    # when
    english, in_korean = (
        html(reviewer().get(queue_url(survey))),
        html(korean.get(queue_url(survey))),
    )

    # then
    for page in (english, in_korean):
        assert response.case.business_id in page and "(주)대한정밀" in page
        assert "sales_per_employee" in page
    assert "the answer is far from the register" in english
    assert "12,500.5 KRW million" in english
    assert "응답이 모집단 명부 값과 크게 다릅니다" in in_korean
    assert "12,500.5 백만 원" in in_korean


def test_the_queue_is_paginated_and_filtered_by_status_rule_and_severity(survey: Survey) -> None:
    # given
    for number in range(55):
        factories.edit_flag(factories.submitted_response(survey), score=number / 100)
    hard = factories.edit_flag(
        factories.submitted_response(survey), rule="sales_positive", severity="hard", score=0.001
    )
    queried = factories.edit_flag(factories.submitted_response(survey), status="queried")
    client = reviewer()

    # when
    first, second = client.get(queue_url(survey)), client.get(queue_url(survey, "?page=2"))
    by_rule = client.get(queue_url(survey, "?rule=sales_positive"))
    by_severity = client.get(queue_url(survey, "?severity=hard&page=1"))
    by_status = client.get(queue_url(survey, "?status=queried"))
    everything = client.get(queue_url(survey, "?status=all"))

    # then
    assert len(first.context["rows"]) == 50 and len(second.context["rows"]) == 6
    assert [r["flag"] for r in by_rule.context["rows"]] == [hard]
    assert [r["flag"] for r in by_severity.context["rows"]] == [hard]
    assert [r["flag"] for r in by_status.context["rows"]] == [queried]
    assert everything.context["page"].paginator.count == 57
    assert "rule=sales_positive&amp;page=" not in html(by_rule)  # one page: no page links


def test_the_pages_keep_the_filters(survey: Survey) -> None:
    for _number in range(52):
        factories.edit_flag(factories.submitted_response(survey), rule="r1")

    page = html(reviewer().get(queue_url(survey, "?rule=r1&severity=soft")))

    assert "?rule=r1&amp;severity=soft&amp;page=2" in page


def test_an_unknown_filter_value_is_not_applied(survey: Survey) -> None:
    factories.edit_flag(factories.submitted_response(survey))

    page = reviewer().get(queue_url(survey, "?status=nonsense&rule=nope"))

    assert page.status_code == 200
    assert len(page.context["rows"]) == 1


def test_the_head_says_what_the_latest_check_found(survey: Survey) -> None:
    # given
    EditCheck.objects.create(
        survey=survey,
        checked_at=timezone.now() - dt.timedelta(days=1),
        threshold=0.5,
        responses=1,
        failed=1,
        passed=1,
    )
    EditCheck.objects.create(
        survey=survey,
        threshold=0.02,
        responses=2268,
        failed=412,
        passed=300,
        passed_share={"sales_krw_mn": 0.0123, "employees": 0.004},
        errors=3,
    )

    # when
    page = html(reviewer().get(queue_url(survey)))

    # then
    assert "2,268" in page and "412" in page and "300" in page
    assert "0.0200" in page
    assert "1.23 %" in page and "0.40 %" in page
    assert "3 could not be checked" in page
    assert page.index("How many regular employees") < page.index("What were your company")


def test_the_head_says_no_check_yet(survey: Survey) -> None:
    page = html(reviewer().get(queue_url(survey)))

    assert "No check yet" in page


def test_the_queue_runs_a_fixed_number_of_queries(
    survey: Survey, django_assert_num_queries: Any
) -> None:
    # given
    EditCheck.objects.create(survey=survey, threshold=0.1, passed_share={"employees": 0.1})
    client = reviewer()
    factories.edit_flag(factories.submitted_response(survey))
    client.get(queue_url(survey))  # warm: the form cache of this process

    # when / then
    with django_assert_num_queries(11):
        client.get(queue_url(survey))
    for _number in range(20):
        factories.edit_flag(factories.submitted_response(survey), rule="other")
    with django_assert_num_queries(11):
        client.get(queue_url(survey))


def test_flags_whose_query_the_firm_answered_come_back_as_answered(survey: Survey) -> None:
    # given
    flag = factories.edit_flag(factories.submitted_response(survey), status="queried")
    query = EditQuery.objects.create(
        response=flag.response, items=[], token_hash="x" * 64, answered_at=timezone.now()
    )
    EditFlag.objects.filter(pk=flag.pk).update(query=query)

    # when
    rows = reviewer().get(queue_url(survey)).context["rows"]

    # then
    assert [r["flag"].status for r in rows] == ["answered"]


def test_the_queue_needs_review_edits(survey: Survey) -> None:
    factories.edit_flag(factories.submitted_response(survey))

    assert login_as(None).get(queue_url(survey)).status_code == 403
    assert login_as(ADMINISTRATORS).get(queue_url(survey)).status_code == 200
    assert (
        login_as(None, perms=("analytics.review_edits",)).get(queue_url(survey)).status_code == 200
    )


# --- the review page -------------------------------------------------------------------------


def test_the_review_page_shows_everything_about_the_response(survey: Survey) -> None:
    # given
    response = factories.submitted_response(
        survey, name="(주)검토기업", employees=12, sales_krw_mn=3400, region="Busan", ksic="25112"
    )
    flag = factories.edit_flag(response, rule="employees_vs_register", score=0.25)
    factories.edit_flag(response, rule="sales_per_employee", item="sales_krw_mn", score=0.1)
    response.confirm("sales_per_employee", {"sales_krw_mn": 12500.5}, comment="large order")
    response.edit("employees", 40, kind="corrected", by=staff_user(name="kim"), reason="phone")

    # when
    page = html(reviewer().get(review_url(response)))

    # then
    assert "(주)검토기업" in page and response.case.business_id in page
    assert "How many regular employees" in page and "What were your company" in page
    assert "45 persons" in page and "40 persons" in page  # the firm's answer, the value used
    assert "3,400" in page and "Busan" in page and "25112" in page  # the register
    assert "the answer is far from the register" in page
    assert "The firm confirmed these values for this rule" in page and "large order" in page
    assert "phone" in page and "kim" in page  # the edits so far
    assert f'name="flag" value="{flag.pk}"' in page


def test_the_review_page_of_an_unsubmitted_or_foreign_response_is_not_found(
    survey: Survey,
) -> None:
    case = factories.case(survey)[0]
    other = factories.another_survey()
    client = reviewer()

    assert client.get(f"/manage/{survey.slug}/editing/cases/{case.pk}/").status_code == 404
    foreign = factories.submitted_response(survey)
    assert client.get(f"/manage/{other.slug}/editing/cases/{foreign.case_id}/").status_code == 404


BETWEEN = "Please enter a number of employees between 1 and 10,000."


def post(client: Client, response: Response, action: str, flag: EditFlag, **fields: str) -> Any:
    data = {"action": action, "flag": str(flag.pk)}
    data.update({f"{action}-{flag.pk}-{name}": value for name, value in fields.items()})
    return client.post(review_url(response), data)


def test_accept_keeps_the_value_and_traces_who_and_why(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)
    user = staff_user(FIELDWORK_MANAGERS)

    # when
    result = post(client_for(user), response, "accept", flag, reason="checked the website")

    # then
    assert result.status_code == 302
    flag.refresh_from_db()
    assert (flag.status, flag.resolved_by, flag.resolved_at is not None) == ("accepted", user, True)
    edit = ValueEdit.objects.get()
    assert (edit.kind, edit.item, edit.old, edit.new) == ("accepted", "employees", 45, 45)
    assert (edit.by, edit.reason, edit.rule) == (user, "checked the website", flag.rule)
    response.refresh_from_db()
    assert response.edited == {} and response.answers["employees"] == 45
    assert RecomputeRequest.objects.filter(survey=survey, reason="edit").count() == 1


def test_correct_sets_the_edited_value_parsed_by_the_question(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response, item="sales_krw_mn")

    # when
    result = post(
        reviewer(),
        response,
        "correct",
        flag,
        item="sales_krw_mn",
        value="1,250.5 백만 원",
        reason="typo: one zero too many",
    )

    # then
    assert result.status_code == 302
    response.refresh_from_db()
    assert response.edited == {"sales_krw_mn": 1250.5}
    assert response.answers["sales_krw_mn"] == 12500.5  # the firm's answer stays
    edit = ValueEdit.objects.get()
    assert (edit.kind, edit.old, edit.new, edit.reason) == (
        "corrected",
        12500.5,
        1250.5,
        "typo: one zero too many",
    )
    assert flag_state(flag)[0] == "corrected"
    assert RecomputeRequest.objects.filter(survey=survey, reason="edit").exists()


def test_correct_may_change_another_question_the_rule_read(survey: Survey) -> None:
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(
        response, item="sales_krw_mn", values={"sales_krw_mn": 12500.5, "employees": 45}
    )

    post(reviewer(), response, "correct", flag, item="employees", value="450", reason="thousands")

    response.refresh_from_db()
    assert response.edited == {"employees": 450}


def test_reject_blanks_the_value_for_imputation(survey: Survey) -> None:
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)

    result = post(reviewer(), response, "reject", flag, item="employees", reason="impossible")

    assert result.status_code == 302
    response.refresh_from_db()
    assert response.edited == {"employees": None} and response.edited_values()["employees"] is None
    edit = ValueEdit.objects.get()
    assert (edit.kind, edit.old, edit.new) == ("rejected", 45, None)
    assert flag_state(flag)[0] == "rejected"


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("correct", {"item": "employees", "value": "many", "reason": "x"}, "Enter a whole number"),
        ("correct", {"item": "employees", "value": "20000", "reason": "x"}, BETWEEN),
        ("correct", {"item": "employees", "value": "-3", "reason": "x"}, BETWEEN),
        ("correct", {"item": "employees", "value": "", "reason": "x"}, "This field is required"),
        ("correct", {"item": "employees", "value": "50", "reason": ""}, "This field is required"),
        ("correct", {"item": "employees", "value": "45", "reason": "x"}, "accept it instead"),
        ("correct", {"item": "contact_email", "value": "a@b.kr", "reason": "x"}, "valid choice"),
        ("reject", {"item": "employees", "reason": ""}, "This field is required"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_saved(
    survey: Survey, action: str, fields: dict[str, str], message: str
) -> None:
    # given
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)

    # when
    result = post(reviewer(), response, action, flag, **fields)

    # then
    assert result.status_code == 200
    assert message in html(result)
    assert "invalid-feedback" in html(result)
    assert flag_state(flag) == ("open", 0, 0)
    response.refresh_from_db()
    assert response.edited == {}


def test_a_flag_of_another_survey_is_refused(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    factories.edit_flag(response)
    other_survey = factories.another_survey()
    foreign = factories.edit_flag(factories.submitted_response(other_survey))

    # when
    result = post(reviewer(), response, "reject", foreign, item="employees", reason="x")

    # then
    assert result.status_code == 400
    assert "This is not one of this response&#x27;s flags." in html(result)
    assert flag_state(foreign) == ("open", 0, 0)


def test_a_double_post_makes_one_edit(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)
    client = reviewer()

    # when
    post(client, response, "correct", flag, item="employees", value="50", reason="call")
    again = client.post(
        review_url(response),
        {"action": "correct", "flag": flag.pk, f"correct-{flag.pk}-item": "employees",
         f"correct-{flag.pk}-value": "51", f"correct-{flag.pk}-reason": "call"},
        follow=True,
    )  # fmt: skip

    # then
    assert "Nothing was changed: this flag was already decided" in html(again)
    assert ValueEdit.objects.count() == 1
    response.refresh_from_db()
    assert response.edited == {"employees": 50}


def test_a_decided_flag_offers_no_actions(survey: Survey) -> None:
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response, status="corrected")

    page = html(reviewer().get(review_url(response)))

    assert f'name="flag" value="{flag.pk}"' not in page


def test_the_review_page_runs_a_fixed_number_of_queries(
    survey: Survey, django_assert_num_queries: Any
) -> None:
    response = factories.submitted_response(survey)
    for rule in ("a", "b", "c"):
        factories.edit_flag(response, rule=rule)
    response.edit("employees", 40, kind="corrected")
    client = reviewer()
    client.get(review_url(response))

    with django_assert_num_queries(12):
        client.get(review_url(response))


def test_a_query_asks_for_the_recompute_and_emails_only_after_commit(
    survey: Survey, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    response = factories.submitted_response(survey, email="cfo@firm.example")
    flag = factories.edit_flag(response)

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        query = review.query_firm(survey.pk, [flag.pk], note="", by=staff_user())
        sent_before_commit = len(mailoutbox)
    asked_for = RecomputeRequest.objects.filter(survey=survey, reason="edit").count()
    for callback in callbacks:
        callback()

    # then
    assert sent_before_commit == 0 and asked_for == 1
    assert mailoutbox[0].to == ["cfo@firm.example"]
    query.refresh_from_db()
    assert query.sent_at is not None


# --- the export of every edit ----------------------------------------------------------------


def test_every_edit_of_the_survey_as_csv_and_xlsx(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    user = staff_user(name="park")
    response.edit("employees", 40, kind="corrected", by=user, reason="=HYPERLINK(1)", rule="r1")
    response.edit("sf_tech", ["erp"], kind="firm", rule="r2")
    other = factories.submitted_response(factories.another_survey())
    other.edit("employees", 1, kind="corrected")
    client = reviewer()

    # when
    csv = client.get(f"/manage/{survey.slug}/editing/edits.csv")
    xlsx = client.get(f"/manage/{survey.slug}/editing/edits.xlsx")

    # then
    text = csv.content.decode("utf-8-sig")
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith(
        f"{response.case.business_id},employees,45,40,corrected,r1,'=HYPERLINK(1),park,"
    )
    assert lines[2].startswith(f"{response.case.business_id},sf_tech,erp mes,erp,firm,r2,,,")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[1][:6] == (response.case.business_id, "employees", 45, 40, "corrected", "r1")
    assert rows[1][6] == "'=HYPERLINK(1)"
    assert Download.objects.filter(what="edits", identified=True).count() == 2


# --- races -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_once_make_one_decision(survey: Survey) -> None:
    # given
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)
    users = [staff_user(FIELDWORK_MANAGERS) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(user: Any, value: int) -> None:
        try:
            barrier.wait()
            try:
                review.correct(
                    survey.pk, flag.pk, item="employees", value=value, reason="x", by=user
                )
                outcomes.append("done")
            except review.FlagDecided:
                outcomes.append("refused")
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=decide, args=(u, 50 + k)) for k, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # then
    assert sorted(outcomes) == ["done", "refused"]
    assert ValueEdit.objects.count() == 1
    response.refresh_from_db()
    assert response.edited["employees"] == ValueEdit.objects.get().new


@pytest.mark.django_db(transaction=True)
def test_an_action_waits_for_the_flag_lock_and_then_refuses_a_decided_flag(
    survey: Survey,
) -> None:
    # given: another reviewer holds the flag's row
    response = factories.submitted_response(survey)
    flag = factories.edit_flag(response)
    client = reviewer()
    result: dict[str, Any] = {}

    def act() -> None:
        try:
            result["page"] = post(client, response, "reject", flag, item="employees", reason="x")
        finally:
            connection.close()

    # when
    with transaction.atomic():
        EditFlag.objects.select_for_update().get(pk=flag.pk)
        thread = threading.Thread(target=act)
        thread.start()
        time.sleep(0.5)
        waiting = thread.is_alive()
        EditFlag.objects.filter(pk=flag.pk).update(status="accepted")
    thread.join(10)

    # then
    assert waiting
    assert result["page"].status_code == 302
    assert flag_state(flag)[:2] == ("accepted", 0)
    response.refresh_from_db()
    assert response.edited == {}
