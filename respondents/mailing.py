"""Invitations and reminders by email, sent exactly once per case and wave.

Queueing writes one Message row per case (unique per case and wave, so a second click or a
retry adds nothing); the worker claims rows one at a time and checks the case again at
send time, so a firm that submits after queueing gets no reminder. A row claimed by a
worker that died is marked uncertain and never resent: nobody is mailed twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import smtplib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Count, F
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext, gettext_noop

from config.celery import enqueue_on_commit, send_task
from surveys.models import EditQuery, Response, get_form

from . import dispositions
from .models import Case, ContactAttempt, Message, MessageTemplate, Wave

log = logging.getLogger(__name__)

DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    ("invitation", "ko"): (
        "[중소벤처기업부] 2024 스마트제조혁신 실태조사 참여 요청",
        "{name} 대표님께\n\n"
        "중소벤처기업부와 스마트제조혁신추진단은 중소 제조기업의 스마트제조 현황을 파악하기 "
        "위하여 「스마트제조혁신 실태조사」를 실시합니다. 귀사는 통계적 방법으로 선정된 "
        "표본 기업입니다.\n\n"
        "아래 링크에서 응답해 주십시오(약 10분 소요).\n{link}\n\n"
        "링크가 열리지 않으면 조사 누리집에서 사업자등록번호({business_id})와 접속 코드 "
        "{access_code}를 입력해 주십시오.\n\n"
        "응답 기한: {deadline}\n"
        "응답 내용은 통계법에 따라 보호되며 통계 작성 목적으로만 사용됩니다.\n"
        "문의: {help_desk}",
    ),
    ("invitation", "en"): (
        "[Ministry of SMEs and Startups] Smart Manufacturing Innovation Status Survey",
        "Dear {name},\n\n"
        "The Ministry of SMEs and Startups is surveying small and medium manufacturers about "
        "smart manufacturing. Your company was selected at random to represent firms like "
        "yours.\n\n"
        "Please answer online (about 10 minutes):\n{link}\n\n"
        "If the link does not open, sign in with your business registration number "
        "({business_id}) and access code {access_code}.\n\n"
        "Please answer by {deadline}. Your answers are protected by the Statistics Act and "
        "used only for statistics.\nHelp desk: {help_desk}",
    ),
    ("reminder", "ko"): (
        "[중소벤처기업부] 스마트제조혁신 실태조사 응답을 부탁드립니다",
        "{name} 대표님께\n\n"
        "아직 「스마트제조혁신 실태조사」 응답이 완료되지 않았습니다. 이미 응답하셨다면 "
        "이 메일은 무시해 주십시오.\n\n"
        "응답 링크: {link}\n"
        "사업자등록번호 {business_id} / 접속 코드 {access_code}\n\n"
        "응답 기한: {deadline}\n문의: {help_desk}",
    ),
    ("reminder", "en"): (
        "Reminder: Smart Manufacturing Innovation Status Survey",
        "Dear {name},\n\n"
        "We have not yet received your company's answers. If you have just answered, please "
        "ignore this message.\n\n"
        "Your link: {link}\n"
        "Business registration number {business_id} / access code {access_code}\n\n"
        "Please answer by {deadline}.\nHelp desk: {help_desk}",
    ),
}


def message_kind(wave: Wave) -> str:
    if wave.kind == Wave.Kind.INVITATION:
        return MessageTemplate.Kind.INVITATION
    return MessageTemplate.Kind.REMINDER


def template_text(survey_id: int, kind: str, language: str) -> tuple[str, str]:
    stored = MessageTemplate.objects.filter(survey_id=survey_id, kind=kind, language=language)
    found = stored.values_list("subject", "body").first()
    return found or DEFAULTS[(kind, language)]


Texts = Mapping[str, tuple[str, str]]


def template_texts(survey_id: int, kind: str) -> Texts:
    """Subject and body of each language, read once for a whole batch of emails."""
    return {language: template_text(survey_id, kind, language) for language in LANGUAGES}


# Named, not imported: respondents.tasks imports this module.
SEND_WAVE = "respondents.tasks.send_wave"
LANGUAGES = ("ko", "en")


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(case: Case, wave: Wave, kind: str, texts: Texts | None = None) -> tuple[str, str]:
    """The bilingual email: Korean first, then English."""
    assert wave.ends_at is not None, "queue_wave sends no wave without an end date"
    _token, code = case.derive_credentials()
    values = _Placeholders(
        name=case.frame_unit.name,
        business_id=case.business_id,
        link=case.respondent_link(),
        access_code=code,
        deadline=date_format(timezone.localtime(wave.ends_at), "Y-m-d"),
        help_desk=settings.SURVEY_HELP_DESK,
    )
    texts = texts or template_texts(case.survey_id, kind)
    parts = [texts[language] for language in LANGUAGES]
    subject = " / ".join(subject.format_map(values) for subject, _body in parts)
    body = BETWEEN_LANGUAGES.join(body.format_map(values) for _subject, body in parts)
    return subject, body


BETWEEN_LANGUAGES = "\n\n----------------------------------------\n\n"


class NoDeadline(ValueError):
    """Every email tells the firm when to answer by: its wave needs an end date."""


@dataclass
class QueueResult:
    queued: int
    already: int
    without_email: int


def request_sending(wave: Wave, *, user: Any = None) -> None:
    """Ask for the wave's emails, as the send button does: the worker queues one per case
    (queue_wave) and sends them. Quick whatever the sample's size, so no request waits for
    a whole wave; the request is kept on the wave, so a lost task is found by the sweep."""
    if wave.ends_at is None:
        raise NoDeadline(wave.name)
    by = user if getattr(user, "is_authenticated", False) else None
    Wave.objects.filter(pk=wave.pk).update(send_requested_at=timezone.now(), send_requested_by=by)
    enqueue_on_commit(SEND_WAVE, wave.pk)


def queue_requested(wave_id: int) -> QueueResult | None:
    """Queue the wave's emails if sending was asked for since they were last queued."""
    with transaction.atomic():
        locked = Wave.objects.select_for_update(of=("self",)).select_related("send_requested_by")
        wave = locked.get(pk=wave_id)
        if not wave.sending_requested:
            return None
        result = _queue(wave, user=wave.send_requested_by)
        Wave.objects.filter(pk=wave.pk).update(queued_at=timezone.now())
    return result


