from __future__ import annotations

import pytest
from django.test import Client

from config import health

pytestmark = pytest.mark.django_db


def test_health_reports_database_redis_worker_and_estimates(settings) -> None:  # type: ignore[no-untyped-def]
    health.beat()

    response = Client().get("/health/")

    body = response.json()
    assert response.status_code == 200 and body["healthy"]
    assert body["database"] == "ok"
    if settings.REDIS_URL:
        assert body["redis"] == "ok" and body["worker"]["status"] == "ok"
    assert body["estimates"]["running"] == 0


def test_health_is_503_when_redis_is_unreachable(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = Client().get("/health/")

    assert response.status_code == 503
    assert response.json()["redis"].startswith("error")
