"""The staff page of a questionnaire version's edit rules: the list, a file replacing it,
problems shown with nothing changed, and who may open it."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from openpyxl import Workbook

from surveys.models import QuestionnaireVersion, Survey
from surveys.xlsform import load_questionnaire
from tests.conftest import login_as
from tests.xlsforms import CHOICES, EVERY_TYPE, workbook

pytestmark = pytest.mark.django_db
URL = "/manage/smart_manufacturing/edits/"
RULES = "name,type,rule,relevant,message::Korean (ko),message::English (en)\n"


def post(client: Client, data: bytes, name: str, url: str = URL):  # type: ignore[no-untyped-def]
    return client.post(url, {"file": SimpleUploadedFile(name, data)}, follow=True)


def rules_and_statistics() -> bytes:
    book = Workbook()
    edits = book.active
    edits.title = "edits"
    edits.append(["name", "type", "rule", "message::Korean (ko)", "message::English (en)"])
    edits.append(
        ["big_firm", "soft", "${employees} <= ${stat.employees_p90} * 10", "확인", "Check"]
    )
    statistics = book.create_sheet("edit_statistics")
    statistics.append(["name", "expression", "by", "percentile"])
    statistics.append(["employees_p90", "${frame.employees}", "", 90])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_page_lists_the_versions_rules_and_statistics(
    survey: Survey, admin_user_client: Client
) -> None:
    response = admin_user_client.get(URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert "9 rules" in body and "employees_vs_register" in body and "edits, row 2" in body
    assert "${stat.sales_per_employee_p99}" in body and "industry_group" in body
    assert "상시 근로자 수가 조사 대상 명부에" in body


def test_the_questionnaire_page_links_each_surveys_rules(
    survey: Survey, admin_user_client: Client
) -> None:
    body = admin_user_client.get("/manage/questionnaires/upload/").content.decode()

    assert f'href="{URL}"' in body


def test_a_csv_file_replaces_the_rules(survey: Survey, admin_user_client: Client) -> None:
    # given
    data = (
        RULES + "positive,hard,${employees} > 0,,양수로 입력해 주십시오.,Enter a positive number\n"
    )

    # when
    response = post(admin_user_client, data.encode(), "rules.csv")

    # then
    body = response.content.decode()
    assert "Loaded 1 edit rules for version 2024.1." in body
    assert "1 rule" in body and "rules.csv, row 2" in body
    version = QuestionnaireVersion.objects.get()
    assert list(version.edit_rules.values_list("name", flat=True)) == ["positive"]


def test_a_workbook_replaces_the_rules_and_the_statistics(
    survey: Survey, admin_user_client: Client
) -> None:
    post(admin_user_client, rules_and_statistics(), "rules.xlsx")

    version = QuestionnaireVersion.objects.get()
    assert list(version.edit_rules.values_list("name", flat=True)) == ["big_firm"]
    assert list(version.edit_statistics.values_list("name", "by")) == [("employees_p90", "")]


def test_a_bad_file_shows_its_problems_and_changes_nothing(
    survey: Survey, admin_user_client: Client
) -> None:
    # given
    data = RULES + "positive,must,${employes} > 0,,양수,Positive\n"

    # when
    response = post(admin_user_client, data.encode(), "rules.csv")

    # then
    body = response.content.decode()
    assert "The file was not loaded. Nothing has changed." in body
    assert "rules.csv, row 2, column “type”: the type must be hard or soft" in body
    assert "rules.csv, row 2, column “rule”: ${employes} refers to no question" in body
    assert QuestionnaireVersion.objects.get().edit_rules.count() == 9


def test_each_version_has_its_own_rules(survey: Survey, admin_user_client: Client) -> None:
    # given: a second version, which has no rules and no question "employees"
    load_questionnaire(
        workbook(EVERY_TYPE, CHOICES, {"form_id": "smart_manufacturing", "version": "2"})
    )
    data = RULES + "positive,soft,${employees} > 0,,양수,Positive\n"

    # when
    current = admin_user_client.get(URL).content.decode()
    post(admin_user_client, data.encode(), "rules.csv", url=URL + "2024.1/")

    # then
    assert "This version has no edit rules." in current
    assert f'href="{URL}2024.1/"' in current
    rules = QuestionnaireVersion.objects.filter(edit_rules__isnull=False)
    assert list(rules.values_list("version", "edit_rules__name")) == [("2024.1", "positive")]


def test_only_survey_administrators_open_the_page(survey: Survey, manager_client: Client) -> None:
    assert manager_client.get(URL).status_code == 403
    assert manager_client.post(URL).status_code == 403
    assert login_as(None).get(URL).status_code == 403
    assert Client().get(URL).status_code == 302
    assert login_as(None, perms=("surveys.load_questionnaire",)).get(URL).status_code == 200
