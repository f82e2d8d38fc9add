"""Sample design, the draw, reserve releases and credentials (methodology sec. B)."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation

from analytics.engine import allocation
from respondents import credentials, sampling
from respondents.classifications import KSIC_DIVISIONS, REGION_AREAS
from respondents.models import Case, FrameUnit, ReserveRelease, SampleDesign, Stratum
from respondents.sampling import SamplingError
from surveys.models import Survey
from tests.factories import business_id

pytestmark = pytest.mark.django_db

STRATA = ["industry_group", "size_class", "region_area"]


def add_frame(survey: Survey, groups: list[tuple[int, dict[str, Any]]], start: int = 0) -> None:
    """Bulk-create frame units: for each (count, fields) group, count units with those fields."""
    units, number = [], start
    for count, fields in groups:
        for _i in range(count):
            number += 1
            values: dict[str, Any] = {
                "ksic": "29199",
                "size_class": "small",
                "region": "Gyeonggi",
                "employees": 20,
                "email": f"firm{number}@example.com",
                "phone": "031-000-0000",
            }
            values.update(fields)
            units.append(
                FrameUnit(
                    survey=survey,
                    business_id=business_id(5_000_000 + number),
                    name=f"(주)표본제조{number}",
                    source_row=number + 1,
                    **values,
                )
            )
    FrameUnit.objects.bulk_create(units)


def new_survey(slug: str = "smf-2025") -> Survey:
    return Survey.objects.create(slug=slug, title="스마트제조 실태조사")


def standard_frame(survey: Survey) -> None:
    """Six strata of industry group × size class in the capital area (N = 1,000)."""
    add_frame(
        survey,
        [
            (400, {"ksic": "29199", "size_class": "micro"}),
            (200, {"ksic": "29199", "size_class": "small"}),
            (150, {"ksic": "10110", "size_class": "micro", "region": "Seoul"}),
            (100, {"ksic": "10110", "size_class": "small", "region": "Incheon"}),
            (147, {"ksic": "26110", "size_class": "medium"}),
            (3, {"ksic": "26110", "size_class": "midsize"}),
        ],
    )


DESIGN: dict[str, Any] = {
    "strata_variables": STRATA,
    "allocation": "proportional",
    "sample_size": 100,
    "min_per_stratum": 2,
}


def draw(survey: Survey, **changes: Any) -> SampleDesign:
    return sampling.draw_sample(survey, **{**DESIGN, "seed": 42, **changes})


def sampled_ids(survey: Survey) -> set[str]:
    return set(Case.objects.filter(survey=survey).in_sample().values_list("business_id", flat=True))


# --- strata ----------------------------------------------------------------------------------


def test_strata_combine_core_and_derived_variables() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)
    design = sampling.make_design(**DESIGN)

    # when
    table = sampling.stratum_table(survey, design)

    # then
    assert [(row.key, row.population) for row in table] == [
        ("electronics/medium/capital", 147),
        ("electronics/midsize/capital", 3),
        ("food_beverage/micro/capital", 150),
        ("food_beverage/small/capital", 100),
        ("machinery/micro/capital", 400),
        ("machinery/small/capital", 200),
    ]
    assert table[0].values == {
        "industry_group": "electronics",
        "size_class": "medium",
        "region_area": "capital",
    }


def test_ksic_division_is_the_first_two_digits_of_the_ksic_code() -> None:
    survey = new_survey()
    add_frame(survey, [(2, {"ksic": "29199"}), (3, {"ksic": "29210"}), (4, {"ksic": "10110"})])

    table = sampling.stratum_table(
        survey, sampling.make_design(**{**DESIGN, "strata_variables": ["ksic_division"]})
    )

    assert [(row.key, row.population) for row in table] == [("10", 4), ("29", 5)]


def test_a_frame_attribute_named_like_a_derived_variable_wins_over_the_derivation() -> None:
    # given: the frame file had its own industry_group column
    survey = new_survey()
    add_frame(survey, [(5, {"ksic": "29199", "attributes": {"industry_group": "robots"}})])
    add_frame(survey, [(2, {"ksic": "10110", "attributes": {"industry_group": "food"}})], 100)

    # when
    design = sampling.make_design(**{**DESIGN, "strata_variables": ["industry_group"]})
    table = sampling.stratum_table(survey, design)

    # then
    assert [(row.key, row.population) for row in table] == [("food", 2), ("robots", 5)]


def test_any_attribute_of_the_frame_file_can_stratify() -> None:
    survey = new_survey()
    add_frame(survey, [(3, {"attributes": {"factory": "owned"}})])
    add_frame(survey, [(4, {"attributes": {"factory": "leased"}})], 100)

    design = sampling.make_design(**{**DESIGN, "strata_variables": ["factory", "size_class"]})
    table = sampling.stratum_table(survey, design)

    assert [(row.key, row.population) for row in table] == [
        ("leased/small", 4),
        ("owned/small", 3),
    ]
    assert "factory" in sampling.frame_variables(survey).strata


def test_a_grouping_map_of_the_design_defines_a_new_variable() -> None:
    # given
    survey = new_survey()
    add_frame(survey, [(3, {"region": "Seoul"}), (4, {"region": "Busan"})])
    add_frame(survey, [(5, {"region": "Ulsan"})], 100)
    groupings = {
        "coast": {"source": "region", "map": {"Seoul": "inland", "Busan": "sea", "Ulsan": "sea"}}
    }

    # when
    design = sampling.make_design(
        **{**DESIGN, "strata_variables": ["coast"], "groupings": groupings}
    )
    table = sampling.stratum_table(survey, design)

    # then
    assert [(row.key, row.population) for row in table] == [("inland", 3), ("sea", 9)]


def test_a_value_without_a_group_is_an_error_naming_the_variable_and_the_value() -> None:
    survey = new_survey()
    add_frame(survey, [(3, {"region": "Seoul"}), (1, {"region": "Jeju"})])
    groupings = {"coast": {"source": "region", "map": {"Seoul": "inland"}}}
    design = sampling.make_design(
        **{**DESIGN, "strata_variables": ["coast"], "groupings": groupings}
    )

    with translation.override("en"), pytest.raises(SamplingError) as error:
        sampling.stratum_table(survey, design)

    message = str(error.value)
    jeju = FrameUnit.objects.get(region="Jeju").business_id
    assert "coast" in message and "Jeju" in message and jeju in message


def test_a_non_manufacturing_division_has_no_industry_group() -> None:
    survey = new_survey()
    add_frame(survey, [(3, {}), (1, {"ksic": "58221"})])

    with translation.override("en"), pytest.raises(SamplingError, match=r"industry_group.*58"):
        sampling.preview_design(survey, **DESIGN)


def test_a_unit_without_a_value_is_an_error_naming_it() -> None:
    survey = new_survey()
    add_frame(survey, [(2, {"attributes": {"factory": "owned"}}), (1, {})])

    design = sampling.make_design(**{**DESIGN, "strata_variables": ["factory"]})
    with translation.override("en"), pytest.raises(SamplingError, match="no value for “factory”"):
        sampling.stratum_table(survey, design)


def test_an_unknown_stratification_variable_is_refused() -> None:
    survey = new_survey()
    standard_frame(survey)

    with translation.override("en"), pytest.raises(SamplingError, match="colour"):
        sampling.preview_design(survey, **{**DESIGN, "strata_variables": ["colour"]})


# --- preview ---------------------------------------------------------------------------------


def test_preview_allocates_exactly_n_and_writes_nothing() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)

    # when
    preview = sampling.preview_design(survey, **DESIGN, reserve_fraction=0.2)

    # then
    assert preview.population == 1000 and preview.sample_size == 100
    assert [row.sample_size for row in preview.strata] == [14, 2, 15, 10, 39, 20]
    assert sum(row.sample_size for row in preview.strata) == 100
    assert SampleDesign.objects.count() == 0 and Case.objects.count() == 0


def test_preview_shows_fraction_anticipated_se_and_reserve() -> None:
    survey = new_survey()
    standard_frame(survey)

    preview = sampling.preview_design(survey, **DESIGN, reserve_fraction=0.2)

    expected = allocation.preview(
        [r.population for r in preview.strata], [r.sample_size for r in preview.strata], 0.5
    )
    for row, reference in zip(preview.strata, expected.strata, strict=True):
        assert row.fraction == pytest.approx(row.sample_size / row.population)
        assert row.se == pytest.approx(reference.se)
        assert row.reserve == min(
            math.ceil(0.2 * row.sample_size), row.population - row.sample_size
        )
    assert preview.se == pytest.approx(expected.overall.se)
    midsize = preview.strata[1]
    assert (midsize.population, midsize.sample_size, midsize.reserve) == (3, 2, 1)


def test_a_stratum_smaller_than_the_minimum_is_taken_whole() -> None:
    survey = new_survey()
    standard_frame(survey)

    preview = sampling.preview_design(survey, **{**DESIGN, "min_per_stratum": 5})

    midsize = preview.strata[1]
    assert midsize.take_all and midsize.sample_size == 3 and midsize.se == 0
    assert preview.take_all_count == 1 and preview.sample_size == 100


def test_neyman_allocation_uses_the_standard_deviation_of_a_frame_variable() -> None:
    # given: same N_h, but employees vary in one stratum only
    survey = new_survey()
    add_frame(survey, [(50, {"size_class": "small", "employees": 20})])
    spread = [{"size_class": "medium", "employees": e} for e in range(10, 110, 2)]
    add_frame(survey, [(1, fields) for fields in spread], 100)
    add_frame(survey, [(25, {"size_class": "micro", "employees": 3})], 200)
    add_frame(survey, [(25, {"size_class": "micro", "employees": 5})], 300)

    # when
    preview = sampling.preview_design(
        survey,
        strata_variables=["size_class"],
        allocation="neyman",
        sample_size=30,
        min_per_stratum=2,
        neyman_variable="employees",
    )

    # then
    sd = np.array([np.std(range(10, 110, 2), ddof=1), np.std([3] * 25 + [5] * 25, ddof=1), 0])
    expected = allocation.allocate_neyman([50, 50, 50], sd, 30, m_min=2)
    assert [row.key for row in preview.strata] == ["medium", "micro", "small"]
    assert [row.sample_size for row in preview.strata] == list(expected.n_h)
    assert preview.strata[2].sample_size == 2  # no spread: only the minimum


def test_neyman_allocation_with_an_assumed_proportion() -> None:
    survey = new_survey()
    standard_frame(survey)

    preview = sampling.preview_design(
        survey, **{**DESIGN, "allocation": "neyman"}, assumed_proportion=0.2
    )

    sizes = [row.population for row in preview.strata]
    expected = allocation.allocate_neyman(sizes, allocation.proportion_sd(0.2, sizes), 100)
    assert [row.sample_size for row in preview.strata] == list(expected.n_h)


def test_power_allocation_takes_n_h_proportional_to_n_h_to_the_q() -> None:
    survey = new_survey()
    standard_frame(survey)

    preview = sampling.preview_design(survey, **{**DESIGN, "allocation": "power"}, power=0.5)

    sizes = [row.population for row in preview.strata]
    expected = allocation.allocate_power(sizes, 100, 0.5)
    assert [row.sample_size for row in preview.strata] == list(expected.n_h)
    assert preview.design.power == 0.5


def test_neyman_needs_either_a_variable_or_a_proportion() -> None:
    survey = new_survey()
    standard_frame(survey)

    with pytest.raises(SamplingError):
        sampling.preview_design(survey, **{**DESIGN, "allocation": "neyman"})


# --- the draw --------------------------------------------------------------------------------


def test_the_draw_takes_exactly_n_h_distinct_units_in_each_stratum() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)

    # when
    record = draw(survey, reserve_fraction=0.2)

    # then
    cases = Case.objects.filter(survey=survey).select_related("stratum", "frame_unit")
    sample = [case for case in cases if not case.is_reserve]
    assert len(sample) == 100 == record.sample_size
    assert len({case.frame_unit_id for case in cases}) == len(cases)
    per_stratum = Counter(case.stratum.key for case in sample)
    for stratum in record.strata.all():
        assert per_stratum[stratum.key] == stratum.allocated == stratum.sample_size
    for case in cases:
        unit = case.frame_unit
        assert case.business_id == unit.business_id
        assert case.stratum.values == {
            "industry_group": KSIC_DIVISIONS[unit.ksic[:2]],
            "size_class": unit.size_class,
            "region_area": REGION_AREAS[unit.region],
        }


def test_cases_carry_their_stratum_population_sample_size_and_base_weight() -> None:
    survey = new_survey()
    standard_frame(survey)

    draw(survey)

    case = Case.objects.filter(survey=survey, stratum__key="machinery/micro/capital").first()
    assert case is not None
    assert (case.stratum.population, case.stratum.sample_size) == (400, 39)
    assert case.base_weight == pytest.approx(400 / 39)


def test_the_design_is_recorded_with_its_seed_and_the_frame_size() -> None:
    survey = new_survey()
    standard_frame(survey)
    manager = User.objects.create_user("planner")

    record = draw(survey, seed=20250428, reserve_fraction=0.1, user=manager)

    record.refresh_from_db()
    assert record.drawn_at is not None and record.seed == 20250428
    assert record.frame_size == 1000 and record.numpy_version == np.__version__
    assert record.strata_variables == STRATA and record.created_by == manager
    assert record.strata.count() == 6


def test_the_same_frame_design_and_seed_give_the_same_sample() -> None:
    # given: two surveys with the same frame, created in opposite orders
    first, second = new_survey("first"), new_survey("second")
    standard_frame(first)
    standard_frame(second)
    reversed_ids = list(FrameUnit.objects.filter(survey=second).order_by("-business_id"))
    FrameUnit.objects.filter(survey=second).delete()
    for unit in reversed_ids:
        unit.pk = None
    FrameUnit.objects.bulk_create(reversed_ids)

    # when
    draw(first, seed=7, reserve_fraction=0.2)
    draw(second, seed=7, reserve_fraction=0.2)

    # then
    assert sampled_ids(first) == sampled_ids(second)
    reserves = Case.objects.filter(is_reserve=True).order_by("stratum__key", "reserve_rank")
    assert [c.business_id for c in reserves.filter(survey=first)] == [
        c.business_id for c in reserves.filter(survey=second)
    ]


def test_a_different_seed_gives_a_different_sample() -> None:
    first, second = new_survey("first"), new_survey("second")
    standard_frame(first)
    standard_frame(second)

    draw(first, seed=7)
    draw(second, seed=8)

    assert sampled_ids(first) != sampled_ids(second)


def test_the_draw_follows_the_documented_selection_recipe() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)

    # when
    draw(survey, seed=11)

    # then: numpy alone, on the frame in business-ID order, redoes the draw (selection.py)
    units = list(FrameUnit.objects.filter(survey=survey).order_by("business_id"))
    stratum = Stratum.objects.get(key="machinery/small/capital")
    members = np.array(
        [i for i, u in enumerate(units) if u.ksic == "29199" and u.size_class == "small"]
    )
    key = tuple(b"machinery/small/capital")
    order = np.random.default_rng(np.random.SeedSequence(11, spawn_key=key)).permutation(members)
    expected = {units[i].business_id for i in order[: stratum.sample_size]}
    assert set(stratum.cases.values_list("business_id", flat=True)) == expected


def test_a_second_draw_is_refused() -> None:
    survey = new_survey()
    standard_frame(survey)
    draw(survey)

    with translation.override("en"), pytest.raises(SamplingError, match="already been drawn"):
        draw(survey, seed=43)

    assert SampleDesign.objects.filter(survey=survey).count() == 1


def test_a_draw_without_a_frame_is_refused() -> None:
    survey = new_survey()

    with translation.override("en"), pytest.raises(SamplingError, match="no frame"):
        draw(survey)


def test_an_impossible_allocation_is_refused_and_nothing_is_written() -> None:
    survey = new_survey()
    standard_frame(survey)

    with translation.override("en"), pytest.raises(SamplingError, match="impossible"):
        draw(survey, sample_size=2000)

    assert SampleDesign.objects.count() == 0 and Stratum.objects.count() == 0


# --- reserves --------------------------------------------------------------------------------


def test_reserves_are_disjoint_from_the_sample_and_ranked_in_release_order() -> None:
    survey = new_survey()
    standard_frame(survey)

    draw(survey, reserve_fraction=0.2)

    for stratum in Stratum.objects.all():
        reserve = stratum.cases.filter(is_reserve=True).order_by("reserve_rank")
        assert [case.reserve_rank for case in reserve] == list(range(1, stratum.reserve_size + 1))
        assert stratum.reserve_size == min(
            math.ceil(0.2 * stratum.allocated), stratum.population - stratum.allocated
        )
    assert not sampled_ids(survey) & set(
        Case.objects.filter(is_reserve=True).values_list("business_id", flat=True)
    )


def test_releasing_reserve_takes_the_next_units_in_order_and_raises_n_h() -> None:
    # given
    survey = new_survey()
    standard_frame(survey)
    draw(survey, reserve_fraction=0.2)
    manager = User.objects.create_user("fieldwork")
    stratum = Stratum.objects.get(key="machinery/micro/capital")

    # when
    first = sampling.release_reserve(stratum, count=3, user=manager)
    second = sampling.release_reserve(stratum, count=2, user=manager)

    # then
    assert [case.reserve_rank for case in first + second] == [1, 2, 3, 4, 5]
    stratum.refresh_from_db()
    assert stratum.sample_size == 44 and stratum.allocated == 39
    assert stratum.base_weight == pytest.approx(400 / 44)
    released = Case.objects.filter(stratum=stratum, released_at__isnull=False)
    assert {case.released_by for case in released} == {manager}
    assert Case.objects.filter(stratum=stratum).in_sample().count() == 44
    log = list(
        ReserveRelease.objects.filter(stratum=stratum).values_list(
            "count", "first_rank", "last_rank", "released_by"
        )
    )
    assert log == [(3, 1, 3, manager.pk), (2, 4, 5, manager.pk)]


def test_releasing_more_than_the_reserve_left_is_refused() -> None:
    survey = new_survey()
    standard_frame(survey)
    draw(survey, reserve_fraction=0.2)
    stratum = Stratum.objects.get(key="machinery/micro/capital")  # reserve 8

    with translation.override("en"), pytest.raises(SamplingError, match="only 8"):
        sampling.release_reserve(stratum, count=9, user=None)

    stratum.refresh_from_db()
    assert stratum.sample_size == 39
    assert not ReserveRelease.objects.exists()


# --- credentials -----------------------------------------------------------------------------


def test_credentials_go_to_in_sample_cases_without_them_only(survey: Survey) -> None:
    # given
    standard_frame(survey)
    draw(survey, reserve_fraction=0.2)

    # when
    first = list(credentials.issue_credentials(survey))
    again = list(credentials.issue_credentials(survey))

    # then
    assert len(first) == 100 and again == []
    assert not Case.objects.filter(is_reserve=True, token_hash__isnull=False).exists()
    case, token, code = first[0]
    assert case.derive_credentials() == (token, code)
    assert case.check_access_code(code)


def test_reissued_credentials_replace_the_old_ones(survey: Survey) -> None:
    standard_frame(survey)
    draw(survey)
    old = {case.pk: (token, code) for case, token, code in credentials.issue_credentials(survey)}
    some = list(Case.objects.filter(pk__in=list(old)[:3]))

    new = list(credentials.issue_credentials(survey, cases=some, reissue=True))

    assert len(new) == 3
    for case, token, code in new:
        old_token, old_code = old[case.pk]
        assert token != old_token and code != old_code
        assert Client().get(f"/r/{old_token}/").status_code == 404
        assert Client().get(f"/r/{token}/").status_code == 302
        assert not case.check_access_code(old_code)


def test_the_letters_file_has_the_mail_merge_columns_and_working_links(survey: Survey) -> None:
    # given
    standard_frame(survey)
    draw(survey)
    list(credentials.issue_credentials(survey))
    out = io.StringIO()

    # when
    written = credentials.write_letters(survey, out)

    # then
    text = out.getvalue()
    assert text.startswith("\ufeff") and written == 100
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert list(rows[0]) == ["business_id", "name", "link", "access_code"]
    row = rows[0]
    unit = FrameUnit.objects.get(survey=survey, business_id=row["business_id"])
    assert row["name"] == unit.name
    response = Client().get(urlsplit(row["link"]).path)
    assert response.status_code == 302 and response["Location"] == "/q/"
    login = Client().post(
        "/login/", {"business_id": row["business_id"], "access_code": row["access_code"]}
    )
    assert login.status_code == 302 and login["Location"] == "/q/"


# --- management commands ---------------------------------------------------------------------


def test_the_draw_command_with_preview_prints_the_table_and_draws_nothing() -> None:
    survey = new_survey()
    standard_frame(survey)
    out = io.StringIO()

    with translation.override("en"):
        call_command(
            "draw_sample", survey.slug, "--size", "100", "--strata", ",".join(STRATA),
            "--allocation", "proportional", "--min-per-stratum", "2", "--seed", "42",
            "--reserve", "0.2", "--preview", stdout=out,
        )  # fmt: skip

    text = out.getvalue()
    assert "machinery/micro/capital" in text and "400" in text
    assert "1000" in text.replace(",", "") and "Nothing was drawn" in text
    assert SampleDesign.objects.count() == 0


def test_the_draw_command_draws_the_sample() -> None:
    survey = new_survey()
    standard_frame(survey)
    out = io.StringIO()

    with translation.override("en"):
        call_command(
            "draw_sample", survey.slug, "--size", "100", "--strata", "size_class",
            "--allocation", "power", "--power", "0.5", "--seed", "42", stdout=out,
        )  # fmt: skip

    record = SampleDesign.objects.get(survey=survey)
    assert record.power == 0.5 and record.seed == 42
    assert Case.objects.filter(survey=survey).count() == 100
    assert "42" in out.getvalue()


def test_the_draw_command_reports_a_refusal_as_a_command_error() -> None:
    survey = new_survey()

    with pytest.raises(CommandError):
        call_command(
            "draw_sample", survey.slug, "--size", "10", "--strata", "size_class", "--seed", "1"
        )


def test_the_credentials_command_writes_the_letters_file(survey: Survey, tmp_path: Path) -> None:
    standard_frame(survey)
    draw(survey)
    out = tmp_path / "letters.csv"

    call_command("issue_credentials", survey.slug, "--out", str(out), stdout=io.StringIO())

    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["business_id", "name", "link", "access_code"] and len(rows) == 101
    assert not Case.objects.filter(survey=survey).in_sample().filter(token_hash=None).exists()


def test_the_release_command_releases_reserve_of_a_stratum() -> None:
    survey = new_survey()
    standard_frame(survey)
    draw(survey, reserve_fraction=0.2)

    call_command(
        "release_reserve",
        survey.slug,
        "machinery/micro/capital",
        "--count",
        "2",
        stdout=io.StringIO(),
    )

    assert Stratum.objects.get(key="machinery/micro/capital").sample_size == 41
