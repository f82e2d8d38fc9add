"""The estimation engine against values printed by R `survey` (docs/methodology.md, sec. H).

Fixtures: tests/analytics/fixtures/r-survey (a copy of shared/testdata/r-survey, preferred so a
fresh clone runs), else ../shared/testdata/r-survey. Tolerance (sec. H and the brief): point
estimates 1e-9 relative, SEs 1e-6 relative, or half a unit in the last printed digit when R
printed fewer digits. Values marked "R 4.1.1 run" were printed by R 4.2.2 + survey 4.1.1 with
the code quoted next to them (options(digits=10), sprintf("%.10g")).
"""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from analytics.engine.estimation import (
    Design,
    estimate_by,
    estimate_mean,
    estimate_ratio,
    estimate_total,
)
from analytics.engine.weighting import (
    adjust_nonresponse,
    adjust_unknown,
    calibrate,
    design_weights,
    kish_deff,
    poststratify,
    rake,
    status_masks,
    trim,
)

LOCAL = Path(__file__).resolve().parent / "fixtures" / "r-survey"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "r-survey"
EST_RTOL = 1e-9
SE_RTOL = 1e-6

Columns = dict[str, npt.NDArray[np.str_]]


def fixture_path(name: str) -> Path:
    for folder in (LOCAL, SHARED):
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"fixture {name} not found in {LOCAL} or {SHARED}")


@cache
def load(name: str) -> Columns:
    with fixture_path(name).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def num(data: Columns, key: str) -> npt.NDArray[np.float64]:
    return np.array([float(v) if v not in ("", "NA") else np.nan for v in data[key]])


