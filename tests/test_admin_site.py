"""The Django admin for administrators: every record to read; answers, dispositions and the
other records with a history never editable there; the surveys' titles editable."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from surveys.models import Response, Survey
from tests import factories
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db
READ_ONLY = [
    "surveys/response", "surveys/questionnaireversion", "respondents/case",
    "respondents/frameunit", "respondents/dispositionevent", "respondents/contactattempt",
    "respondents/message", "respondents/wave", "respondents/messagetemplate",
    "analytics/estimaterun", "analytics/download", "analytics/exportjob", "analytics/apitoken",
]  # fmt: skip


def admin_client(role: str = ADMINISTRATORS) -> Client:
    user = staff_user(role)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return client_for(user)


def answered(survey: Survey) -> Response:
    case = factories.submitted_case(survey)
    response = Response.objects.get(case=case)
    response.answers = {"employees": 12}
    response.save(update_fields=["answers"])
    return response


def test_an_administrator_sees_every_record_in_the_admin(survey: Survey) -> None:
    # given
    client = admin_client()
    answered(survey)

    # when
    index = client.get("/admin/").content.decode()

    # then
    assert "have permission to view or edit anything" not in index
    for path in READ_ONLY:
        assert f"/admin/{path}/" in index, path
        assert client.get(f"/admin/{path}/").status_code == 200, path


@pytest.mark.parametrize("superuser", [False, True])
def test_a_firms_answers_cannot_be_changed_in_the_admin(survey: Survey, superuser: bool) -> None:
    # given
    response = answered(survey)
    if superuser:
        user = User.objects.create_superuser("root", password="x")
        client = client_for(user)
    else:
        client = admin_client()
    url = f"/admin/surveys/response/{response.pk}/change/"

    # when
    page = client.get(url)
    posted = client.post(url, {"answers": '{"employees": 9999}', "status": "submitted"})

    # then: shown read-only, and a change is refused
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    response.refresh_from_db()
    assert response.answers == {"employees": 12}
    assert client.post(f"/admin/surveys/response/{response.pk}/delete/").status_code == 403


@pytest.mark.parametrize("path", ["respondents/case", "respondents/dispositionevent"])
def test_dispositions_cannot_be_changed_in_the_admin(survey: Survey, path: str) -> None:
    case = factories.submitted_case(survey)
    pk = case.pk if path.endswith("case") else case.disposition_events.get().pk
    client = admin_client()

    posted = client.post(f"/admin/{path}/{pk}/change/", {"disposition": "2.111", "code": "2.111"})

    assert posted.status_code == 403
    case.refresh_from_db()
    assert case.disposition == "1.1"


def test_an_administrator_edits_a_surveys_titles_and_target(survey: Survey) -> None:
    client = admin_client()
    url = f"/admin/surveys/survey/{survey.pk}/change/"
    form: dict[str, Any] = {"title": survey.title, "title_en": "Smart Manufacturing Survey 2024"}

    client.post(url, {**form, "target_responses": "3000"})

    survey.refresh_from_db()
    assert survey.title_en == "Smart Manufacturing Survey 2024"
    assert survey.target_responses == 3000


def test_a_fieldwork_manager_made_staff_still_sees_nothing_there(survey: Survey) -> None:
    index = admin_client(FIELDWORK_MANAGERS).get("/admin/").content.decode()

    assert "have permission to view or edit anything" in index
