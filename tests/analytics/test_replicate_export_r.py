"""R's svrepdesign() on the exported microdata reproduces the published standard errors.

Runs Rscript (Debian r-base-core + r-cran-survey; .ci/run installs them) on the CSV microdata
export with the call the codebook gives, and compares R's standard errors with the run's to
1e-9. Without R the test fails: it is the proof that the exported replicate weights work.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from analytics import exports, pipeline
from analytics.models import Estimate, EstimateRun
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.analytics.test_weighting_second_pass import RAKED

pytestmark = pytest.mark.django_db

# (label, R expression on `design`, item, option, statistic, domain, domain value)
CHECKS = [
    ("adopted", 'svymean(~I(sf_adopted == "yes"), design)', "sf_adopted", "yes", "proportion",
     "all", "all"),
    ("adopted_micro", 'svymean(~I(sf_adopted == "yes"), subset(design, size_class == "micro"))',
     "sf_adopted", "yes", "proportion", "size_class", "micro"),
    ("basic", 'svymean(~I(sf_level == "basic"), design, na.rm = TRUE)', "sf_level", "basic",
     "proportion", "all", "all"),
    ("basic_busan",
     'svymean(~I(sf_level == "basic"), subset(design, region == "Busan"), na.rm = TRUE)',
     "sf_level", "basic", "proportion", "region", "Busan"),
    ("invest_total", "svytotal(~invest_amount, design, na.rm = TRUE)", "invest_amount", "",
     "total", "all", "all"),
    ("invest_mean_small",
     'svymean(~invest_amount, subset(design, size_class == "small"), na.rm = TRUE)',
     "invest_amount", "", "mean", "size_class", "small"),
]  # fmt: skip


def rscript() -> str:
    found = shutil.which("Rscript")
    if found is None:
        pytest.fail(
            "Rscript is not installed: this test needs R with the survey package "
            "(Debian: apt-get install r-base-core r-cran-survey; .ci/run installs them)"
        )
    return found


def export(survey: Survey, run: EstimateRun, what: str, fmt: str) -> bytes:
    options = exports.make_options(survey, what, fmt, language="en", run_number=run.number)
    out = io.BytesIO()
    exports.export(options, out)
    return out.getvalue()


@pytest.mark.parametrize(("method", "replicates"), [("bootstrap", 60), ("jackknife", 25)])
def test_svrepdesign_on_the_exported_file_reproduces_the_standard_errors(
    survey: Survey, tmp_path: Path, method: str, replicates: int
) -> None:
    # given: a raked run with replicate variance, its microdata and codebook
    executable = rscript()
    load_synthetic_case(survey)
    spec = replace(RAKED, variance=method, replicates=replicates)
    run = pipeline.recompute(survey, trigger="test", spec=spec)
    assert run is not None
    csv_path = tmp_path / "microdata.csv"
    csv_path.write_bytes(export(survey, run, "microdata", "csv"))
    weighting = json.loads(export(survey, run, "codebook", "json"))["weighting"]
    assert weighting["variance"] == method and weighting["replicates"]["count"] == replicates
    script = weighting["r"].replace('"microdata.csv"', json.dumps(str(csv_path)))
    script += "\noptions(digits = 17)\n" + "".join(
        f'cat("{label}", format(SE({expr}), digits = 17), "\\n")\n'
        for label, expr, *_cell in CHECKS
    )

    # when
    result = subprocess.run(
        [executable, "-e", script], capture_output=True, text=True, timeout=120, check=False
    )

    # then
    assert result.returncode == 0, result.stderr
    found = dict(line.split()[:2] for line in result.stdout.splitlines() if line.strip())
    for label, _expr, item, option, statistic, domain, value in CHECKS:
        cell = Estimate.objects.get(
            run=run,
            item=item,
            option=option,
            statistic=statistic,
            domain=domain,
            domain_value=value,
        )
        assert cell.se == pytest.approx(float(found[label]), rel=1e-9), label
        assert cell.df == replicates - 1


def test_a_taylor_run_exports_no_replicate_weights(survey: Survey) -> None:
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None

    header = export(survey, run, "microdata", "csv").decode("utf-8-sig").splitlines()[0]
    weighting = json.loads(export(survey, run, "codebook", "json"))["weighting"]

    assert "rw_1" not in header and weighting["variance"] == "taylor"
    assert "svydesign(" in weighting["r"] and weighting["stata"].startswith("svyset")


def test_a_calibrated_taylor_run_says_the_plain_design_misses_its_standard_errors(
    survey: Survey,
) -> None:
    load_synthetic_case(survey)
    plain = pipeline.recompute(survey, trigger="test")
    raked = pipeline.recompute(survey, trigger="test", spec=RAKED, force=True)
    assert plain is not None and raked is not None

    def weighting(run: EstimateRun) -> dict:
        return dict(json.loads(export(survey, run, "codebook", "json"))["weighting"])

    assert "r_calibrated" not in weighting(plain)
    assert "docs/methodology.md" in weighting(raked)["r_calibrated"]
