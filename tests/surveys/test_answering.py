from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from respondents.models import Case
from surveys.models import AnswerChange, Response
from tests.factories import Respondent
from tests.surveys.answering import ADOPTER, NON_ADOPTER, answer_all, post_page, shown_on

pytestmark = pytest.mark.django_db


def stored(case: Case) -> dict:
    return Response.objects.get(case=case).answers


def test_each_page_is_saved_when_the_firm_moves_on(respondent: Respondent) -> None:
    respondent.client.get("/q/")

    result = post_page(respondent.client, "profile", ADOPTER["profile"])

    assert result.status_code == 302 and result["Location"] == "/q/p/awareness/"
    assert stored(respondent.case) == {"employees": 45, "sales_krw_mn": 12500.5}


def test_the_adopter_path_visits_adopter_pages(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    for page in ("profile", "awareness"):
        post_page(respondent.client, page, ADOPTER[page])

    result = post_page(respondent.client, "adoption", {"sf_adopted": "yes"})

    assert result["Location"] == "/q/p/sf_status/"


def test_the_non_adopter_path_skips_adopter_pages(respondent: Respondent) -> None:
    respondent.client.get("/q/")
    for page in ("profile", "awareness"):
        post_page(respondent.client, page, NON_ADOPTER[page])

    result = post_page(respondent.client, "adoption", {"sf_adopted": "no"})

    assert result["Location"] == "/q/p/ai/"


def test_a_skipped_page_cannot_be_opened_directly(respondent: Respondent) -> None:
    answer_all(respondent.client, {k: NON_ADOPTER[k] for k in ("profile", "awareness", "adoption")})

    result = respondent.client.get("/q/p/sf_status/")

    assert result.status_code == 302 and result["Location"] == "/q/p/ai/"


def test_answers_that_no_longer_apply_are_cleared(respondent: Respondent) -> None:
    answer_all(
        respondent.client,
        {k: ADOPTER[k] for k in ("profile", "awareness", "adoption", "sf_status", "sf_data")},
    )
    assert stored(respondent.case)["sf_level"] == "basic"

    post_page(respondent.client, "adoption", {"sf_adopted": "no"})

    answers = stored(respondent.case)
    assert answers["sf_adopted"] == "no"
    assert not {"sf_level", "sf_scope", "sf_tech", "data_collect", "main_area"} & set(answers)


def test_calculations_are_stored_with_the_answers(respondent: Respondent) -> None:
    answer_all(respondent.client, {k: ADOPTER[k] for k in ("profile", "awareness")})

    assert stored(respondent.case)["important_top2"] == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"employees": "many", "sales_krw_mn": "1"}, "employees", "Enter a whole number."),
        ({"employees": "0", "sales_krw_mn": "1"}, "employees", None),
        ({"employees": "20000", "sales_krw_mn": "1"}, "employees", None),
        ({"employees": "10", "sales_krw_mn": "1e400"}, "sales_krw_mn", "Enter a number."),
        ({"employees": "", "sales_krw_mn": "1"}, "employees", None),
    ],
)
def test_bad_input_gets_a_message_and_keeps_what_was_saved(
    respondent: Respondent, data: dict, field: str, message: str | None
) -> None:
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})

    result = post_page(respondent.client, "profile", data)

    body = result.content.decode()
    assert result.status_code == 200
    assert 'id="error-summary"' in body and f'href="#q-{field}"' in body
    if message:
        assert message in body
    assert stored(respondent.case) == {"employees": 45, "sales_krw_mn": 12500.5}


def test_an_unknown_option_is_refused(respondent: Respondent) -> None:
    respondent.client.get("/q/")

    result = post_page(
        respondent.client, "awareness", {"importance": "<script>", "implementing": "maybe"}
    )

    body = result.content.decode()
    assert "is not one of the options" in body and "<script>" not in body
    assert stored(respondent.case) == {}


def test_an_answer_to_a_question_that_does_not_apply_is_dropped_with_a_message(
    respondent: Respondent,
) -> None:
    answer_all(
        respondent.client,
        {k: ADOPTER[k] for k in ("profile", "awareness", "adoption", "sf_status")},
    )

    result = post_page(
        respondent.client,
        "sf_data",
        {"data_collect": "no", "data_analyze": "yes", "main_area": "finance"},
    )

    assert result.status_code == 302
    assert "data_analyze" not in stored(respondent.case)
    page = respondent.client.get(result["Location"]).content.decode()
    assert "was not kept because the question does not apply" in page


