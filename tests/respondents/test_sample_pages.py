"""Manager pages of the sample: design and draw, sample list, exports, reserve, credentials."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import openpyxl
import pytest
from django.contrib.auth.models import User
from django.test import Client

from respondents import sampling
from respondents.models import Case, FrameUnit, SampleDesign, Stratum
from surveys.models import Survey
from tests.conftest import client_for, staff_user
from tests.respondents.test_sampling import DESIGN, add_frame, new_survey, standard_frame

pytestmark = pytest.mark.django_db


def user_with(*codenames: str) -> User:
    user: User = staff_user(perms=tuple(f"respondents.{code}" for code in codenames))
    return user


@pytest.fixture
def drawn() -> Survey:
    survey = new_survey()
    standard_frame(survey)
    sampling.draw_sample(survey, **DESIGN, seed=42, reserve_fraction=0.2)
    return survey


def pages(slug: str, stratum: int) -> list[tuple[str, str]]:
    return [
        ("get", f"/manage/{slug}/design/"),
        ("get", f"/manage/{slug}/sample/"),
        ("get", f"/manage/{slug}/sample/export.csv"),
        ("get", f"/manage/{slug}/sample/export.xlsx"),
        ("post", f"/manage/{slug}/sample/strata/{stratum}/release/"),
        ("get", f"/manage/{slug}/credentials/"),
    ]


# --- permissions -----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_on_every_page(drawn: Survey) -> None:
    stratum = Stratum.objects.first()
    assert stratum is not None

    for method, url in pages(drawn.slug, stratum.pk):
        response = getattr(client_for(None), method)(url)

        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_a_user_without_permission_is_refused_on_every_page(drawn: Survey) -> None:
    stratum = Stratum.objects.first()
    assert stratum is not None
    client = client_for(user_with())

    for method, url in pages(drawn.slug, stratum.pk):
        assert getattr(client, method)(url).status_code == 403, url


def test_fieldwork_staff_see_the_sample_but_cannot_draw_release_or_issue(drawn: Survey) -> None:
    stratum = Stratum.objects.first()
    assert stratum is not None
    client = client_for(user_with("manage_fieldwork"))

    assert client.get(f"/manage/{drawn.slug}/sample/").status_code == 200
    assert client.get(f"/manage/{drawn.slug}/sample/export.csv").status_code == 200
    assert client.get(f"/manage/{drawn.slug}/design/").status_code == 403
    assert client.get(f"/manage/{drawn.slug}/credentials/").status_code == 403
    release = client.post(f"/manage/{drawn.slug}/sample/strata/{stratum.pk}/release/")
    assert release.status_code == 403


def test_contact_details_are_hidden_without_their_permission(drawn: Survey) -> None:
    # given
    first = Case.objects.select_related("frame_unit").order_by("stratum__key", "selection_order")[0]
    plain = client_for(user_with("manage_fieldwork"))
    trusted = client_for(user_with("manage_fieldwork", "view_contact_details"))

    # when
    hidden = plain.get(f"/manage/{drawn.slug}/sample/").content.decode()
    shown = trusted.get(f"/manage/{drawn.slug}/sample/").content.decode()
    hidden_csv = plain.get(f"/manage/{drawn.slug}/sample/export.csv").content.decode()
    shown_csv = trusted.get(f"/manage/{drawn.slug}/sample/export.csv").content.decode()

    # then
    assert first.business_id in hidden and first.business_id in hidden_csv
    assert first.frame_unit.email not in hidden and "@example.com" not in hidden_csv
    assert first.frame_unit.email in shown and first.frame_unit.email in shown_csv


# --- design and draw -------------------------------------------------------------------------


def design_post(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "strata_variables": ["industry_group", "size_class", "region_area"],
        "allocation": "proportional",
        "sample_size": 100,
        "min_per_stratum": 2,
        "seed": 20250428,
        "reserve_fraction": 0.2,
        "preview": "1",
    }
    data.update(changes)
    return data


def test_the_preview_shows_the_allocation_table_and_draws_nothing() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)
    client = client_for(user_with("manage_frame"))

    # when
    response = client.post(f"/manage/{survey.slug}/design/", design_post())

    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="preview-table"' in page and "machinery/micro/capital" in page
    assert (
        "take-all"
        in client.post(
            f"/manage/{survey.slug}/design/", design_post(min_per_stratum=5)
        ).content.decode()
    )
    assert not SampleDesign.objects.exists()


def test_the_draw_needs_the_confirmation_box() -> None:
    survey = new_survey()
    standard_frame(survey)
    client = client_for(user_with("manage_frame"))

    response = client.post(f"/manage/{survey.slug}/design/", design_post(draw="1"))

    assert response.status_code == 200 and "confirm the draw" in response.content.decode()
    assert not SampleDesign.objects.exists()


def test_drawing_records_the_design_and_shows_it_with_the_seed() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)
    manager = user_with("manage_frame")
    client = client_for(manager)

    # when
    response = client.post(
        f"/manage/{survey.slug}/design/", design_post(draw="1", confirm="on"), follow=True
    )

    # then
    record = SampleDesign.objects.get(survey=survey)
    assert record.seed == 20250428 and record.created_by == manager
    assert Case.objects.filter(survey=survey).in_sample().count() == 100
    page = response.content.decode()
    assert 'id="recorded-seed">20250428<' in page and "drawn with seed 20250428" in page


def test_a_design_error_is_shown_on_the_form() -> None:
    survey = new_survey()
    standard_frame(survey)
    client = client_for(user_with("manage_frame"))

    response = client.post(f"/manage/{survey.slug}/design/", design_post(sample_size=5000))

    assert response.status_code == 200 and "allocation is impossible" in response.content.decode()


def test_grouping_maps_from_the_form_define_strata() -> None:
    survey = new_survey()
    add_frame(survey, [(30, {"region": "Seoul"}), (30, {"region": "Busan"})])
    client = client_for(user_with("manage_frame"))
    groupings = '{"coast": {"source": "region", "map": {"Seoul": "inland", "Busan": "sea"}}}'

    response = client.post(
        f"/manage/{survey.slug}/design/",
        design_post(strata_variables=["coast"], groupings=groupings, sample_size=10),
    )

    page = response.content.decode()
    assert "inland" in page and "sea" in page and 'id="preview-table"' in page


# --- the sample list -------------------------------------------------------------------------


def test_the_sample_list_filters_and_searches(drawn: Survey) -> None:
    client = client_for(user_with("manage_fieldwork"))
    stratum = Stratum.objects.get(key="electronics/midsize/capital")
    reserve = Case.objects.filter(is_reserve=True).first()
    assert reserve is not None

    by_stratum = client.get(f"/manage/{drawn.slug}/sample/", {"stratum": stratum.pk})
    by_status = client.get(f"/manage/{drawn.slug}/sample/", {"status": "reserve"})
    by_id = client.get(f"/manage/{drawn.slug}/sample/", {"q": reserve.business_id})

    assert by_stratum.context["page"].paginator.count == 3  # 2 sampled + 1 reserve
    assert by_status.context["page"].paginator.count == Case.objects.reserve().count()
    assert [case.pk for case in by_id.context["page"]] == [reserve.pk]


def test_the_sample_list_pages_by_fifty(drawn: Survey) -> None:
    client = client_for(user_with("manage_fieldwork"))

    first = client.get(f"/manage/{drawn.slug}/sample/", {"status": "in_sample"})
    third = client.get(f"/manage/{drawn.slug}/sample/", {"status": "in_sample", "page": "3"})

    assert len(first.context["page"]) == 50
    assert third.context["page"].number == 2  # 100 in sample: the last page is 2


def test_the_sample_list_query_count_does_not_grow_with_the_cases(
    drawn: Survey, django_assert_max_num_queries: object
) -> None:
    client = client_for(user_with("manage_fieldwork", "view_contact_details"))

    with django_assert_max_num_queries(9):  # type: ignore[operator]
        response = client.get(f"/manage/{drawn.slug}/sample/")

    assert len(response.context["page"]) == 50


def test_exports_neutralise_spreadsheet_formulas(drawn: Survey) -> None:
    # given: a firm name that a spreadsheet would run
    case = Case.objects.in_sample().first()
    assert case is not None
    FrameUnit.objects.filter(pk=case.frame_unit_id).update(name='=HYPERLINK("http://x","y")')
    client = client_for(user_with("manage_fieldwork"))
    query: dict[str, str] = {"q": case.business_id}

    # when
    csv_response = client.get(f"/manage/{drawn.slug}/sample/export.csv", query)
    xlsx_response = client.get(f"/manage/{drawn.slug}/sample/export.xlsx", query)

    # then
    text = csv_response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 2 and rows[1][1] == '\'=HYPERLINK("http://x","y")'
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_response.content)).active
    assert sheet is not None
    assert sheet.max_row == 2 and sheet.cell(2, 2).value == '\'=HYPERLINK("http://x","y")'
    assert sheet.cell(2, 1).value == case.business_id


# --- reserve release -------------------------------------------------------------------------


def test_releasing_reserve_from_the_sample_page_records_who(drawn: Survey) -> None:
    manager = user_with("manage_frame")
    stratum = Stratum.objects.get(key="machinery/micro/capital")

    response = client_for(manager).post(
        f"/manage/{drawn.slug}/sample/strata/{stratum.pk}/release/", {"count": 2}, follow=True
    )

    assert "Released 2 reserve units" in response.content.decode()
    stratum.refresh_from_db()
    assert stratum.sample_size == stratum.allocated + 2
    released = Case.objects.filter(stratum=stratum, released_at__isnull=False)
    assert [case.reserve_rank for case in released.order_by("reserve_rank")] == [1, 2]
    assert {case.released_by for case in released} == {manager}


def test_releasing_too_many_shows_why_and_changes_nothing(drawn: Survey) -> None:
    stratum = Stratum.objects.get(key="machinery/micro/capital")

    response = client_for(user_with("manage_frame")).post(
        f"/manage/{drawn.slug}/sample/strata/{stratum.pk}/release/", {"count": 99}, follow=True
    )

    assert "reserve units left" in response.content.decode()
    stratum.refresh_from_db()
    assert stratum.sample_size == stratum.allocated


# --- credentials -----------------------------------------------------------------------------


def test_the_credentials_action_issues_and_downloads_the_letters(drawn: Survey) -> None:
    # given
    client = client_for(user_with("manage_frame"))
    before = client.get(f"/manage/{drawn.slug}/credentials/")

    # when
    response = client.post(f"/manage/{drawn.slug}/credentials/")

    # then
    assert "0 of 100 firms" in before.content.decode()
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 100 and list(rows[0]) == ["business_id", "name", "link", "access_code"]
    link = Client().get(urlsplit(rows[0]["link"]).path)
    assert link.status_code == 302 and link["Location"] == "/q/"
    after = client.get(f"/manage/{drawn.slug}/credentials/")
    assert "100 of 100 firms" in after.content.decode()


def test_reissuing_from_the_page_invalidates_the_old_links(drawn: Survey) -> None:
    client = client_for(user_with("manage_frame"))
    first = client.post(f"/manage/{drawn.slug}/credentials/")
    old = next(csv.DictReader(io.StringIO(first.content.decode("utf-8-sig"))))

    second = client.post(f"/manage/{drawn.slug}/credentials/", {"reissue": "on"})

    new = {
        row["business_id"]: row
        for row in csv.DictReader(io.StringIO(second.content.decode("utf-8-sig")))
    }
    assert new[old["business_id"]]["link"] != old["link"]
    assert Client().get(urlsplit(old["link"]).path).status_code == 404