def queue_wave(wave: Wave, *, user: Any = None) -> QueueResult:
    """Queue this wave's emails now and wake the sender; cases already queued for the wave
    are left alone."""
    result = _queue(wave, user=user)
    Wave.objects.filter(pk=wave.pk).update(queued_at=timezone.now())
    enqueue_on_commit(SEND_WAVE, wave.pk)
    return result


def _queue(wave: Wave, *, user: Any) -> QueueResult:
    if wave.ends_at is None:
        raise NoDeadline(wave.name)
    kind = message_kind(wave)
    cases = Case.objects.in_sample().filter(survey_id=wave.survey_id)
    if kind == MessageTemplate.Kind.REMINDER:
        # An address that bounced would bounce again: those firms are chased by phone.
        cases = (
            cases.open_for_contact()
            .exclude(response__status="submitted")
            .exclude(disposition=dispositions.UNDELIVERABLE)
        )
    rows = list(cases.values_list("pk", "frame_unit__email", "language"))
    with_email = [(pk, email, language) for pk, email, language in rows if email]
    before = Message.objects.filter(wave=wave).count()
    Message.objects.bulk_create(
        [
            Message(
                case_id=pk,
                wave=wave,
                kind=kind,
                to_address=email,
                language=language,
                queued_by=user if getattr(user, "is_authenticated", False) else None,
            )
            for pk, email, language in with_email
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )
    queued = Message.objects.filter(wave=wave).count() - before
    return QueueResult(queued, len(with_email) - queued, len(rows) - len(with_email))


def claim_next(wave_id: int) -> Message | None:
    """Take the next queued message, or None; resolved cases are skipped here, at send time."""
    while candidates := _candidates(wave_id, 1):
        if _claim(candidates[0]):
            return candidates[0]
    return None


def _candidates(wave_id: int, limit: int) -> list[Message]:
    """The next queued messages; those of cases resolved by now are marked skipped."""
    while True:
        messages = list(
            Message.objects.filter(wave_id=wave_id, status=Message.Status.QUEUED)
            .select_related("case__frame_unit")
            .order_by("pk")[:limit]
        )
        if not messages:
            return []
        done = _resolved({m.case for m in messages})
        skipped = [m.pk for m in messages if m.case_id in done]
        Message.objects.filter(pk__in=skipped, status=Message.Status.QUEUED).update(
            status=Message.Status.SKIPPED
        )
        left = [m for m in messages if m.case_id not in done]
        if left:
            return left


def _resolved(cases: set[Case]) -> set[int]:
    ended = {case.pk for case in cases if dispositions.ends_contact(case.disposition)}
    submitted = Response.objects.filter(
        case_id__in=[case.pk for case in cases], status=Response.Status.SUBMITTED
    )
    return ended | set(submitted.values_list("case_id", flat=True))


def _claim(message: Message) -> bool:
    """Mark the message as being sent, unless another worker did first (a conditional
    UPDATE: two senders of one wave never both send a message)."""
    now = timezone.now()
    claimed = Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        status=Message.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if claimed:
        message.status, message.claimed_at = Message.Status.SENDING, now
        message.attempts += 1
    return bool(claimed)


def send_one(message: Message, connection: BaseEmailBackend, texts: Texts | None = None) -> str:
    """Send a claimed message and record the outcome; returns the new status."""
    case = message.case
    if not case.has_credentials:
        case.issue_credentials()
    subject, body = render(case, message.wave, message.kind, texts)
    email = EmailMessage(
        subject, body, settings.DEFAULT_FROM_EMAIL, [message.to_address], connection=connection
    )
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        return _finish(message, Message.Status.BOUNCED, _refusal(exc))
    except (smtplib.SMTPException, OSError) as exc:
        _release(message, str(exc)[:500])
        raise
    return _finish(message, Message.Status.SENT)


def _refusal(exc: smtplib.SMTPRecipientsRefused) -> str:
    """The server's reply code only: its text often repeats the address, which does not
    belong in the contact log that every fieldwork manager reads."""
    codes = sorted({str(code) for code, _text in exc.recipients.values()})
    return f"{' '.join(codes)} recipient refused"


def _finish(message: Message, status: str, error: str = "") -> str:
    now = timezone.now()
    outcome = {
        Message.Status.SENT: ContactAttempt.Outcome.SENT,
        Message.Status.BOUNCED: ContactAttempt.Outcome.BOUNCED,
        Message.Status.FAILED: ContactAttempt.Outcome.FAILED,
    }[Message.Status(status)]
    with transaction.atomic(savepoint=False):
        Message.objects.filter(pk=message.pk).update(
            status=status, sent_at=now if status == Message.Status.SENT else None, error=error
        )
        ContactAttempt.objects.create(
            case=message.case,
            channel=ContactAttempt.Channel.EMAIL,
            at=now,
            wave=message.wave,
            outcome=outcome,
            note=f"{message.kind}: {error}"[:1000] if error else message.kind,
        )
        if status == Message.Status.BOUNCED and message.case.category == "U":
            message.case.record_disposition(
                dispositions.UNDELIVERABLE, source="email", reason=error[:200], wave=message.wave
            )
    return status


def kind_message(kind: str) -> str:
    """The untranslated label of an email's kind, to be translated when read."""
    with translation.override(None):
        return str(MessageTemplate.Kind(kind).label)


def _release(message: Message, error: str) -> None:
    """A transient failure: back to the queue, or failed after three attempts."""
    if message.attempts >= MAX_ATTEMPTS:
        _finish(message, Message.Status.FAILED, error)
        return
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=Message.Status.QUEUED, claimed_at=None, error=error
    )


