"""A survey in fieldwork is backed up and restored with scripts/backup.sh and restore.sh:
every row comes back identical, and the restored database computes the same estimates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.test import Client
from psycopg2 import sql

from analytics import pipeline
from analytics.models import Estimate, EstimateRun
from respondents import mailing
from respondents.models import Case, ContactAttempt
from surveys.models import Response, Survey
from tests import factories
from tests.respondents.test_mailing import make_wave
from tests.services import ROOT, MailServer, _test_database_url
from tests.surveys.answering import ADOPTER, NON_ADOPTER, answer_all

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPTS = ROOT / "scripts"
ESTIMATE_FIELDS = ("item", "option", "statistic", "domain", "domain_value", "estimate", "se")
RECOMPUTE = f"""
import json
import sys

import django
from django.core.management import call_command

django.setup()
call_command("migrate", check_unapplied=True, verbosity=0)
from analytics import pipeline
from analytics.models import Estimate
from surveys.models import Survey

run = pipeline.recompute(Survey.objects.get(slug=sys.argv[1]), trigger="restore", force=True)
rows = Estimate.objects.filter(run=run).values_list(*{ESTIMATE_FIELDS!r})
print(json.dumps(sorted(rows)))
"""


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=120)


def fingerprints(url: str) -> dict[str, tuple[Any, ...]]:
    """Row count and a checksum of every row of every table, and every sequence's value."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = sorted(name for (name,) in cursor.fetchall())
            found: dict[str, tuple[Any, ...]] = {}
            for table in tables:
                cursor.execute(
                    sql.SQL(
                        "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY "
                        "t::text), '')) FROM {} t"
                    ).format(sql.Identifier(table))
                )
                found[table] = tuple(cursor.fetchone() or ())
            cursor.execute(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
            )
            found.update({f"sequence {name}": (value,) for name, value in cursor.fetchall()})
            return found
    finally:
        conn.close()


@pytest.fixture
def empty_database(transactional_db: None) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    server, name = _test_database_url().rsplit("/", 1)[0], f"restore_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(f"{server}/postgres")
    admin.autocommit = True
    try:
        admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"{server}/{name}"
    finally:
        admin.cursor().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def sign_in(token: str) -> Client:
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.get(f"/r/{token}/").status_code == 302
    return client


def fieldwork_in_progress(survey: Survey) -> None:
    """Ten firms: invited by email, three submitted, two answering with autosaved drafts,
    one refusal taken by phone, the rest silent; estimates published."""
    firms = [factories.case(survey) for _ in range(10)]
    mailing.queue_wave(make_wave(survey))
    for (_case, token, _code), answers in zip(
        firms[:3], [ADOPTER, NON_ADOPTER, ADOPTER], strict=True
    ):
        client = sign_in(token)
        answer_all(client, answers)
        assert client.post("/q/review/").status_code == 302
    for case, token, _code in firms[3:5]:
        client = sign_in(token)
        answer_all(client, {"profile": ADOPTER["profile"]})
        revision = Response.objects.get(case=case).revision
        typing = {"importance": "neutral", "revision": revision, "editor": "tab-1"}
        assert client.post("/q/p/awareness/autosave/", typing).json()["saved"]
    refusal = firms[5][0]
    ContactAttempt.objects.create(case=refusal, channel="phone", outcome="refused")
    refusal.record_disposition("2.111", source="manager", reason="refused by phone")
    pipeline.recompute(survey, trigger="before backup")


def estimates(run: EstimateRun | None) -> list[list[Any]]:
    rows = Estimate.objects.filter(run=run).values_list(*ESTIMATE_FIELDS)
    return [list(row) for row in sorted(rows)]


def test_a_backup_restores_every_row_and_the_same_estimates(
    survey: Survey, smtp_server: MailServer, settings: Any, tmp_path: Path, empty_database: str
) -> None:
    # given: a survey in the middle of fieldwork
    # Tasks run in-process here, where a recompute deferred by the interval would rerun at once.
    settings.RECOMPUTE_MIN_INTERVAL_SECONDS = 0
    fieldwork_in_progress(survey)
    assert Response.objects.filter(status="submitted").count() == 3
    assert Response.objects.exclude(drafts={}).count() == 2
    assert len(smtp_server.messages) == 10 and Case.objects.filter(disposition="2.111").exists()
    original = _test_database_url()
    before = fingerprints(original)
    published = estimates(EstimateRun.objects.latest_published(survey))
    assert published
    backup = tmp_path / "survey.dump"

    # when: it is backed up and restored into an empty database
    backed_up = run_script("backup.sh", original, str(backup))
    restored = run_script("restore.sh", empty_database, str(backup))

    # then: every table has the same rows, and every sequence the same value
    assert backed_up.returncode == 0, backed_up.stderr
    assert restored.returncode == 0, restored.stderr
    assert fingerprints(empty_database) == before
    assert before["surveys_response"][0] == 5 and before["analytics_estimate"][0] > 0

    # when: Django recomputes the estimates from the restored database alone
    recomputed = subprocess.run(
        [sys.executable, "-c", RECOMPUTE, survey.slug],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": empty_database, "REDIS_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then: its migrations are all applied and the estimates are the original's
    assert recomputed.returncode == 0, recomputed.stderr[-3000:]
    assert json.loads(recomputed.stdout.splitlines()[-1]) == published


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(
    survey: Survey, tmp_path: Path, empty_database: str
) -> None:
    # given: a restored backup
    factories.case(survey)
    backup = str(tmp_path / "survey.dump")
    assert run_script("backup.sh", _test_database_url(), backup).returncode == 0
    assert run_script("restore.sh", empty_database, backup).returncode == 0
    before = fingerprints(empty_database)

    # when: it is restored again over the same database, then again with --force
    refused = run_script("restore.sh", empty_database, backup)
    after_refusal = fingerprints(empty_database)
    forced = run_script("restore.sh", "--force", empty_database, backup)

    # then: the first is refused and changes nothing; the forced one replaces the data
    assert refused.returncode == 3 and "refusing to restore" in refused.stderr
    assert after_refusal == before
    assert forced.returncode == 0, forced.stderr
    assert fingerprints(empty_database) == before


def test_a_failed_backup_leaves_no_file(tmp_path: Path) -> None:
    # given: a database server that does not answer
    backup = tmp_path / "survey.dump"

    # when
    result = run_script("backup.sh", "postgres://postgres@127.0.0.1:1/none", str(backup))

    # then: an error, and nothing that could be mistaken for a backup
    assert result.returncode != 0 and "pg_dump" in result.stderr
    assert list(tmp_path.iterdir()) == []
