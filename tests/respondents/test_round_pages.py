"""The staff pages of a round: the frame's change report and its CSV, the mapping's page,
the design page with coordination and overlap; each with a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import translation

from config.roles import FIELDWORK_MANAGERS
from respondents.models import SampleDesign
from surveys.models import Survey
from tests.conftest import client_for, staff_user
from tests.factories import business_id
from tests.respondents.rounds import csv_bytes, draw, firm, load_frame, rounds

pytestmark = pytest.mark.django_db

LAST_YEAR = [
    *(firm(n) for n in range(1, 41)),
    *(firm(n, size="medium") for n in range(100, 120)),
]
THIS_YEAR = [
    *(firm(n) for n in range(3, 41)),  # 1 and 2 closed
    firm(41),  # born
    firm(42),  # 2's new number
    *(firm(n, size="medium") for n in range(100, 119)),
    firm(119, size="small"),  # shrank
]


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def pair() -> tuple[Survey, Survey]:
    first, second = rounds()
    load_frame(first, LAST_YEAR, seed=1)
    draw(first, 20)
    load_frame(second, THIS_YEAR, seed=2)
    return first, second


@pytest.fixture
def manager() -> Client:
    client = client_for(staff_user(FIELDWORK_MANAGERS))
    client.cookies["django_language"] = "en"
    return client


def links_file(rows: list[list[str]]) -> SimpleUploadedFile:
    data = csv_bytes(rows, header=["old_business_id", "new_business_id", "kind"])
    return SimpleUploadedFile("links.csv", data, content_type="text/csv")


def text(page: Any) -> str:
    assert page.status_code == 200
    return " ".join(page.content.decode().split())


def test_the_frame_page_shows_the_change_report(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    _first, second = pair

    page = text(manager.get(f"/manage/{second.slug}/frame/"))

    assert "Changes since the previous round" in page
    assert "60 firms last year, 60 this year" in page
    assert 'id="changes-by-stratum"' in page and 'id="changed-firms"' in page
    assert business_id(41) in page and business_id(119) in page
    births = text(manager.get(f"/manage/{second.slug}/frame/?kind=birth"))
    assert business_id(41) in births and business_id(119) not in births


def test_the_change_report_downloads_as_csv(pair: tuple[Survey, Survey], manager: Client) -> None:
    _first, second = pair

    response = manager.get(f"/manage/{second.slug}/frame/changes.csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("kind,link,business_id") and len(lines) == 1 + 5


def test_the_mapping_page_loads_a_mapping_and_the_report_lists_the_link(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    # given
    _first, second = pair
    url = f"/manage/{second.slug}/frame/links/"
    assert "old_business_id" in text(manager.get(url))

    # when
    response = manager.post(
        url, {"file": links_file([[business_id(2), business_id(42), "renumbered"]])}
    )

    # then
    assert response.status_code == 302
    page = text(manager.get(response["Location"]))
    assert "Loaded 1 links" in page and f"{business_id(2)} → {business_id(42)}" in page


def test_a_bad_mapping_is_shown_with_its_rows(pair: tuple[Survey, Survey], manager: Client) -> None:
    _first, second = pair

    page = text(
        manager.post(
            f"/manage/{second.slug}/frame/links/",
            {"file": links_file([[business_id(2), "12-3", "renumbered"]])},
        )
    )

    assert "The mapping was not loaded: the file has problems." in page
    assert "must be a 10-digit business registration number" in page
    assert not second.id_links.exists()


def test_the_design_page_previews_the_expected_overlap(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    _first, second = pair
    data = {
        "strata_variables": ["size_class"], "allocation": "proportional", "sample_size": "20",
        "min_per_stratum": "2", "seed": "5", "reserve_fraction": "0", "selection": "prn",
        "coordination": "rotation", "rotation": "0.25", "preview": "1",
    }  # fmt: skip

    page = text(manager.post(f"/manage/{second.slug}/design/", data))

    assert 'id="preview-table"' in page and "Expected overlap" in page
    assert "Last year's n_h" in page


def test_the_design_page_of_a_round_starts_from_the_copied_settings(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    _first, second = pair
    SampleDesign.objects.create(
        survey=second, strata_variables=["size_class"], allocation="power", power=0.5,
        sample_size=25, seed=1, selection="prn", coordination="rotation", rotation=0.2,
    )  # fmt: skip

    form = manager.get(f"/manage/{second.slug}/design/").context["form"]

    assert form["sample_size"].initial == 25 and form["allocation"].initial == "power"
    assert (form["selection"].initial, form["coordination"].initial) == ("prn", "rotation")
    assert form["rotation"].initial == 0.2


def test_a_first_round_has_no_coordination_to_choose(manager: Client) -> None:
    first, _second = rounds()
    load_frame(first, LAST_YEAR)

    form = manager.get(f"/manage/{first.slug}/design/").context["form"]

    assert "coordination" not in form.fields and "selection" in form.fields


def test_the_drawn_design_shows_the_expected_and_realised_overlap(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    _first, second = pair
    draw(second, 20, coordination="positive")

    page = text(manager.get(f"/manage/{second.slug}/design/"))

    assert "Overlap with last year's sample" in page and 'id="overlap-table"' in page
    assert "positive: keep last year&#x27;s firms" in page


@pytest.mark.parametrize(
    ("path", "expected"),
    [("frame/", 12), ("frame/?kind=changed", 12), ("frame/links/", 8), ("design/", 13)],
)
def test_round_pages_run_a_fixed_number_of_queries(
    pair: tuple[Survey, Survey], path: str, expected: int, django_assert_num_queries: Any
) -> None:
    # given: the sample drawn, and a manager's warm session
    first, second = pair
    if path == "design/":
        draw(second, 20, coordination="positive")
    client = client_for(staff_user(FIELDWORK_MANAGERS))
    url = f"/manage/{second.slug}/{path}"
    assert client.get(url).status_code == 200

    # when / then: the same count with more firms changed
    with django_assert_num_queries(expected):
        assert client.get(url).status_code == 200
    if path != "design/":
        load_frame(second, [*THIS_YEAR, *(firm(n) for n in range(200, 260))], seed=3)
        with django_assert_num_queries(expected):
            assert client.get(url).status_code == 200
    assert first.cases.exists()


def test_the_design_form_lists_the_rounds_variables_first_in_their_order(
    pair: tuple[Survey, Survey], manager: Client
) -> None:
    _first, second = pair
    SampleDesign.objects.create(
        survey=second, strata_variables=["region_area", "size_class"], allocation="proportional",
        sample_size=20, seed=1,
    )  # fmt: skip

    form = manager.get(f"/manage/{second.slug}/design/").context["form"]

    names = [name for name, _label in form.fields["strata_variables"].choices]
    assert names[:2] == ["region_area", "size_class"] and len(names) == len(set(names))