MAX_ATTEMPTS = 3


def send_wave(wave_id: int, *, seconds: float | None = None) -> int:
    """Send the wave's queued messages at the configured rate; returns how many were sent.

    With `seconds`, stop after about that long even if mail is left (the task then queues
    itself again, behind any other work that waits)."""
    rate = settings.EMAIL_RATE_PER_SECOND
    batch = max(1, min(100, math.ceil(rate)))
    started = time.monotonic()
    sent = 0
    with get_connection() as connection:
        while seconds is None or time.monotonic() - started < seconds:
            tick = time.monotonic()
            result = send_batch(wave_id, batch, connection)
            sent += result.sent
            if not result.tried:
                break
            time.sleep(max(0.0, result.tried / rate - (time.monotonic() - tick)))
    return sent


@dataclass
class BatchResult:
    tried: int = 0
    sent: int = 0


def send_batch(wave_id: int, limit: int, connection: BaseEmailBackend) -> BatchResult:
    """Send up to `limit` queued messages now, one by one, each claimed just before it is
    sent; cases resolved by now are skipped."""
    result = BatchResult()
    candidates = _candidates(wave_id, limit)
    if not candidates:
        return result
    wave = Wave.objects.get(pk=wave_id)
    texts = template_texts(wave.survey_id, message_kind(wave))
    invited = []
    try:
        for message in candidates:
            if not _claim(message):
                continue
            message.wave = wave
            result.tried += 1
            if send_one(message, connection, texts) == Message.Status.SENT:
                result.sent += 1
                invited.append(message.case_id)
    finally:
        # A first email moves a never-invited case to "nothing returned" (3.19), for the
        # whole batch at once. Should this be lost with the worker, the case's next email
        # records it: both codes count alike (unknown eligibility) in every rate.
        Case.objects.filter(pk__in=invited).record_invited(
            wave=wave,
            reason=dispositions.history_text(
                gettext_noop("%(kind)s sent"),
                kind=kind_message(message_kind(wave)),
                translate=("kind",),
            ),
        )
    return result