def test_an_oversize_post_is_refused_and_changes_nothing(respondent: Respondent) -> None:
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})

    result = post_page(
        respondent.client, "profile", {"employees": "1" * 600_000, "sales_krw_mn": "2"}
    )

    assert result.status_code == 400
    assert "too large" in result.content.decode()
    assert stored(respondent.case) == {"employees": 45, "sales_krw_mn": 12500.5}


def test_autosave_keeps_typed_text_and_reports_skip_logic(respondent: Respondent) -> None:
    answer_all(
        respondent.client,
        {k: ADOPTER[k] for k in ("profile", "awareness", "adoption", "sf_status")},
    )
    revision = Response.objects.get(case=respondent.case).revision

    result = post_page(
        respondent.client, "sf_data", {"data_collect": "no", "main_area": "oth"}, autosave=True
    )

    body = result.json()
    assert body["saved"] and body["revision"] == revision + 1
    assert "data_analyze" not in body["relevant"] and "main_area" in body["relevant"]
    assert body["current"]["main_area"] == "oth"
    assert Response.objects.get(case=respondent.case).drafts["main_area"] == "oth"


def test_autosaved_typing_is_shown_again_after_a_reload(respondent: Respondent) -> None:
    respondent.client.get("/q/")

    post_page(
        respondent.client, "profile", {"employees": "4", "sales_krw_mn": "12,5"}, autosave=True
    )

    page = respondent.client.get("/q/p/profile/").content.decode()
    assert 'value="4"' in page and 'value="12,5"' in page
    assert stored(respondent.case) == {}


def colleague_answers_awareness_after_i_opened_it(
    respondent: Respondent, colleague: Client
) -> dict[str, Any]:
    """What my awareness page showed before a colleague answered it."""
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})
    mine = shown_on(respondent.client, "awareness")
    post_page(colleague, "awareness", ADOPTER["awareness"], shown=shown_on(colleague, "awareness"))
    return mine


def test_a_field_another_person_changed_since_the_page_was_shown_is_a_conflict_for_it_alone(
    respondent: Respondent, colleague: Client
) -> None:
    mine = colleague_answers_awareness_after_i_opened_it(respondent, colleague)

    result = post_page(
        respondent.client,
        "awareness",
        {"importance": "neutral", "implementing": "yes"},
        shown=mine,
    )

    body = result.content.decode()
    assert result.status_code == 409
    assert "Another person of your company saved this answer" in body
    assert 'value="neutral" checked' in body and 'value="mine:importance"' in body
    assert 'value="mine:implementing"' not in body
    assert stored(respondent.case)["importance"] == "very_important"


def test_keeping_my_answer_after_a_conflict_stores_it(
    respondent: Respondent, colleague: Client
) -> None:
    mine = colleague_answers_awareness_after_i_opened_it(respondent, colleague)
    post_page(respondent.client, "awareness", {"importance": "neutral"}, shown=mine)

    again = post_page(respondent.client, "awareness", {"importance": "neutral"}, shown=mine)
    assert again.status_code == 409, "Next never overwrites without a decision"
    decided = respondent.client.post(
        "/q/p/awareness/",
        {
            "importance": "neutral",
            "implementing": "yes",
            "shown": json.dumps(mine),
            "seen__importance": json.dumps("very_important"),
            "decide": "mine:importance",
        },
    )

    assert decided.status_code == 200
    assert Response.objects.get(case=respondent.case).drafts["importance"] == "neutral"
    assert post_page(respondent.client, "awareness", {}).status_code == 302
    assert stored(respondent.case)["importance"] == "neutral"


def test_taking_the_stored_answer_after_a_conflict_keeps_it(
    respondent: Respondent, colleague: Client
) -> None:
    mine = colleague_answers_awareness_after_i_opened_it(respondent, colleague)

    respondent.client.post(
        "/q/p/awareness/",
        {
            "importance": "neutral",
            "shown": json.dumps(mine),
            "seen__importance": json.dumps("very_important"),
            "decide": "theirs:importance",
        },
    )

    assert post_page(respondent.client, "awareness", {}).status_code == 302
    assert stored(respondent.case)["importance"] == "very_important"


