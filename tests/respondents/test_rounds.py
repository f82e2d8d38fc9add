"""The next round of a survey: started from the last (what is copied, the page that does it),
and last year's answers shown to the firm and read by edit rules (${last.<question>})."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from analytics.models import WeightingSpec
from config import simulation
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from config.rounds import start_next_round
from respondents.models import Case, MessageTemplate, SampleDesign
from surveys.edits import check_response
from surveys.models import EditRule, EditStatistic, Response, Survey
from surveys.workbooks import FormError
from surveys.xlsform import load_questionnaire, read_definition
from tests import factories
from tests.conftest import staff_user
from tests.xlsforms import q, workbook

pytestmark = pytest.mark.django_db


def next_round(survey: Survey, **fields: Any) -> Survey:
    values = {"slug": "smart_2025", "title": "2025 조사", "title_en": "2025 survey", "year": 2025}
    return start_next_round(survey, **{**values, **fields}, user=None)


# --- starting the next round ----------------------------------------------------------------


def test_the_next_round_copies_questionnaire_weighting_templates_and_design(
    survey: Survey,
) -> None:
    # given: a round with two weighting versions, an edited template and a PRN draw
    WeightingSpec.objects.create(survey=survey, version=1, spec={"variance": "taylor"})
    WeightingSpec.objects.create(survey=survey, version=2, spec={"variance": "jackknife"})
    MessageTemplate.objects.create(
        survey=survey, kind="invitation", language="ko", subject="초대", body="{link}"
    )
    factories.design(
        survey, selection="prn", sample_size=3000, allocation="power", power=0.5, seed=5
    )
    version = survey.questionnaires.get()

    # when
    new = next_round(survey)

    # then
    assert (new.previous_round, new.year, new.title_en) == (survey, 2025, "2025 survey")
    copied = new.questionnaires.get()
    assert new.current_questionnaire == copied and copied.pk != version.pk
    assert copied.definition["pages"] == version.definition["pages"]
    assert copied.definition["form_id"] == "smart_2025"
    assert bytes(copied.source) == bytes(version.source) and copied.version == version.version
    assert list(EditRule.objects.filter(questionnaire=copied).values_list("name", "rule")) == list(
        EditRule.objects.filter(questionnaire=version).values_list("name", "rule")
    )
    assert (
        EditStatistic.objects.filter(questionnaire=copied).count()
        == (EditStatistic.objects.filter(questionnaire=version).count())
        > 0
    )
    assert list(new.weighting_specs.values_list("version", "spec")) == [
        (1, {"variance": "jackknife"})
    ]
    assert list(new.message_templates.values_list("kind", "subject")) == [("invitation", "초대")]
    design = new.designs.get()
    assert design.drawn_at is None and not design.strata.exists()
    assert (design.sample_size, design.allocation, design.power) == (3000, "power", 0.5)
    assert (design.selection, design.coordination) == ("prn", "positive")


def test_the_previous_round_is_left_as_it_was(survey: Survey) -> None:
    version = survey.current_questionnaire

    next_round(survey)

    survey.refresh_from_db()
    assert survey.current_questionnaire == version and survey.previous_round is None
    assert list(survey.next_rounds.values_list("slug", flat=True)) == ["smart_2025"]


def test_an_administrator_starts_the_next_round_on_its_page(survey: Survey) -> None:
    # given
    client = Client()
    client.cookies["django_language"] = "en"
    client.force_login(staff_user(ADMINISTRATORS))
    url = f"/manage/{survey.slug}/next-round/"
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["form"]["year"].initial == timezone.localdate().year
    assert "roles are groups of staff for every survey" in " ".join(page.content.decode().split())

    # when
    data = {"slug": "smart_2025", "title": "2025 조사", "title_en": "2025", "year": "2025"}
    response = client.post(url, data)

    # then
    assert response.status_code == 302 and response["Location"] == "/manage/smart_2025/"
    assert Survey.objects.get(slug="smart_2025").previous_round == survey
    again = client.post(url, data)
    assert again.status_code == 200
    assert "A survey with this ID exists already." in again.content.decode()


def test_a_fieldwork_manager_may_not_start_a_round(survey: Survey) -> None:
    client = Client()
    client.force_login(staff_user(FIELDWORK_MANAGERS))

    assert client.get(f"/manage/{survey.slug}/next-round/").status_code == 403
    assert client.post(f"/manage/{survey.slug}/next-round/", {}).status_code == 403
    assert Survey.objects.count() == 1


# --- last year's answers ----------------------------------------------------------------------


@pytest.fixture
def second(survey: Survey) -> Survey:
    """The next round, its questionnaire edited to show and check last year's headcount."""
    new = next_round(survey)
    data = simulation.next_round_workbook(
        bytes(survey.questionnaires.get().source),
        form_id=new.slug,
        version="2025.1",
        title="2025 조사",
        title_en="2025 survey",
    )
    load_questionnaire(data, survey_slug=new.slug)
    return new


