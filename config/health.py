"""What a load balancer and an operator need to know: database, Redis, worker, estimates."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from analytics.models import EstimateRun, RecomputeRequest

HEARTBEAT_KEY = "smartsurvey:worker-heartbeat"
# The worker writes its heartbeat every 30 s (beat schedule); older than this is stale.
HEARTBEAT_STALE_SECONDS = 120


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


def beat() -> None:
    """Called by the worker: record that it is alive."""
    if settings.REDIS_URL:
        _redis().set(HEARTBEAT_KEY, str(time.time()), ex=3600)


def report() -> tuple[bool, dict[str, Any]]:
    """(healthy, details). Healthy means the web node can serve: the database answers and,
    when configured, Redis does. A stale worker or a late recompute is reported, not fatal."""
    checks: dict[str, Any] = {"database": _database()}
    if settings.REDIS_URL:
        checks["redis"], checks["worker"] = _redis_and_worker()
    else:
        checks["redis"] = checks["worker"] = "in-process"
    checks["estimates"] = _estimates() if checks["database"] == "ok" else None
    healthy = checks["database"] == "ok" and checks["redis"] in ("ok", "in-process")
    return healthy, checks


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is the answer we report
        return f"error: {type(exc).__name__}"


def _redis_and_worker() -> tuple[str, dict[str, Any] | str]:
    try:
        value = _redis().get(HEARTBEAT_KEY)
    except redis.RedisError as exc:
        return f"error: {type(exc).__name__}", "unknown"
    if value is None:
        return "ok", {"status": "no heartbeat"}
    age = time.time() - float(value)
    status = "ok" if age < HEARTBEAT_STALE_SECONDS else "stale"
    return "ok", {"status": status, "seconds_since_heartbeat": round(age, 1)}


def _estimates() -> dict[str, Any]:
    last = EstimateRun.objects.filter(status="published").aggregate(at=Max("finished_at"))["at"]
    oldest = RecomputeRequest.objects.aggregate(at=Min("created_at"))["at"]
    now = timezone.now()
    return {
        "last_published": last.isoformat() if last else None,
        "pending_changes_since": oldest.isoformat() if oldest else None,
        "pending_seconds": round((now - oldest).total_seconds(), 1) if oldest else 0,
        "running": EstimateRun.objects.filter(status="running").count(),
    }
