"""A round's frame against the last: the change report, permanent random numbers carried
over, and the mapping of changed business IDs (and its refusals)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.utils import translation

from respondents import frame_changes
from respondents.models import BusinessIdLink, FrameChange, FrameImport, FrameUnit
from respondents.tabular import ImportRefused
from surveys.models import Survey
from tests.factories import business_id
from tests.respondents.rounds import csv_bytes, draw, firm, load_frame, load_links, rounds

pytestmark = pytest.mark.django_db

# Last year: firms 1-8 (and 20-29, small firms that do not change, so strata have room).
LAST_YEAR = [
    firm(1),
    firm(2),
    firm(3, size="micro", region="Seoul", ksic="10711"),
    firm(4, size="medium", region="Busan", ksic="25112"),
    firm(5),  # closes
    firm(6, size="micro", ksic="10711"),  # renumbered as 16
    firm(7),  # absorbs 8
    firm(8),
    *(firm(n) for n in range(20, 30)),
    *(firm(n, size="medium") for n in range(30, 36)),
    *(firm(n, size="micro") for n in range(40, 46)),
]
# This year: 2 grew to medium, 3 moved to Busan, 4 changed industry (metal to machinery),
# 5 closed, 6 has the new number 16, 8 merged into 7, and 9 is new.
THIS_YEAR = [
    firm(1),
    firm(2, size="medium"),
    firm(3, size="micro", region="Busan", ksic="10711"),
    firm(4, size="medium", region="Busan", ksic="28111"),
    firm(16, size="micro", ksic="10711"),
    firm(7),
    firm(9, size="micro"),
    *(firm(n) for n in range(20, 30)),
    *(firm(n, size="medium") for n in range(30, 36)),
    *(firm(n, size="micro") for n in range(40, 46)),
]
MAPPING = [
    [business_id(6), business_id(16), "renumbered"],
    [business_id(8), business_id(7), "merger"],
]


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def pair() -> tuple[Survey, Survey]:
    """Two rounds: last year's frame drawn by PRN (stratified by size), this year's loaded."""
    first, second = rounds()
    load_frame(first, LAST_YEAR, seed=1)
    draw(first, 12)
    load_frame(second, THIS_YEAR, seed=2)
    return first, second


def unit(survey: Survey, number: int) -> FrameUnit:
    return survey.frame_units.get(business_id=business_id(number))


def kinds(survey: Survey) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for change in survey.frame_changes.all():
        found.setdefault(change.kind, set()).add(change.business_id or change.previous_business_id)
    return found


def flags(change: FrameChange) -> tuple[bool, bool, bool]:
    return (change.size_changed, change.industry_changed, change.region_changed)


# --- the change report ----------------------------------------------------------------------


def test_the_report_lists_births_deaths_and_changes_of_class(pair: tuple[Survey, Survey]) -> None:
    # given the pair, without the mapping yet
    _first, second = pair

    # then: 16 and 9 look born, 5, 6 and 8 look dead
    assert kinds(second) == {
        "birth": {business_id(9), business_id(16)},
        "death": {business_id(5), business_id(6), business_id(8)},
        "changed": {business_id(2), business_id(3), business_id(4)},
    }
    grew = second.frame_changes.get(business_id=business_id(2))
    assert flags(grew) == (True, False, False)
    assert (grew.stratum_before, grew.stratum_now) == ("small", "medium")
    moved = second.frame_changes.get(business_id=business_id(3))
    assert flags(moved) == (False, False, True)
    assert moved.before["region"] == "Seoul" and moved.now["region"] == "Busan"
    other = second.frame_changes.get(business_id=business_id(4))
    assert flags(other) == (False, True, False)
    assert (other.before["ksic_division"], other.now["ksic_division"]) == ("25", "28")
    assert (other.before["industry_group"], other.now["industry_group"]) == ("metal", "machinery")


def test_the_report_counts_by_the_previous_rounds_strata(pair: tuple[Survey, Survey]) -> None:
    _first, second = pair

    report = frame_changes.report(second)

    assert report is not None and report.variable_labels == ["size class"]
    by_key = {row["key"]: row for row in report.rows}
    assert set(by_key) == {"micro", "small", "medium"}
    assert by_key["small"] == {
        "key": "small", "label": "small enterprise", "values": {"size_class": "small"},
        "before": 15, "now": 12, "births": 0, "deaths": 2,
        "moved_in": 0, "moved_out": 1, "size": 0, "industry": 0, "region": 0, "linked": 0,
    }  # fmt: skip
    assert by_key["medium"]["moved_in"] == 1 and by_key["medium"]["size"] == 1
    assert by_key["medium"]["industry"] == 1
    assert by_key["micro"]["births"] == 2 and by_key["micro"]["deaths"] == 1
    assert by_key["micro"]["region"] == 1
    assert report.total["before"] == len(LAST_YEAR) and report.total["now"] == len(THIS_YEAR)


def test_mapped_firms_are_links_not_births_or_deaths(pair: tuple[Survey, Survey]) -> None:
    # given
    _first, second = pair

    # when
    assert load_links(second, MAPPING) == 2

    # then
    assert kinds(second) == {
        "birth": {business_id(9)},
        "death": {business_id(5)},
        "changed": {business_id(2), business_id(3), business_id(4)},
        "linked": {business_id(16), business_id(7)},
    }
    renumbered = second.frame_changes.get(kind="linked", business_id=business_id(16))
    assert renumbered.previous_business_id == business_id(6) and renumbered.link == "renumbered"
    merged = second.frame_changes.get(kind="linked", business_id=business_id(7))
    assert merged.previous_business_id == business_id(8) and merged.link == "merger"
    report = frame_changes.report(second)
    assert report is not None and report.total["linked"] == 2


def test_the_report_downloads_as_csv_with_both_years_classes(pair: tuple[Survey, Survey]) -> None:
    _first, second = pair
    out = io.StringIO()

    frame_changes.write_changes_csv(second, out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("kind,link,business_id,previous_business_id,name,stratum_before")
    assert len(lines) == 1 + second.frame_changes.count()
    grew = next(line for line in lines if line.startswith(f"changed,,{business_id(2)}"))
    assert ",small,medium," in grew and grew.endswith(",1,0,0")


def test_a_first_round_has_no_report() -> None:
    first, _second = rounds()

    load_frame(first, LAST_YEAR)

    assert frame_changes.report(first) is None and not FrameChange.objects.exists()


# --- permanent random numbers ---------------------------------------------------------------


def test_a_firm_keeps_its_number_and_a_new_firm_gets_the_imports_next_one(
    pair: tuple[Survey, Survey],
) -> None:
    first, second = pair

    assert unit(second, 1).prn == unit(first, 1).prn
    assert unit(second, 2).prn == unit(first, 2).prn  # through a change of stratum
    assert unit(second, 1).previous == unit(first, 1)
    drawn = FrameImport.objects.filter(survey=second).get().drawn_numbers()
    born = unit(second, 9)
    rank = list(second.frame_units.order_by("source_row")).index(born)
    assert born.prn == drawn[rank] and born.previous is None
    assert FrameImport.objects.get(survey=second).carried == len(THIS_YEAR) - 2


def test_the_numbers_are_uniforms_drawn_from_the_recorded_seed() -> None:
    first, _second = rounds()

    load_frame(first, LAST_YEAR, seed=99)

    recorded = FrameImport.objects.get(survey=first)
    assert recorded.prn_seed == 99 and recorded.numpy_version
    numbers = list(first.frame_units.order_by("source_row").values_list("prn", flat=True))
    assert numbers == recorded.drawn_numbers().tolist()
    assert all(u is not None and 0 <= u < 1 for u in numbers)


def test_the_mapping_carries_numbers_over(pair: tuple[Survey, Survey]) -> None:
    first, second = pair
    own_16 = unit(second, 16).prn

    load_links(second, MAPPING)

    assert unit(second, 16).prn == unit(first, 6).prn != own_16
    assert unit(second, 16).previous == unit(first, 6)
    # 7 absorbs 8 and keeps its own number
    assert unit(second, 7).prn == unit(first, 7).prn
    assert unit(second, 7).previous == unit(first, 7)
    assert FrameImport.objects.get(survey=second).carried == len(THIS_YEAR) - 1


def test_a_merger_takes_the_first_old_firms_number_and_a_split_gives_it_to_the_first_new(
    pair: tuple[Survey, Survey],
) -> None:
    # given: 20 and 21 merge into the new 50; 22 splits into the new 51 and 52
    first, second = pair
    rows = [r for r in THIS_YEAR if r[0] not in {business_id(n) for n in (20, 21, 22)}]
    load_frame(second, [*rows, firm(50), firm(51), firm(52)], seed=3)
    own = {n: unit(second, n).prn for n in (50, 51, 52)}

    # when
    load_links(
        second,
        [
            [business_id(21), business_id(50), "merger"],
            [business_id(20), business_id(50), "merger"],
            [business_id(22), business_id(52), "split"],
            [business_id(22), business_id(51), "split"],
        ],
    )

    # then
    assert unit(second, 50).prn == unit(first, 21).prn
    assert unit(second, 52).prn == unit(first, 22).prn
    assert unit(second, 51).prn == own[51] and unit(second, 51).previous is None


def test_a_new_mapping_gives_back_the_numbers_of_the_last_one(
    pair: tuple[Survey, Survey],
) -> None:
    _first, second = pair
    own_16 = unit(second, 16).prn
    load_links(second, MAPPING)

    load_links(second, [MAPPING[1]])

    assert unit(second, 16).prn == own_16 and unit(second, 16).previous is None
    assert BusinessIdLink.objects.filter(survey=second).count() == 1


def test_importing_the_frame_again_removes_the_mapping(pair: tuple[Survey, Survey]) -> None:
    _first, second = pair
    load_links(second, MAPPING)

    result = load_frame(second, THIS_YEAR, seed=2)

    assert result.links_removed == 2 and not second.id_links.exists()
    assert kinds(second)["birth"] == {business_id(9), business_id(16)}


def test_a_frame_the_next_round_carries_cannot_be_replaced(pair: tuple[Survey, Survey]) -> None:
    first, _second = pair
    first.cases.all().delete()
    first.designs.all().delete()

    with pytest.raises(ImportRefused, match="next round's frame carries"):
        load_frame(first, LAST_YEAR)


# --- a bad second-round frame is refused as a first one is --------------------------------


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([firm(1), firm(1)], "the same business registration number is in rows 2, 3"),
        ([firm(1), ["12-345", *firm(2)[1:]]], "must be a 10-digit business registration number"),
    ],
)
def test_a_second_round_frame_with_bad_business_ids_is_refused_and_nothing_changes(
    pair: tuple[Survey, Survey], rows: list[list[str]], problem: str
) -> None:
    # given
    _first, second = pair
    before = list(second.frame_units.values_list("business_id", "prn"))
    changes = second.frame_changes.count()

    # when
    with pytest.raises(ImportRefused) as refused:
        load_frame(second, rows)

    # then
    assert any(problem in p.message for p in refused.value.problems)
    assert list(second.frame_units.values_list("business_id", "prn")) == before
    assert second.frame_changes.count() == changes
    assert FrameImport.objects.filter(survey=second).count() == 1


# --- bad mapping files ----------------------------------------------------------------------


def refused(survey: Survey, rows: list[list[str]], header: list[str] | None = None) -> list[str]:
    data = csv_bytes(rows, header=header or ["old_business_id", "new_business_id", "kind"])
    with pytest.raises(ImportRefused) as info:
        frame_changes.import_links(survey, io.BytesIO(data), filename="links.csv")
    return [f"{p.row} {p.column}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["6", business_id(16), "renumbered"]],
         ["2 old_business_id: must be a 10-digit business registration number, e.g. 123-45-67890"]),
        ([[business_id(6), business_id(16), "moved"]],
         ["2 kind: must be merger, split or renumbered (합병, 분할, 번호변경)"]),
        ([[business_id(60), business_id(16), "renumbered"]],
         ["2 old_business_id: is not in the previous round's frame"]),
        ([[business_id(6), business_id(61), "renumbered"]],
         ["2 new_business_id: is not in this round's frame"]),
        ([[business_id(6), business_id(6), "renumbered"]],
         ["2 new_business_id: is the same as the old business ID"]),
        ([MAPPING[0], MAPPING[0]],
         ["2 old_business_id: the same link is in rows 2, 3",
          "3 old_business_id: the same link is in rows 2, 3",
          "2 old_business_id: a renumbered firm has one new ID, but this one is in rows 2, 3",
          "3 old_business_id: a renumbered firm has one new ID, but this one is in rows 2, 3",
          "2 new_business_id: a renumbered firm has one old ID, but this one is in rows 2, 3",
          "3 new_business_id: a renumbered firm has one old ID, but this one is in rows 2, 3"]),
        ([[business_id(1), business_id(16), "renumbered"]],
         ["2 old_business_id: is still in this round's frame: a renumbered firm's old ID is gone"]),
        ([[business_id(8), business_id(7), "merger"], [business_id(8), business_id(9), "merger"]],
         ["2 old_business_id: a firm merges into one firm only, but this one is in rows 2, 3",
          "3 old_business_id: a firm merges into one firm only, but this one is in rows 2, 3"]),
        ([[business_id(8), business_id(7), "merger"], [business_id(8), business_id(9), "split"]],
         ["2 old_business_id: is given different kinds in rows 2, 3",
          "3 old_business_id: is given different kinds in rows 2, 3"]),
    ],
)  # fmt: skip
def test_a_bad_mapping_is_refused_with_its_rows_and_nothing_is_saved(
    pair: tuple[Survey, Survey], rows: list[list[str]], expected: list[str]
) -> None:
    # given: a mapping loaded before
    _first, second = pair
    load_links(second, [MAPPING[1]])
    numbers = dict(second.frame_units.values_list("business_id", "prn"))

    # when
    problems = refused(second, rows)

    # then
    assert sorted(problems) == sorted(expected)
    assert list(second.id_links.values_list("old_business_id", flat=True)) == [business_id(8)]
    assert dict(second.frame_units.values_list("business_id", "prn")) == numbers


def test_a_mapping_without_its_columns_is_refused(pair: tuple[Survey, Survey]) -> None:
    _first, second = pair

    problems = refused(second, [MAPPING[0]], header=["old", "new", "kind"])

    assert problems == [
        "1 old_business_id: this required column is missing",
        "1 new_business_id: this required column is missing",
    ]


def test_a_mapping_is_refused_without_a_previous_round_or_after_the_draw(
    pair: tuple[Survey, Survey],
) -> None:
    first, second = pair
    with pytest.raises(ImportRefused, match="no previous round"):
        load_links(first, MAPPING)

    draw(second, 12)

    with pytest.raises(ImportRefused, match="already been drawn"):
        load_links(second, MAPPING)