def answered_last_year(survey: Survey, employees: int) -> Case:
    case = factories.case(survey)[0]
    Response.objects.create(
        case=case,
        questionnaire_id=survey.questionnaire_id,
        status="submitted",
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
        answers={"employees": employees, "sales_krw_mn": 900.0},
    )
    return case


def sign_in(case: Case) -> Client:
    token, _code = case.issue_credentials()
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.get(f"/r/{token}/").status_code == 302
    return client


def test_the_firm_sees_last_years_answer_on_its_page(survey: Survey, second: Survey) -> None:
    # given
    before = answered_last_year(survey, 1042)
    case = factories.case(second, credentials=False, employees=1000)[0]
    Case.objects.filter(pk=case.pk).update(previous=before)

    # when
    page = sign_in(case).get("/q/p/profile/")

    # then
    text = page.content.decode()
    assert "Last year you reported 1,042 employees." in text
    assert "${last" not in text


def test_a_firm_new_this_year_sees_no_line_about_last_year(survey: Survey, second: Survey) -> None:
    case = factories.case(second, credentials=False)[0]

    page = sign_in(case).get("/q/p/profile/")

    text = page.content.decode()
    assert "Last year you reported" not in text and "${last" not in text
    assert "Include the owner or CEO" in text  # the rest of the hint stays


def test_an_edit_rule_reads_last_years_answer(survey: Survey, second: Survey) -> None:
    # given: 1,042 employees last year
    before = answered_last_year(survey, 1042)
    case = factories.case(second, credentials=False, employees=1000)[0]
    Case.objects.filter(pk=case.pk).update(previous=before)
    response = Response.objects.start(Case.objects.get(pk=case.pk))

    # when: 5,000 this year (more than twice), then 1,100
    response.answers = {"employees": 5000, "sales_krw_mn": 900.0}
    tripled = [f.rule for f in check_response(response)]
    response.answers = {"employees": 1100, "sales_krw_mn": 900.0}
    steady = [f.rule for f in check_response(response)]

    # then
    assert "employees_vs_last_year" in tripled
    assert "employees_vs_last_year" not in steady


def test_the_rule_does_not_apply_to_a_firm_without_last_years_answer(second: Survey) -> None:
    case = factories.case(second, credentials=False, employees=1000)[0]
    response = Response.objects.start(case)
    response.answers = {"employees": 5000, "sales_krw_mn": 900.0}

    assert "employees_vs_last_year" not in [f.rule for f in check_response(response)]


def test_the_firm_is_asked_to_check_an_answer_far_from_last_years(
    survey: Survey, second: Survey
) -> None:
    before = answered_last_year(survey, 1042)
    case = factories.case(second, credentials=False, employees=1000)[0]
    Case.objects.filter(pk=case.pk).update(previous=before)
    client = sign_in(case)
    client.get("/q/")

    page = client.post("/q/p/profile/", {"employees": "4000", "sales_krw_mn": "900"})

    assert page.status_code == 200
    assert 'name="confirm" value="employees_vs_last_year"' in page.content.decode()


def test_a_label_without_last_years_answer_shows_a_dash(survey: Survey) -> None:
    survey_rows = [q("integer", "employees", "Employees (last year: ${last.employees})")]
    version = load_questionnaire(workbook(survey_rows), survey_slug=survey.slug)
    case = factories.case(survey, credentials=False)[0]
    Response.objects.start(case)

    page = sign_in(case).get(f"/q/p/page_{'employees'}/")

    assert version.form.reads_last
    assert "Employees (last year: —)" in page.content.decode()


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([q("integer", "employees", "Last year: ${last.staff}")],
         "${last.staff} refers to no question in this form"),
        ([q("integer", "last.employees", "Employees")],
         "a question may not be called “last.employees”"),
    ],
)  # fmt: skip
def test_last_names_are_checked_when_the_form_is_loaded(
    rows: list[dict[str, str]], problem: str
) -> None:
    with pytest.raises(FormError) as refused:
        read_definition(workbook(rows))

    assert any(problem in p for p in refused.value.problems)


def test_an_edit_rule_may_read_only_last_years_answers_to_questions(survey: Survey) -> None:
    rows = [q("integer", "employees", "Employees")]
    edits = [{"name": "r", "type": "soft", "rule": "${employees} < 2 * ${last.staff}"}]

    with pytest.raises(FormError) as refused:
        load_questionnaire(workbook(rows, sheets={"edits": edits}), survey_slug=survey.slug)

    assert any("${last.staff} refers to no question" in p for p in refused.value.problems)
    assert SampleDesign.objects.count() == 0
