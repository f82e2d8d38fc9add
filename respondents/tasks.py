import smtplib

from celery import shared_task
from django.conf import settings

from . import mailing


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=settings.EMAIL_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=600,
    max_retries=20,
)
def send_wave(wave_id: int) -> int:
    return mailing.send_wave(wave_id)


@shared_task
def sweep() -> dict[str, int]:
    return mailing.sweep()
