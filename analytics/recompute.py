"""Scheduling estimate recomputes: an outbox row per change, coalesced into few runs."""

from __future__ import annotations

from config.celery import enqueue_on_commit

from .models import RecomputeRequest

# The worker's tasks, named rather than imported: analytics.tasks imports the pipeline,
# which asks for recomputes through this module.
RECOMPUTE_SURVEY = "analytics.tasks.recompute_survey"
PUBLISH_OFFICIAL = "analytics.tasks.publish_official"


def request_recompute(survey_id: int, *, reason: str = "", closed_wave: int | None = None) -> None:
    """Mark the survey's estimates stale, in the caller's transaction, and wake the worker.
    The one door from the other apps into analytics.

    For a wave just closed (`Wave.close`), its official version is asked for instead: the
    closed wave without one is itself the outbox row, which the sweep finds if the task is
    lost."""
    if closed_wave is not None:
        enqueue_on_commit(PUBLISH_OFFICIAL, closed_wave)
        return
    RecomputeRequest.objects.create(survey_id=survey_id, reason=reason[:100])
    enqueue_on_commit(RECOMPUTE_SURVEY, survey_id)
