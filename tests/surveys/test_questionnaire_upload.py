from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from surveys.models import QuestionnaireVersion
from tests import factories
from tests.conftest import login_as
from tests.xlsforms import CHOICES, EVERY_TYPE, q, workbook

pytestmark = pytest.mark.django_db
URL = "/manage/questionnaires/upload/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload(client: Client, data: bytes, name: str = "form.xlsx"):  # type: ignore[no-untyped-def]
    return client.post(URL, {"file": SimpleUploadedFile(name, data, XLSX)}, follow=True)


def test_an_administrator_loads_the_shipped_questionnaire(admin_user_client: Client) -> None:
    response = upload(admin_user_client, factories.SHIPPED_FORM.read_bytes())

    assert "Loaded version 2024.1" in response.content.decode()
    assert QuestionnaireVersion.objects.get().survey.slug == "smart_manufacturing"


def test_a_broken_form_shows_its_problems_and_changes_nothing(admin_user_client: Client) -> None:
    broken = workbook([q("integer", "a", "A", relevant="${missing} > 1")], CHOICES)

    response = upload(admin_user_client, broken)

    body = response.content.decode()
    assert "Nothing has changed" in body and "${missing} refers to no question" in body
    assert not QuestionnaireVersion.objects.exists()


def test_a_file_of_another_type_is_refused(admin_user_client: Client) -> None:
    response = upload(admin_user_client, workbook(EVERY_TYPE, CHOICES), name="form.pdf")

    assert "Upload a file of type" in response.content.decode()
    assert not QuestionnaireVersion.objects.exists()


def test_managers_cannot_load_questionnaires(manager_client: Client) -> None:
    assert manager_client.get(URL).status_code == 403
    assert login_as(None).get(URL).status_code == 403
    assert Client().get(URL).status_code == 302
