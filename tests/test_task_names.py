"""Work is queued by task name (a tasks module imports the code that queues it): every
name the code sends must be a task the worker knows."""

import pytest

from analytics import change, export_jobs, recompute
from config.celery import task_named
from respondents import mailing
from surveys import xlsform

NAMES = [
    recompute.RECOMPUTE_SURVEY,
    recompute.PUBLISH_OFFICIAL,
    export_jobs.RUN_EXPORT,
    change.PREPARE_CHANGES,
    mailing.SEND_WAVE,
    xlsform.LOAD_UPLOAD,
]


@pytest.mark.parametrize("name", NAMES)
def test_every_queued_name_is_a_registered_task(name: str) -> None:
    assert task_named(name).name == name


def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(KeyError):
        task_named("analytics.tasks.no_such_task")
