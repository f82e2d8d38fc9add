"""The disclosure-control functions alone (analytics/engine/disclosure.py), on sdcMicro's own cases.

The expected risks are those R printed for sdcMicro's test suite
(sdcTools/sdcMicro tests/testthat/test_indivRisk.R: freqCalc + indivRisk, method "approx",
with and without missing key values); the other cases are worked by hand from the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from analytics.engine.disclosure import (
    encode,
    encode_numbers,
    frame_matches,
    frequencies,
    individual_risk,
    measure,
    microaggregate,
    protect,
    row_ids,
    suppress,
)
from respondents.synthetic import frame_rows

WEIGHTS = np.array([18.0, 45.5, 39.0, 17.0, 92.0, 8.0, 123.5, 51])
B = [3, 3, 3, 3, 3, 3, 4, 3]


def keys_of(*columns: Sequence[int | None]) -> np.ndarray:
    return np.column_stack([encode(c, np.array([v is None for v in c])) for c in columns])


def test_frequencies_and_risk_match_sdcmicro_without_missing_values() -> None:
    keys = keys_of([2, 3, 2, 2, 3, 3, 1, 2], B, [1, 3, 1, 2, 1, 1, 1, 1])

    fk, big_fk = frequencies(keys, WEIGHTS)
    risk = individual_risk(fk, big_fk)

    assert fk.tolist() == [3, 1, 3, 1, 2, 2, 1, 3]
    assert big_fk.tolist() == [108, 45.5, 108, 17, 100, 100, 123.5, 108]
    expected = [0.01369863, 0.08579129, 0.01369863, 0.17707583,
                0.01877883, 0.01877883, 0.03931625, 0.01369863]  # fmt: skip
    np.testing.assert_allclose(risk, expected, atol=5e-9)


def test_a_missing_key_value_matches_any_value_as_in_sdcmicro() -> None:
    keys = keys_of([2, 3, 2, 2, 3, 3, 1, None], B, [1, 3, None, 2, 1, 1, None, 1])

    fk, big_fk = frequencies(keys, WEIGHTS)
    risk = individual_risk(fk, big_fk)

    assert fk.tolist() == [3, 1, 4, 2, 3, 3, 1, 5]
    expected = [0.013698630, 0.085791288, 0.010554090, 0.032466112,
                0.009836066, 0.009836066, 0.039316254, 0.005973716]  # fmt: skip
    np.testing.assert_allclose(risk, expected, atol=5e-10)


def test_the_risk_formulas_by_hand() -> None:
    # f=1, F=10: p = .1, risk = p/(1-p)·log(1/p); f=2, F=4: p = .5, 1 - log 2;
    # f=4, F=40: p/(f-(1-p)) = .1/3.1; a key whose whole population is sampled: 1/f.
    fk = np.array([1.0, 2.0, 4.0, 3.0])
    big_fk = np.array([10.0, 4.0, 40.0, 3.0])

    risk = individual_risk(fk, big_fk)

    expected = [(0.1 / 0.9) * math.log(10), 1 - math.log(2), 0.1 / 3.1, 1 / 3]
    np.testing.assert_allclose(risk, expected, rtol=1e-12)


def test_a_record_without_any_key_value_carries_no_risk() -> None:
    keys = np.array([[-1, -1], [0, 1], [0, 1]])

    report = measure(keys, np.array([5.0, 5.0, 5.0]), k=3)

    assert report.fk.tolist() == [3, 3, 3]  # it matches everyone, and everyone matches it
    assert report.violations == 0


def test_global_risk_is_the_expected_reidentifications_over_the_records() -> None:
    keys = keys_of([2, 3, 2, 2, 3, 3, 1, 2], B, [1, 3, 1, 2, 1, 1, 1, 1])

    report = measure(keys, WEIGHTS, k=3)

    assert report.expected_reidentifications == pytest.approx(report.risk.sum())
    assert report.global_risk == pytest.approx(report.risk.sum() / 8)
    assert report.violations == 5 and report.sample_uniques == 3


def test_microaggregation_keeps_every_weighted_total_and_groups_at_least_k() -> None:
    rng = np.random.default_rng(7)
    n = 200
    values = np.column_stack([rng.integers(1, 300, n), rng.lognormal(7, 1, n)]).astype(float)
    values[rng.random(n) < 0.1, 1] = np.nan
    weights = rng.uniform(5, 60, n)
    cells = [rng.integers(0, 12, n), np.zeros(n, dtype=np.int64)]

    released, groups = microaggregate(values, weights, cells, k=3)

    for j in range(2):
        present = ~np.isnan(values[:, j])
        assert np.isnan(released[~present, j]).all()
        assert (weights[present] * released[present, j]).sum() == pytest.approx(
            (weights[present] * values[present, j]).sum(), rel=1e-12
        )
    sizes = np.bincount(groups)
    assert sizes.min() >= 3 and sizes.max() <= 5
    for g in range(sizes.size):
        assert np.unique(released[groups == g, 0]).size == 1


def test_microaggregation_prefers_the_finest_cell_with_k_records() -> None:
    values = np.array([[1.0], [2.0], [3.0], [10.0], [20.0], [30.0], [100.0]])
    fine = np.array([0, 0, 0, 1, 1, 1, 2])  # cell 2 has one record: it goes to the coarse cell
    coarse = np.array([0, 0, 0, 0, 0, 0, 0])

    released, groups = microaggregate(values, np.ones(7), [fine, coarse], k=3)

    assert released[:3, 0].tolist() == [2.0, 2.0, 2.0]
    assert released[3:6, 0].tolist() == [20.0, 20.0, 20.0]
    assert groups[6] not in groups[:6]


def test_local_suppression_reaches_k_anonymity_finest_step_first() -> None:
    # three records share region a, two region b, one region c: blanking the rarest (c)
    # first makes it match everyone, which already lifts region b to three
    region = encode(["a", "a", "a", "b", "b", "c"])
    size = encode(["s", "s", "s", "s", "s", "s"])
    keys = np.column_stack([region, size])

    done = suppress(keys, np.full(6, 10.0), k=3, max_risk=1.0, steps=[[0], [1]])

    assert done.unresolved == 0
    assert done.suppressed[:, 0].tolist() == [False, False, False, False, False, True]
    assert not done.suppressed[:, 1].any()
    assert measure(done.keys, np.full(6, 10.0), k=3).violations == 0


def test_local_suppression_also_brings_risk_below_the_target() -> None:
    # a take-all cell: its three records are the whole population, risk 1/3 each
    keys = np.column_stack([encode(["a", "a", "a", "b", "b", "b"]), encode(list("xxxxxx"))])
    weights = np.array([1.0, 1.0, 1.0, 30.0, 30.0, 30.0])

    done = suppress(keys, weights, k=3, max_risk=0.2, steps=[[0]])

    after = measure(done.keys, weights, k=3)
    assert done.suppressed[:3, 0].all() and not done.suppressed[3:, 0].any()
    assert after.max_risk <= 0.2


def test_what_cannot_be_suppressed_further_is_counted_as_unresolved() -> None:
    keys = np.column_stack([encode(["a", "b"]), encode(["x", "y"])])

    done = suppress(keys, np.ones(2), k=3, max_risk=1.0, steps=[[0]])

    assert done.unresolved == 2


def test_frame_matches_count_units_equal_on_shown_keys_and_inside_the_intervals() -> None:
    frame = np.array([[0, 0], [0, 0], [0, 1], [1, 0]])
    frame_values = np.array([[5.0], [9.0], [7.0], [6.0]])
    released = np.array([[0, 0], [0, -1], [-1, -1]])
    low = np.array([[4.0], [6.0], [np.nan]])
    high = np.array([[6.0], [8.0], [np.nan]])

    counts = frame_matches(released, frame, low, high, frame_values)

    assert counts.tolist() == [1, 1, 4]


def test_numbers_are_coded_by_value() -> None:
    assert encode_numbers(np.array([2.5, np.nan, 2.5, 1.0])).tolist() == [1, -1, 1, 0]


def test_a_frame_sized_census_file_meets_the_targets_after_protection() -> None:
    # given: every firm of a synthetic frame of 163,273 (weights 1: the whole population is
    # in the file), keyed on its classifications and its employees and sales
    rows = list(frame_rows(163_273))[1:]
    region, area = encode([r[4] for r in rows]), encode([r[10] for r in rows])
    group, size = encode([r[9] for r in rows]), encode([r[3] for r in rows])
    categorical = np.column_stack([region, area, group, size])
    values = np.column_stack(
        [[float(r[5]) for r in rows], [float(r[6]) if r[6] else np.nan for r in rows]]
    )
    weights = np.ones(len(rows))
    cells = [row_ids(categorical[:, j:]) for j in range(4)] + [np.zeros(len(rows), np.int64)]

    # when
    done = protect(
        categorical, values, sampling_weights=weights, estimation_weights=weights,
        cells=cells, steps=[[0], [1], [2], [3]], k=3, max_risk=0.2,
    )  # fmt: skip

    # then: before, almost every firm is unique; after, none, and no risk above 0.2
    assert done.before.records == 163_273
    assert done.before.sample_uniques > 150_000
    assert done.before.global_risk > 0.9
    assert done.after.violations == 0 and done.after.max_risk <= 0.2
    assert done.unresolved == 0
    # the weighted totals of employees and sales are those of the frame
    for j in range(2):
        present = ~np.isnan(values[:, j]) & ~done.lonely
        assert np.nansum(done.released[present, j]) == pytest.approx(
            values[present, j].sum(), rel=1e-9
        )
    # suppression took the finest classification far more often than the coarsest
    blanked = done.suppressed.sum(axis=0)
    assert blanked[0] > blanked[3]
