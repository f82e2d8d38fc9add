"""Scheduling estimate recomputes: an outbox row per change, coalesced into few runs."""

from __future__ import annotations

from config.celery import enqueue_on_commit

from .models import RecomputeRequest


def request_recompute(survey_id: int, *, reason: str = "") -> None:
    """Mark the survey's estimates stale, in the caller's transaction, and wake the worker."""
    from .tasks import recompute_survey

    RecomputeRequest.objects.create(survey_id=survey_id, reason=reason[:100])
    enqueue_on_commit(recompute_survey, survey_id)
