"""Shared set-up for the benchmarks: a benchmark database, production-like settings."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/smartsurvey_bench"


def production_env() -> dict[str, str]:
    """Environment of a production deployment (no DEBUG, hashed static files)."""
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.update(
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY", "benchmark-secret-key-" + "x" * 40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        STATIC_MANIFEST="1",
        LOG_LEVEL="WARNING",
    )
    return env


def ensure_database(url: str) -> None:
    import psycopg2

    parts = urllib.parse.urlparse(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def setup_django(env: dict[str, str] | None = None) -> None:
    env = env or production_env()
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    if os.environ["DATABASE_URL"].startswith("postgres"):
        ensure_database(os.environ["DATABASE_URL"])
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def fresh_survey(slug: str, questionnaire: Path | None = None) -> Any:
    """Delete an earlier benchmark survey of this slug and load the shipped questionnaire."""
    from respondents.models import Case, FrameUnit
    from surveys.models import Survey
    from surveys.xlsform import load_questionnaire

    path = questionnaire or ROOT / "surveys" / "questionnaires" / "smart_manufacturing.xlsx"
    Case.objects.filter(survey__slug=slug).delete()
    FrameUnit.objects.filter(survey__slug=slug).delete()
    Survey.objects.filter(slug=slug).delete()
    return load_questionnaire(path.read_bytes(), survey_slug=slug).survey


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()  # noqa: S310 (http on loopback)
            return
        except OSError:  # refused, reset or timed out while the server boots
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def drawn_survey(slug: str, sample_size: int, seed: int) -> Any:
    """A fresh survey with the synthetic 163,273-firm frame and a stratified sample."""
    import tempfile

    from respondents import sampling
    from respondents.frame_import import import_frame
    from respondents.synthetic import write_frame

    survey = fresh_survey(slug)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.csv"
        write_frame(path, rows=163_273)
        import_frame(survey, path, filename=path.name)
    sampling.draw_sample(
        survey,
        strata_variables=["industry_group", "size_class", "region_area"],
        allocation="proportional",
        sample_size=sample_size,
        min_per_stratum=2,
        seed=seed,
    )
    return survey
