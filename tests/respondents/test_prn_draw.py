"""The PRN draw of a round and its coordination with the previous round's sample: start
points, reserves, expected and realised overlap, and each case linked to last year's."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import translation

from analytics.engine import prn
from respondents import sampling
from respondents.models import Case, FrameUnit, SampleDesign, Stratum
from surveys.models import Survey
from tests.factories import business_id
from tests.respondents.rounds import draw, firm, load_frame, load_links, rounds

pytestmark = pytest.mark.django_db

FRAME = [
    *(firm(n, size="small") for n in range(100, 160)),
    *(firm(n, size="medium") for n in range(200, 240)),
    *(firm(n, size="micro") for n in range(300, 350)),
]
N_H = {"small": 12, "medium": 8, "micro": 10}  # 30 of 150, proportional


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def pair() -> tuple[Survey, Survey]:
    """Last year drawn by PRN; this year's frame the same firms (numbers carried)."""
    first, second = rounds()
    load_frame(first, FRAME, seed=1)
    draw(first, 30)
    load_frame(second, FRAME, seed=2)
    return first, second


def numbers(units: Any) -> list[float]:
    return sorted(float(u) for u in units.values_list("prn", flat=True))


def sample_ids(survey: Survey) -> set[str]:
    return set(Case.objects.filter(survey=survey).in_sample().values_list("business_id", flat=True))


def realised(survey: Survey) -> dict[str, tuple[float | None, int]]:
    table = sampling.overlap_table(sampling.drawn_design(survey))  # type: ignore[arg-type]
    return {row.stratum.key: (row.stratum.expected_overlap, row.realised) for row in table.rows}


def test_a_first_prn_draw_takes_the_smallest_numbers_of_each_stratum_from_start_0() -> None:
    # given
    first, _second = rounds()
    load_frame(first, FRAME, seed=1)

    # when
    design = draw(first, 30)

    # then
    assert design.selection == "prn"
    for stratum in design.strata.all():
        frame = numbers(first.frame_units.filter(size_class=stratum.key))
        chosen = FrameUnit.objects.filter(case__stratum=stratum, case__is_reserve=False)
        assert numbers(chosen) == frame[: N_H[stratum.key]]
        assert stratum.prn_start == 0.0 and stratum.prn_end == frame[N_H[stratum.key] - 1]


def test_the_reserve_is_the_next_firms_in_the_numbers_order() -> None:
    first, _second = rounds()
    load_frame(first, FRAME, seed=1)

    design = draw(first, 30, reserve_fraction=0.5)

    small = design.strata.get(key="small")
    frame = numbers(first.frame_units.filter(size_class="small"))
    reserve = Case.objects.filter(stratum=small, is_reserve=True).order_by("reserve_rank")
    assert list(reserve.values_list("frame_unit__prn", flat=True)) == frame[12:18]


def test_positive_coordination_keeps_the_panel_of_an_unchanged_frame(
    pair: tuple[Survey, Survey],
) -> None:
    # when
    first, second = pair
    draw(second, 30, coordination="positive")

    # then: the same firms, each case linked to last year's
    assert sample_ids(second) == sample_ids(first)
    assert realised(second) == {key: (float(n), n) for key, n in N_H.items()}
    for case in Case.objects.filter(survey=second).in_sample().select_related("previous"):
        assert case.previous is not None and case.previous.business_id == case.business_id
    starts = dict(sampling.drawn_design(second).strata.values_list("key", "prn_start"))  # type: ignore[union-attr]
    assert starts == dict.fromkeys(N_H, 0.0)


def test_negative_coordination_avoids_last_years_firms(pair: tuple[Survey, Survey]) -> None:
    first, second = pair

    draw(second, 30, coordination="negative")

    assert not sample_ids(second) & sample_ids(first)
    assert realised(second) == {key: (0.0, 0) for key in N_H}
    # the new start is the number of last year's last firm in each stratum
    ends = dict(sampling.drawn_design(first).strata.values_list("key", "prn_end"))  # type: ignore[union-attr]
    assert dict(sampling.drawn_design(second).strata.values_list("key", "prn_start")) == ends  # type: ignore[union-attr]


def test_rotation_replaces_the_share_r_of_each_stratum(pair: tuple[Survey, Survey]) -> None:
    first, second = pair

    draw(second, 30, coordination="rotation", rotation=0.25)

    # k_h = floor(0.25 n_h + 1/2) of last year's firms leave each stratum
    kept = {key: n - int(np.floor(0.25 * n + 0.5)) for key, n in N_H.items()}
    assert realised(second) == {key: (pytest.approx(float(k)), k) for key, k in kept.items()}
    assert len(sample_ids(second) & sample_ids(first)) == sum(kept.values())


