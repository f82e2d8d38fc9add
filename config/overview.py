"""A survey at a glance, for the staff home pages: completes against the target, the response
rate, the days of fieldwork left, the published estimates' version and the exports under way.

Each figure is one small aggregate query, so the home page stays fast on a census.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from analytics.engine import aapor
from analytics.models import EstimateRun, ExportJob
from respondents.models import Case, Wave
from respondents.rates import target_responses
from surveys.models import Survey

RUNNING_JOBS = (ExportJob.Status.QUEUED, ExportJob.Status.RUNNING)


@dataclass(frozen=True)
class Glance:
    survey: Survey
    sampled: int
    completes: int
    partials: int
    target: int
    rr3: float | None  # per cent
    fieldwork_ends: dt.datetime | None
    days_left: int | None
    wave: Wave | None  # the wave open now
    run: EstimateRun | None
    official_of: Wave | None  # the closed wave whose official figures the run is
    exports_running: int
    ended: bool

    @property
    def responded(self) -> int:
        return self.completes + self.partials

    @property
    def target_percent(self) -> float | None:
        """Completes and partials as a share of the target, in per cent (at most 100)."""
        return min(100.0, 100 * self.responded / self.target) if self.target else None


def glance(survey: Survey, user: Any, *, now: dt.datetime | None = None) -> Glance:
    now = now or timezone.now()
    counts = _category_counts(survey)
    sampled = int(sum(counts.values()))
    rates = aapor.outcome_rates(counts) if sampled else {}
    rr3 = rates.get("RR3", math.nan)
    ends = Wave.objects.filter(survey=survey).aggregate(end=Max("ends_at"))["end"]
    run = (
        EstimateRun.objects.published()
        .filter(survey=survey)
        .only("pk", "number", "data_as_of", "finished_at", "survey_id")
        .order_by("-number")
        .first()
    )
    return Glance(
        survey=survey,
        sampled=sampled,
        completes=int(counts.get("I", 0)),
        partials=int(counts.get("P", 0)),
        target=target_responses(survey, sampled) if sampled else 0,
        rr3=None if math.isnan(rr3) else 100 * rr3,
        fieldwork_ends=ends,
        days_left=_days_left(ends, now),
        wave=Wave.objects.open_at(survey.pk, now),
        run=run,
        official_of=Wave.objects.filter(official_run=run).first() if run else None,
        exports_running=_exports_running(survey, user),
        ended=ends is not None and ends <= now,
    )


def _category_counts(survey: Survey) -> dict[str, float]:
    rows = (
        Case.objects.filter(survey=survey)
        .in_sample()
        .values_list("disposition")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[str, float] = dict.fromkeys(aapor.CATEGORIES, 0.0)
    for code, n in rows:
        counts[aapor.category_of(code)] += n
    return counts


def _days_left(ends: dt.datetime | None, now: dt.datetime) -> int | None:
    if ends is None:
        return None
    return max(0, (timezone.localdate(ends) - timezone.localdate(now)).days)


def _exports_running(survey: Survey, user: Any) -> int:
    """The user's own export jobs not finished yet (a job is private to whoever asked)."""
    if not user.has_perm("analytics.download_results"):
        return 0
    jobs = ExportJob.objects.filter(survey=survey, user=user)
    return jobs.aggregate(n=Count("pk", filter=Q(status__in=RUNNING_JOBS)))["n"]
