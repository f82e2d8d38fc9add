"""Times the Python `svy` package on bench_engine's respondent file (run with a Python that
has svy, e.g. SVY_PYTHON=/path/to/venv/bin/python make bench-estimates): svy is not a
dependency of the platform, only a peer to compare against."""

import sys
import time

import polars as pl
import svy

data = pl.read_csv(sys.argv[1], null_values=["NA"])
items = [c for c in data.columns if c.startswith("y")]
started = time.perf_counter()
sample = svy.Sample(data, svy.Design(stratum="stratum", wgt="w", pop_size="N_h"))
sample.estimation.mean(items, drop_nulls=True)
for domain in ("size", "region", "indgroup"):
    sample.estimation.mean(items, by=domain, drop_nulls=True)
print("ELAPSED", time.perf_counter() - started)
