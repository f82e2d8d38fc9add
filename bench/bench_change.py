"""Estimates of change on two rounds of 5,000 respondents: the computation, the change and
trend pages, and the panel export.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/change_bench .venv/bin/python \
        bench/bench_change.py [--fresh]

Round 2024: the synthetic frame of 163,273 firms and a stratified sample of 5,000 (industry
group × size class × region area, proportional, at least 2 per stratum, a 25 % reserve), drawn
as the platform draws. Round 2025: the same frame, 80 % of each stratum's 2024 firms kept and
the rest replaced by the stratum's reserve, linked to their 2024 cases by Case.previous (the
coordinated draw itself belongs to the rounds machinery). Every sampled firm answers, with the
demo's answers (config.simulation.answers_for), and each round publishes a version through the
real recompute. The surveys are reused on the next run unless --fresh is given.

Timed, as server time through the Django test client signed in as an administrator: the
change computed cold (both versions read, weighted again, reproduced and compared, with c_g
from the two frames: changes_between without its cache), the change page cold and warm
(median of 5), a domain tab, the trend page, and the panel export as CSV; first with the
default weighting (Taylor), then with the demo's (raking on size class and region area, 500
bootstrap replicates). Budget: 1 s for the change page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/change_bench"
SLUGS = ("bench-change-2024", "bench-change-2025")
SAMPLE_SIZE = 5_000
KEEP = 0.8
SEED = 20250428
RUNS = 5
BUDGET_MS = 1000


def setup() -> None:
    env = common.production_env()
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", DEFAULT_URL)
    env["STATIC_MANIFEST"] = "0"
    env["TASKS_IN_BACKGROUND"] = "0"
    common.setup_django(env)


# --- the two rounds ----------------------------------------------------------------------------


def build(fresh: bool) -> tuple[Any, Any]:
    from analytics.models import EstimateRun
    from surveys.models import Survey

    found = [Survey.objects.filter(slug=slug).first() for slug in SLUGS]
    ready = all(s and EstimateRun.objects.published().filter(survey=s).exists() for s in found)
    if ready and not fresh:
        return found[0], found[1]
    started = time.perf_counter()
    for slug in reversed(SLUGS):
        _delete(slug)
    with tempfile.TemporaryDirectory() as folder:
        frame = Path(folder) / "frame.csv"
        from respondents.synthetic import write_frame

        write_frame(frame, rows=163_273)
        first = _first_round(frame)
        second = _second_round(frame, first)
    for survey in (first, second):
        _answer_all(survey)
    from analytics import pipeline

    for survey in (first, second):
        pipeline.recompute(survey, trigger="bench")
    print(f"built both rounds in {time.perf_counter() - started:.0f} s", flush=True)
    return first, second


def _delete(slug: str) -> None:
    from django.db import connection

    from analytics.models import EstimateRun
    from respondents.models import Case, FrameUnit
    from surveys.models import Response, Survey

    survey = Survey.objects.filter(slug=slug).first()
    if survey is None:
        return
    EstimateRun.objects.filter(survey=survey).delete()
    Case.objects.filter(survey=survey).update(previous=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Response._meta.db_table} WHERE case_id IN "  # noqa: S608
            f"(SELECT id FROM {Case._meta.db_table} WHERE survey_id = %s)",
            [survey.pk],
        )
        for table in (Case._meta.db_table, FrameUnit._meta.db_table):
            cursor.execute(f"DELETE FROM {table} WHERE survey_id = %s", [survey.pk])  # noqa: S608
    survey.delete()


def _first_round(frame: Path) -> Any:
    from respondents import sampling
    from respondents.frame_import import import_frame

    survey = common.fresh_survey(SLUGS[0])
    survey.year = 2024
    survey.save(update_fields=["year"])
    import_frame(survey, frame, filename=frame.name)
    sampling.draw_sample(
        survey,
        strata_variables=["industry_group", "size_class", "region_area"],
        allocation="proportional",
        sample_size=SAMPLE_SIZE,
        min_per_stratum=2,
        seed=SEED,
        reserve_fraction=0.25,
    )
    return survey


def _second_round(frame: Path, first: Any) -> Any:
    """The same frame; in each stratum 80 % of the 2024 firms and the reserve after them."""
    from django.db import transaction
    from django.utils import timezone

    from respondents.frame_import import import_frame
    from respondents.models import Case, FrameUnit, SampleDesign, Stratum

    survey = common.fresh_survey(SLUGS[1])
    survey.year, survey.previous_round = 2025, first
    survey.save(update_fields=["year", "previous_round"])
    import_frame(survey, frame, filename=frame.name)
    old = SampleDesign.objects.get(survey=first, drawn_at__isnull=False)
    units = dict(FrameUnit.objects.filter(survey=survey).values_list("business_id", "pk"))
    with transaction.atomic():
        design = SampleDesign.objects.create(
            survey=survey,
            strata_variables=old.strata_variables,
            allocation=old.allocation,
            sample_size=old.sample_size,
            min_per_stratum=old.min_per_stratum,
            seed=SEED + 1,
            frame_size=old.frame_size,
            drawn_at=timezone.now(),
        )
        cases: list[Case] = []
        for stratum in old.strata.order_by("key"):
            new = Stratum.objects.create(
                design=design,
                key=stratum.key,
                values=stratum.values,
                population=stratum.population,
                allocated=stratum.sample_size,
                sample_size=stratum.sample_size,
                take_all=stratum.take_all,
            )
            drawn = list(stratum.cases.filter(is_reserve=False).order_by("selection_order"))
            reserve = list(stratum.cases.filter(is_reserve=True).order_by("reserve_rank"))
            n = len(drawn)
            fresh = reserve[: min(len(reserve), n - round(KEEP * n))]
            for case in drawn[: n - len(fresh)] + fresh:
                cases.append(
                    Case(
                        survey=survey,
                        stratum=new,
                        frame_unit_id=units[case.business_id],
                        business_id=case.business_id,
                        selection_order=len(cases) + 1,
                        previous=None if case.is_reserve else case,
                    )
                )
        Case.objects.bulk_create(cases, batch_size=2000)
    return survey


def _answer_all(survey: Any) -> None:
    from django.db import transaction
    from django.utils import timezone

    from config.simulation import answers_for
    from respondents.models import Case
    from surveys.models import Response, get_form

    form = get_form(survey.questionnaire_id)
    rng = np.random.default_rng(SEED + (survey.year or 0))
    cases = Case.objects.in_sample().filter(survey=survey).select_related("frame_unit")
    now = timezone.now()
    with transaction.atomic():
        Response.objects.bulk_create(
            (
                Response(
                    case=case,
                    questionnaire_id=survey.questionnaire_id,
                    answers=form.evaluate(answers_for(case, rng))[0],
                    status=Response.Status.SUBMITTED,
                    mode=Response.Mode.WEB,
                    submitted_at=now,
                    updated_at=now,
                    reference=f"CHG-{survey.year}-{case.pk:09d}",
                    page="_review",
                    revision=8,
                )
                for case in cases.order_by("pk").iterator(chunk_size=5000)
            ),
            batch_size=2000,
        )
        cases.update(disposition="1.1", disposition_at=now)


# --- timings -----------------------------------------------------------------------------------


def administrator() -> Any:
    from django.contrib.auth.models import Group, User

    from config.roles import ADMINISTRATORS

    user, _created = User.objects.get_or_create(username="bench-change-admin")
    user.groups.set([Group.objects.get(name=ADMINISTRATORS)])
    return User.objects.get(pk=user.pk)


def forget(first: Any, second: Any, everything: bool = False) -> None:
    """The cached change of the two latest versions, so that the next request computes it;
    with `everything`, also c_g of the two frames (the first comparison of two rounds)."""
    from django.core.cache import cache

    from analytics.change import _cache_key

    runs = latest(first, second)
    if everything:
        cache.clear()
    cache.delete(_cache_key(runs[0], runs[1]))


def latest(first: Any, second: Any) -> tuple[Any, Any]:
    """The two rounds' latest published versions."""
    from analytics.models import EstimateRun

    runs = [EstimateRun.objects.latest_published(s) for s in (first, second)]
    assert runs[0] is not None and runs[1] is not None
    return runs[0], runs[1]


