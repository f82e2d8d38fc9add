"""Time the sample draw and credential issue on a full-size synthetic frame (163,273 firms).

    .venv/bin/python bench/bench_draw.py [--fresh]

The database (default smartsurvey_bench) is created and migrated if missing. The frame is
built here with bulk_create (so the benchmark does not depend on the frame import) unless a
full-size one from an earlier run is there; --fresh rebuilds it. Only this benchmark's own
survey ("bench-draw") is touched: its earlier sample is deleted first.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/smartsurvey_bench"
FRAME_SIZE = 163_273
SAMPLE_SIZE = 5_000
SEED = 20250428
SLUG = "bench-draw"
# Published size shares of the seed survey (docs/methodology.md, sec. 0) and rough sido shares.
SIZE_SHARES = {"micro": 0.618, "small": 0.272, "medium": 0.097, "midsize": 0.013}
EMPLOYEES = {"micro": (1, 10), "small": (10, 50), "medium": (50, 300), "midsize": (300, 1000)}
REGION_SHARES = {
    "Gyeonggi": 0.33, "Seoul": 0.08, "Incheon": 0.06, "Gyeongnam": 0.10, "Gyeongbuk": 0.07,
    "Busan": 0.06, "Daegu": 0.05, "Chungnam": 0.05, "Chungbuk": 0.04, "Ulsan": 0.02,
    "Jeonbuk": 0.03, "Jeonnam": 0.03, "Gwangju": 0.02, "Daejeon": 0.02, "Gangwon": 0.02,
    "Sejong": 0.01, "Jeju": 0.01,
}  # fmt: skip


def setup() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    _create_database(os.environ["DATABASE_URL"])
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _create_database(url: str) -> None:
    import dj_database_url
    import psycopg2

    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        return
    server = psycopg2.connect(
        dbname="postgres",
        user=config["USER"],
        password=config["PASSWORD"],
        host=config["HOST"],
        port=config["PORT"] or 5432,
    )
    server.autocommit = True
    with server.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{config["NAME"]}"')
    server.close()


def delete_sample(survey: Any) -> None:
    from respondents.models import Case, SampleDesign

    Case.objects.filter(survey=survey).delete()
    SampleDesign.objects.filter(survey=survey).delete()


def frame_survey(*, fresh: bool) -> Any:
    """This benchmark's own survey (other benchmarks share the database): reused if whole."""
    from django.db import connection

    from respondents.models import FrameUnit
    from surveys.models import Survey

    survey = Survey.objects.filter(slug=SLUG).first()
    if survey is not None:
        delete_sample(survey)
        if not fresh and FrameUnit.objects.filter(survey=survey).count() == FRAME_SIZE:
            return survey
        with connection.cursor() as cursor:  # 163,273 rows without dependants: skip the ORM
            table = FrameUnit._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE survey_id = %s", [survey.pk])  # noqa: S608
        survey.delete()
    return timed(f"build a frame of {FRAME_SIZE:,} units (bulk_create)", build_frame)


def build_frame() -> Any:
    from respondents.classifications import KSIC_DIVISIONS
    from respondents.models import FrameUnit
    from surveys.models import Survey

    survey = Survey.objects.create(slug=SLUG, title="표본추출 벤치마크")
    rng = np.random.default_rng(1)
    sizes = rng.choice(list(SIZE_SHARES), FRAME_SIZE, p=list(SIZE_SHARES.values()))
    shares = np.array(list(REGION_SHARES.values()))
    regions = rng.choice(list(REGION_SHARES), FRAME_SIZE, p=shares / shares.sum())
    divisions = rng.choice(list(KSIC_DIVISIONS), FRAME_SIZE)
    numbers = rng.choice(9_000_000_000, FRAME_SIZE, replace=False) + 1_000_000_000
    units = (
        FrameUnit(
            survey=survey,
            business_id=f"{number:010d}"[:3]
            + "-"
            + f"{number:010d}"[3:5]
            + "-"
            + f"{number:010d}"[5:],
            name=f"(주)벤치제조{i}",
            ksic=f"{division}{rng.integers(100, 1000)}",
            size_class=size,
            region=region,
            employees=int(rng.integers(*EMPLOYEES[size])),
            email=f"firm{i}@example.com",
            phone="031-000-0000",
            attributes={"factory": "Y"},
            source_row=i + 2,
        )
        for i, (number, size, region, division) in enumerate(
            zip(numbers, sizes, regions, divisions, strict=True)
        )
    )
    FrameUnit.objects.bulk_create(units, batch_size=5000)
    return survey


def timed(label: str, func: Any) -> Any:
    start = time.perf_counter()
    result = func()
    print(f"{label}: {time.perf_counter() - start:.2f} s", flush=True)
    return result


def main() -> None:
    setup()
    from respondents import credentials, sampling
    from respondents.models import Case

    survey = frame_survey(fresh="--fresh" in sys.argv)
    design: dict[str, Any] = {
        "strata_variables": ["industry_group", "size_class", "region_area"],
        "allocation": "proportional",
        "sample_size": SAMPLE_SIZE,
        "min_per_stratum": 2,
        "reserve_fraction": 0.2,
    }
    preview = timed("preview_design", lambda: sampling.preview_design(survey, **design))
    print(f"  {len(preview.strata)} strata, n = {preview.sample_size}, SE = {preview.se:.4f}")
    record = timed("draw_sample", lambda: sampling.draw_sample(survey, **design, seed=SEED))
    cases = Case.objects.filter(survey=survey)
    print(f"  design {record.pk}: {cases.in_sample().count()} in sample, "
          f"{cases.reserve().count()} reserve")  # fmt: skip
    issued = timed(
        f"issue_credentials ({SAMPLE_SIZE:,} cases)",
        lambda: sum(1 for _ in credentials.issue_credentials(survey)),
    )
    print(f"  {issued} credentials issued")
    timed("write_letters", lambda: credentials.write_letters(survey, io.StringIO()))


if __name__ == "__main__":
    main()