def has_queued(wave_id: int) -> bool:
    return Message.objects.filter(wave_id=wave_id, status=Message.Status.QUEUED).exists()


def sweep() -> dict[str, int]:
    """Mark claims of dead workers uncertain and restart waves that still have queued mail."""
    timeout = dt.timedelta(seconds=settings.EMAIL_CLAIM_TIMEOUT_SECONDS)
    uncertain = Message.objects.stale_claims(timeout).update(
        status=Message.Status.UNCERTAIN,
        error="The worker stopped while sending; not resent so that nobody is mailed twice.",
    )
    waves = set(
        Message.objects.filter(status=Message.Status.QUEUED)
        .values_list("wave_id", flat=True)
        .distinct()
    )
    waves |= set(Wave.objects.sending_requested().values_list("pk", flat=True))
    sent = sum(send_task(SEND_WAVE, wave_id) for wave_id in waves)
    return {"uncertain": uncertain, "waves": sent}


@dataclass(frozen=True)
class Progress:
    """A wave's emails by status, as the waves page shows them."""

    queued: int = 0
    sending: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0  # bounced or failed for good
    uncertain: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.finished

    @property
    def finished(self) -> int:
        return self.sent + self.skipped + self.failed + self.uncertain

    @property
    def active(self) -> bool:
        return bool(self.queued or self.sending)

    @property
    def percent(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 0


def progress_by_wave(wave_ids: list[int]) -> dict[int, Progress]:
    """Every wave's progress, in one query."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in wave_ids}
    rows = (
        Message.objects.filter(wave_id__in=wave_ids)
        .values_list("wave_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for wave_id, status, n in rows:
        key = "failed" if status in (Message.Status.BOUNCED, Message.Status.FAILED) else status
        counts[wave_id][key] = counts[wave_id].get(key, 0) + n
    return {pk: Progress(**found) for pk, found in counts.items()}


def status_counts(wave: Wave) -> Mapping[str, int]:
    rows = Message.objects.filter(wave=wave).values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


# --- questions about submitted answers (editing) ----------------------------------------------

EDIT_QUERY_TEMPLATE = "emails/edit_query.txt"


def render_edit_query(query: EditQuery, token: str) -> tuple[str, str]:
    """The bilingual email that brings a firm its query's link: Korean first, then English."""
    case = query.response.case
    form = get_form(query.response.questionnaire_id)
    names = list(dict.fromkeys(entry["item"] for entry in query.items))
    parts = []
    for language in LANGUAGES:
        with translation.override(language):
            context = {
                "name": case.frame_unit.name,
                "reference": query.response.reference,
                "questions": [
                    form.questions[name].text() if name in form.questions else name
                    for name in names
                ],
                "note": query.note,
                "link": EditQuery.link(token),
                "help_desk": settings.SURVEY_HELP_DESK,
            }
            subject = gettext("Smart Manufacturing Innovation Status Survey: please check answers")
            parts.append((subject, render_to_string(EDIT_QUERY_TEMPLATE, context).strip()))
    subject = " / ".join(subject for subject, _body in parts)
    return subject, BETWEEN_LANGUAGES.join(body for _subject, body in parts)


def send_edit_query(query_id: int, token: str) -> bool:
    """Email the firm the link to its query; called once the query is committed. The outcome
    goes to the case's contact log, and a query that was sent gets its time."""
    query = EditQuery.objects.select_related("response__case__frame_unit").get(pk=query_id)
    case = query.response.case
    subject, body = render_edit_query(query, token)
    email = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [case.frame_unit.email])
    note = f"edit query {query.pk}"
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        refused = f"{note}: {_refusal(exc)}"
        case.log_contact(ContactAttempt.Channel.EMAIL, ContactAttempt.Outcome.BOUNCED, note=refused)
        return False
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("edit query %s not sent: %s", query.pk, exc)
        case.log_contact(ContactAttempt.Channel.EMAIL, ContactAttempt.Outcome.FAILED, note=note)
        return False
    EditQuery.objects.filter(pk=query.pk).update(sent_at=timezone.now())
    case.log_contact(ContactAttempt.Channel.EMAIL, ContactAttempt.Outcome.SENT, note=note)
    return True