def timed(act: Callable[[], Any]) -> float:
    started = time.perf_counter()
    act()
    return (time.perf_counter() - started) * 1000


def warm(act: Callable[[], Any]) -> float:
    act()
    return statistics.median(timed(act) for _ in range(RUNS))


def measure(first: Any, second: Any, client: Any, label: str) -> None:
    import io

    from analytics import exports
    from analytics.change import changes_between, prepare

    runs = latest(first, second)
    base = f"/manage/{second.slug}"

    def page(path: str) -> Callable[[], Any]:
        def get() -> None:
            response = client.get(base + path)
            assert response.status_code == 200, (path, response.status_code)
            assert b'id="change-unavailable"' not in response.content, path

        return get

    forget(first, second, everything=True)
    first_time = timed(lambda: changes_between(runs[0], runs[1]))
    cells = len(changes_between(runs[0], runs[1]).cells)
    forget(first, second)
    computed = timed(lambda: changes_between(runs[0], runs[1]))
    forget(first, second)
    cold = timed(page("/change/"))
    forget(first, second)
    prepared = timed(lambda: prepare(second.pk))
    rows = {
        "change computed, first time (with c_g of the frames)": first_time,
        "change computed, new version (c_g cached)": computed,
        "worker: prepare_changes after a version": prepared,
        "change page, cold (computes in the request)": cold,
        "change page, warm": warm(page("/change/")),
        "change page, size-class tab": warm(page("/change/?domain=size_class")),
        "trend page": warm(page("/trend/sf_adopted/?option=yes&statistic=proportion")),
    }
    options = exports.make_options(second, "panel", "csv")
    rows["panel export, CSV"] = timed(lambda: exports.export(options, io.BytesIO()))
    respondents = [r.snapshot.get("respondents") for r in runs]
    print(f"\n{label}: {respondents[0]:,} and {respondents[1]:,} respondents, {cells:,} changes")
    for name, ms in rows.items():
        page_view = name.startswith("change page") and "cold" not in name
        over = "  OVER BUDGET" if page_view and ms > BUDGET_MS else ""
        print(f"  {ms:9.1f} ms  {name}{over}", flush=True)


