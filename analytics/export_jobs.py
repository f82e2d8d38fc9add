"""Export jobs run by the worker: large exports written to MEDIA_ROOT/exports/ with progress."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from config.celery import send_task

from . import exports
from .models import ExportJob

log = logging.getLogger(__name__)
RUN_EXPORT = "analytics.tasks.run_export"  # named: analytics.tasks imports this module
EXPORT_DIR = "exports"
# A job still running after this long lost its worker: it may be claimed again.
STALE_AFTER = dt.timedelta(hours=1)
# Files of finished jobs are deleted after this long (they may hold identified data).
KEEP_FILES = dt.timedelta(days=7)
PROGRESS_STEP = 0.02
PROGRESS_SECONDS = 2.0


def export_job(job_id: int) -> str:
    """Claim the job, write its file, publish it; a job someone else runs is left alone."""
    if not _claim(job_id):
        return "skipped"
    job = ExportJob.objects.select_related("survey").get(pk=job_id)
    try:
        relative = _write(job)
    except exports.ExportError as exc:
        _fail(job_id, str(exc))
        return "failed"
    except Exception as exc:
        log.exception("export job %s failed", job_id)
        _fail(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportJob.Status.DONE, progress=1.0, file=relative, finished_at=timezone.now()
    )
    return "done"


def _claim(job_id: int) -> bool:
    stale = timezone.now() - STALE_AFTER
    claimable = Q(status=ExportJob.Status.QUEUED) | Q(
        status=ExportJob.Status.RUNNING, created_at__lt=stale
    )
    return bool(
        ExportJob.objects.filter(claimable, pk=job_id).update(
            status=ExportJob.Status.RUNNING, progress=0.0, error=""
        )
    )


def _write(job: ExportJob) -> str:
    parameters = job.parameters
    options = exports.make_options(
        job.survey,
        job.what,
        job.format,
        language=parameters.get("language", "ko"),
        run_number=parameters.get("run"),
        identified=bool(parameters.get("identified")),
        contact=bool(parameters.get("contact")),
        weighted=bool(parameters.get("weighted")),
        labelled=bool(parameters.get("labelled")),
        level=parameters.get("level", ""),
        panel=bool(parameters.get("panel")),
        previous_run_number=parameters.get("previous_run"),
    )
    folder = Path(settings.MEDIA_ROOT) / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{job.pk}-{secrets.token_hex(8)}.{job.format}"
    partial = folder / f"{name}.partial"
    disclosure: dict[str, Any] = {}
    try:
        with partial.open("wb") as out:
            exports.export(options, out, _Progress(job.pk), disclosure=disclosure)
        if disclosure:
            report = json.dumps(disclosure, ensure_ascii=False, indent=2)
            report_file(folder / name).write_text(report, "utf-8")
        partial.replace(folder / name)
    finally:
        partial.unlink(missing_ok=True)
    return f"{EXPORT_DIR}/{name}"


def report_file(path: Path) -> Path:
    """The disclosure-risk report that comes with a released microdata file."""
    return path.with_name(path.name + ".disclosure.json")


class _Progress:
    """Saves the job's progress every 2 % or 2 seconds, not on every batch."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.saved = 0.0
        self.at = time.monotonic()

    def __call__(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 0.99)  # 1.0 only once the file is published
        due = time.monotonic() - self.at >= PROGRESS_SECONDS
        if fraction - self.saved >= PROGRESS_STEP or (due and fraction > self.saved):
            ExportJob.objects.filter(pk=self.job_id).update(progress=fraction)
            self.saved, self.at = fraction, time.monotonic()


def _fail(job_id: int, error: str) -> None:
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportJob.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def sweep() -> dict[str, int]:
    """Send jobs whose task was lost (queue down, worker killed) and delete old files."""
    now = timezone.now()
    waiting = ExportJob.objects.filter(
        Q(status=ExportJob.Status.QUEUED, created_at__lt=now - dt.timedelta(minutes=1))
        | Q(status=ExportJob.Status.RUNNING, created_at__lt=now - STALE_AFTER)
    ).values_list("pk", flat=True)
    sent = sum(send_task(RUN_EXPORT, job_id) for job_id in waiting)
    return {"sent": sent, "deleted": _delete_old_files(now - KEEP_FILES)}


def _delete_old_files(before: dt.datetime) -> int:
    old = ExportJob.objects.filter(finished_at__lt=before).exclude(file="")
    deleted = 0
    for job_id, relative in old.values_list("pk", "file"):
        (Path(settings.MEDIA_ROOT) / relative).unlink(missing_ok=True)
        report_file(Path(settings.MEDIA_ROOT) / relative).unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job_id).update(file="")
        deleted += 1
    return deleted
