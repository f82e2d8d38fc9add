"""Invitations: queueing 5,000 emails (target under 10 s) and sending at the rate limit.

make bench-mail
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402


def main() -> None:
    common.setup_django()
    from aiosmtpd.controller import Controller
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from respondents import credentials, mailing
    from respondents.models import Message, Wave
    from tests.services import MailServer, free_port

    survey = common.drawn_survey("bench_mail", 5000, seed=1)
    start = timezone.now() - dt.timedelta(hours=1)
    wave = Wave.objects.create(
        survey=survey,
        name="Invitation",
        kind="invitation",
        starts_at=start,
        ends_at=start + dt.timedelta(days=21),
    )

    started = time.perf_counter()
    with transaction.atomic():
        result = mailing.queue_wave(wave)
        queued = time.perf_counter() - started
        transaction.set_rollback(True)  # measure queueing only; nothing is sent
    print(f"queue 5,000 invitations: {result.queued:,} queued in {queued:.2f} s (target < 10 s)")

    port = free_port()
    server = MailServer(port)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_RATE_PER_SECOND = 50.0
    # Queue without the task that would send at once in-process; send_wave is timed below.
    mailing.enqueue_on_commit = lambda *args: None  # type: ignore[assignment]
    try:
        with transaction.atomic():
            mailing.queue_wave(wave)
            Message.objects.filter(wave=wave).exclude(
                pk__in=Message.objects.filter(wave=wave).order_by("pk").values("pk")[:300]
            ).delete()
            sampling_cases = Message.objects.filter(wave=wave).values_list("case_id", flat=True)
            for _issued in credentials.issue_credentials(
                survey, cases=list(survey.cases.filter(pk__in=list(sampling_cases)))
            ):
                pass
        started = time.perf_counter()
        sent = mailing.send_wave(wave.pk)
        elapsed = time.perf_counter() - started
    finally:
        controller.stop()
    print(
        f"send at EMAIL_RATE_PER_SECOND=50: {sent} emails in {elapsed:.1f} s = "
        f"{sent / elapsed:.1f} per second, {len(server.messages)} received by the SMTP server"
    )


if __name__ == "__main__":
    main()
