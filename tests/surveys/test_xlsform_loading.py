from __future__ import annotations

import pytest

from surveys.models import QuestionnaireVersion, Survey
from surveys.xlsform import FormError, load_questionnaire
from tests import factories
from tests.xlsforms import CHOICES, EVERY_TYPE, q, workbook

pytestmark = pytest.mark.django_db


def test_the_shipped_questionnaire_loads_with_every_page_and_language() -> None:
    version = factories.shipped_questionnaire()

    form = version.form
    assert version.survey.slug == "smart_manufacturing"
    assert version.version == "2024.1"
    assert [p.name for p in form.pages] == [
        "profile",
        "awareness",
        "adoption",
        "sf_status",
        "sf_data",
        "sf_future",
        "ai",
        "contact",
    ]
    assert form.languages == ["en", "ko"]
    assert form.questions["sf_level"].page == "sf_status"
    assert form.page_by_name["sf_status"].relevant == "${sf_adopted} = 'yes'"
    assert form.questions["importance"].core and form.questions["contact_email"].pii
    assert form.questions["sf_adopted"].text("en").startswith("Has your company")


def test_a_form_with_every_supported_type_loads_and_keeps_its_rules() -> None:
    version = load_questionnaire(workbook(EVERY_TYPE, CHOICES))

    form = version.form
    types = {name: question.type for name, question in form.questions.items()}
    assert types == {
        "adopted": "select_one",
        "staff": "integer",
        "sales": "decimal",
        "tech": "select_multiple",
        "staff_x2": "calculate",
        "intro2": "note",
        "comment": "text",
        "visited": "date",
    }
    assert form.questions["staff"].constraint_message == {"en": "Between 1 and 500"}
    assert form.questions["tech"].choice_names == ("erp", "mes", "iot")
    assert form.questions["adopted"].choice_text("no", "ko") == "아니요"
    assert form.page_by_name["p2"].relevant == "${staff} > 5 or not(${adopted} = 'no')"


def test_a_unit_column_names_what_a_number_counts_in_each_language() -> None:
    form = load_questionnaire(
        workbook(
            [
                q("integer", "staff", "Staff", **{"unit::Korean (ko)": "명"}),
                q("decimal", "sales", "Sales", **{"unit::English (en)": "million won"}),
                q("decimal", "area", "Area", unit="m²"),
                q("integer", "plants", "Plants"),
            ],
            settings={"form_id": "units", "version": "1", "default_language": "Korean (ko)"},
        )
    ).form

    assert form.questions["staff"].unit == {"ko": "명"}
    assert form.questions["sales"].unit_text("en") == "million won"
    assert form.questions["sales"].unit_text("ko") == "million won"  # the only one there is
    assert form.questions["area"].unit == {"ko": "m²"}  # a plain column: the default language
    assert form.questions["plants"].unit_text("ko") == ""


def test_a_unit_on_a_question_that_is_not_a_number_is_refused() -> None:
    problems = _problems([q("integer", "a", "A"), q("text", "b", "B", unit="명")])

    assert problems == [
        "survey sheet, row 3: a “unit” applies only to integer and decimal questions"
    ]


def test_loading_a_new_version_keeps_the_old_one() -> None:
    load_questionnaire(workbook(EVERY_TYPE, CHOICES))

    second = load_questionnaire(
        workbook(EVERY_TYPE, CHOICES, {"form_id": "test_form", "version": "2"})
    )

    assert list(second.survey.questionnaires.values_list("version", flat=True).order_by("pk")) == [
        "1",
        "2",
    ]
    assert second.survey.current_questionnaire == second


def _problems(
    survey_rows: list[dict[str, str]],
    choices: list[dict[str, str]] | None = CHOICES,
    settings: dict[str, str] | None = None,
) -> list[str]:
    with pytest.raises(FormError) as info:
        load_questionnaire(workbook(survey_rows, choices, settings))
    assert not Survey.objects.exists() and not QuestionnaireVersion.objects.exists()
    return info.value.problems


def test_an_unknown_type_is_refused_with_its_row() -> None:
    problems = _problems(
        [
            q("begin_group", "p", "P"),
            q("integer", "a", "A"),
            q("geopoint", "where", "Where"),
            q("end_group", ""),
        ]
    )

    assert any("row 4" in p and "geopoint" in p for p in problems), problems


def test_an_undefined_reference_is_refused_with_row_and_column() -> None:
    problems = _problems([q("integer", "a", "A"), q("integer", "b", "B", relevant="${nope} > 1")])

    assert problems == [
        "survey sheet, row 3, column “relevant”: ${nope} refers to no question in this form."
    ]


def test_a_broken_expression_is_refused_with_row_and_column() -> None:
    problems = _problems([q("integer", "a", "A", constraint=". >= ")])

    assert len(problems) == 1
    assert problems[0].startswith("survey sheet, row 2, column “constraint”:")


def test_a_name_used_twice_anywhere_in_the_form_is_refused() -> None:
    problems = _problems(
        [
            q("begin_group", "p1", "P1"),
            q("integer", "a", "A"),
            q("end_group", ""),
            q("begin_group", "p2", "P2"),
            q("text", "a", "Again"),
            q("end_group", ""),
        ]
    )

    assert problems == [
        "survey sheet, row 6: the name “a” is already used on row 3; names must be unique in "
        "the whole form."
    ]


def test_a_missing_choice_list_is_refused() -> None:
    problems = _problems([q("select_one colours", "colour", "Colour")])

    assert len(problems) == 1 and "colours" in problems[0]


def test_a_form_without_a_version_is_refused() -> None:
    problems = _problems([q("integer", "a", "A")], settings={"form_id": "x"})

    assert "version" in problems[0]


def test_loading_the_same_version_twice_is_refused_and_changes_nothing() -> None:
    load_questionnaire(workbook(EVERY_TYPE, CHOICES))

    with pytest.raises(FormError, match="already loaded"):
        load_questionnaire(workbook(EVERY_TYPE, CHOICES))
    assert QuestionnaireVersion.objects.count() == 1


def test_a_file_that_is_not_a_workbook_is_refused() -> None:
    with pytest.raises(FormError, match="could not be read"):
        load_questionnaire(b"\x00\x01 definitely not a spreadsheet")
