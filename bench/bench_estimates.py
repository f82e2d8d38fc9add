"""A whole estimate run (read from PostgreSQL, weight, estimate, write) at 5,000 respondents
and at 163,273 (a census), without and with raking; then the estimation engine beside R.

    make bench-estimates

Targets: 5,000 respondents under 1 s (raking under 2 s), 163,273 under 10 s (raking under
20 s), memory growing linearly with the respondents.
"""

from __future__ import annotations

import dataclasses
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

SIZES = (5_000, 163_273)


def build(slug: str, respondents: int) -> object:
    """A frame of 163,273 firms, a sample of `respondents`, every case answered."""
    import numpy as np
    from django.utils import timezone

    from respondents import simulation
    from respondents.models import Case
    from surveys.models import Response

    survey = common.drawn_survey(slug, respondents, seed=7)
    rng = np.random.default_rng(7)
    cases = list(Case.objects.filter(survey=survey).select_related("frame_unit"))
    now = timezone.now()
    responses = [
        Response(
            case=case,
            questionnaire_id=survey.current_questionnaire_id,
            answers=simulation.answers_for(case, rng),
            status="submitted",
            submitted_at=now,
            reference=f"B-{case.pk}",
        )
        for case in cases
    ]
    Response.objects.bulk_create(responses, batch_size=5000)
    Case.objects.filter(survey=survey).update(disposition="1.1")
    return survey


def timed_run(slug: str) -> None:
    """In a fresh process: a run without and with raking; RSS then shows this size's peak."""
    from analytics import pipeline
    from analytics.spec import WeightingSpec
    from surveys.models import Survey

    survey = Survey.objects.get(slug=slug)
    plain = WeightingSpec()
    raked = dataclasses.replace(plain, calibration="raking", margins=("size_class", "region_area"))
    for label, spec in (("none", plain), ("raking", raked)):
        started = time.perf_counter()
        run = pipeline.recompute(survey, trigger="bench", spec=spec, force=True)
        elapsed = time.perf_counter() - started
        assert run is not None
        t = run.timings
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{run.snapshot['respondents']:>12,} {label:<8} {elapsed:>8.2f} {t['load']:>6.2f} "
            f"{t['weighting']:>7.2f} {t['estimation']:>7.2f} {t['write']:>6.2f} "
            f"{run.estimates.count():>9,} {rss:>9.0f}",
            flush=True,
        )


def main() -> None:
    common.setup_django()
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        timed_run(sys.argv[2])
        return
    from surveys.models import Response

    slugs = []
    for size in SIZES:
        slug = f"bench_estimates_{size}"
        if Response.objects.filter(case__survey__slug=slug).count() != size:
            build(slug, size)
        slugs.append(slug)
    print("whole run: read from PostgreSQL, weight, estimate (every question and domain), write")
    print(
        f"{'respondents':>12} {'weights':<8} {'total s':>8} {'load':>6} {'weight':>7} "
        f"{'estim.':>7} {'write':>6} {'estimates':>9} {'RSS MiB':>9}"
    )
    for slug in slugs:
        subprocess.run([sys.executable, __file__, "--run", slug], check=True)
    print("\nestimation engine alone, beside R's survey package (if Rscript is installed):")
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_engine.py")], check=True)


if __name__ == "__main__":
    main()
