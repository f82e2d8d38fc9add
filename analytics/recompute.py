"""Scheduling estimate recomputes: an outbox row per change, coalesced into few runs."""

from __future__ import annotations

from config.celery import enqueue_on_commit

from .models import RecomputeRequest


def request_recompute(survey_id: int, *, reason: str = "", closed_wave: int | None = None) -> None:
    """Mark the survey's estimates stale, in the caller's transaction, and wake the worker.
    The one door from the other apps into analytics.

    For a wave just closed (`Wave.close`), its official version is asked for instead: the
    closed wave without one is itself the outbox row, which the sweep finds if the task is
    lost."""
    from .tasks import publish_official, recompute_survey

    if closed_wave is not None:
        enqueue_on_commit(publish_official, closed_wave)
        return
    RecomputeRequest.objects.create(survey_id=survey_id, reason=reason[:100])
    enqueue_on_commit(recompute_survey, survey_id)
