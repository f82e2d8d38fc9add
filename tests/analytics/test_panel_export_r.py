"""R survey on the exported panel file reproduces the published changes (methodology M6, M8).

The panel of the fixture's two rounds goes out as CSV; Rscript stacks its respondents as one
design, a firm (link_key) one PSU, as methodology M6 does, with N_h, the final weights and c_g
from the file, and prints each change's standard error, which must be the platform's to 1e-9.
Without R the test fails: it is the proof that the panel file carries what a change needs.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from analytics import change as changes
from analytics import exports
from tests.analytics.rounds import build_two_rounds
from tests.analytics.test_replicate_export_r import rscript

pytestmark = pytest.mark.django_db

SCRIPT = r"""
suppressMessages(library(survey))
p <- read.csv("panel.csv", na.strings = "", stringsAsFactors = FALSE)
st <- subset(p, final_weight > 0)
st$round <- match(st$round, sort(unique(st$round)))
st$firm <- st$link_key
st$adopted <- as.numeric(st$sf_adopted == "yes")
own <- lapply(1:2, function(r) svydesign(ids = ~1, strata = ~stratum, fpc = ~stratum_population,
                                         weights = ~final_weight, data = subset(st, round == r)))
both <- intersect(st$firm[st$round == 1], st$firm[st$round == 2])
later <- setNames(st$stratum[st$round == 2], st$firm[st$round == 2])
st$group <- ifelse(st$firm %in% both, "both", paste0("only", st$round))
st$vstratum <- ifelse(st$group == "both", paste(later[st$firm], "both"),
                      paste(st$stratum, st$group))
st$frac <- ave(st$final_weight, st$round, st$stratum, FUN = length) / st$stratum_population
c1 <- subset(st, group == "both" & round == 1)
c2 <- subset(st, group == "both" & round == 2)
m <- table(c2$stratum)
g <- names(m)
common <- tapply(st$stratum_common[st$round == 2], st$stratum[st$round == 2], function(x) x[1])
pi1 <- tapply(c1$frac, later[c1$firm], sum)[g] / m
pi2 <- tapply(c2$frac, c2$stratum, function(x) x[1])[g]
phi <- pmin(common[g] * pi1 * pi2 / m, 1)
st$vfpc <- ifelse(st$group == "both", phi[later[st$firm]], st$frac)
joint <- svydesign(ids = ~firm, strata = ~vstratum, fpc = ~vfpc, weights = ~final_weight,
                   data = st)
check <- function(label, statistic, item) {
  for (r in 1:2) {
    keep <- st$round == r & !is.na(st[[item]])
    st[[paste0("a", r)]] <- ifelse(keep, st[[item]], 0)
    st[[paste0("b", r)]] <- as.numeric(keep)
  }
  options(survey.lonely.psu = "remove")
  d <- update(joint, a1 = st$a1, a2 = st$a2, b1 = st$b1, b2 = st$b2)
  cov <- if (statistic == "total") vcov(svytotal(~a1 + a2, d))[1, 2] else
    svyratio(~a1 + a2, ~b1 + b2, d, covmat = TRUE)$vcov[1, 4]
  options(survey.lonely.psu = "adjust")
  f <- as.formula(paste0("~", item))
  s <- sapply(own, function(d) {
    d <- update(d, adopted = as.numeric(sf_adopted == "yes"))
    SE(if (statistic == "total") svytotal(f, d, na.rm = TRUE) else svymean(f, d, na.rm = TRUE))
  })
  cat(sprintf("%s %.17g\n", label, sqrt(s[1]^2 + s[2]^2 - 2 * cov)))
}
check("mean_y", "mean", "sales_krw_mn")
check("total_y", "total", "sales_krw_mn")
check("p_adopted", "mean", "adopted")
"""
CELLS = {
    "mean_y": ("sales_krw_mn", "", "mean", "all", "all"),
    "total_y": ("sales_krw_mn", "", "total", "all", "all"),
    "p_adopted": ("sf_adopted", "yes", "proportion", "all", "all"),
}


def test_r_reproduces_the_published_changes_from_the_panel_file(tmp_path: Path) -> None:
    # given: the panel of two rounds as CSV, answers as codes
    rounds = build_two_rounds()
    out = io.BytesIO()
    exports.export(exports.make_options(rounds.second, "panel", "csv", language="en"), out)
    (tmp_path / "panel.csv").write_bytes(out.getvalue())
    (tmp_path / "check.R").write_text(SCRIPT)

    # when
    done = subprocess.run(
        [rscript(), "check.R"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    # then
    assert done.returncode == 0, done.stderr
    found = dict(line.split() for line in done.stdout.splitlines())
    table = changes.changes_between(rounds.first_run, rounds.second_run)
    for label, cell in CELLS.items():
        assert float(found[label]) == pytest.approx(table.cell(*cell).se, rel=1e-9), label