def test_fields_two_people_change_merge(respondent: Respondent, colleague: Client) -> None:
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})
    mine, theirs = shown_on(respondent.client, "profile"), shown_on(colleague, "profile")

    post_page(colleague, "profile", {"employees": "46", "sales_krw_mn": "12500.5"}, shown=theirs)
    result = post_page(
        respondent.client, "profile", {"employees": "45", "sales_krw_mn": "999"}, shown=mine
    )

    assert result.status_code == 302
    assert stored(respondent.case) == {"employees": 46, "sales_krw_mn": 999}


def test_one_browser_is_never_in_conflict_with_itself_and_a_late_save_loses_nothing(
    respondent: Respondent,
) -> None:
    respondent.client.get("/q/")
    first = shown_on(respondent.client, "profile")
    # The newer save arrives first; the older one (a save-on-leave) arrives late.
    newer = {"employees": "999", "sales_krw_mn": "", "clock": "2000"}
    older = {"employees": "99", "sales_krw_mn": "", "clock": "1000"}
    post_page(respondent.client, "profile", newer, shown=first, autosave=True)
    late = post_page(respondent.client, "profile", older, shown=first, autosave=True)

    assert late.status_code == 200 and not late.json()["conflict"]
    assert Response.objects.get(case=respondent.case).drafts["employees"] == "999"
    # A reloaded page showing the old value, then another answer: the stored one stands.
    post_page(
        respondent.client,
        "profile",
        {"employees": "", "sales_krw_mn": "12", "clock": "3000"},
        shown=first,
        autosave=True,
    )
    assert Response.objects.get(case=respondent.case).drafts == {
        "employees": "999",
        "sales_krw_mn": "12",
    }


def test_every_change_is_kept_in_the_answer_history(
    respondent: Respondent, colleague: Client
) -> None:
    answer_all(respondent.client, {"profile": ADOPTER["profile"]})
    post_page(
        colleague,
        "profile",
        {"employees": "46", "sales_krw_mn": "12500.5"},
        shown=shown_on(colleague, "profile"),
    )

    changes = list(
        AnswerChange.objects.filter(response__case=respondent.case)
        .order_by("at", "pk")
        .values_list("item", "old", "new", "editor")
    )
    assert changes == [
        ("employees", None, 45, "firm"),
        ("sales_krw_mn", None, 12500.5, "firm"),
        ("employees", 45, 46, "firm"),
    ]


def test_an_oversize_draft_answer_is_refused(respondent: Respondent) -> None:
    respondent.client.get("/q/")

    result = post_page(
        respondent.client, "profile", {"employees": "9" * 5000, "sales_krw_mn": "1"}, autosave=True
    )

    assert "employees" in result.json()["errors"]
    assert Response.objects.get(case=respondent.case).drafts == {"sales_krw_mn": "1"}


def test_resuming_in_a_new_session_returns_to_the_last_page(respondent: Respondent) -> None:
    answer_all(respondent.client, {k: ADOPTER[k] for k in ("profile", "awareness")})
    from django.test import Client

    second_device = Client()
    second_device.get(f"/r/{respondent.token}/")
    welcome = second_device.get("/q/").content.decode()

    assert 'href="/q/p/adoption/"' in welcome


def test_a_number_typed_with_its_unit_is_read(respondent: Respondent) -> None:
    respondent.client.get("/q/")

    result = post_page(
        respondent.client, "profile", {"employees": "35명", "sales_krw_mn": "12,500 백만 원"}
    )

    assert result.status_code == 302
    assert stored(respondent.case) == {"employees": 35, "sales_krw_mn": 12500}


@pytest.mark.parametrize("shown", ['"x"', "[1]", "null", "not json", '{"employees": 5}'])
def test_a_forged_shown_field_is_taken_as_not_said(respondent: Respondent, shown: str) -> None:
    respondent.client.get("/q/")

    result = respondent.client.post(
        "/q/p/profile/", {"employees": "45", "sales_krw_mn": "12500.5", "shown": shown}
    )

    assert result.status_code == 302
    assert stored(respondent.case) == {"employees": 45, "sales_krw_mn": 12500.5}
