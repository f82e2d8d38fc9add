"""One recompute per survey at a time, across worker processes and machines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

# PostgreSQL advisory locks are released when the holder's connection ends, so a worker
# killed mid-run never leaves the survey locked.
LOCK_NAMESPACE = 7201
_local_locks: dict[int, threading.Lock] = {}
_guard = threading.Lock()


@contextmanager
def survey_lock(survey_id: int) -> Iterator[bool]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, survey_id])
            locked = bool(cursor.fetchone()[0])
        try:
            yield locked
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, survey_id])
        return
    # The embedded SQLite set-up runs tasks in-process: a lock per survey in this process.
    with _guard:
        lock = _local_locks.setdefault(survey_id, threading.Lock())
    locked = lock.acquire(blocking=False)
    try:
        yield locked
    finally:
        if locked:
            lock.release()