def half_unit(printed: str) -> float:
    """Half a unit in the last printed digit of a fixed-point number."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0**-decimals


def assert_r(actual: float, printed: str, rtol: float) -> None:
    expected = float(printed)
    tol = max(rtol * abs(expected), half_unit(printed) * (1 + 1e-9))
    assert abs(float(actual) - expected) <= tol, f"{actual!r} != R {printed} (tol {tol:.3g})"


def assert_est(actual: float, printed: str) -> None:
    assert_r(actual, printed, EST_RTOL)


def assert_se(actual: float, printed: str) -> None:
    assert_r(actual, printed, SE_RTOL)


# --- designs ---------------------------------------------------------------------------------


def dstrat() -> Design:
    # svydesign(id=~1, strata=~stype, weights=~pw, data=apistrat, fpc=~fpc)
    api = load("apistrat.csv")
    return Design(num(api, "pw"), api["stype"], fpc=num(api, "fpc"))


def dclus1(weights: npt.ArrayLike | None = None, calibration: object = None) -> Design:
    # svydesign(id=~dnum, weights=~pw, data=apiclus1, fpc=~fpc)
    api = load("apiclus1.csv")
    w = num(api, "pw") if weights is None else weights
    return Design(w, fpc=num(api, "fpc"), psu=api["dnum"], calibration=calibration)  # type: ignore[arg-type]


POP_TYPES = {"E": 4421.0, "H": 755.0, "M": 1018.0}
POP_SCHWIDE = {"No": 1072.0, "Yes": 5122.0}


# --- H1, H1b: Stata fpc example --------------------------------------------------------------


def fpc_design(with_fpc: bool) -> Design:
    d = load("fpc_stata.csv")
    return Design(
        num(d, "weight"),
        d["stratid"],
        fpc=num(d, "Nh") if with_fpc else None,
        psu=d["psuid"],
    )


def test_h1_stratified_cluster_mean_with_fpc_matches_r() -> None:
    # given
    design, x = fpc_design(with_fpc=True), num(load("fpc_stata.csv"), "x")

    # when
    m = estimate_mean(design, x)

    # then: fpc.Rout.save prints 5.4481 / 0.6160407 for R's data(fpc), whose x is float32;
    # R 4.1.1 run on this CSV: svymean(~x, svydesign(weights=~weight, ids=~psuid,
    #   strata=~stratid, fpc=~Nh, data=read.csv("fpc_stata.csv"), nest=TRUE))
    assert_est(m.estimate[0], "5.4481")
    assert_se(m.se[0], "0.6160407")
    assert_est(m.estimate[0], "5.448148148")
    assert_se(m.se[0], "0.6160407234")


def test_h1_without_fpc_gives_the_with_replacement_se() -> None:
    m = estimate_mean(fpc_design(with_fpc=False), num(load("fpc_stata.csv"), "x"))

    # check.Rout.save 0.7413; R 4.1.1 run on the CSV (as above without fpc): 0.7412683306
    assert_se(m.se[0], "0.7413")
    assert_se(m.se[0], "0.7412683306")


def test_h1b_domain_means_keep_out_of_domain_units_in_their_strata() -> None:
    # given
    x = num(load("fpc_stata.csv"), "x")
    design = fpc_design(with_fpc=False)

    # when
    high = estimate_mean(design, x, x > 4)
    low = estimate_mean(design, x, x <= 4)

    # then: domain.Rout.save; R 4.1.1 run svymean(~x, subset(fp0, x>4)) on the CSV
    assert_est(high.estimate[0], "6.195")
    assert_se(high.se[0], "0.7555129")
    assert_se(high.se[0], "0.7555128639")
    assert_est(low.estimate[0], "3.314286")
    assert_se(low.se[0], "0.3117042")
    assert_se(low.se[0], "0.3117042137")


# --- H2, H2b, H11: apistrat ------------------------------------------------------------------


def test_h2_stratified_mean_and_total_match_r() -> None:
    api = load("apistrat.csv")

    mean = estimate_mean(dstrat(), num(api, "api00"))
    total = estimate_total(dstrat(), num(api, "enroll"))

    # api_reference_output_survey4.1.1.txt
    assert_est(mean.estimate[0], "662.2873632")
    assert_se(mean.se[0], "9.408940803")
    assert_est(total.estimate[0], "3687177.532")
    assert_se(total.se[0], "114641.7161")
    # H11: as.svrepdesign(dstrat) is JKn, equal to Taylor for this linear statistic
    assert_se(mean.se[0], "9.408940803")


def test_h2b_total_and_ratio_match_r() -> None:
    api = load("apistrat.csv")

    total = estimate_total(dstrat(), num(api, "api_stu"))
    ratio = estimate_ratio(dstrat(), num(api, "api_stu"), num(api, "enroll"))

    # caleg.Rout.save 3086009 (99477); R 4.1.1 run: svytotal(~api.stu, dstrat)
    assert_est(total.estimate[0], "3086008.629")
    assert_se(total.se[0], "99477.3902")
    assert_est(ratio.estimate[0], "0.8369568869")
    assert_se(ratio.se[0], "0.007757103167")
    # caleg.Rout.save: ratio x 3811472 = 3190038 (29565.98)
    assert_est(ratio.estimate[0] * 3811472, "3190038")
    assert_se(ratio.se[0] * 3811472, "29565.98")


def sch_wide_yes() -> npt.NDArray[np.float64]:
    return (load("apistrat.csv")["sch_wide"] == "Yes").astype(np.float64)


def test_h11_proportion_se_deff_and_df_match_r() -> None:
    p = estimate_mean(dstrat(), sch_wide_yes())

    # svymean(~I(sch.wide=="Yes"), dstrat, deff=TRUE); degf(dstrat)
    assert_est(p.estimate[0], "0.8279480114")
    assert_se(p.se[0], "0.02434478011")
    assert_est(p.deff[0], "0.855571851")
    assert p.df[0] == 197


def test_h11_logit_and_korn_graubard_intervals_match_svyciprop() -> None:
    p = estimate_mean(dstrat(), sch_wide_yes())

    logit = p.ci("logit")
    beta = p.ci("beta")

    # svyciprop(method="logit") goes through svyglm, whose convergence leaves ~3e-10;
    # method="xlogit" (the closed form) prints 0.7745396547 / 0.8708148549.
    assert_est(logit[0][0], "0.7745396544")
    assert_est(logit[1][0], "0.8708148545")
    assert_est(beta[0][0], "0.7741713286")
    assert_est(beta[1][0], "0.8734315926")


def test_h11_domain_estimates_by_school_type_match_svyby() -> None:
    api = load("apistrat.csv")
    y = np.column_stack([num(api, "api00"), sch_wide_yes()])

    by = estimate_by(dstrat(), y, api["stype"])

    assert by.levels.tolist() == ["E", "H", "M"]
    for row, (mean, mean_se, prop, prop_se) in enumerate(
        [
            ("674.43", "12.38247979", "0.91", "0.02843519621"),
            ("625.82", "14.93712919", "0.52", "0.06896763492"),
            ("636.60", "16.21470731", "0.70", "0.06383743035"),
        ]
    ):
        assert_est(by.estimates.estimate[row, 0], mean)
        assert_se(by.estimates.se[row, 0], mean_se)
        assert_est(by.estimates.estimate[row, 1], prop)
        assert_se(by.estimates.se[row, 1], prop_se)


def test_h11_domain_mean_does_not_subset_before_variance() -> None:
    api = load("apistrat.csv")

    m = estimate_mean(dstrat(), num(api, "api00"), api["comp_imp"] == "Yes")

    # svymean(~api00, subset(dstrat, comp.imp=="Yes"))
    assert_est(m.estimate[0], "676.4022861")
    assert_se(m.se[0], "11.71467877")


# --- H3: apiclus1 ----------------------------------------------------------------------------


def test_h3_one_stage_cluster_mean_and_total_match_r() -> None:
    api = load("apiclus1.csv")

    mean = estimate_mean(dclus1(), num(api, "api00"))
    total = estimate_total(dclus1(), num(api, "enroll"))

    # api.Rout.saved 644.17 (23.542), 3404940 (932235); R 4.1.1 run: svymean(~api00, dclus1)
    assert_est(mean.estimate[0], "644.1693989")
    assert_se(mean.se[0], "23.54224069")
    assert_est(total.estimate[0], "3404940.135")
    assert_se(total.se[0], "932235.027")
    assert dclus1().df == 14


def test_h3b_category_totals_and_ratio_match_r() -> None:
    api = load("apiclus1.csv")
    dummies = np.column_stack([(api["stype"] == s).astype(float) for s in "EHM"])

    totals = estimate_total(dclus1(), dummies)
    ratio = estimate_ratio(dclus1(), num(api, "api_stu"), num(api, "enroll"))

    # survey.pdf; R 4.1.1 run: svytotal(~stype, dclus1); svyratio(~api.stu, ~enroll, dclus1)
    expected = [("4873.967468", "1333.319405"), ("473.8579483", "158.6992788")]
    expected.append(("846.1749077", "167.5498916"))
    for col, (est, se) in enumerate(expected):
        assert_est(totals.estimate[col], est)
        assert_se(totals.se[col], se)
    assert_est(ratio.estimate[0], "0.8497087417")
    assert_se(ratio.se[0], "0.008386297169")


def test_h3c_cross_classified_proportions_match_r() -> None:
    api = load("apiclus1.csv")
    cells = [(s, c) for c in ("No", "Yes") for s in "EHM"]
    y = np.column_stack(
        [((api["stype"] == s) & (api["comp_imp"] == c)).astype(float) for s, c in cells]
    )

    p = estimate_mean(dclus1(), y)

    # R 4.1.1 run: svymean(~interaction(stype, comp.imp), dclus1)
    expected = [
        ("0.174863388", "0.02599552295"),
        ("0.03825136612", "0.01607602026"),
        ("0.06010928962", "0.024571775"),
        ("0.6120218579", "0.0416757246"),
        ("0.03825136612", "0.01605468697"),
        ("0.07650273224", "0.02167084479"),
    ]
    for col, (est, se) in enumerate(expected):
        assert_est(p.estimate[col], est)
        assert_se(p.se[col], se)


def test_svyciprop_man_page_small_proportion_intervals_match_r() -> None:
    # dclus1u <- svydesign(id=~dnum, fpc=~fpc, data=apiclus1): weights 757/15 from the fpc
    api = load("apiclus1.csv")
    design = Design(np.full(183, 757 / 15), fpc=num(api, "fpc"), psu=api["dnum"])

    p = estimate_mean(design, (num(api, "ell") == 0).astype(float))
    logit, beta = p.ci("logit"), p.ci("beta")

    # api_reference_output_survey4.1.1.txt, svyciprop(~I(ell==0), dclus1u, method=...).
    # method="logit" fits svyglm, whose convergence moves the 9th digit here; the closed
    # form expit(logit p +/- t se/(p(1-p))) is method="xlogit".
    assert_est(p.estimate[0], "0.0218579235")
    assert_est(logit[0][0], "0.002304691284")
    assert_est(logit[1][0], "0.1777477668")
    assert_r(logit[0][0], "0.002304691299", 1e-8)
    assert_r(logit[1][0], "0.1777477665", 1e-8)
    assert_est(beta[0][0], "0.0002161468327")
    assert_est(beta[1][0], "0.1375077639")


# --- H4, H5: post-stratification and raking --------------------------------------------------


def test_h4_post_stratified_estimates_use_residualised_influence() -> None:
    api = load("apiclus1.csv")
    ps = poststratify(num(api, "pw"), api["stype"], POP_TYPES)
    design = dclus1(ps.weights, ps.projection)

    mean = estimate_mean(design, num(api, "api00"))
    total = estimate_total(design, num(api, "enroll"))

    # postStratify(dclus1, ~stype, pop.types); R 4.1.1 run for the total
    assert_est(mean.estimate[0], "642.3107882")
    assert_se(mean.se[0], "23.92048645")
    assert_est(total.estimate[0], "3680892.945")
    assert_se(total.se[0], "406292.6363")


def test_h5_raking_to_convergence_matches_r() -> None:
    api = load("apiclus1.csv")
    rk = rake(
        num(api, "pw"),
        [api["stype"], api["sch_wide"]],
        [POP_TYPES, POP_SCHWIDE],
        epsilon=1e-10,
        maxit=30,
    )
    design = dclus1(rk.weights, rk.projection)

    mean = estimate_mean(design, num(api, "api00"))
    total = estimate_total(design, num(api, "enroll"))

    # rake(..., control=list(epsilon=1e-10, maxit=30))
    assert rk.converged
    assert_est(mean.estimate[0], "641.2303209")
    assert_se(mean.se[0], "23.70361689")
    assert_est(total.estimate[0], "3647280.148")
    assert_se(total.se[0], "400603.2569")


def test_h5b_raking_with_r_default_control_stops_where_r_stops() -> None:
    api = load("apiclus1.csv")
    rk = rake(num(api, "pw"), [api["stype"], api["sch_wide"]], [POP_TYPES, POP_SCHWIDE])

    mean = estimate_mean(dclus1(rk.weights, rk.projection), num(api, "api00"))

    # rake(dclus1, ...) with control=list(epsilon=1, maxit=10): epsilon moves the 7th digit
    assert_est(mean.estimate[0], "641.2302469")
    assert_se(mean.se[0], "23.70364124")


# --- H6: Kalton & Flores-Cervantes -----------------------------------------------------------

# tests/kalton.R: ab <- expand.grid(a=factor(1:4), b=factor(1:3)) (a varies fastest)
KALTON_SAMPLE = [20, 50, 100, 30, 40, 140, 50, 100, 40, 310, 50, 70]
KALTON_POP = [80, 60, 170, 55, 40, 150, 60, 165, 55, 340, 200, 125]


def kalton() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    cell = np.repeat(np.arange(12), KALTON_SAMPLE)
    return cell, cell % 4 + 1, cell // 4 + 1


def kalton_margins() -> tuple[dict[int, float], dict[int, float]]:
    pop = np.array(KALTON_POP, dtype=float)
    a = {i: float(pop[np.arange(12) % 4 == i - 1].sum()) for i in range(1, 5)}
    b = {j: float(pop[np.arange(12) // 4 == j - 1].sum()) for j in range(1, 4)}
    return a, b


def kalton_table(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """g = w/n per cell, rows a = 1..4, columns b = 1..3 (svytable/xtabs)."""
    cell = kalton()[0]
    return (np.bincount(cell, weights=weights) / np.array(KALTON_SAMPLE)).reshape(3, 4).T


def kalton_x() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """model.matrix(~a+b) and its population totals (marginalpop)."""
    _, a, b = kalton()
    x = np.column_stack(
        [np.ones(a.size)]
        + [(a == i).astype(float) for i in (2, 3, 4)]
        + [(b == j).astype(float) for j in (2, 3)]
    )
    ta, tb = kalton_margins()
    return x, np.array([sum(KALTON_POP), ta[2], ta[3], ta[4], tb[2], tb[3]])


# R 4.1.1 run (the tests/kalton.R objects), cell by cell with b varying fastest:
#   t <- svytable(~a+b, d) / xtabs(~a+b, kaltonsample); sprintf("%.12g", as.vector(t(t)))
KALTON_R = {
    "rake": "1.81087666212 1.45282546633 2.01675726132 1.08365098773 0.869388724544 "
    "1.20685248418 2.19600648935 1.7618064326 2.44567293065 1.83330894789 1.47082238281 "
    "2.04173989882",
    "raking": "1.81080509314 1.45282194483 2.0167755086 1.083564444 0.869351543602 "
    "1.20681471515 2.19608909967 1.76193807323 2.44588372747 1.83322553237 1.47081002442 "
    "2.04174616553",
    "linear": "1.81531065309 1.50218192199 1.96516275147 1.09476774372 0.78163901261 "
    "1.24461984209 2.19081915818 1.87769042707 2.34067125656 1.82911613112 1.51598740001 "
    "1.9789682295",
    "trunclinear": "1.80918610739 1.48324364419 1.98716330211 1.08091802897 0.754975565769 "
    "1.25889522369 2.2 2 2.2 1.82567921345 1.49973675025 2.00365640817",
    "logit": "1.87450589188 1.46071447992 1.97703257414 1.08444201021 0.736026680749 "
    "1.2668844006 2.16520983207 2.09192354235 2.1776567935 1.89222661483 1.48931508381 "
    "1.99002418821",
    "greg": "1.21080482202 1.17395865097 1.13711247993 1.43479803216 1.39795186111 "
    "1.36110569007 1.6587912423 1.62194507125 1.58509890021 1.88278445244 1.84593828139 "
    "1.80909211035",
    "poststrat": "4 1 1.375 1.2 1.07142857143 1.09677419355 1.7 1.2 4 1.83333333333 1.65 "
    "1.78571428571",
}

# tests/kalton.Rout.save, round(..., 2)
KALTON_SAVED = {
    "rake": "1.81 1.45 2.02 1.08 0.87 1.21 2.20 1.76 2.45 1.83 1.47 2.04",
    "linear": "1.82 1.50 1.97 1.09 0.78 1.24 2.19 1.88 2.34 1.83 1.52 1.98",
    "logit": "1.87 1.46 1.98 1.08 0.74 1.27 2.17 2.09 2.18 1.89 1.49 1.99",
    "trunclinear": "1.81 1.48 1.99 1.08 0.75 1.26 2.20 2.00 2.20 1.83 1.50 2.00",
    "greg": "1.21 1.17 1.14 1.43 1.40 1.36 1.66 1.62 1.59 1.88 1.85 1.81",
}


def kalton_weights(method: str) -> npt.NDArray[np.float64]:
    cell, a, b = kalton()
    ones = np.ones(cell.size)
    x, totals = kalton_x()
    if method == "rake":
        # rake(dkalton, list(~a,~b), ..., control=list(epsilon=0.0001))
        return rake(ones, [a, b], list(kalton_margins()), epsilon=1e-4).weights
    if method == "poststrat":
        return poststratify(ones, cell, dict(enumerate(map(float, KALTON_POP)))).weights
    if method == "greg":
        xg = np.column_stack([ones, a.astype(float), b.astype(float)])
        pop_cell = np.repeat(np.arange(12), KALTON_POP)
        pop_totals = [
            sum(KALTON_POP),
            float((pop_cell % 4 + 1).sum()),
            float((pop_cell // 4 + 1).sum()),
        ]
        return calibrate(ones, xg, pop_totals).weights
    settings = {
        "raking": ("raking", (-math.inf, math.inf)),
        "linear": ("linear", (-math.inf, math.inf)),
        "trunclinear": ("linear", (0.5, 2.2)),
        "logit": ("logit", (0.5, 2.2)),
    }
    calfun, bounds = settings[method]
    return calibrate(ones, x, totals, calfun=calfun, bounds=bounds).weights  # type: ignore[arg-type]


@pytest.mark.parametrize("method", sorted(KALTON_R))
def test_h6_kalton_g_values_match_r_to_full_precision(method: str) -> None:
    g = kalton_table(kalton_weights(method))

    for actual, printed in zip(g.ravel(), KALTON_R[method].split(), strict=True):
        assert_est(actual, printed)


@pytest.mark.parametrize("method", sorted(KALTON_SAVED))
def test_h6_kalton_g_values_round_to_the_published_table(method: str) -> None:
    g = kalton_table(kalton_weights(method))

    assert [f"{v:.2f}" for v in g.ravel()] == KALTON_SAVED[method].split()


# --- H7, H7b, H12: GREG calibration and trimming ---------------------------------------------


def test_h7_greg_on_api99_matches_r() -> None:
    api = load("apiclus1.csv")
    x = np.column_stack([np.ones(183), num(api, "api99")])
    cal = calibrate(num(api, "pw"), x, [6194, 3914069])
    design = dclus1(cal.weights, cal.projection)

    mean = estimate_mean(design, num(api, "api00"))
    total = estimate_total(design, num(api, "enroll"))

    # survey.pdf 666.72 (3.2959), 3357372 (243227); R 4.1.1 run: calibrate(dclus1, ~api99, ...)
    assert_est(mean.estimate[0], "666.7177363")
    assert_se(mean.se[0], "3.295880912")
    assert_est(total.estimate[0], "3357372.048")
    assert_se(total.se[0], "243227.1868")


@pytest.mark.parametrize(
    ("calfun", "bounds", "g_min", "g_max", "mean", "se"),
    [
        # caleg.Rout.save; R 4.1.1 run: range(weights(g)/weights(dclus1))
        ("linear", (-math.inf, math.inf), "0.790678234", "1.789116401", None, None),
        ("linear", (0.6, 1.5), "0.7198750724", "1.5", "641.4654363", "23.3128296"),
        ("logit", (0.6, 1.5), "0.7368415387", "1.497866063", "641.5778915", "23.25100143"),
    ],
)
def test_h7b_calibration_on_enrolment_gives_r_g_ranges(
    calfun: str,
    bounds: tuple[float, float],
    g_min: str,
    g_max: str,
    mean: str | None,
    se: str | None,
) -> None:
    api = load("apiclus1.csv")
    x = np.column_stack([np.ones(183), num(api, "enroll")])

    cal = calibrate(num(api, "pw"), x, [6194, 3811472], calfun=calfun, bounds=bounds)  # type: ignore[arg-type]

    assert_est(cal.g.min(), g_min)
    assert_est(cal.g.max(), g_max)
    if mean is not None and se is not None:
        m = estimate_mean(dclus1(cal.weights, cal.projection), num(api, "api00"))
        assert_est(m.estimate[0], mean)
        assert_se(m.se[0], se)


def greg_stype_api99(calfun: str = "linear") -> tuple[npt.NDArray[np.float64], object]:
    # calibrate(dclus1, ~stype+api99, c(`(Intercept)`=6194, stypeH=755, stypeM=1018, api99=3914069))
    api = load("apiclus1.csv")
    x = np.column_stack(
        [np.ones(183), api["stype"] == "H", api["stype"] == "M", num(api, "api99")]
    ).astype(float)
    cal = calibrate(num(api, "pw"), x, [6194, 755, 1018, 3914069], calfun=calfun)  # type: ignore[arg-type]
    return cal.weights, cal.projection


def test_h12_greg_with_school_type_and_api99_matches_r() -> None:
    weights, projection = greg_stype_api99()

    m = estimate_mean(dclus1(weights, projection), num(load("apiclus1.csv"), "api00"))

    assert_est(weights.min(), "14.16809752")
    assert_est(weights.max(), "62.05152514")
    assert_est(m.estimate[0], "665.3090712")
    assert_se(m.se[0], "3.441753116")


def test_h12_trimmed_weights_keep_the_pre_trim_projection_as_r() -> None:
    weights, projection = greg_stype_api99()

    trimmed = trim(weights, lower=20, upper=45)
    m = estimate_mean(dclus1(trimmed.weights, projection), num(load("apiclus1.csv"), "api00"))

    # trimWeights(g, lower=20, upper=45)
    assert_est(trimmed.weights.min(), "20")
    assert_est(trimmed.weights.max(), "45.74182977")
    assert trimmed.weights.sum() == pytest.approx(6194, rel=1e-12)
    assert_est(m.estimate[0], "663.0519525")
    assert_se(m.se[0], "3.579587695")


def test_h12_strict_trimming_repeats_passes_as_survey_4_1_1() -> None:
    weights, projection = greg_stype_api99()

    trimmed = trim(weights, lower=20, upper=45, strict=True)
    m = estimate_mean(dclus1(trimmed.weights, projection), num(load("apiclus1.csv"), "api00"))

    # trimWeights(g, lower=20, upper=45, strict=TRUE) -- survey 4.1.1 (4.5 differs)
    assert_est(trimmed.weights.min(), "20.01056941")
    assert_est(trimmed.weights.max(), "45")
    assert_est(m.estimate[0], "663.0201724")
    assert_se(m.se[0], "3.584247597")


def test_raking_calfun_calibration_matches_r() -> None:
    weights, projection = greg_stype_api99("raking")

    m = estimate_mean(dclus1(weights, projection), num(load("apiclus1.csv"), "api00"))

    # R 4.1.1 run: calibrate(dclus1, ~stype+api99, c(6194,755,1018,3914069), calfun="raking")
    assert_est(weights.min(), "18.08212716")
    assert_est(weights.max(), "67.51667645")
    assert_est(m.estimate[0], "665.393796")
    assert_se(m.se[0], "3.437753539")


# --- H9: design effects ----------------------------------------------------------------------

KIGYO_Y = [15, 143, 21, 51, 337, 50, 274, 145, 15, 86]
KIGYO_PPS_W = [20, 200, 11, 25, 550, 30, 250, 100, 10, 55]


def test_h9_design_effect_without_replacement_matches_r() -> None:
    design = Design(np.full(10, 100.0))

    mean = estimate_mean(design, KIGYO_Y)
    total = estimate_total(design, KIGYO_Y)

    # tests/deff.R: svymean(~uriage, des.srs, deff=TRUE) 113.700 35.626 1.0101;
    # R 4.1.1 run: mean se 35.6261608 deff 1.01010101, total 113700 se 35626.1608
    assert_est(mean.estimate[0], "113.700")
    assert_se(mean.se[0], "35.6261608")
    assert_est(mean.deff[0], "1.01010101")
    assert_est(total.estimate[0], "113700")
    assert_se(total.se[0], "35626.1608")
    assert_est(total.deff[0], "1.01010101")


def test_h9_design_effect_replace_matches_r_for_pps_weights() -> None:
    design = Design(KIGYO_PPS_W)

    mean = estimate_mean(design, KIGYO_Y)
    total = estimate_total(design, KIGYO_Y)

    # deff.Rout.save 1.9741, total 305136 SE 184965 deff 18.157; R 4.1.1 run (deff='replace')
    assert_est(mean.estimate[0], "243.9136691")
    assert_se(mean.se[0], "48.75216105")
    assert_est(mean.deff_replace[0], "1.974067231")
    assert_est(total.estimate[0], "305136")
    assert_se(total.se[0], "184964.5583")
    assert_est(total.deff_replace[0], "18.15668739")


# --- H10: lonely PSUs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "mean_se", "total_se"),
    [
        # lonely.psu.Rout.save 5.8058 / 5.8281 / 6.0096; R 4.1.1 run with options(survey.lonely.psu)
        ("remove", "5.805777578", "35960.9882"),
        ("certainty", "5.805777578", "35960.9882"),
        ("adjust", "5.828057902", None),  # 4.1.1 total centres at 0, see next test
        ("average", "6.009550728", "37223.15916"),
    ],
)
def test_h10_lonely_psu_rules_match_r(rule: str, mean_se: str, total_se: str | None) -> None:
    api = load("apiclus1.csv")
    # svydesign(id=~1, weights=~pw, strata=~dnum, data=apiclus1): dnum 413 has one school
    design = Design(num(api, "pw"), api["dnum"], lonely_psu=rule)  # type: ignore[arg-type]

    mean = estimate_mean(design, num(api, "api00"))
    total = estimate_total(design, num(api, "api00"))

    assert_se(mean.se[0], mean_se)
    if total_se is not None:
        assert_se(total.se[0], total_se)


def test_h10_adjust_leaves_a_lonely_total_uncentred_as_survey_4_1_1() -> None:
    # survey 4.5 tests/lonely.psu.R (df_w_singleton); survey 4.1.1 (Debian, the version
    # followed) prints vcov(svytotal(~Age)) 126625 for remove/certainty and 562225 for adjust
    # (the lonely PSU total 660 centred at 0; survey >= 4.2 centres it at the grand mean,
    # 127579.8).
    weights = [10.5, 10.5, 20, 20, 15]
    age = [30.5, 40.5, 35, 52, 44]
    strata = [1, 1, 2, 2, 3]

    remove = estimate_total(Design(weights, strata, lonely_psu="remove"), age)
    adjust = estimate_total(Design(weights, strata, lonely_psu="adjust"), age)
    average = estimate_total(Design(weights, strata, lonely_psu="average"), age)

    assert remove.variance[0] == pytest.approx(126625, rel=1e-12)
    assert adjust.variance[0] == pytest.approx(562225, rel=1e-12)
    assert average.variance[0] == pytest.approx(189937.5, rel=1e-12)  # R 4.1.1 run


def test_h10_take_all_lonely_stratum_adds_nothing_under_every_rule() -> None:
    api = load("apiclus1.csv")
    fpc = np.where(api["dnum"] == "413", 1.0, 1000.0)

    ses = [
        estimate_mean(
            Design(num(api, "pw"), api["dnum"], fpc=fpc, lonely_psu=rule), num(api, "api00")
        ).se[0]
        for rule in ("fail", "remove", "certainty", "adjust", "average")
    ]

    # lonely.psu.Rout.save 5.7344; R 4.1.1 run 5.734395655 for every rule
    for se in ses:
        assert_se(se, "5.734395655")


# --- H13: samplics one-stage fpc fixture -----------------------------------------------------


def samplics() -> tuple[Columns, Design]:
    d = load("samplics_one_stage_fpc.csv")
    # svydesign(ids=~psuid, strata=~stratid, fpc=~Nh, weights=~weight, data=d, nest=TRUE)
    return d, Design(num(d, "weight"), d["stratid"], fpc=num(d, "Nh"), psu=d["psuid"])


def test_h13_samplics_mean_total_ratio_and_wald_ci_match_r() -> None:
    d, design = samplics()

    mean = estimate_mean(design, num(d, "y"))
    total = estimate_total(design, num(d, "y"))
    ratio = estimate_ratio(design, num(d, "y"), num(d, "x"))
    lower, upper = mean.ci("wald")

    # samplics_fixture_check.R; R 4.1.1 run with sprintf("%.10g")
    assert design.df == 9
    assert_est(mean.estimate[0], "10.27855422")
    assert_se(mean.se[0], "0.775096405")
    assert_est(lower[0], "8.525164332")
    assert_est(upper[0], "12.0319441")
    assert_est(total.estimate[0], "853.12")
    assert_se(total.se[0], "97.41386691")
    assert_est(ratio.estimate[0], "1.892038146")
    assert_se(ratio.se[0], "0.007295397096")


def test_h13_samplics_proportion_logit_ci_and_domains_match_r() -> None:
    d, design = samplics()

    p = estimate_mean(design, num(d, "z"))
    lower, upper = p.ci("logit")
    by = estimate_by(design, num(d, "y"), d["domain"])

    assert_est(p.estimate[0], "0.6746987952")
    assert_se(p.se[0], "0.1304209603")
    assert_est(lower[0], "0.350983665")
    assert_est(upper[0], "0.8883253027")
    assert_est(by.estimates.estimate[0, 0], "9.972075472")
    assert_se(by.estimates.se[0, 0], "1.057359764")
    assert_est(by.estimates.estimate[1, 0], "10.82")
    assert_se(by.estimates.se[1, 0], "0.921783778")


# --- the app-shaped synthetic case (sec. H, smf_expected.R) ----------------------------------


@cache
def smf() -> tuple[Columns, npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """D1-D3 with class = stratum; returns data, final weights and the respondent mask."""
    s = load("smf_synthetic_sample.csv")
    status = status_masks(s["disposition"])
    d = design_weights(s["stratum"], num(s, "N_h"))
    d1 = adjust_unknown(d, status.known, s["stratum"])
    nr = adjust_nonresponse(d1, status.eligible, status.respondent, s["stratum"])
    return s, nr.weights, status.respondent


def smf_design() -> Design:
    s, w, resp = smf()
    # svydesign(ids=~1, strata=~stratum, fpc=~N_h, weights=~w, data=r)
    return Design(w[resp], s["stratum"][resp], fpc=num(s, "N_h")[resp])


def smf_item(key: str) -> npt.NDArray[np.float64]:
    s, _, resp = smf()
    return num(s, key)[resp]


def smf_factor(key: str, levels: list[str]) -> npt.NDArray[np.float64]:
    s, _, resp = smf()
    values = s[key][resp]
    return np.column_stack([np.where(values == "", np.nan, values == lev) for lev in levels])


def test_synthetic_weights_follow_d1_to_d3() -> None:
    _, w, resp = smf()

    # smf_expected_output_survey4.1.1.txt
    assert int(resp.sum()) == 188 + 21
    assert_est(w[resp].sum(), "150108.2024176295")
    assert_est(kish_deff(w[resp]), "1.3597156565")
    assert smf_design().df == 200


def test_synthetic_overall_proportions_totals_ci_and_deff_match_r() -> None:
    design = smf_design()

    p = estimate_mean(design, np.column_stack([smf_item("adopted"), smf_item("important")]))
    total = estimate_total(design, smf_item("adopted"))
    lower, upper = p.ci("logit")

    assert_est(p.estimate[0], "0.1988641096")
    assert_se(p.se[0], "0.02709899423")
    assert_est(lower[0], "0.1507388592")
    assert_est(upper[0], "0.2576918576")
    assert_est(p.deff[0], "0.9600905249")
    assert_est(p.estimate[1], "0.3200054421")
    assert_se(p.se[1], "0.03650568289")
    assert_est(total.estimate[0], "29851.13401")
    assert_se(total.se[0], "4067.781311")


def test_synthetic_adoption_by_size_and_for_smes_matches_r() -> None:
    s, _, resp = smf()
    size = s["size"][resp]

    by = estimate_by(smf_design(), smf_item("adopted"), size)
    sme = estimate_mean(smf_design(), smf_item("adopted"), size != "midsize")

    expected = {
        "medium": ("0.4857119579", "0.07983487462"),
        "micro": ("0.08627813898", "0.03192611371"),
        "midsize": ("0.9015049206", "0.05567888553"),
        "small": ("0.3241546885", "0.06253463879"),
    }
    for row, level in enumerate(by.levels):
        assert_est(by.estimates.estimate[row, 0], expected[str(level)][0])
        assert_se(by.estimates.se[row, 0], expected[str(level)][1])
    assert_est(sme.estimate[0], "0.1892695986")
    assert_se(sme.se[0], "0.02745850536")


def test_synthetic_estimates_among_adopters_match_r() -> None:
    adopters = smf_item("adopted") == 1
    design = smf_design()
    level = smf_factor("level", ["advanced", "basic", "intermediate"])
    areas = ["finance", "hr", "other", "planning_strategy", "production_mgmt", "tech_innovation"]
    tech = np.column_stack([smf_item(k) for k in ("tech_erp", "tech_mes", "tech_robot")])

    lev = estimate_mean(design, level, adopters)
    area = estimate_mean(design, smf_factor("main_area", areas), adopters)
    multi = estimate_mean(design, tech, adopters)
    invest = estimate_mean(design, smf_item("invest"), adopters)
    basic_lower, basic_upper = lev.ci("logit")

    expected_level = [
        ("0.0267443902", "0.01577835475"),
        ("0.724000363", "0.07080099613"),
        ("0.2492552468", "0.06984684214"),
    ]
    for col, (est, se) in enumerate(expected_level):
        assert_est(lev.estimate[col], est)
        assert_se(lev.se[col], se)
    # svyciprop on subset(des, adopted == 1) uses that subset's degf
    assert_est(basic_lower[1], "0.5638926560")
    assert_est(basic_upper[1], "0.8418168845")
    expected_area = [
        ("0.1028858099", "0.04752585501"),
        ("0.07620837885", "0.03796105415"),
        ("0.09909146224", "0.04435427582"),
        ("0.2751066322", "0.07266906224"),
        ("0.3949532887", "0.07632988258"),
        ("0.05175442811", "0.02907567236"),
    ]
    for col, (est, se) in enumerate(expected_area):
        assert_est(area.estimate[col], est)
        assert_se(area.se[col], se)
    expected_multi = [
        ("0.7746817661", "0.06077821992"),
        ("0.2486761055", "0.06590964725"),
        ("0.06309865352", "0.03454957273"),
    ]
    for col, (est, se) in enumerate(expected_multi):
        assert_est(multi.estimate[col], est)
        assert_se(multi.se[col], se)
    # svymean(~invest, ad, na.rm = TRUE): item nonresponse is its own domain
    assert_est(invest.estimate[0], "432.5741287")
    assert_se(invest.se[0], "73.82250757")
    assert invest.n[0] < multi.n[0]


def test_synthetic_population_count_is_the_weight_sum_of_item_respondents() -> None:
    adopters = smf_item("adopted") == 1
    _, w, resp = smf()
    answered = adopters & ~np.isnan(smf_item("invest"))

    invest = estimate_mean(smf_design(), smf_item("invest"), adopters)

    assert invest.population[0] == pytest.approx(w[resp][answered].sum(), rel=1e-12)
    assert invest.n[0] == int(answered.sum())


# --- calibrated stratified (unclustered) designs: the moment-based E4 path --------------------
# R 4.1.1 run on apistrat.csv (names as in the CSV):
#   dstrat <- svydesign(id=~1, strata=~stype, weights=~pw, data=apistrat, fpc=~fpc)
#   dr <- rake(dstrat, list(~sch_wide, ~awards), list(data.frame(sch_wide=c("No","Yes"),
#     Freq=c(1072,5122)), data.frame(awards=c("No","Yes"), Freq=c(2500,3694))),
#     control=list(epsilon=1e-10, maxit=50))
#   svymean(~api00, dr); svytotal(~enroll, dr); svyby(~api00, ~comp_imp, dr, svymean)
#   g <- calibrate(dstrat, ~api99+sch_wide, c(6194, 3914069, 5122)); svymean(~api00, g)
#   svyby(~api00, ~comp_imp, g, svymean); svymean(~api00, trimWeights(g, lower=15, upper=40))


def test_raked_stratified_design_matches_r_overall_and_by_domain() -> None:
    api = load("apistrat.csv")
    rk = rake(
        num(api, "pw"),
        [api["sch_wide"], api["awards"]],
        [POP_SCHWIDE, {"No": 2500.0, "Yes": 3694.0}],
        epsilon=1e-10,
        maxit=50,
    )
    design = Design(rk.weights, api["stype"], fpc=num(api, "fpc"), calibration=rk.projection)

    mean = estimate_mean(design, num(api, "api00"))
    total = estimate_total(design, num(api, "enroll"))
    by = estimate_by(design, num(api, "api00"), api["comp_imp"])

    assert_est(mean.estimate[0], "661.8568891")
    assert_se(mean.se[0], "9.377929727")
    assert_est(total.estimate[0], "3690938.865")
    assert_se(total.se[0], "133042.4953")
    assert_est(by.estimates.estimate[0, 0], "639.040276")
    assert_se(by.estimates.se[0, 0], "15.86579686")
    assert_est(by.estimates.estimate[1, 0], "676.2496374")
    assert_se(by.estimates.se[1, 0], "11.71030018")


def test_greg_and_trimmed_stratified_design_matches_r() -> None:
    api = load("apistrat.csv")
    x = np.column_stack([np.ones(200), num(api, "api99"), api["sch_wide"] == "Yes"]).astype(float)
    cal = calibrate(num(api, "pw"), x, [6194, 3914069, 5122])
    design = Design(cal.weights, api["stype"], fpc=num(api, "fpc"), calibration=cal.projection)
    trimmed = trim(cal.weights, lower=15, upper=40)
    trimmed_design = Design(
        trimmed.weights, api["stype"], fpc=num(api, "fpc"), calibration=cal.projection
    )

    mean = estimate_mean(design, num(api, "api00"))
    by = estimate_by(design, num(api, "api00"), api["comp_imp"])
    trimmed_mean = estimate_mean(trimmed_design, num(api, "api00"))

    assert_est(mean.estimate[0], "664.556116")
    assert_se(mean.se[0], "1.556694973")
    assert_est(by.estimates.estimate[0, 0], "637.6362316")
    assert_se(by.estimates.se[0, 0], "13.24174988")
    assert_est(by.estimates.estimate[1, 0], "678.7583759")
    assert_se(by.estimates.se[1, 0], "6.777879023")
    assert_est(trimmed_mean.estimate[0], "661.2018324")
    assert_se(trimmed_mean.se[0], "1.822913397")
