import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, Task
from django.conf import settings
from django.db import transaction

from . import background

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("smartsurvey")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


log = logging.getLogger(__name__)
_queue_down_until = 0.0
_held = threading.local()


def task_named(name: str) -> Task:
    """A registered task by its name. Code that queues work names its task rather than
    importing it: a tasks module imports the code that queues it."""
    if name not in app.tasks:
        # A web process has not imported every app's tasks module (a worker does at start).
        app.loader.import_default_modules()
    return app.tasks[name]


def send_task(name: str, *args: Any, countdown: float | None = None) -> bool:
    """Send the named task now; False (logged) when the broker is unreachable. The caller's
    outbox row stays, and the next sweep sends the work again.

    Without a broker the task runs in this process: in a background thread of its own
    (TASKS_IN_BACKGROUND, the default), so that no request waits for it, or at once."""
    if getattr(_held, "on", False):
        return False
    if app.conf.task_always_eager and settings.TASKS_IN_BACKGROUND:
        background.submit(name, args, countdown)
        return True
    options: dict[str, Any] = {"countdown": countdown} if countdown is not None else {}
    try:
        task_named(name).apply_async(args=args, retry=False, **options)
    except Exception:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            raise
        log.warning("queue unavailable; %s waits for the next sweep", name)
        return False
    return True


@contextmanager
def tasks_held() -> Iterator[None]:
    """Within: no task is sent from this thread. The outbox rows wait for the caller to do
    the work itself (the demo) or for the next sweep."""
    _held.on = True
    try:
        yield
    finally:
        _held.on = False


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send the named task after the transaction commits; never fail the request because of it.

    If the broker is unreachable the task is skipped: the database row that asked for the
    work (an outbox record) is already committed, and the periodic sweep sends it later.
    After a failure, requests skip the broker for 30 s rather than each wait for it.
    """

    def send() -> None:
        global _queue_down_until
        if time.monotonic() < _queue_down_until or getattr(_held, "on", False):
            return
        if not send_task(name, *args):
            _queue_down_until = time.monotonic() + 30

    transaction.on_commit(send, robust=True)
