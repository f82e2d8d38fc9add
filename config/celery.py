import logging
import os
import time
from typing import Any

from celery import Celery, Task
from django.conf import settings
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("smartsurvey")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


log = logging.getLogger(__name__)
_queue_down_until = 0.0


def send_task(task: Task, *args: Any, countdown: float | None = None) -> bool:
    """Send a task now; False (logged) when the broker is unreachable. The caller's outbox
    row stays, and the next sweep sends the work again."""
    options: dict[str, Any] = {"countdown": countdown} if countdown is not None else {}
    try:
        task.apply_async(args=args, retry=False, **options)
    except Exception:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            raise
        log.warning("queue unavailable; %s waits for the next sweep", task.name)
        return False
    return True


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Send a task after the transaction commits; never fail the request because of it.

    If the broker is unreachable the task is skipped: the database row that asked for the
    work (an outbox record) is already committed, and the periodic sweep sends it later.
    After a failure, requests skip the broker for 30 s rather than each wait for it.
    """

    def send() -> None:
        global _queue_down_until
        if time.monotonic() < _queue_down_until:
            return
        if not send_task(task, *args):
            _queue_down_until = time.monotonic() + 30

    transaction.on_commit(send, robust=True)
