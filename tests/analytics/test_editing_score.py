"""Selective editing and edit-rule numerics (analytics/engine/editing.py), worked by hand
and against numpy.percentile."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.engine.editing import (
    EditingError,
    LinearEdits,
    error_localise,
    global_score,
    hidiroglou_berthelot,
    imputed_share,
    local_scores,
    percentiles_by,
    triage,
)

# Three firms in two domains; the anticipated totals are d1: 2·100 + 1·50 = 250, d2: 4·25 = 100.
WEIGHTS = np.array([2.0, 1.0, 4.0])
DOMAINS = np.array(["d1", "d1", "d2"])
ANTICIPATED = np.array([100.0, 50.0, 25.0])


def test_the_local_score_is_the_weighted_deviation_over_the_domain_total() -> None:
    reported = np.array([110.0, 50.0, 40.0])

    scores = local_scores(reported, ANTICIPATED, WEIGHTS, DOMAINS)

    np.testing.assert_allclose(scores, [2 * 10 / 250, 0.0, 4 * 15 / 100])


def test_given_totals_replace_the_anticipated_ones() -> None:
    scores = local_scores([110.0, 50.0, 40.0], ANTICIPATED, WEIGHTS, totals=1000.0)

    np.testing.assert_allclose(scores, [0.02, 0.0, 0.06])


def test_missing_values_score_zero_and_a_zero_total_scores_inf() -> None:
    scores = local_scores([np.nan, 5.0, 3.0], [1.0, 0.0, 3.0], [1.0, 1.0, 1.0], [0, 1, 2])

    assert scores.tolist() == [0.0, np.inf, 0.0]


def test_scores_of_several_items_are_per_item() -> None:
    reported = np.column_stack([[110.0, 50.0, 40.0], [1.0, 2.0, 3.0]])
    anticipated = np.column_stack([ANTICIPATED, [1.0, 1.0, 1.0]])

    scores = local_scores(reported, anticipated, WEIGHTS, DOMAINS)

    # item 2's totals: d1 = 2 + 1 = 3, d2 = 4
    np.testing.assert_allclose(scores[:, 1], [0.0, 1 / 3, 4 * 2 / 4])


def test_the_global_score_is_the_largest_or_the_sum_of_the_item_scores() -> None:
    scores = np.array([[0.1, 0.3], [0.2, 0.2]])

    assert global_score(scores).tolist() == [0.3, 0.2]
    np.testing.assert_allclose(global_score(scores, "sum"), [0.4, 0.4])
    np.testing.assert_allclose(global_score(scores, item_weights=[2.0, 1.0]), [0.3, 0.4])
    with pytest.raises(EditingError):
        global_score(scores, "mean")  # type: ignore[arg-type]


def test_triage_passes_units_below_the_threshold_and_says_what_they_carry() -> None:
    scores = np.array([0.01, 0.05, 0.2])
    values = np.column_stack([[100.0, 50.0, 25.0], [1.0, np.nan, 1.0]])

    result = triage(scores, 0.05, WEIGHTS, values)

    # at the threshold is reviewed; Σ w·y = 200 + 50 + 100, passing 200; item 2: 2 of 6
    assert result.passed.tolist() == [True, False, False]
    np.testing.assert_allclose(result.share, [200 / 350, 2 / 6])


def test_a_higher_threshold_never_passes_fewer_units() -> None:
    rng = np.random.default_rng(1)
    scores, w, y = rng.exponential(0.02, 500), rng.uniform(1, 50, 500), rng.gamma(2, 10, 500)

    shares = [triage(scores, t, w, y).share[0] for t in (0.0, 0.01, 0.02, 0.05, np.inf)]

    assert shares == sorted(shares)
    assert shares[0] == 0.0 and shares[-1] == pytest.approx(1.0)


def test_percentiles_by_class_equal_numpy_percentile() -> None:
    rng = np.random.default_rng(4)
    ratio = rng.lognormal(3, 1, 3000)
    ratio[rng.random(3000) < 0.02] = np.nan  # no employees: no ratio
    group = rng.integers(0, 20, 3000)
    q = [1, 5, 25, 50, 75, 95, 99]

    found = percentiles_by(ratio, group, q)

    for k in range(20):
        kept = ratio[(group == k) & np.isfinite(ratio)]
        np.testing.assert_array_equal(found.values[k], np.percentile(kept, q))
        assert found.count[k] == kept.size


def test_weighted_percentiles_invert_the_weighted_distribution_function() -> None:
    # weights 1, 1, 2 over 10, 20, 30: F = .25, .5, 1; the median is the first with F ≥ .5
    found = percentiles_by([30.0, 10.0, 20.0], [0, 0, 0], [0, 25, 50, 51, 100], [2, 1, 1])

    assert found.values[0].tolist() == [10.0, 10.0, 20.0, 30.0, 30.0]


def test_equal_weights_give_numpy_inverted_cdf() -> None:
    rng = np.random.default_rng(5)
    values, group = rng.normal(size=999), rng.integers(0, 7, 999)
    q = [0, 1, 10, 50, 90, 99, 100]

    found = percentiles_by(values, group, q, weights=np.ones(999))

    for k in range(7):
        expected = np.percentile(values[group == k], q, method="inverted_cdf")
        np.testing.assert_array_equal(found.values[k], expected)


def test_percentiles_of_text_classes_and_an_empty_class() -> None:
    found = percentiles_by([1.0, 3.0, np.inf], ["b", "b", "a"], [50])

    assert found.levels.tolist() == ["a", "b"]
    assert np.isnan(found.values[0, 0]) and found.values[1, 0] == 2.0
    assert found.of(["b", "a", "b"])[:, 0].tolist()[0] == 2.0


def test_hidiroglou_berthelot_by_hand() -> None:
    # Ratios 1 2 2 2 4 (x = 1): median 2; s = 1 - 2/1 = -1, 0, 0, 0, 4/2 - 1 = 1;
    # E quartiles 0, 0, 0: d = max(0, 0.05·0) = 0 both sides, so only E = 0 passes.
    edit = hidiroglou_berthelot([1.0, 2, 2, 2, 4], np.ones(5), c=4)

    np.testing.assert_allclose(edit.effect, [-1, 0, 0, 0, 1])
    assert edit.outlier.tolist() == [True, False, False, False, True]


def test_hidiroglou_berthelot_interval_and_size_effect() -> None:
    # Ratios 1..5 (x = 10): median 3; s = -2, -0.5, 0, 1/3, 2/3; Q1 = -0.5, Q3 = 1/3;
    # c = 2.5: [0 - 2.5·0.5, 0 + 2.5/3] = [-1.25, 5/6]; with u = 1, E = s · max(x, y).
    y = np.array([10.0, 20, 30, 40, 50])

    plain = hidiroglou_berthelot(y, np.full(5, 10.0), c=2.5)
    sized = hidiroglou_berthelot(y, np.full(5, 10.0), c=2.5, u=1.0)

    np.testing.assert_allclose(plain.effect, [-2, -0.5, 0, 1 / 3, 2 / 3])
    np.testing.assert_allclose([plain.lower[0], plain.upper[0]], [-1.25, 5 / 6])
    assert plain.outlier.tolist() == [True, False, False, False, False]
    np.testing.assert_allclose(sized.effect, [-20, -10, 0, 40 / 3, 100 / 3])


def test_units_without_a_positive_ratio_are_not_judged() -> None:
    edit = hidiroglou_berthelot([0.0, 2, 3, 4], [1.0, 1, 0, 1], [1, 1, 1, 1], c=1)

    assert np.isnan(edit.effect[[0, 2]]).all()
    assert not edit.outlier[[0, 2]].any()


def test_imputed_share_of_a_total_and_of_a_mean() -> None:
    values = np.array([10.0, 0.0, 30.0, np.nan, 5.0])
    weights = np.array([1.0, 3.0, 2.0, 9.0, 4.0])
    imputed = np.array([False, True, True, False, False])
    domains = np.array([1, 1, 1, 1, 2])

    share = imputed_share(values, weights, imputed, domains)

    # d1: Σ w·y = 10 + 0 + 60 = 70, imputed 60; Σ w = 6 over units with a value, imputed 5
    np.testing.assert_allclose(share.of_total, [60 / 70, 0.0])
    np.testing.assert_allclose(share.of_units, [5 / 6, 0.0])


# --- error localisation ------------------------------------------------------------------------

# Fields: sales, costs, profit, employees. profit = sales - costs; costs ≤ 1000·employees.
EDITS = LinearEdits.of(
    [[1, -1, -1, 0], [0, 1, 0, -1000]],
    [0, 0],
    [True, False],
)


def test_a_record_passing_every_edit_changes_nothing() -> None:
    found = error_localise([[500.0, 300.0, 200.0, 1.0]], EDITS)

    assert not found.change.any() and found.solved.all()


def test_one_wrong_field_is_the_one_to_change() -> None:
    # The balance is 50 off: sales, costs or profit alone could repair it; profit costs least.
    found = error_localise([[500.0, 300.0, 150.0, 1.0]], EDITS, weights=[2, 2, 1, 2])

    assert found.change[0].tolist() == [False, False, True, False]
    assert found.cost[0] == 1.0


def test_covering_the_failed_edits_is_not_enough() -> None:
    # x ≤ y and y ≤ 10 with (15, 5): only x ≤ y fails, and y is in it, yet no y passes both.
    edits = LinearEdits.of([[1, -1], [0, 1]], [0, 10])

    found = error_localise([[15.0, 5.0]], edits, weights=[5, 1])

    assert found.change[0].tolist() == [True, False]


def test_weights_choose_among_fields() -> None:
    edits = LinearEdits.of([[1, -1]], [0])  # x ≤ y, fails for (9, 3)

    cheap_y = error_localise([[9.0, 3.0]], edits, weights=[2, 1])
    cheap_x = error_localise([[9.0, 3.0]], edits, weights=[1, 2])

    assert cheap_y.change[0].tolist() == [False, True]
    assert cheap_x.change[0].tolist() == [True, False]


def test_a_missing_field_is_always_changed() -> None:
    found = error_localise([[500.0, np.nan, 200.0, 1.0]], EDITS)

    assert found.change[0].tolist() == [False, True, False, False]


def test_a_field_in_both_failed_edits_repairs_both() -> None:
    # both edits fail; costs is in both, and costs = 300 passes both
    found = error_localise([[500.0, 5000.0, 200.0, 1.0]], EDITS)

    assert found.change[0].tolist() == [False, True, False, False]


def test_a_negative_answer_fails_the_positivity_edit() -> None:
    # The balance holds, costs > 1000·employees fails, and profit -4500 < 0 fails positivity:
    # costs and profit together (costs ≤ 1000, profit = 500 − costs) is the one pair that works.
    values = [[500.0, 5000.0, -4500.0, 1.0]]

    strict = error_localise(values, EDITS)
    signed = error_localise(values, EDITS, nonnegative=False)

    assert strict.change[0].tolist() == [False, True, True, False]
    assert signed.change[0].tolist() == [False, False, False, True]


def test_no_choice_within_the_limit_leaves_the_record_unsolved() -> None:
    found = error_localise([[500.0, 5000.0, 100.0, 1.0]], EDITS, max_fields=0)

    assert not found.solved[0] and not found.change[0].any()


def test_every_failed_edit_touches_a_changed_field_and_the_change_can_pass() -> None:
    rng = np.random.default_rng(2)
    sales = rng.gamma(2, 500, 200)
    costs = sales * rng.uniform(0.5, 0.9, 200)
    values = np.column_stack([sales, costs, sales - costs, np.ceil(costs / 800)])
    values[rng.random(values.shape) < 0.05] *= 10  # unit errors

    found = error_localise(values, EDITS)

    failed = EDITS.failed(values)
    touched = failed & (found.change.astype(int) @ (EDITS.a != 0).T.astype(int) == 0)
    assert found.solved.all()
    assert not touched.any()
    assert (found.change.any(axis=1) == failed.any(axis=1)).all()


def test_too_many_fields_are_refused() -> None:
    with pytest.raises(EditingError, match="at most 16"):
        error_localise(np.zeros((1, 17)), LinearEdits.of(np.ones((1, 17)), [1]))
