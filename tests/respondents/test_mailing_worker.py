"""Exactly-once sending with a real Celery worker, Redis and an SMTP server on loopback."""

from __future__ import annotations

from collections import Counter

import pytest

from respondents import mailing
from respondents.models import Message
from surveys.models import Survey
from tests.respondents.test_mailing import cases, make_wave
from tests.services import MailServer, Worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def finished(wave_id: int) -> bool:
    return not Message.objects.filter(wave_id=wave_id, status__in=["queued", "sending"]).exists()


def test_duplicate_sends_and_task_retries_mail_each_case_once(
    survey: Survey, smtp_server: MailServer, worker: Worker
) -> None:
    # given: 8 cases, and an SMTP server that defers the first two messages (451)
    sample = cases(survey, 8)
    smtp_server.defer = 2
    wave = make_wave(survey)

    # when: "send" is clicked twice and the task is queued once more by hand
    mailing.queue_wave(wave)
    mailing.queue_wave(wave)
    from respondents.tasks import send_wave

    send_wave.delay(wave.pk)
    wait_until(lambda: finished(wave.pk), timeout=60)

    # then
    counts = Counter(smtp_server.recipients())
    assert sorted(counts) == sorted(case.frame_unit.email for case in sample)
    assert set(counts.values()) == {1}
    assert Message.objects.filter(wave=wave, status="sent").count() == 8
    assert Message.objects.filter(wave=wave, attempts__gt=1).exists()


@pytest.mark.worker_env(EMAIL_RATE_PER_SECOND=3)
def test_a_worker_killed_mid_wave_mails_nobody_twice_and_finishes_on_restart(
    survey: Survey, smtp_server: MailServer, worker: Worker, settings
) -> None:
    # given: a wave of 12 emails sent at 3 per second
    sample = cases(survey, 12)
    wave = make_wave(survey)
    mailing.queue_wave(wave)
    wait_until(lambda: len(smtp_server.messages) >= 3, timeout=30)

    # when: the worker is killed, the sweep runs (as beat would) and the worker restarts
    worker.kill()
    settings.EMAIL_CLAIM_TIMEOUT_SECONDS = 0
    mailing.sweep()
    worker.start()
    wait_until(lambda: finished(wave.pk), timeout=60)

    # then: every case got at most one email, and every message has a final status
    counts = Counter(smtp_server.recipients())
    assert max(counts.values()) == 1
    statuses = Counter(Message.objects.filter(wave=wave).values_list("status", flat=True))
    assert statuses["sent"] + statuses["uncertain"] == len(sample)
    assert statuses["uncertain"] <= 1
    assert statuses["sent"] <= len(counts) <= statuses["sent"] + statuses["uncertain"]
