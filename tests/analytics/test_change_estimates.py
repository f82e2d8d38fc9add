"""Estimates of change through the whole platform: two rounds in the database, each with its
published version, give the changes R survey gives on the same data (methodology M4-M6;
tests/analytics/fixtures/r-checks/change_reference.R), and carry each round's suppression."""

from __future__ import annotations

import pytest

from analytics import change as changes
from analytics import tasks
from analytics.engine import quality
from analytics.models import Estimate
from analytics.spec import WeightingSpec as Spec
from tests.analytics.rounds import TwoRounds, build_two_rounds, common_by_stratum
from tests.analytics.test_change_r import FOLDER, parse

pytestmark = pytest.mark.django_db
# The requirement is 1e-6; the platform agrees with R to rounding.
RTOL = 1e-6

# R's label: item, option, statistic, domain, value
CELLS = {
    "total_y": ("sales_krw_mn", "", "total", "all", "all"),
    "mean_y": ("sales_krw_mn", "", "mean", "all", "all"),
    "p_adopted": ("sf_adopted", "yes", "proportion", "all", "all"),
    "mean_y_small": ("sales_krw_mn", "", "mean", "size_class", "small"),
    "p_adopted_large": ("sf_adopted", "yes", "proportion", "size_class", "medium"),
    "total_y_large": ("sales_krw_mn", "", "total", "size_class", "medium"),
}


@pytest.fixture
def rounds() -> TwoRounds:
    return build_two_rounds()


def test_the_common_population_comes_from_the_two_frames(rounds: TwoRounds) -> None:
    links = changes.linked_cases(rounds.first, rounds.second)

    found = changes.common_population(rounds.first, rounds.second, links)

    assert found == common_by_stratum()
    assert len(links) == len(rounds.first_cases.keys() & rounds.second_cases.keys())


@pytest.mark.parametrize("label", list(CELLS))
def test_the_published_change_agrees_with_r(rounds: TwoRounds, label: str) -> None:
    # given
    expected = parse((FOLDER / "change_reference_output.txt").read_text())[label]

    # when
    cell = changes.changes_between(rounds.first_run, rounds.second_run).cell(*CELLS[label])

    # then: each round as it published, and the change with the covariance of the panel
    assert cell.first.estimate == pytest.approx(expected["est1"], rel=RTOL)
    assert cell.second.estimate == pytest.approx(expected["est2"], rel=RTOL)
    assert cell.first.se == pytest.approx(expected["se1"], rel=RTOL)
    assert cell.second.se == pytest.approx(expected["se2"], rel=RTOL)
    assert cell.estimate == pytest.approx(expected["est2"] - expected["est1"], rel=RTOL)
    assert cell.se == pytest.approx(expected["se_diff"], rel=RTOL)
    covariance = expected["cov"] / (expected["se1"] * expected["se2"])
    assert cell.correlation == pytest.approx(covariance, rel=RTOL)


def test_the_change_has_the_wald_interval_of_the_smaller_df(rounds: TwoRounds) -> None:
    table = changes.changes_between(rounds.first_run, rounds.second_run)

    cell = table.cell(*CELLS["mean_y"])

    assert cell.df == min(cell.first.df or 0, cell.second.df or 0)
    assert cell.ci_low is not None and cell.ci_high is not None and cell.estimate is not None
    assert cell.ci_low < cell.estimate < cell.ci_high
    assert cell.common > 0 and cell.significant == (cell.ci_low > 0 or cell.ci_high < 0)


def test_a_change_is_suppressed_with_either_rounds_estimate(rounds: TwoRounds) -> None:
    # given: the second round's stratum D has 4 respondents, below the minimum of 5, and
    # another stratum is withheld beside it (complementary suppression)
    cells = ("sales_krw_mn", "", "mean", "stratum_code")
    levels = [
        dict(Estimate.objects.filter(run=run, item=cells[0], statistic=cells[2], domain=cells[3])
             .values_list("domain_value", "suppressed"))
        for run in (rounds.first_run, rounds.second_run)
    ]  # fmt: skip
    assert levels[1]["D"] and sum(levels[1].values()) >= 2

    # when
    table = changes.changes_between(rounds.first_run, rounds.second_run)

    # then: the change shows no value that would give a withheld level away
    for value in levels[1]:
        cell = table.cell(*cells, value)
        hidden = levels[0][value] or levels[1][value]
        assert cell.suppressed == hidden
        if hidden:
            assert (cell.estimate, cell.se, cell.ci_low, cell.ci_high, cell.correlation) == (
                None,
            ) * 5
        for level, suppressed in ((cell.first, levels[0][value]), (cell.second, levels[1][value])):
            assert (level.estimate is None) == suppressed
            assert (level.se is None) == suppressed
    d = table.cell(*cells, "D")
    assert (quality.MIN_N, changes.SECOND) in d.reasons


