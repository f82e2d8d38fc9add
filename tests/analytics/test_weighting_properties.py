"""Properties of the weighting pipeline and the estimators (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.engine.estimation import (
    Design,
    EstimationError,
    estimate_by,
    estimate_mean,
    estimate_ratio,
    estimate_total,
)
from analytics.engine.weighting import (
    WeightingError,
    adjust_nonresponse,
    adjust_unknown,
    calibrate,
    collapse_classes,
    design_weights,
    poststratify,
    rake,
    status_masks,
    trim,
    weight_diagnostics,
)

FloatArray = npt.NDArray[np.float64]
SETTINGS = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Sample:
    stratum: npt.NDArray[np.intp]
    group: npt.NDArray[np.intp]  # parent of the stratum (hierarchy level 1)
    pop: FloatArray  # N_h per unit
    status: npt.NDArray[np.str_]
    region: npt.NDArray[np.intp]
    y: FloatArray  # (n, 3) with NaN item nonresponse; column 0 is 0/1


@st.composite
def samples(draw: st.DrawFn, min_per_stratum: int = 2) -> Sample:
    seed = draw(st.integers(0, 2**32 - 1))
    n_strata = draw(st.integers(2, 8))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_per_stratum, 25, n_strata)
    stratum = np.repeat(np.arange(n_strata), sizes)
    pop = (sizes * rng.uniform(1.0, 60.0, n_strata)).round() + sizes
    status = rng.choice(
        ["I", "P", "R", "NC", "O", "U", "NE"],
        stratum.size,
        p=[0.5, 0.1, 0.15, 0.08, 0.04, 0.08, 0.05],
    )
    # Every stratum has a respondent, so every class has units of known status.
    status[np.searchsorted(stratum, np.arange(n_strata))] = "I"
    y = np.column_stack(
        [
            rng.integers(0, 2, stratum.size),
            rng.gamma(2.0, 50.0, stratum.size),
            rng.normal(10, 3, stratum.size),
        ]
    ).astype(float)
    y[rng.random(y.shape) < 0.1] = np.nan
    return Sample(
        stratum=stratum,
        group=stratum // 3,
        pop=pop[stratum],
        status=status,
        region=rng.integers(0, 3, stratum.size),
        y=y,
    )


def respondent_design(sample: Sample, r_min: int = 1) -> tuple[Design, npt.NDArray[np.bool_]]:
    status = status_masks(sample.status)
    d1 = adjust_unknown(design_weights(sample.stratum, sample.pop), status.known, sample.group)
    collapsed = collapse_classes(
        [sample.stratum, sample.group, np.zeros_like(sample.group)],
        d1,
        status.eligible,
        status.respondent,
        r_min=r_min,
    )
    w = adjust_nonresponse(d1, status.eligible, status.respondent, collapsed.classes).weights
    r = status.respondent
    return Design(w[r], sample.stratum[r], fpc=sample.pop[r]), r


# --- D2, D3 ----------------------------------------------------------------------------------


@SETTINGS
@given(samples())
def test_unknown_eligibility_adjustment_keeps_the_class_total(sample: Sample) -> None:
    status = status_masks(sample.status)
    d = design_weights(sample.stratum, sample.pop)
    has_known = np.bincount(sample.stratum, weights=status.known) > 0

    if not has_known.all():
        with pytest.raises(WeightingError, match="known eligibility"):
            adjust_unknown(d, status.known, sample.stratum)
        return
    d1 = adjust_unknown(d, status.known, sample.stratum)

    assert np.allclose(
        np.bincount(sample.stratum, weights=d1), np.bincount(sample.stratum, weights=d)
    )
    assert np.all(d1[~status.known] == 0)


@SETTINGS
@given(samples())
def test_nonresponse_weights_sum_to_estimated_eligible_population_in_every_class(
    sample: Sample,
) -> None:
    # given
    status = status_masks(sample.status)
    d1 = adjust_unknown(design_weights(sample.stratum, sample.pop), status.known, sample.group)
    collapsed = collapse_classes(
        [sample.stratum, sample.group, np.zeros_like(sample.group)],
        d1,
        status.eligible,
        status.respondent,
        r_min=2,
    )
    classes = collapsed.classes

    # when
    nr = adjust_nonresponse(d1, status.eligible, status.respondent, classes)

    # then
    for label in np.unique(classes):
        here = classes == label
        eligible_total = d1[here & status.eligible].sum()
        assert nr.weights[here & status.respondent].sum() == pytest.approx(
            eligible_total, rel=1e-12
        )
    assert np.all(nr.weights[status.eligible & ~status.respondent] == 0)
    assert np.array_equal(nr.weights[~status.eligible], d1[~status.eligible])


@SETTINGS
@given(samples(), st.integers(1, 6), st.one_of(st.none(), st.floats(1.2, 4.0)))
def test_collapse_log_is_consistent_with_the_final_classes(
    sample: Sample, r_min: int, a_max: float | None
) -> None:
    # given
    status = status_masks(sample.status)
    d1 = adjust_unknown(design_weights(sample.stratum, sample.pop), status.known, sample.group)
    hierarchy = [sample.stratum, sample.group, np.zeros_like(sample.group)]

    # when
    try:
        result = collapse_classes(
            hierarchy,
            d1,
            status.eligible,
            status.respondent,
            r_min,
            a_max,
            ["stratum", "group", "all"],
        )
    except WeightingError as exc:
        assert "cannot collapse further" in str(exc)
        assert status.respondent.sum() == 0 or status.eligible.sum() > 0
        return

    # then: every final class is a node of the hierarchy at the unit's level
    names = ["stratum", "group", "all"]
    for i in range(sample.stratum.size):
        assert result.classes[i] == f"{names[result.level[i]]}={hierarchy[result.level[i]][i]}"
    # every logged move goes from a node to one of its ancestors, and every unit above
    # level 0 reached its class through logged moves
    moved = {(step.source, step.target) for step in result.log if step.reason != "kept: top level"}
    for unit in np.flatnonzero(result.level > 0).tolist():
        path = [f"{names[lvl]}={hierarchy[lvl][unit]}" for lvl in range(3)]
        reached = {path[0]}
        for source, target in moved:
            if source in path:
                assert path.index(target) > path.index(source)
                reached.add(target)
        assert path[result.level[unit]] in reached
    # final classes below the top pass the rules
    for label in np.unique(result.classes):
        here = result.classes == label
        if result.level[here][0] == 2 or d1[here & status.eligible].sum() == 0:
            continue
        respondents = int((here & status.respondent).sum())
        factor = d1[here & status.eligible].sum() / d1[here & status.respondent].sum()
        assert respondents >= r_min
        # the engine sums in another order: a factor equal to a_max may differ by an ulp
        assert a_max is None or factor <= a_max * (1 + 1e-12)


def test_collapse_moves_a_class_without_respondents_and_its_siblings_to_the_parent() -> None:
    # given: stratum b has eligible units but no respondent
    stratum = np.array(["a", "a", "a", "b", "b", "c", "c"])
    group = np.array(["g1", "g1", "g1", "g1", "g1", "g2", "g2"])
    resp = np.array([1, 1, 0, 0, 0, 1, 1], dtype=bool)

    # when
    result = collapse_classes(
        [stratum, group], np.ones(7), np.ones(7, bool), resp, names=["h", "g"]
    )

    # then
    assert result.classes.tolist() == ["g=g1"] * 5 + ["h=c"] * 2
    assert [(s.source, s.target, s.reason) for s in result.log] == [
        ("h=a", "g=g1", "sibling"),
        ("h=b", "g=g1", "r_min"),
    ]


def test_class_without_respondents_at_the_top_level_is_an_error() -> None:
    resp = np.array([0, 0, 1], dtype=bool)
    group = np.array(["x", "x", "y"])

    with pytest.raises(WeightingError, match="no respondents and cannot collapse further"):
        collapse_classes([group], np.ones(3), np.ones(3, bool), resp)
    with pytest.raises(WeightingError, match="no respondents"):
        adjust_nonresponse(np.ones(3), np.ones(3, bool), resp, group)


def test_collapse_rejects_a_hierarchy_that_is_not_nested() -> None:
    with pytest.raises(WeightingError, match="not nested"):
        collapse_classes(
            [[1, 1, 2], ["x", "y", "y"]], np.ones(3), np.ones(3, bool), np.ones(3, bool)
        )


# --- D4: post-stratification, raking, calibration --------------------------------------------


@st.composite
def raking_problems(
    draw: st.DrawFn,
) -> tuple[FloatArray, list[npt.NDArray[np.intp]], list[dict[int, float]]]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(30, 200))
    levels = [draw(st.integers(2, 4)), draw(st.integers(2, 5))]
    margins = [np.concatenate([np.arange(k), rng.integers(0, k, n - k)]) for k in levels]
    w = rng.uniform(1.0, 30.0, n)
    # Totals from a perturbed population so that they are consistent and reachable.
    truth = w * rng.uniform(0.7, 1.4, n)
    totals = [
        {lev: float(truth[m == lev].sum()) for lev in range(k)}
        for m, k in zip(margins, levels, strict=True)
    ]
    return w, margins, totals


@SETTINGS
@given(raking_problems())
def test_rake_reproduces_its_margins(
    problem: tuple[FloatArray, list[npt.NDArray[np.intp]], list[dict[int, float]]],
) -> None:
    w, margins, totals = problem

    result = rake(w, margins, totals, epsilon=1e-9, maxit=500)

    assert result.converged
    for margin, target in zip(margins, totals, strict=True):
        achieved = np.bincount(margin, weights=result.weights)
        assert achieved == pytest.approx([target[k] for k in range(len(target))], rel=1e-7)


@SETTINGS
@given(raking_problems())
def test_calibration_variables_have_zero_variance_after_calibration(
    problem: tuple[FloatArray, list[npt.NDArray[np.intp]], list[dict[int, float]]],
) -> None:
    # given: GREG on the two margins (dummy coding with an intercept)
    w, (a, b), (ta, tb) = problem
    x = np.column_stack(
        [np.ones(w.size)]
        + [(a == k).astype(float) for k in range(1, len(ta))]
        + [(b == k).astype(float) for k in range(1, len(tb))]
    )
    totals = (
        [sum(ta.values())] + [ta[k] for k in range(1, len(ta))] + [tb[k] for k in range(1, len(tb))]
    )
    cal = calibrate(w, x, totals)
    design = Design(cal.weights, calibration=cal.projection)

    # when
    est = estimate_total(design, x)

    # then
    assert est.estimate == pytest.approx(totals, rel=1e-9)
    assert np.all(est.se <= 1e-6 * np.abs(est.estimate))


def test_poststratify_hits_the_cell_totals() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])

    result = poststratify(w, ["a", "a", "b", "b"], {"a": 30.0, "b": 70.0})

    assert result.weights.tolist() == pytest.approx([10.0, 20.0, 30.0, 40.0])


def test_poststratify_rejects_an_empty_cell() -> None:
    with pytest.raises(WeightingError, match="empty cell"):
        poststratify(np.ones(3), ["a", "a", "b"], {"a": 1.0, "b": 1.0, "c": 5.0})


def test_poststratify_rejects_a_sample_cell_without_a_control_total() -> None:
    with pytest.raises(WeightingError, match="no control total"):
        poststratify(np.ones(3), ["a", "a", "b"], {"a": 1.0})


def test_rake_rejects_inconsistent_margins() -> None:
    margins = [np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])]

    with pytest.raises(WeightingError, match="inconsistent margins"):
        rake(np.ones(4), margins, [{0: 10.0, 1: 10.0}, {0: 10.0, 1: 11.0}])


def test_rake_reports_non_convergence() -> None:
    margins = [np.array([0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 1])]
    totals = [{0: 50.0, 1: 50.0}, {0: 10.0, 1: 90.0}]

    with pytest.raises(WeightingError, match="did not converge"):
        rake(np.ones(5), margins, totals, epsilon=1e-12, maxit=2)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        result = rake(np.ones(5), margins, totals, epsilon=1e-12, maxit=2, on_nonconvergence="warn")
    assert not result.converged
    assert result.iterations == 2


def test_rake_epsilon_below_one_is_a_fraction_of_the_weight_sum() -> None:
    margins = [np.array([0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 1])]
    totals = [{0: 50.0, 1: 50.0}, {0: 10.0, 1: 90.0}]

    coarse = rake(np.ones(5), margins, totals, epsilon=0.5, maxit=100)  # 0.5 * 5 = 2.5
    fine = rake(np.ones(5), margins, totals, epsilon=2.5, maxit=100)

    assert coarse.iterations == fine.iterations


def test_calibration_that_cannot_meet_its_bounds_does_not_converge() -> None:
    x = np.column_stack([np.ones(4), [0.0, 0.0, 1.0, 1.0]])

    with pytest.raises(WeightingError, match="did not converge"):
        calibrate(np.ones(4), x, [4.0, 3.9], calfun="linear", bounds=(0.9, 1.1))


def test_logit_calibration_needs_finite_bounds() -> None:
    with pytest.raises(WeightingError, match="finite bounds"):
        calibrate(np.ones(3), np.ones((3, 1)), [4.0], calfun="logit")


# --- D5, D6 ----------------------------------------------------------------------------------


@SETTINGS
@given(
    st.lists(st.floats(0.5, 200.0), min_size=3, max_size=60),
    st.floats(0.5, 20.0),
    st.floats(40.0, 150.0),
    st.booleans(),
)
def test_trimming_keeps_the_sum_of_weights(
    values: list[float], lower: float, upper: float, strict: bool
) -> None:
    w = np.array(values)
    inside_possible = ((w >= lower) & (w <= upper)).any() or not ((w < lower) | (w > upper)).any()

    if not inside_possible:
        with pytest.raises(WeightingError):
            trim(w, lower, upper, strict=strict)
        return
    try:
        result = trim(w, lower, upper, strict=strict)
    except WeightingError as exc:
        assert "strict" in str(exc) or "every weight" in str(exc)
        return

    assert result.weights.sum() == pytest.approx(w.sum(), rel=1e-12)
    if not strict:  # one pass: trimmed weights sit on the bound they crossed
        assert np.all(np.isin(result.weights[result.trimmed], [lower, upper]))
    else:
        assert np.all((result.weights >= lower - 1e-9) & (result.weights <= upper + 1e-9))


def test_weight_diagnostics_report_extremes_and_class_sums() -> None:
    diag = weight_diagnostics([1.0, 3.0, 4.0], ["a", "b", "b"], {"a": 1.0, "b": 7.0})

    assert (diag.minimum, diag.maximum, diag.max_min_ratio) == (1.0, 4.0, 4.0)
    assert diag.kish_deff == pytest.approx(3 * 26 / 64)
    assert diag.class_totals == {"a": 1.0, "b": 7.0}


# --- estimation invariants -------------------------------------------------------------------


@SETTINGS
@given(samples(), st.integers(0, 2**32 - 1))
def test_estimates_do_not_depend_on_row_order(sample: Sample, seed: int) -> None:
    # given
    design, r = respondent_design(sample)
    y = sample.y[r]
    domain = sample.region[r] == 1
    order = np.random.default_rng(seed).permutation(y.shape[0])
    shuffled = Design(design.weights[order], sample.stratum[r][order], fpc=sample.pop[r][order])

    # when
    a = estimate_mean(design, y, domain)
    b = estimate_mean(shuffled, y[order], domain[order])

    # then
    assert np.allclose(a.estimate, b.estimate, rtol=1e-12, equal_nan=True)
    assert np.allclose(a.se, b.se, rtol=1e-9, equal_nan=True)
    assert np.array_equal(a.df, b.df)


@SETTINGS
@given(samples())
def test_domain_estimates_ignore_values_outside_the_domain(sample: Sample) -> None:
    design, r = respondent_design(sample)
    y = sample.y[r]
    domain = sample.region[r] != 0
    scrambled = np.where(domain[:, None], y, 1e6)

    a, b = estimate_mean(design, y, domain), estimate_mean(design, scrambled, domain)

    assert np.allclose(a.estimate, b.estimate, equal_nan=True)
    assert np.allclose(a.se, b.se, equal_nan=True)


@SETTINGS
@given(samples())
def test_estimate_by_equals_one_domain_at_a_time(sample: Sample) -> None:
    design, r = respondent_design(sample)
    y, region = sample.y[r], sample.region[r]

    by = estimate_by(design, y, region, "total")

    for row, level in enumerate(by.levels):
        single = estimate_total(design, y, region == level)
        assert np.allclose(by.estimates.estimate[row], single.estimate, equal_nan=True)
        assert np.allclose(by.estimates.se[row], single.se, equal_nan=True)


@SETTINGS
@given(samples())
def test_mean_is_a_ratio_to_the_unit_count(sample: Sample) -> None:
    design, r = respondent_design(sample)
    y = sample.y[r]

    mean = estimate_mean(design, y)
    ratio = estimate_ratio(design, y, np.ones(y.shape[0]))

    assert np.allclose(mean.estimate, ratio.estimate, equal_nan=True)
    assert np.allclose(mean.se, ratio.se, rtol=1e-9, equal_nan=True)


def test_lonely_psu_fail_rule_raises_a_clear_error() -> None:
    with pytest.raises(EstimationError, match="only one PSU"):
        Design(np.ones(3), strata=[1, 1, 2], lonely_psu="fail")


def test_design_rejects_an_fpc_below_the_sample_size() -> None:
    with pytest.raises(EstimationError, match="100%"):
        Design(np.ones(3), strata=[1, 1, 1], fpc=[2, 2, 2])


def test_take_all_stratum_adds_no_variance() -> None:
    y = np.array([1.0, 5.0, 2.0, 9.0])
    design = Design(np.ones(4), strata=[1, 1, 2, 2], fpc=[2, 2, 10, 10])

    total = estimate_total(design, y)

    # stratum 1 is take-all; stratum 2: (1 - 2/10) * 2/1 * ((2-5.5)^2 + (9-5.5)^2)
    assert total.variance[0] == pytest.approx(0.8 * 2 * 24.5)
    # N^ = n: the without-replacement design effect is undefined, as in R
    assert math.isnan(total.deff[0])


@SETTINGS
@given(samples(), st.sampled_from(["remove", "adjust", "average"]))
def test_calibrated_variance_shortcut_equals_residualising_every_unit(
    sample: Sample, rule: str
) -> None:
    # given: a raked design; psu = unit ids forces the explicit z* = z - xt gamma path
    design, r = respondent_design(sample)
    strata, fpc = sample.stratum[r], sample.pop[r]
    region, group = sample.region[r], sample.group[r]
    totals = [
        {k: float(design.weights[region == k].sum() * 1.1) for k in np.unique(region)},
        {k: float(design.weights[group == k].sum() * 1.1) for k in np.unique(group)},
    ]
    rk = rake(design.weights, [region, group], totals, epsilon=1e-10, maxit=200)
    fast = Design(rk.weights, strata, fpc=fpc, calibration=rk.projection, lonely_psu=rule)  # type: ignore[arg-type]
    explicit = Design(
        rk.weights,
        strata,
        fpc=fpc,
        psu=np.arange(strata.size),
        calibration=rk.projection,
        lonely_psu=rule,  # type: ignore[arg-type]
    )

    # when
    a = estimate_by(fast, sample.y[r], region, "total")
    b = estimate_by(explicit, sample.y[r], region, "total")

    # then
    assert np.allclose(a.estimates.se, b.estimates.se, rtol=1e-8, atol=1e-12, equal_nan=True)
