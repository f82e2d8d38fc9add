"""Staff key in answers received by phone, fax or paper through the web questionnaire."""

from __future__ import annotations

import pytest
from django.test import Client

from respondents.models import DispositionEvent
from surveys.models import Response, Survey
from tests import factories
from tests.surveys.answering import NON_ADOPTER

pytestmark = pytest.mark.django_db


def key_in(client: Client, base: str, answers: dict[str, dict[str, str]]) -> None:
    client.get(base)
    for page, data in answers.items():
        revision = Response.objects.values_list("revision", flat=True).get()
        payload = {**data, "revision": str(revision), "editor": "desk-1", "action": "next"}
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