def poststratified(totals: dict[str, float]) -> Spec:
    return Spec(
        calibration="poststratify",
        margins=("size_class",),
        margin_totals={"size_class": totals},
    )


@pytest.mark.parametrize(
    ("label", "cell"),
    [
        ("mean_y_poststratified", CELLS["mean_y"]),
        ("total_y_poststratified", CELLS["total_y"]),
        ("p_adopted_poststratified", CELLS["p_adopted"]),
    ],
)
def test_calibrated_rounds_agree_with_r(label: str, cell: tuple[str, ...]) -> None:
    # given: each round post-stratified by size class to the R script's totals
    expected = parse((FOLDER / "change_reference_output.txt").read_text())[label]
    rounds = build_two_rounds(
        poststratified({"small": 480.0, "medium": 249.0}),
        poststratified({"small": 470.0, "medium": 264.0}),
    )

    # when
    found = changes.changes_between(rounds.first_run, rounds.second_run).cell(*cell)

    # then
    assert found.first.estimate == pytest.approx(expected["est1"], rel=RTOL)
    assert found.second.se == pytest.approx(expected["se2"], rel=RTOL)
    assert found.se == pytest.approx(expected["se_diff"], rel=RTOL)


def test_replicate_rounds_keep_their_published_variance() -> None:
    # given: both rounds published with jackknife variance
    rounds = build_two_rounds(Spec(variance="jackknife", replicates=20))
    published = Estimate.objects.get(run=rounds.second_run, item="sales_krw_mn",
                                     statistic="mean", domain="all")  # fmt: skip
    expected = parse((FOLDER / "change_reference_output.txt").read_text())["mean_y"]

    # when
    cell = changes.changes_between(rounds.first_run, rounds.second_run).cell(*CELLS["mean_y"])

    # then: the rounds' replicate SEs, and the Taylor covariance of the common firms (R's)
    assert cell.second.se == published.se
    assert published.se != pytest.approx(expected["se2"], rel=1e-3)
    assert cell.first.se is not None and cell.second.se is not None and cell.se is not None
    covariance = cell.correlation * cell.first.se * cell.second.se  # type: ignore[operator]
    assert covariance == pytest.approx(expected["cov"], rel=RTOL)
    variance = cell.first.se**2 + cell.second.se**2 - 2 * covariance
    assert cell.se == pytest.approx(variance**0.5, rel=1e-12)
    assert cell.df == min(published.df or 0, 19)


def test_a_change_with_few_degrees_of_freedom_is_flagged() -> None:
    # given: a review threshold above every df of the fixture
    rounds = build_two_rounds(Spec(suppression=quality.Thresholds(min_df=1000)))

    cell = changes.changes_between(rounds.first_run, rounds.second_run).cell(*CELLS["mean_y"])

    assert (quality.DF_LOW, changes.CHANGE) in cell.reasons
    assert cell.estimate is not None


def test_a_version_whose_answers_changed_since_is_not_compared(rounds: TwoRounds) -> None:
    # given: a firm's answer edited after the second round's version
    case = next(iter(rounds.second_cases.values()))
    response = case.response
    response.answers = {**response.answers, "sales_krw_mn": 123456.0}
    response.save(update_fields=["answers"])

    # then
    with pytest.raises(changes.ChangeUnavailable, match="changed since version"):
        changes.changes_between(rounds.first_run, rounds.second_run)


def test_the_worker_prepares_the_changes_of_a_new_version(
    rounds: TwoRounds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # when: the first round's version is published, its next round's change is computed
    assert tasks.prepare_changes(rounds.first.pk) == 1

    # then: the page finds it without computing
    def computed_again(*_args: object) -> None:
        raise AssertionError("computed again")

    monkeypatch.setattr(changes, "_compute", computed_again)
    assert changes.changes_between(rounds.first_run, rounds.second_run).cells


def test_the_rounds_of_a_series_are_found_from_either_end(rounds: TwoRounds) -> None:
    assert changes.round_chain(rounds.second) == [rounds.first, rounds.second]
    assert changes.round_chain(rounds.first) == [rounds.first, rounds.second]


def test_a_later_round_cannot_be_the_earlier_one(rounds: TwoRounds) -> None:
    with pytest.raises(changes.ChangeUnavailable):
        changes.changes_between(rounds.second_run, rounds.first_run)
