"""Tasks without a broker: a thread of the process that asked for them runs them.

The request that queued the work returns at once; one thread runs the tasks one after the
other (SQLite takes one writer at a time anyway). The work itself lives in the database as
outbox rows (queued messages, recompute requests, export jobs), so work lost with the
process is found again by the sweeps, which this thread runs on the beat schedule too, from
the process's first request on. A failed task is not retried here: the next sweep is the
retry, as it is for a task lost by a broker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)
Work = tuple[str, tuple[Any, ...]]

_work: queue.Queue[Work] = queue.Queue()
_waiting: set[Work] = set()
_guard = threading.Lock()
_thread: threading.Thread | None = None
_STOP: Work = ("", ())


def submit(name: str, args: tuple[Any, ...], countdown: float | None = None) -> None:
    """Run the named task in the background thread; the same task with the same arguments
    that is still waiting there is not queued twice."""
    if countdown:
        timer = threading.Timer(countdown, submit, args=(name, args))
        timer.daemon = True
        timer.start()
        return
    key = (name, tuple(args))
    with _guard:
        _ensure_thread()
        if key in _waiting:
            return
        _waiting.add(key)
    _work.put(key)


def start() -> None:
    """Start the thread (and so the sweeps) if it is not running."""
    with _guard:
        _ensure_thread()


def stop(timeout: float = 30.0) -> None:
    """Let the running task finish and end the thread (tests; a process that shuts down)."""
    global _thread
    with _guard:
        thread, _thread = _thread, None
    if thread is not None:
        _work.put(_STOP)
        thread.join(timeout)


def idle() -> bool:
    """Nothing waiting and nothing running (for tests and the demo)."""
    with _guard:
        return not _waiting and not _running


def _ensure_thread() -> None:
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_loop, name="background-tasks", daemon=True)
        _thread.start()


_running = False


def _loop() -> None:
    global _running
    due = {name: time.monotonic() for name in _schedule()}
    while True:
        wait = max(0.0, min(due.values(), default=time.monotonic() + 60) - time.monotonic())
        try:
            key = _work.get(timeout=wait)
        except queue.Empty:
            _sweep(due)
            continue
        if key == _STOP:
            return
        with _guard:
            _waiting.discard(key)
            _running = True
        try:
            _run(*key)
        finally:
            with _guard:
                _running = False
        _sweep(due)


def _schedule() -> dict[str, float]:
    entries: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    return {entry["task"]: float(entry["schedule"]) for entry in entries.values()}


def _sweep(due: dict[str, float]) -> None:
    now = time.monotonic()
    for name, every in _schedule().items():
        if due.get(name, now) <= now:
            due[name] = now + every
            _run(name, ())


def _run(name: str, args: tuple[Any, ...]) -> None:
    # The project's app (config.celery), which made itself Celery's current app.
    if name not in current_app.tasks:
        # A web process has not imported every app's tasks module (a worker does at start).
        current_app.loader.import_default_modules()
    try:
        # The task's own function: retries are the sweeps' job here, not the decorator's.
        current_app.tasks[name].run(*args)
    except Exception:
        log.exception("background task %s%r failed; the next sweep tries again", name, args)
    finally:
        # This thread's connections: not kept between tasks that may be minutes apart.
        connections.close_all()
