"""What the microdata and the codebook say about a run's weights: the calibration controls,
the replicate weights rw_1 ... rw_R, and the exact R and Stata calls that reproduce the
run's standard errors from the exported file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..models import EstimateRun
from ..pipeline import StoredReplicates, run_replicates

# Labels of data, not of the interface: both languages are always written (codebook).
METHOD_TEXTS = {
    "jackknife": ("집단 삭제 잭나이프 복제 가중치", "delete-a-group jackknife replicate weight"),
    "bootstrap": (
        "Rao–Wu 재척도 부트스트랩 복제 가중치",
        "Rao–Wu rescaled bootstrap replicate weight",
    ),
}


def replicate_labels(stored: StoredReplicates) -> list[tuple[str, dict[str, str]]]:
    """rw_k with its Korean and English label."""
    ko, en = METHOD_TEXTS.get(stored.method, (stored.method, stored.method))
    return [(f"rw_{k}", {"ko": f"{ko} {k}", "en": f"{en} {k}"}) for k in range(1, stored.count + 1)]


def replicate_values(stored: StoredReplicates | None, case_id: int) -> list[float]:
    """A firm's replicate weights; 0 for firms that did not respond."""
    if stored is None:
        return []
    found = stored.of(case_id)
    return [0.0] * stored.count if found is None else found.tolist()


def _scale_text(stored: StoredReplicates) -> str:
    """The scale as an exact fraction where it is one (R parses it as the same double)."""
    r = stored.count
    if stored.method == "bootstrap" and np.isclose(stored.scale, 1 / (r - 1), rtol=1e-15):
        return f"1/{r - 1}"
    if stored.method == "jackknife" and np.isclose(stored.scale, (r - 1) / r, rtol=1e-15):
        return f"{r - 1}/{r}"
    return repr(stored.scale)


def r_call(stored: StoredReplicates, file: str = "microdata.csv") -> str:
    """svrepdesign() on the exported CSV that reproduces the run's standard errors."""
    rscales = (
        f"rep(1, {stored.count})"
        if np.all(stored.rscales == 1)
        else "c(" + ", ".join(repr(float(v)) for v in stored.rscales) + ")"
    )
    return (
        "library(survey)\n"
        f'd <- subset(read.csv("{file}", na.strings = ""), final_weight > 0)\n'
        'design <- svrepdesign(data = d, weights = ~final_weight, repweights = "^rw_[0-9]+$", '
        f'type = "{stored.type}", scale = {_scale_text(stored)}, rscales = {rscales}, '
        f"mse = {'TRUE' if stored.mse else 'FALSE'}, combined.weights = TRUE)"
    )


def stata_line(stored: StoredReplicates) -> str:
    """svyset with the replicate weights: Stata's jackknife formula with one multiplier,
    m sum_r (theta_r - centre)^2, centred at the full-sample estimate with mse."""
    multiplier = repr(stored.scale)
    mse = " mse" if stored.mse else ""
    return (
        f"svyset [pweight=final_weight], jkrweight(rw_1-rw_{stored.count}, "
        f"multiplier({multiplier})) vce(jackknife){mse}"
    )


def weighting_section(run: EstimateRun | None) -> dict[str, Any]:
    """The run's weighting facts for the codebook (JSON)."""
    if run is None:
        return {}
    diagnostics = (
        EstimateRun.objects.filter(pk=run.pk).values_list("diagnostics", flat=True).get() or {}
    )
    section: dict[str, Any] = {
        "run": run.number,
        "final_weight": "final_weight",
        "controls": diagnostics.get("controls", {}),
        "variance": "taylor",
        "r": (
            "svydesign(ids = ~1, strata = ~stratum, fpc = ~stratum_population, "
            "weights = ~final_weight, data = subset(d, final_weight > 0))"
        ),
        "stata": "svyset [pweight=final_weight], strata(stratum) fpc(stratum_population)",
    }
    if section["controls"].get("margins"):
        # The final weights are calibrated: a design on them alone gives the uncalibrated
        # Taylor variance, larger than the one published.
        section["r_calibrated"] = (
            "The run is calibrated: the call above reproduces its estimates, not its standard "
            "errors. Build the design on the nonresponse-adjusted weights and calibrate it "
            "with the controls above (rake() or calibrate()), as docs/methodology.md section "
            "K shows, or export with replicate variance."
        )
    stored = run_replicates(run)
    if stored is not None:
        section.pop("r_calibrated", None)
        section.update(
            variance=stored.method,
            replicates={
                "count": stored.count,
                "columns": f"rw_1 … rw_{stored.count}",
                "type": stored.type,
                "scale": stored.scale,
                "rscales": stored.rscales.tolist(),
                "mse": stored.mse,
                "seed": stored.seed,
            },
            r=r_call(stored),
            stata=stata_line(stored),
        )
    return section


def codebook_rows(run: EstimateRun | None) -> Iterator[dict[str, Any]]:
    """Codebook entries of the replicate-weight columns, each with the R and Stata calls."""
    stored = run_replicates(run) if run is not None else None
    if stored is None:
        return
    usage = f"R: {r_call(stored)}; Stata: {stata_line(stored)}"
    for name, label in replicate_labels(stored):
        yield {
            "variable": name,
            "sav_dta_name": name,
            "label": label,
            "type": "decimal",
            "choices": [],
            "universe": {"text": usage, "expression": ""},
            "missing": [],
            "versions": [],
            "identified_only": False,
            "release": {"scientific": "as computed", "public": "as computed"},
        }
