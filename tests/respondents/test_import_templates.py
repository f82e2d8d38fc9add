"""Import templates: the columns the importers read and an example row that passes every
rule except the business ID, which is not a sampled firm's on purpose."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from config.roles import FIELDWORK_MANAGERS
from respondents import import_templates, imports
from respondents.frame_import import REQUIRED_COLUMNS, import_frame
from respondents.models import Case, DispositionEvent, FrameUnit
from respondents.tabular import ImportRefused
from surveys.models import Response, Survey, get_form
from tests import factories
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def with_business_id(data: bytes, business_id: str) -> bytes:
    header, example = rows_of(data)
    example[header.index("business_id")] = business_id
    out = io.StringIO()
    csv.writer(out).writerows([header, example])
    return out.getvalue().encode()


def template_csv(survey: Survey, kind: str) -> bytes:
    return import_templates.write(import_templates.template(survey, kind), "csv")


def test_the_templates_have_the_importers_columns(survey: Survey) -> None:
    # when
    headers = {kind: rows_of(template_csv(survey, kind))[0] for kind in import_templates.KINDS}

    # then
    form = get_form(survey.current_questionnaire_id)  # type: ignore[arg-type]
    assert headers["frame"] == list(REQUIRED_COLUMNS)
    assert headers["dispositions"] == [*imports.DISPOSITION_COLUMNS, "override"]
    assert headers["responses"] == ["business_id", *(q.name for q in form.inputs())]


def test_the_frame_template_imports_as_it_is(survey: Survey) -> None:
    # when
    import_frame(survey, io.BytesIO(template_csv(survey, "frame")), filename="frame.csv")

    # then
    unit = FrameUnit.objects.get(survey=survey)
    assert (unit.business_id, unit.name, unit.size_class, unit.region) == (
        "123-45-67890",
        "(주)예시정밀",
        "small",
        "Gyeonggi",
    )


def test_the_dispositions_example_imports_once_it_names_a_sampled_firm(survey: Survey) -> None:
    # given
    case = factories.case(survey)[0]
    data = template_csv(survey, "dispositions")

    # when: unchanged, nothing is recorded; with a sampled firm's ID, the row is accepted
    with pytest.raises(ImportRefused) as refused:
        imports.import_dispositions(survey, io.BytesIO(data), filename="d.csv")
    imports.import_dispositions(
        survey, io.BytesIO(with_business_id(data, case.business_id)), filename="d.csv"
    )

    # then
    assert [p for p in refused.value.problems if "business" in str(p)]
    assert len(refused.value.problems) == 1
    assert DispositionEvent.objects.get(case=case).code == "2.111"


def test_the_responses_example_passes_every_rule_of_the_questionnaire(survey: Survey) -> None:
    # given
    case = factories.case(survey)[0]
    data = template_csv(survey, "responses")

    # when
    with pytest.raises(ImportRefused) as refused:
        imports.import_responses(survey, io.BytesIO(data), filename="r.csv", mode="paper")
    imports.import_responses(
        survey,
        io.BytesIO(with_business_id(data, case.business_id)),
        filename="r.csv",
        mode="paper",
    )

    # then: only the placeholder ID was refused; the example answers are a complete response
    assert len(refused.value.problems) == 1
    response = Response.objects.get(case=case)
    assert response.status == Response.Status.SUBMITTED
    assert Case.objects.get(pk=case.pk).disposition in ("1.1", "1.2")


def test_the_workbook_explains_each_column(survey: Survey) -> None:
    # when
    data = import_templates.write(import_templates.template(survey, "responses"), "xlsx")

    # then
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["responses", "columns"]
    notes = {row[0]: row for row in book["columns"].iter_rows(min_row=2, values_only=True)}
    assert "sf_adopted" in notes
    assert "yes = " in notes["sf_adopted"][2]
    assert "Only when" in notes["sf_level"][2]
    assert book["responses"]["A2"].value == "123-45-67890"


def test_templates_are_served_to_those_who_may_import(survey: Survey) -> None:
    # given
    manager = client_for(staff_user(FIELDWORK_MANAGERS))
    frame_only = client_for(staff_user(perms=("respondents.manage_frame",)))
    base = f"/manage/{survey.slug}/imports/templates/"

    # when
    xlsx = manager.get(base + "responses.xlsx")
    frame = frame_only.get(base + "frame.csv")
    refused = frame_only.get(base + "dispositions.csv")

    # then
    assert xlsx.status_code == 200 and xlsx["Content-Type"].startswith("application/vnd.")
    assert f"{survey.slug}-responses-template.xlsx" in xlsx["Content-Disposition"]
    assert frame.status_code == 200 and frame.content.startswith(b"\xef\xbb\xbf")
    assert refused.status_code == 403
    assert manager.get(base + "letters.csv").status_code == 404
