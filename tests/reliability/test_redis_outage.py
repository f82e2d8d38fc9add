"""Redis (the Celery broker) goes away during fieldwork: firms keep submitting, the work they
cause waits in the database, and the sweeps catch up exactly once when Redis is back."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from analytics.models import EstimateRun, RecomputeRequest
from respondents import mailing
from respondents.models import Case, Message, Wave
from surveys.models import Response, Survey
from tests import factories
from tests.reliability.conftest import Broker, fresh_web_process
from tests.respondents.test_mailing import make_wave
from tests.services import MailServer, Worker, wait_until
from tests.surveys.answering import ADOPTER, answer_all

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A broker that refuses connections costs a publish at most broker_connection_timeout (4 s)
# plus one retry pause (kombu's retry_over_time); more than this means it hangs.
REFUSED_BROKER_BOUND_SECONDS = 10.0
# What a firm pressing "submit" may wait for a broken broker before the page comes back.
SUBMIT_BUDGET_SECONDS = 4.0


def sign_in(token: str) -> Client:
    client = Client()
    client.cookies["django_language"] = "en"
    assert client.get(f"/r/{token}/").status_code == 302
    return client


def answered(client: Client) -> Client:
    answer_all(client, ADOPTER)
    return client


def submit(client: Client) -> tuple[Any, float]:
    started = time.monotonic()
    result = client.post("/q/review/")
    return result, time.monotonic() - started


def submitted(case: Case) -> bool:
    case.refresh_from_db()
    response = Response.objects.get(case=case)
    return response.is_submitted and case.disposition == "1.1"


def settled(survey: Survey) -> bool:
    return not RecomputeRequest.objects.filter(survey=survey).exists() and not (
        EstimateRun.objects.filter(survey=survey, status="running").exists()
    )


def mail_finished(wave: Wave) -> bool:
    return not Message.objects.filter(wave=wave, status__in=["queued", "sending"]).exists()


def run_beat_sweeps() -> None:
    from analytics.tasks import sweep as sweep_recomputes
    from respondents.tasks import sweep as sweep_messages

    sweep_recomputes.apply_async()
    sweep_messages.apply_async()


def test_submissions_during_a_redis_outage_are_kept_and_caught_up_once_redis_is_back(
    survey: Survey, private_broker: Broker, smtp_server: MailServer, broker_worker: Worker
) -> None:
    # given: five sampled firms, three of them signed in; a reminder wave not yet sent; a
    # worker that has handled everything so far; then Redis killed
    firms = [factories.case(survey) for _ in range(5)]
    submitters, others = [case for case, *_ in firms[:3]], [case for case, *_ in firms[3:]]
    clients = [sign_in(token) for _case, token, _code in firms[:3]]
    wave = make_wave(survey, Wave.Kind.REMINDER, "Reminder 1")
    wait_until(lambda: settled(survey))
    private_broker.redis.kill()

    # when: one firm answers and submits, the reminder wave is queued, then two more submit
    first = answered(clients[0])
    fresh_web_process()
    first_result, first_seconds = submit(first)
    queued = mailing.queue_wave(wave)
    later = [submit(answered(client)) for client in clients[1:]]

    # then: every submission succeeded without hanging, and its work waits in the database
    for result, _seconds in [(first_result, first_seconds), *later]:
        assert result.status_code == 302 and result["Location"] == "/q/receipt/"
    assert first_seconds < REFUSED_BROKER_BOUND_SECONDS, f"submit took {first_seconds:.1f} s"
    assert all(submitted(case) for case in submitters)
    outbox = RecomputeRequest.objects.filter(survey=survey, reason="response submitted")
    assert outbox.count() == 3
    assert queued.queued == 4
    assert set(Message.objects.filter(wave=wave).values_list("status", flat=True)) == {"queued"}
    assert not EstimateRun.objects.filter(survey=survey).exists()

    # when: Redis and the worker come back, and beat's sweeps run (twice, as ticks do)
    private_broker.redis.start()
    broker_worker.stop()
    broker_worker.start()
    run_beat_sweeps()
    run_beat_sweeps()
    wait_until(lambda: mail_finished(wave) and settled(survey), timeout=45)

    # then: the estimates count the three submissions, and each open case got one email
    latest = EstimateRun.objects.latest_published(survey)
    assert latest is not None and latest.snapshot["categories"]["I"] == 3
    counts = Counter(smtp_server.recipients())
    assert counts == Counter(case.frame_unit.email for case in others)
    statuses = dict(Message.objects.filter(wave=wave).values_list("case_id", "status"))
    assert statuses == {
        **{case.pk: "skipped" for case in submitters[1:]},
        **{case.pk: "sent" for case in others},
    }


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_submission_waits_only_seconds_for_a_broken_broker(
    survey: Survey, private_broker: Broker, fault: str
) -> None:
    # given: a firm that has answered everything (its tasks went to the broker), then Redis
    # killed or frozen
    _case, token, _code = factories.case(survey)
    client = answered(sign_in(token))
    if fault == "killed":
        private_broker.redis.kill()
    else:
        private_broker.redis.freeze()
    fresh_web_process()
    outcome: dict[str, Any] = {}

    def press_submit() -> None:
        try:
            outcome["result"], outcome["seconds"] = submit(client)
        finally:
            connection.close()

    # when: it submits
    thread = threading.Thread(target=press_submit, daemon=True)
    try:
        thread.start()
        thread.join(timeout=SUBMIT_BUDGET_SECONDS + 2)

        # then: the receipt comes back within the budget
        assert not thread.is_alive(), "the submission is still waiting for the broker"
        assert outcome["result"].status_code == 302
        assert outcome["seconds"] < SUBMIT_BUDGET_SECONDS
    finally:
        # A killed Redis closes the frozen connection, which lets the request finish.
        private_broker.redis.kill()
        thread.join(timeout=30)