def demo_weighting(first: Any, second: Any) -> None:
    from analytics import pipeline

    for survey in (first, second):
        spec = replace(
            pipeline.current_spec(survey)[0],
            calibration="raking",
            margins=("size_class", "region_area"),
            variance="bootstrap",
        )
        if pipeline.current_spec(survey)[0] != spec:
            pipeline.save_spec(survey, spec)
            started = time.perf_counter()
            pipeline.recompute(survey, trigger="bench")
            print(f"  {survey.slug}: raked, bootstrap in {time.perf_counter() - started:.0f} s")


def taylor_weighting(first: Any, second: Any) -> None:
    from analytics import pipeline
    from analytics.spec import WeightingSpec

    for survey in (first, second):
        if pipeline.current_spec(survey)[0] != WeightingSpec():
            pipeline.save_spec(survey, WeightingSpec())
            pipeline.recompute(survey, trigger="bench")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true")
    options = parser.parse_args()
    setup()
    from django.test import Client

    first, second = build(options.fresh)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(administrator())
    client.cookies["django_language"] = "ko"
    taylor_weighting(first, second)
    measure(first, second, client, "Taylor linearisation, no calibration")
    demo_weighting(first, second)
    measure(first, second, client, "the demo's weighting: raking, 500 bootstrap replicates")


if __name__ == "__main__":
    main()
