from __future__ import annotations

import pytest
from django.test import Client, override_settings

from respondents.models import AccessFailure
from surveys.models import Survey
from tests import factories

pytestmark = pytest.mark.django_db


def english() -> Client:
    client = Client()
    client.cookies["django_language"] = "en"
    return client


def test_a_personal_link_signs_the_firm_in_and_shows_the_welcome_page(survey: Survey) -> None:
    case, token, _code = factories.case(survey)
    client = Client()

    response = client.get(f"/r/{token}/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/q/"
    assert case.business_id.encode() in response.content


@pytest.mark.parametrize("token", ["0" * 32, "abc", "'; drop table respondents_case; --"])
def test_an_unknown_or_forged_link_is_a_plain_404(survey: Survey, token: str) -> None:
    factories.case(survey)

    response = Client().get(f"/r/{token}/")

    assert response.status_code == 404


def test_a_revoked_link_stops_working_at_once_even_in_an_open_session(survey: Survey) -> None:
    case, token, _code = factories.case(survey)
    client = Client()
    client.get(f"/r/{token}/")

    case.revoke_credentials()

    assert client.get("/q/").status_code == 302
    assert client.get(f"/r/{token}/").status_code == 404


def test_reissued_credentials_replace_the_old_ones(survey: Survey) -> None:
    case, old_token, old_code = factories.case(survey)

    new_token, new_code = case.issue_credentials()

    assert new_token != old_token and new_code != old_code
    assert Client().get(f"/r/{old_token}/").status_code == 404
    assert Client().get(f"/r/{new_token}/").status_code == 302


def test_the_access_code_signs_in_with_any_spacing_or_case(survey: Survey) -> None:
    case, _token, code = factories.case(survey)
    digits = case.business_id.replace("-", "")

    response = Client().post(
        "/login/", {"business_id": digits, "access_code": code.lower().replace("-", " ")}
    )

    assert response.status_code == 302 and response["Location"] == "/q/"


def test_a_wrong_access_code_is_refused_and_counted(survey: Survey) -> None:
    case, _token, _code = factories.case(survey)

    response = english().post("/login/", {"business_id": case.business_id, "access_code": "AAAAA"})

    assert response.status_code == 200
    assert "not right" in response.content.decode()
    assert AccessFailure.objects.filter(business_id=case.business_id).count() == 1


@override_settings(ACCESS_CODE_MAX_FAILURES=3)
def test_wrong_codes_are_rate_limited_per_business_id(survey: Survey) -> None:
    case, _token, code = factories.case(survey)
    for _attempt in range(3):
        english().post("/login/", {"business_id": case.business_id, "access_code": "WRONG"})

    response = english().post("/login/", {"business_id": case.business_id, "access_code": code})

    assert response.status_code == 200
    assert "Too many wrong access codes" in response.content.decode()


@override_settings(ACCESS_CODE_MAX_FAILURES_PER_CLIENT=4)
def test_wrong_codes_are_rate_limited_per_client(survey: Survey) -> None:
    cases = [factories.case(survey) for _ in range(5)]
    client = english()
    for case, _token, _code in cases[:4]:
        client.post("/login/", {"business_id": case.business_id, "access_code": "WRONG"})

    case, _token, code = cases[4]
    response = client.post("/login/", {"business_id": case.business_id, "access_code": code})

    assert "Too many wrong access codes" in response.content.decode()


def test_a_firm_without_a_session_is_sent_to_sign_in(survey: Survey) -> None:
    response = Client().get("/q/p/profile/")

    assert response.status_code == 302 and response["Location"] == "/login/"


def test_credentials_are_stored_only_as_hashes(survey: Survey) -> None:
    case, token, code = factories.case(survey)
    case.refresh_from_db()

    stored = f"{case.token_hash} {case.code_hash}"
    assert token not in stored and code.replace("-", "") not in stored
    assert case.code_hash.startswith("pbkdf2_sha256_code$")
