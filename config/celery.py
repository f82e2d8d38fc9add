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


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Send a task after the transaction commits; never fail the request because of it.

    If the broker is unreachable the task is skipped: the database row that asked for the
    work (an outbox record) is already committed, and the periodic sweep sends it later.
    """

    def send() -> None:
        global _queue_down_until
        if time.monotonic() < _queue_down_until:
            return
        try:
            task.apply_async(args=args, retry=False)
        except Exception:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                raise
            _queue_down_until = time.monotonic() + 30
            log.warning("queue unavailable; %s will be sent by the sweep", task.name)

    transaction.on_commit(send, robust=True)
