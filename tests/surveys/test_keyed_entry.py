"""Staff key in answers received by phone, fax or paper through the web questionnaire."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from respondents.models import Case, DispositionEvent
from surveys.models import Response, Survey
from tests import factories
from tests.factories import Respondent
from tests.surveys.answering import NON_ADOPTER, answer_all, post_page

pytestmark = pytest.mark.django_db


def key_in(client: Client, base: str, answers: dict[str, dict[str, str]]) -> None:
    client.get(base)
    for page, data in answers.items():
        payload = {**data, "action": "next"}
        result = client.post(f"{base}p/{page}/", payload)
        assert result.status_code == 302, result.content.decode()[-1500:]


def test_a_manager_keys_in_a_phone_interview_and_it_is_recorded_as_such(
    survey: Survey, manager_client: Client
) -> None:
    case = factories.case(survey)[0]
    base = f"/manage/{survey.slug}/cases/{case.pk}/key/phone/"

    key_in(manager_client, base, NON_ADOPTER)
    result = manager_client.post(f"{base}review/")

    assert result["Location"] == f"{base}receipt/"
    response = Response.objects.get(case=case)
    assert (response.status, response.mode) == ("submitted", "phone")
    assert response.keyed_by is not None and response.answers["mfg_ai"] == "none"
    event = DispositionEvent.objects.get(case=case, code="1.1")
    assert event.source == "manager" and event.by == response.keyed_by


def test_keyed_entry_applies_the_web_rules(survey: Survey, manager_client: Client) -> None:
    case = factories.case(survey)[0]
    base = f"/manage/{survey.slug}/cases/{case.pk}/key/paper/"
    manager_client.get(base)

    result = manager_client.post(
        f"{base}p/profile/",
        {
            "employees": "0",
            "sales_krw_mn": "10",
            "revision": "0",
            "editor": "desk-1",
            "action": "next",
        },
    )

    assert result.status_code == 200 and 'id="error-summary"' in result.content.decode()
    assert Response.objects.get(case=case).answers == {}


def test_a_firm_continues_what_the_call_centre_started(
    survey: Survey, manager_client: Client
) -> None:
    case, token, _code = factories.case(survey)
    base = f"/manage/{survey.slug}/cases/{case.pk}/key/phone/"
    key_in(manager_client, base, {"profile": NON_ADOPTER["profile"]})

    firm = Client()
    firm.get(f"/r/{token}/")
    page = firm.get("/q/p/profile/").content.decode()

    assert 'value="8"' in page
    assert Response.objects.get(case=case).mode == "phone"


def test_an_unknown_mode_is_not_found(survey: Survey, manager_client: Client) -> None:
    case = factories.case(survey)[0]

    assert (
        manager_client.get(f"/manage/{survey.slug}/cases/{case.pk}/key/email/").status_code == 404
    )


def test_the_case_page_traces_each_answer_to_the_firm_or_the_staff_who_changed_it(
    survey: Survey, manager_client: Client, respondent: Respondent, colleague: Client
) -> None:
    answer_all(respondent.client, {"profile": NON_ADOPTER["profile"]})
    post_page(colleague, "profile", {"employees": "9", "sales_krw_mn": "900"})
    base = f"/manage/{survey.slug}/cases/{respondent.case.pk}/key/phone/"
    manager_client.get(base)
    manager_client.post(
        f"{base}p/profile/", {"employees": "10", "sales_krw_mn": "900", "action": "save"}
    )

    page = manager_client.get(f"/manage/{survey.slug}/cases/{respondent.case.pk}/")

    staff = page.wsgi_request.user.get_username()
    assert [row[1:] for row in rows_of(page)] == [
        ["employees", "9 persons", "10 persons", "staff keyed entry", staff],
        ["employees", "8 persons", "9 persons", "the firm (web)", "browser 2"],
        ["sales_krw_mn", "—", "900 KRW million", "the firm (web)", "browser 1"],
        ["employees", "—", "8 persons", "the firm (web)", "browser 1"],
    ]


def rows_of(page: Any) -> list[list[str]]:
    return [
        [
            row["change"].at,
            row["change"].item,
            row["old"] or "—",
            row["new"] or "—",
            str(row["change"].get_editor_display()),
            row["who"],
        ]
        for row in page.context["history"]
    ]


def test_a_reserve_not_yet_released_offers_no_keyed_entry(
    survey: Survey, manager_client: Client
) -> None:
    case = factories.case(survey)[0]
    Case.objects.filter(pk=case.pk).update(is_reserve=True)

    page = manager_client.get(f"/manage/{survey.slug}/cases/{case.pk}/").content.decode()

    assert "/key/phone/" not in page and "not yet released" in page
