"""Without a broker, a wave is sent by a background thread of the web process: the
manager's request returns at once, and the waves page shows the wave's progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from config import background
from config.celery import tasks_held
from config.roles import FIELDWORK_MANAGERS
from respondents import mailing
from respondents.models import Message, Wave
from surveys.models import Survey
from tests.conftest import login_as
from tests.respondents.test_mailing import cases, make_wave
from tests.services import MailServer, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def in_background(settings: Any) -> Iterator[None]:
    settings.TASKS_IN_BACKGROUND = True
    settings.EMAIL_RATE_PER_SECOND = 4
    yield
    background.stop()


def sent_all(wave_id: int) -> bool:
    """Queued (the worker has taken the request) and nothing left to send."""
    if Wave.objects.get(pk=wave_id).sending_requested:
        return False
    return not Message.objects.filter(wave_id=wave_id, status__in=["queued", "sending"]).exists()


def test_sending_a_wave_returns_at_once_and_the_mail_goes_out_behind_it(
    survey: Survey, smtp_server: MailServer, in_background: None
) -> None:
    # given: twelve firms, sent at four a second (three seconds of sending)
    sample = cases(survey, 12)
    wave = make_wave(survey)
    manager = login_as(FIELDWORK_MANAGERS)
    base = f"/manage/{survey.slug}/waves/"

    # when
    response = manager.post(f"{base}{wave.pk}/send/")

    # then: the request did not wait for the wave, and the page shows it under way
    assert response.status_code == 302
    assert Message.objects.filter(wave=wave, status="sent").count() < 12
    assert 'data-progress-url="' in manager.get(base).content.decode()
    wait_until(lambda: sent_all(wave.pk), timeout=60)
    counts = Counter(smtp_server.recipients())
    assert sorted(counts) == sorted(case.frame_unit.email for case in sample)
    assert set(counts.values()) == {1}
    partial = manager.get(f"{base}{wave.pk}/progress/").content.decode()
    assert "12 of 12 sent" in partial and "data-progress-url" not in partial


def test_a_restarted_process_sends_what_was_left_queued(
    survey: Survey, smtp_server: MailServer, in_background: None
) -> None:
    # given: a wave queued while no task could be sent (a process that then stopped)
    cases(survey, 3)
    wave = make_wave(survey)
    with tasks_held(), transaction.atomic():
        mailing.queue_wave(wave)
    assert Message.objects.filter(wave=wave, status="queued").count() == 3

    # when: the next process serves its first request
    Client().get("/health/")

    # then: its sweep finds the wave and sends it
    wait_until(lambda: sent_all(wave.pk), timeout=60)
    assert len(smtp_server.messages) == 3