def test_the_expected_overlap_is_the_engines_for_the_two_frames(
    pair: tuple[Survey, Survey],
) -> None:
    # given: this year 5 small firms closed, 4 were born, one small firm grew to medium
    first, second = pair
    rows = [r for r in FRAME if r[0] not in {business_id(n) for n in range(100, 105)}]
    rows = [firm(110, size="medium") if r[0] == business_id(110) else r for r in rows]
    load_frame(second, [*rows, *(firm(n, size="small") for n in range(400, 404))], seed=3)

    # when
    design = draw(second, 30, coordination="rotation", rotation=0.2)

    # then: small has 54 common firms, 6 leavers (5 closed, 1 moved out), 4 joiners
    small = design.strata.get(key="small")
    expected = prn.expected_overlap(
        n1=12, n2=small.sample_size, common=54, leavers=6, joiners=4, rotation=0.2
    )
    assert small.expected_overlap == pytest.approx(expected, abs=1e-12)
    medium = design.strata.get(key="medium")
    assert medium.expected_overlap == pytest.approx(
        prn.expected_overlap(n1=8, n2=medium.sample_size, common=40, joiners=1, rotation=0.2),
        abs=1e-12,
    )
    linked = Case.objects.filter(survey=second).in_sample().exclude(previous=None)
    assert linked.count() == len(sample_ids(second) & sample_ids(first))


def test_the_preview_shows_the_expected_overlap_before_the_draw(
    pair: tuple[Survey, Survey],
) -> None:
    _first, second = pair

    preview = sampling.preview_design(
        second,
        strata_variables=["size_class"],
        allocation="proportional",
        sample_size=30,
        min_per_stratum=2,
        selection="prn",
        coordination="positive",
    )

    assert preview.coordinated and preview.expected_overlap == pytest.approx(30.0)
    assert {row.key: row.previous_size for row in preview.strata} == N_H
    assert not SampleDesign.objects.filter(survey=second).exists()


def test_a_case_links_to_last_years_case_through_the_mapping() -> None:
    # given: firm 100 has a new number, 500, this year; sampled both years (all of small)
    first, second = rounds()
    load_frame(first, FRAME, seed=1)
    draw(first, 150)
    rows = [firm(500) if r[0] == business_id(100) else r for r in FRAME]
    load_frame(second, rows, seed=2)
    load_links(second, [[business_id(100), business_id(500), "renumbered"]])

    # when
    draw(second, 150)

    # then
    case = Case.objects.get(survey=second, business_id=business_id(500))
    assert case.previous == Case.objects.get(survey=first, business_id=business_id(100))


def test_an_srs_draw_of_a_round_links_its_cases_too(pair: tuple[Survey, Survey]) -> None:
    first, second = pair

    draw(second, 30, selection="srs")

    both = sample_ids(second) & sample_ids(first)
    linked = Case.objects.filter(survey=second).exclude(previous=None)
    assert set(linked.values_list("business_id", flat=True)) == both


def test_no_coordination_starts_each_stratum_at_a_random_point(
    pair: tuple[Survey, Survey],
) -> None:
    _first, second = pair

    design = draw(second, 30, coordination="none")

    starts = [a for a in design.strata.values_list("prn_start", flat=True) if a is not None]
    assert len(set(starts)) == 3 and all(0 < a < 1 for a in starts)
    assert all(s.expected_overlap is None for s in Stratum.objects.filter(design=design))


def test_coordination_needs_a_previous_round_drawn_by_prn() -> None:
    first, second = rounds()
    load_frame(first, FRAME, seed=1)
    with pytest.raises(sampling.SamplingError, match="needs the previous round's drawn sample"):
        draw(first, 30, coordination="positive")
    draw(first, 30, selection="srs")
    load_frame(second, FRAME, seed=2)

    with pytest.raises(sampling.SamplingError, match="drawn by simple random sampling"):
        draw(second, 30, coordination="positive")
    with pytest.raises(sampling.SamplingError, match="needs selection by permanent random"):
        draw(second, 30, selection="srs", coordination="positive")
    with pytest.raises(sampling.SamplingError, match="rotation share"):
        draw(second, 30, coordination="rotation")


def test_the_draw_command_draws_a_coordinated_sample(pair: tuple[Survey, Survey]) -> None:
    _first, second = pair
    out = io.StringIO()

    call_command(
        "draw_sample", second.slug, "--size", "30", "--strata", "size_class", "--seed", "3",
        "--selection", "prn", "--coordination", "rotation", "--rotation", "0.25", stdout=out,
    )  # fmt: skip

    assert "Expected overlap with the previous round's sample: 22.0 firms." in out.getvalue()
    design = sampling.drawn_design(second)
    assert design is not None and (design.selection, design.rotation) == ("prn", 0.25)


def test_strata_of_the_same_variables_in_another_order_are_last_years() -> None:
    # given: last year stratified by size class and region, this year by region and size
    first, second = rounds()
    rows = [
        firm(n, size=("small", "medium")[n % 2], region=("Seoul", "Busan")[n // 50])
        for n in range(100)
    ]
    load_frame(first, rows, seed=1)
    draw(first, 40, strata_variables=["size_class", "region"])
    load_frame(second, rows, seed=2)

    # when
    design = draw(second, 40, strata_variables=["region", "size_class"], coordination="positive")

    # then: the same firms, each stratum's overlap expected and realised
    assert sample_ids(second) == sample_ids(first)
    table = sampling.overlap_table(design)
    assert {row.stratum.key for row in table.rows} == {
        "Busan/small",
        "Seoul/medium",
        "Busan/medium",
        "Seoul/small",
    }
    assert all(
        row.previous_size == row.realised == row.stratum.expected_overlap for row in table.rows
    )
