"""Imputation in classes (analytics/engine/imputation.py): worked by hand, and the donors
Banff's DONORIMP 3.1.3 chose on the same small file (docs/banff-evaluation.md)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.engine.editing import LinearEdits
from analytics.engine.imputation import (
    ImputationError,
    Method,
    donate,
    nearest_donors,
    passes_edits,
    random_donors,
    ratio_impute,
)

# Two classes of ten firms, employees as the matching variable.
EMPLOYEES = np.array([24, 26, 38, 47, 2, 8, 41, 47, 13, 16, 43, 21, 14, 41, 13, 21, 32, 27, 5, 2.0])
CLASS = np.array(["A"] * 10 + ["B"] * 10)
RECIPIENT = np.isin(np.arange(20), [2, 5, 13])


def test_ratio_imputation_uses_the_class_ratio_of_the_donors() -> None:
    # given: class A's donors have Σy = 60, Σx = 30 (ratio 2); class B's Σy = 30, Σx = 10 (3)
    y = np.array([20.0, 40.0, np.nan, 10.0, 20.0, np.nan])
    x = np.array([10.0, 20.0, 7.0, 5.0, 5.0, 4.0])
    cls = np.array(["A", "A", "A", "B", "B", "B"])
    recipient = np.isnan(y)

    # when
    out = ratio_impute(y, x, recipient, ~recipient, [cls])

    # then
    np.testing.assert_allclose(out.values, [20, 40, 14, 10, 20, 12])
    assert out.method.tolist() == [0, 0, Method.RATIO, 0, 0, Method.RATIO]
    assert out.donor.tolist() == [-1] * 6
    assert out.level.tolist() == [-1, -1, 0, -1, -1, 0]


def test_ratio_imputation_weights_the_donors() -> None:
    # Σ w·y / Σ w·x = (1·20 + 3·40) / (1·10 + 3·10) = 140 / 40 = 3.5
    y = np.array([20.0, 40.0, np.nan])
    x = np.array([10.0, 10.0, 2.0])
    recipient = np.isnan(y)

    out = ratio_impute(y, x, recipient, ~recipient, weights=[1.0, 3.0, 5.0])

    assert out.values[2] == pytest.approx(7.0)
    assert out.level[2] == 0  # no class given: all donors are level 0


def test_a_class_without_donors_falls_back_to_the_coarser_class_then_to_all() -> None:
    # given: class a2 has no donor (falls to industry A), industry B none at all (all donors)
    y = np.array([10.0, 30.0, np.nan, np.nan, 100.0, np.nan])
    x = np.ones(6)
    fine = np.array(["a1", "a1", "a2", "b1", "c1", "c1"])
    coarse = np.array(["A", "A", "A", "B", "C", "C"])
    recipient = np.isnan(y)

    # when
    out = ratio_impute(y, x, recipient, ~recipient, [fine, coarse])

    # then: a2 → A's ratio 20; B → all donors' 140/3; c1 keeps its own class's 100
    np.testing.assert_allclose(out.values[[2, 3, 5]], [20.0, 140 / 3, 100.0])
    assert out.level[[2, 3, 5]].tolist() == [1, 2, 0]


def test_min_donors_makes_a_small_class_fall_back() -> None:
    y = np.array([10.0, 30.0, 50.0, np.nan])
    cls = np.array([1, 2, 2, 1])
    recipient = np.isnan(y)

    out = ratio_impute(y, np.ones(4), recipient, ~recipient, [cls], min_donors=2)

    assert out.values[3] == pytest.approx(30.0)
    assert out.level[3] == 1


def test_a_recipient_without_its_auxiliary_value_is_left_and_marked_failed() -> None:
    y = np.array([10.0, np.nan, np.nan])
    x = np.array([1.0, 2.0, np.nan])
    recipient = np.isnan(y)

    out = ratio_impute(y, x, recipient, ~recipient)

    assert out.values[1] == pytest.approx(20.0)
    assert np.isnan(out.values[2])
    assert out.method.tolist() == [Method.REPORTED, Method.RATIO, Method.FAILED]
    assert not out.imputed[2]


def test_a_row_cannot_be_both_recipient_and_donor() -> None:
    with pytest.raises(ImputationError, match="row 1 is both"):
        nearest_donors([1.0, 2.0], [False, True], [True, True], seed=1)


def test_nearest_donors_rank_every_variable_as_banff_donorimp() -> None:
    # given: five donors and a recipient (6, 480). Ranks among all six, employees:
    # D0 1, D1 2, D2 3, R 4, D3 5, D4 6; turnover: D0 1, D2 2, R 3, D4 4, D3 5, D1 6.
    # Largest rank gap to R: D0 3, D1 3, D2 1, D3 2, D4 2. Banff 3.1.3 chose D2 too.
    # On the raw values turnover would decide alone, and D4 (9, 500) would win.
    match = np.array([[1, 100], [3, 900], [5, 300], [7, 700], [9, 500], [6, 480.0]])
    recipient = np.arange(6) == 5

    # when
    donors = nearest_donors(match, recipient, ~recipient, seed=1)

    # then
    assert donors.donor.tolist() == [-1, -1, -1, -1, -1, 2]
    assert donors.method[5] == Method.NEAREST_DONOR
    assert np.argmin(np.abs(match[:5] - match[5]).max(axis=1)) == 4


def test_ranks_are_taken_within_the_class() -> None:
    # Class A's donors have employees 2 13 16 24 26 41 47 47 and recipients 38 and 8; ranks
    # among those ten: 8 is 2nd, between 2 (1st) and 13 (3rd), so both are 1 away and the
    # seed decides; 38 is 7th between 26 (6th) and 41 (8th), the same. Class B's 41 is 9th,
    # between 32 (8th) and 43 (10th). Donors never come from the other class.
    picks = [nearest_donors(EMPLOYEES, RECIPIENT, ~RECIPIENT, [CLASS], seed=s) for s in range(8)]

    assert {tuple(p.donor[RECIPIENT]) for p in picks} <= {
        (a, b, c) for a in (1, 6) for b in (4, 8) for c in (16, 10)
    }
    assert len({tuple(p.donor[RECIPIENT]) for p in picks}) > 1


def test_donors_are_never_recipients_and_stay_in_the_class() -> None:
    rng = np.random.default_rng(7)
    match = rng.lognormal(2, 1, (400, 2))
    cls = rng.integers(0, 6, 400)
    recipient = rng.random(400) < 0.3
    donor = ~recipient & (rng.random(400) < 0.9)

    for found in (
        nearest_donors(match, recipient, donor, [cls], seed=3),
        random_donors(recipient, donor, [cls], seed=3),
    ):
        chosen = found.donor[recipient]
        assert (chosen >= 0).all()
        assert donor[chosen].all() and not recipient[chosen].any()
        assert (cls[chosen] == cls[recipient]).all()


def test_equally_near_donors_are_chosen_by_the_seeded_order() -> None:
    # Two donors with the same matching value: the seed decides, the same way every time.
    match = np.array([5.0, 5.0, 5.0])
    recipient = np.array([False, False, True])

    picks = {nearest_donors(match, recipient, ~recipient, seed=s).donor[2] for s in range(20)}
    again = [nearest_donors(match, recipient, ~recipient, seed=4).donor[2] for _ in range(3)]

    assert picks == {0, 1}
    assert len(set(again)) == 1


def test_one_class_draw_does_not_change_when_another_class_changes() -> None:
    rng = np.random.default_rng(11)
    cls = np.repeat(["A", "B"], 50)
    match = np.round(rng.uniform(0, 3, 100))  # many ties: the stream decides
    recipient = rng.random(100) < 0.3
    other = recipient.copy()
    other[:50] = rng.random(50) < 0.6  # class A gets other recipients (and donors)

    for find in (
        lambda r: nearest_donors(match, r, ~r, [cls], seed=9).donor,
        lambda r: random_donors(r, ~r, [cls], seed=9).donor,
    ):
        assert np.array_equal(find(recipient)[50:], find(other)[50:])
        assert not np.array_equal(find(recipient)[:50], find(other)[:50])


def test_random_donors_are_reproducible_and_follow_the_weights() -> None:
    recipient = np.zeros(2003, dtype=bool)
    recipient[3:] = True
    weights = np.r_[1.0, 3.0, 0.0, np.ones(2000)]

    first = random_donors(recipient, ~recipient, seed=5, weights=weights)
    second = random_donors(recipient, ~recipient, seed=5, weights=weights)
    counts = np.bincount(first.donor[recipient], minlength=3)

    assert np.array_equal(first.donor, second.donor)
    assert counts[2] == 0
    assert counts[1] / 2000 == pytest.approx(0.75, abs=0.04)  # sd 0.0097
    assert (first.method[recipient] == Method.RANDOM_DONOR).all()


def test_a_missing_matching_value_of_the_recipient_is_left_out_of_the_distance() -> None:
    # Donors (1, 100) and (50, 1): on the first variable alone the recipient's 2 is nearer row 0.
    match = np.array([[1.0, 100.0], [50.0, 1.0], [2.0, np.nan]])
    recipient = np.array([False, False, True])

    assert nearest_donors(match, recipient, ~recipient, seed=1).donor[2] == 0


def test_range_and_sd_scales_divide_by_the_donors_spread() -> None:
    # Variable 1 spans 0..10, variable 2 spans 0..1000. Unscaled, variable 2 decides alone
    # (row 0 is 20 away on it); scaled by the range, row 1 is nearest: max(0.1, 0.28) against
    # row 0's max(0.9, 0.02). By the SDs (5.77 and 434.9): 0.64 against 1.56.
    match = np.array([[0.0, 500.0], [10.0, 800.0], [0.0, 0.0], [10.0, 1000.0], [9.0, 520.0]])
    recipient = np.arange(5) == 4

    by_range = nearest_donors(match, recipient, ~recipient, seed=1, scale="range")
    by_sd = nearest_donors(match, recipient, ~recipient, seed=1, scale="sd")

    assert np.argmin(np.abs(match[:4] - match[4]).max(axis=1)) == 0
    assert by_range.donor[4] == 1
    assert by_sd.donor[4] == 1


def test_a_donor_limit_spreads_recipients_and_overflow_goes_up_a_level() -> None:
    # Class A: one donor (row 0) and three recipients; limit 2, so the third goes to all.
    match = np.array([1.0, 1.0, 1.0, 1.0, 9.0])
    cls = np.array(["A", "A", "A", "A", "B"])
    recipient = np.array([False, True, True, True, False])

    found = nearest_donors(match, recipient, ~recipient, [cls], seed=1, n_limit=2)

    assert found.donor[1:4].tolist() == [0, 0, 4]
    assert found.level[1:4].tolist() == [0, 0, 1]
    assert np.bincount(found.donor[recipient]).max() <= 2


def test_a_donor_whose_values_would_fail_the_edits_is_passed_over() -> None:
    # given: the recipient kept its sales (100) and lacks costs; costs ≤ sales. The nearest
    # donor (same employees) has costs 150, which would fail; the next has 80.
    employees = np.array([10.0, 12.0, 30.0, 10.0])
    values = np.array([[300.0, 150.0], [200.0, 80.0], [50.0, 40.0], [100.0, np.nan]])
    impute = np.isnan(values)
    recipient = impute.any(axis=1)
    accept = passes_edits(values, impute, LinearEdits.of([[-1, 1]], [0]))

    # when
    plain = nearest_donors(employees, recipient, ~recipient, seed=1)
    checked = nearest_donors(employees, recipient, ~recipient, seed=1, accept=accept)
    one_try = nearest_donors(employees, recipient, ~recipient, seed=1, accept=accept, tries=1)

    # then
    assert plain.donor[3] == 0
    assert checked.donor[3] == 1
    assert donate(values, impute, checked).values[3].tolist() == [100.0, 80.0]
    assert one_try.donor[3] == -1 and one_try.method[3] == Method.FAILED


def test_joint_donation_takes_every_item_from_one_donor() -> None:
    # given: numeric and categorical items; a firm that adopted nothing reports no level
    values = np.array(
        [
            [1, "advanced", 300.0],
            [0, None, 0.0],
            [1, "basic", 40.0],
            [None, None, None],  # everything missing
            [1, None, 55.0],  # only the level is missing
        ],
        dtype=object,
    )
    impute = np.array([[False] * 3] * 3 + [[True] * 3, [False, True, False]])
    match = np.array([300.0, 0.0, 40.0, 280.0, 50.0])
    recipient = impute.any(axis=1)

    # when
    donors = nearest_donors(match, recipient, ~recipient, seed=2, scale="range")
    out = donate(values, impute, donors)

    # then: each recipient's items are its donor's; an answer it gave is kept
    assert donors.donor[3:].tolist() == [0, 2]
    assert out.values[3].tolist() == [1, "advanced", 300.0]
    assert out.values[4].tolist() == [1, "basic", 55.0]
    assert out.values[:3].tolist() == values[:3].tolist()
    assert out.method.tolist() == [0, 0, 0, Method.NEAREST_DONOR, Method.NEAREST_DONOR]


def test_joint_donation_keeps_the_donors_edit_rules() -> None:
    # Donors satisfy total = a + b; recipients missing all three get a consistent triple.
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 50, 300).astype(float), rng.integers(0, 50, 300).astype(float)
    values = np.column_stack([a, b, a + b])
    recipient = rng.random(300) < 0.25
    values[recipient] = np.nan
    impute = np.repeat(recipient[:, None], 3, axis=1)

    donors = random_donors(recipient, ~recipient, [rng.integers(0, 4, 300)], seed=8)
    out = donate(values, impute, donors).values

    np.testing.assert_array_equal(out[:, 2], out[:, 0] + out[:, 1])


def test_a_donor_whose_item_is_itself_to_impute_is_refused() -> None:
    values = np.array([1.0, 2.0, 3.0])
    donors = nearest_donors(values, [False, False, True], [True, True, False], seed=1)

    with pytest.raises(ImputationError, match="itself to be imputed"):
        donate(values, [True, True, True], donors)


def test_no_donor_anywhere_leaves_recipients_failed() -> None:
    found = random_donors([True, True], [False, False], seed=1)

    assert found.donor.tolist() == [-1, -1]
    assert found.method.tolist() == [Method.FAILED, Method.FAILED]
