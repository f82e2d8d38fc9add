"""The recompute with a real Celery worker and Redis: coalescing, atomic publication, and
a worker killed mid-run."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from django.db import connection

from analytics import pipeline
from analytics.models import Estimate, EstimateRun, RecomputeRequest
from analytics.recompute import request_recompute
from respondents.models import Case
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.services import Worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def published(survey: Survey) -> list[EstimateRun]:
    return list(EstimateRun.objects.filter(survey=survey, status="published"))


def settled(survey: Survey) -> bool:
    return not RecomputeRequest.objects.filter(survey=survey).exists() and not (
        EstimateRun.objects.filter(survey=survey, status="running").exists()
    )


@pytest.mark.worker_env(RECOMPUTE_MIN_INTERVAL_SECONDS=2)
def test_a_burst_of_changes_coalesces_into_a_handful_of_runs(
    survey: Survey, worker: Worker
) -> None:
    # given: the synthetic sample, estimated once
    load_synthetic_case(survey)
    first = pipeline.recompute(survey, trigger="test")
    unknown = list(Case.objects.filter(survey=survey, disposition="3.19")[:20])

    # when: 200 changes arrive within a few seconds (20 dispositions, 180 other requests)
    for case in unknown:
        case.record_disposition("2.21", source="manager", reason="not reachable")
        for _ in range(9):
            request_recompute(survey.pk, reason="submission")
    wait_until(lambda: settled(survey), timeout=90)

    # then: a handful of runs, and the last one reflects every change
    assert first is not None
    runs = EstimateRun.objects.filter(survey=survey).exclude(pk=first.pk)
    assert 1 <= runs.count() <= 5
    latest = EstimateRun.objects.latest_published(survey)
    assert latest is not None and latest.snapshot["categories"]["NC"] == 22 + 20


@pytest.mark.worker_env(RECOMPUTE_MIN_INTERVAL_SECONDS=0)
def test_readers_see_only_complete_versions(survey: Survey, worker: Worker) -> None:
    # given
    load_synthetic_case(survey)
    complete = Estimate.objects.filter(run=pipeline.recompute(survey, trigger="test")).count()
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                run = EstimateRun.objects.latest_published(survey)
                seen.append(Estimate.objects.filter(run=run).count())
        finally:
            connection.close()

    reader = threading.Thread(target=read)
    reader.start()

    # when: dispositions change and the worker publishes new versions
    for case in Case.objects.filter(survey=survey, disposition="3.19")[:5]:
        case.record_disposition("2.21", source="manager")
    wait_until(lambda: settled(survey), timeout=60)
    stop.set()
    reader.join()

    # then: every read saw a whole version
    assert seen and set(seen) == {complete}
    assert len(published(survey)) >= 2


@pytest.mark.worker_env(RECOMPUTE_MIN_INTERVAL_SECONDS=0)
def test_a_worker_killed_mid_run_publishes_nothing_and_the_next_run_completes(
    survey: Survey, worker: Worker, settings
) -> None:
    # given: a published version, and the estimates table locked by another session so
    # that the next run stops while publishing
    load_synthetic_case(survey)
    before = pipeline.recompute(survey, trigger="test")
    db = connection.settings_dict
    blocker = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"] or "postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    blocker.autocommit = False
    blocker.cursor().execute("LOCK TABLE analytics_estimate IN EXCLUSIVE MODE")

    # when: a change starts a run, the worker is killed mid-run, then restarted
    Case.objects.filter(survey=survey, disposition="3.19")[0].record_disposition(
        "2.21", source="manager"
    )
    wait_until(lambda: EstimateRun.objects.filter(survey=survey, status="running").exists())
    worker.kill()
    blocker.rollback()
    blocker.close()

    # then: nothing of the killed run is visible
    assert EstimateRun.objects.latest_published(survey) == before
    killed = EstimateRun.objects.get(survey=survey, status="running")
    assert not Estimate.objects.filter(run=killed).exists()

    # and: the sweep (beat) marks it failed, requeues the change, and a new run publishes
    settings.RECOMPUTE_STALE_SECONDS = 0
    worker.start()
    pipeline.sweep()
    wait_until(lambda: settled(survey), timeout=60)
    killed.refresh_from_db()
    assert killed.status == "failed"
    latest = EstimateRun.objects.latest_published(survey)
    assert latest is not None and latest.number > killed.number
    assert latest.snapshot["categories"]["NC"] == 23
