"""Benchmark the frame import: time and peak memory at 20,000 and 163,273 rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartsurvey_bench \\
        .venv/bin/python bench/bench_frame_import.py [--rows 20000 163273] [--format csv]

Each size runs in a fresh process, so the peak RSS printed is that import's own (the file
is written first by the synthetic generator, which streams too). The database is created
and migrated when missing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/smartsurvey_bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 163_273])
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    if options.one:
        run_one(options.rows[0], options.format, options.encoding)
        return
    prepare_database()
    print(f"database: {os.environ['DATABASE_URL'].rsplit('@', 1)[-1]}")
    for rows in options.rows:
        command = [sys.executable, __file__, "--one", "--rows", str(rows)]
        command += ["--format", options.format, "--encoding", options.encoding]
        subprocess.run(command, check=True, cwd=ROOT)


def prepare_database() -> None:
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres"):
        import psycopg2

        server, name = url.rsplit("/", 1)
        with psycopg2.connect(f"{server}/postgres") as admin:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        admin.close()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT)


def run_one(rows: int, file_format: str, encoding: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from respondents.frame_import import import_frame
    from respondents.synthetic import write_frame
    from surveys.models import Survey

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"frame.{file_format}"
        started = time.perf_counter()
        write_frame(path, rows=rows, file_format=file_format, encoding=encoding)
        written = time.perf_counter() - started
        after_writing = peak_rss_mb()
        slug = f"bench-{rows}-{int(time.time())}"
        survey = Survey.objects.create(slug=slug, title=f"Frame import benchmark {rows}")
        try:
            started = time.perf_counter()
            result = import_frame(survey, path, filename=path.name)
            seconds = time.perf_counter() - started
            after_import = peak_rss_mb()
            again = time.perf_counter()
            import_frame(survey, path, filename=path.name)
            replace_seconds = time.perf_counter() - again
            after_replace = peak_rss_mb()
        finally:
            with connection.cursor() as cursor:  # Survey.delete() would load every unit
                cursor.execute(
                    "DELETE FROM respondents_frameunit WHERE survey_id = %s", [survey.pk]
                )
            survey.delete()
        size_mb = path.stat().st_size / 2**20
    print(
        f"{rows:>8,} rows  {file_format} {size_mb:6.1f} MB  write {written:5.1f} s | "
        f"import {seconds:5.2f} s ({result.rows / seconds:>7,.0f} rows/s)  "
        f"re-import {replace_seconds:5.2f} s | peak RSS: after writing the file "
        f"{after_writing:.1f} MB, import {after_import:.1f} MB, re-import {after_replace:.1f} MB"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


if __name__ == "__main__":
    main()
