import smtplib

from celery import shared_task
from django.conf import settings

from config.celery import send_task

from . import mailing

# A long wave is sent in slices, so that a recompute or an export waiting behind it (in the
# same worker, or in the web process's one background thread) is not held up for an hour.
SLICE_SECONDS = 30


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=settings.EMAIL_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=600,
    max_retries=20,
)
def send_wave(wave_id: int) -> int:
    mailing.queue_requested(wave_id)
    sent = mailing.send_wave(wave_id, seconds=SLICE_SECONDS)
    if mailing.has_queued(wave_id):
        send_task(mailing.SEND_WAVE, wave_id)
    return sent


@shared_task
def sweep() -> dict[str, int]:
    return mailing.sweep()
