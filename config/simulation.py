"""Simulated fieldwork for the demo, played through the platform's own functions.

A seeded plan decides up front what each sampled firm will do: answer on the web in a given
wave, be keyed in from a phone call, paper or fax during the phone follow-up, stop half
way, refuse, turn out ineligible, never be reached. The plan is then played in time order
on a simulated clock (time-machine), and everything goes through the functions the pages
and tasks call: the manager adds the waves and queues each one's emails; the worker sends
them through an email backend at a relay's pace, skipping the firms resolved by then; firms
open their links, answer page by page and submit; the call centre logs its calls and
records dispositions; the manager closes each wave at its end, which publishes its official
estimates. So every number the demo shows is one the platform would show.

Response propensities and answers are shaped on the published figures of the seed survey
(adoption 8.7 / 28.5 / 54.2 / 85.7 % by size, 75.5 % of adopters at a basic level, …) so
that the demo's estimates look like the real ones. Not real data.
"""

from __future__ import annotations

import datetime as dt
import heapq
import io
import itertools
import smtplib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import time_machine
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.filebased import EmailBackend as FileBackend
from django.core.mail.message import EmailMessage
from django.db import transaction
from django.utils import timezone

from analytics import pipeline
from config.celery import tasks_held
from respondents import mailing
from respondents.forms import WaveForm
from respondents.models import Case, ContactAttempt, Wave
from surveys import flow
from surveys.edits import Failure
from surveys.models import AnswerChange, Editor, Response, Survey, get_form, new_editor_id
from surveys.questionnaire import Form, Page

WAVES = (  # name, kind, days after the start of fieldwork
    ("초청 (Invitation)", Wave.Kind.INVITATION, 0),
    ("1차 독려 (Reminder 1)", Wave.Kind.REMINDER, 21),
    ("2차 독려 (Reminder 2)", Wave.Kind.REMINDER, 42),
    ("전화 독려 (Phone follow-up)", Wave.Kind.PHONE, 52),
)
RESPONSE_PROPENSITY = {"micro": 0.42, "small": 0.52, "medium": 0.62, "midsize": 0.72}
WAVE_SHARE = (0.45, 0.27, 0.16, 0.12)  # of eventual responders, by wave
ADOPTION = {"micro": 0.087, "small": 0.285, "medium": 0.542, "midsize": 0.857}
INELIGIBLE = ("4.21", "4.22", "4.23", "4.24", "4.25", "4.26")
INELIGIBLE_SHARE = (0.40, 0.25, 0.15, 0.10, 0.05, 0.05)
BOUNCE_SHARE = 0.03
# The next round: firms that answered last year answer more often and mostly as they did.
PANEL_PROPENSITY = 0.15
ADOPTERS_STAYING, NEW_ADOPTERS = 0.95, 0.3
KEEP_SHARE = 0.8
ADOPTER_ITEMS = (
    "sf_level", "sf_scope", "sf_tech", "data_collect", "data_analyze", "main_area",
    "main_area_other", "need_advance", "invest_own", "invest_amount",
)  # fmt: skip
# Every 25th web firm answers with two people; chosen by business ID, not by database id,
# so that the demo's data do not depend on the database's sequences.
TWO_PEOPLE_EVERY = 25
# One firm in SLIP_EVERY slips a unit (employees typed ten times over, or sales in thousand
# won rather than million); asked to check it, every other one corrects it and the rest
# confirm it: the edit review's queue.
SLIP_EVERY = 30
SALES_LIMIT = 100_000_000  # the questionnaire's own bound on sales, in million won
# Half the answers of a wave come within hours of its emails, the rest over its weeks.
QUICK_SHARE, QUICK_HOURS = 0.5, 12.0
# The demo's mail relay accepts this many emails an hour, so a wave takes hours to go out
# and firms that answer meanwhile are skipped; the worker sends a batch every 5 minutes.
RELAY_PER_HOUR = 600
WORK_HOURS = (9, 18)
STEPS_PER_COMMIT = 500


@dataclass(frozen=True)
class Summary:
    waves: list[Wave]
    emails: int
    responses: int


def simulate(
    survey: Survey,
    *,
    start: dt.datetime,
    until: dt.datetime,
    manager: Any,
    mail_dir: Path,
    seed: int = 20241001,
    relay_per_hour: int = RELAY_PER_HOUR,
    clock: time_machine.Traveller | None = None,
) -> Summary:
    """Play the fieldwork from `start` up to `until` (today), through the platform's
    functions.

    Runs on `clock` (a time-machine travel already under way, as the demo's set-up is) or
    on a clock of its own; tasks are held meanwhile and the work they would do is done here
    at its simulated moment, so nothing runs behind the simulation's back."""
    now = until
    with _clock(start, clock) as coordinates, tasks_held():
        coordinates.move_to(start - dt.timedelta(days=1))
        waves = _add_waves(survey, start, manager)
        form = get_form(survey.questionnaire_id)
        cases = list(
            Case.objects.in_sample()
            .filter(survey=survey)
            .select_related("survey", "frame_unit", "response")
        )
        rng = np.random.default_rng(seed)
        last = Case.objects.filter(survey=survey).previous_answers()
        plans = [_plan(case, waves, rng, now, last.get(case.pk)) for case in cases]
        refused = {p.case.frame_unit.email for p in plans if p.bounced}
        relay = DemoRelay(file_path=str(mail_dir), refuse=refused)
        play = Play(survey, manager, form, relay, relay_per_hour, rng)
        play.schedule_waves(waves, now)
        for plan in plans:
            play.schedule_plan(plan)
        relay.open()
        try:
            play.run(coordinates, until=now - dt.timedelta(minutes=1))
        finally:
            relay.close()
    # The provisional version of the wave still open, as the worker computes it.
    pipeline.run_pending(survey.pk)
    return Summary(waves, play.emails, play.responses)


@contextmanager
def _clock(
    start: dt.datetime, clock: time_machine.Traveller | None
) -> Iterator[time_machine.Traveller]:
    if clock is not None:
        yield clock
        return
    with time_machine.travel(start, tick=False) as coordinates:
        yield coordinates


def _add_waves(survey: Survey, start: dt.datetime, manager: Any) -> list[Wave]:
    """The fieldwork plan, entered as the manager enters it on the waves page."""
    waves = []
    for position, (name, kind, day) in enumerate(WAVES):
        begins = start + dt.timedelta(days=day)
        following = WAVES[position + 1][2] if position + 1 < len(WAVES) else None
        ends = start + dt.timedelta(days=following) if following is not None else None
        form = WaveForm(
            {"name": name, "kind": kind, "starts_at": _local(begins), "ends_at": _local(ends)}
        )
        if not form.is_valid():
            raise ValueError(f"wave {name}: {form.errors.as_text()}")
        wave = form.save(commit=False)
        wave.survey = survey
        wave.save()
        waves.append(wave)
    return waves


def _local(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M") if moment else ""


class DemoRelay(FileBackend):
    """The demo's mail server: every email goes to a file (var/demo/mail); the addresses of
    firms whose mail server does not know them are refused with a 550, as a real relay
    answers, and the platform records the bounce."""

    def __init__(self, *args: Any, refuse: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refuse = refuse

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            unknown = {a: (550, b"5.1.1 No such user") for a in message.recipients()}
            unknown = {a: reply for a, reply in unknown.items() if a in self.refuse}
            if unknown:
                raise smtplib.SMTPRecipientsRefused(unknown)  # type: ignore[arg-type]
        return super().send_messages(email_messages)


# --- the plan -------------------------------------------------------------------------------

Step = tuple[dt.datetime, str, tuple[Any, ...]]


@dataclass
class Plan:
    """What one firm does over the fieldwork: steps (when, what, details), played in time."""

    case: Case
    bounced: bool = False
    steps: list[Step] = field(default_factory=list)

    def add(self, at: dt.datetime, action: str, *details: Any) -> None:
        self.steps.append((at, action, details))


def _plan(
    case: Case,
    waves: list[Wave],
    rng: np.random.Generator,
    now: dt.datetime,
    last: dict[str, Any] | None = None,
) -> Plan:
    """A firm's plan; `last`: its answers of the last round, when it gave them."""
    size = case.frame_unit.size_class
    plan = Plan(case, bounced=bool(case.frame_unit.email) and rng.random() < BOUNCE_SHARE)
    if rng.random() < 0.05:
        index = int(rng.integers(1, 4))
        at = _working_moment(rng, waves[index], now)
        code = str(rng.choice(INELIGIBLE, p=INELIGIBLE_SHARE))
        plan.add(at, "call", "phone", ContactAttempt.Outcome.REACHED, "")
        plan.add(at + dt.timedelta(minutes=5), "record", code, "business status checked")
    elif rng.random() < RESPONSE_PROPENSITY[size] + (PANEL_PROPENSITY if last else 0.0):
        _plan_response(plan, waves, rng, now, last)
    else:
        _plan_nonresponse(plan, waves, rng, now, last)
    return plan


def _plan_response(
    plan: Plan,
    waves: list[Wave],
    rng: np.random.Generator,
    now: dt.datetime,
    last: dict[str, Any] | None,
) -> None:
    index = int(rng.choice(4, p=WAVE_SHARE))
    answers = answers_for(plan.case, rng, last)
    if index < 3:
        at = _moment(rng, waves[index], now)
        plan.add(at - dt.timedelta(minutes=20), "open")
        plan.add(at, "answer", answers, Response.Mode.WEB)
        return
    at = _working_moment(rng, waves[3], now)
    mode = str(
        rng.choice(
            [Response.Mode.PHONE, Response.Mode.PAPER, Response.Mode.FAX], p=[0.6, 0.25, 0.15]
        )
    )
    plan.add(at - dt.timedelta(hours=2), "call", "phone", ContactAttempt.Outcome.REACHED, "")
    plan.add(at, "answer", answers, mode)


def _plan_nonresponse(
    plan: Plan,
    waves: list[Wave],
    rng: np.random.Generator,
    now: dt.datetime,
    last: dict[str, Any] | None,
) -> None:
    roll = rng.random()
    if roll < 0.12:
        at = _working_moment(rng, waves[int(rng.integers(1, 4))], now)
        plan.add(at, "call", "phone", ContactAttempt.Outcome.REFUSED, "")
        plan.add(at + dt.timedelta(minutes=5), "record", str(rng.choice(["2.111", "2.112"])), "")
    elif roll < 0.18:
        # Started answering and stopped part way: a break-off.
        at = _moment(rng, waves[int(rng.integers(0, 3))], now)
        plan.add(at, "open")
        plan.add(at + dt.timedelta(minutes=4), "start", answers_for(plan.case, rng, last))
    elif roll < 0.24:
        plan.add(_moment(rng, waves[int(rng.integers(0, 3))], now), "open")
    elif roll < 0.26:
        at = _working_moment(rng, waves[3], now)
        plan.add(at, "call", "phone", ContactAttempt.Outcome.REACHED, "")
        reason = str(rng.choice(["2.32", "2.35"]))
        plan.add(at + dt.timedelta(minutes=5), "record", reason, "unable to take part")
    elif roll < 0.40:
        at = _working_moment(rng, waves[3], now)
        later = min(at + dt.timedelta(days=2), now - dt.timedelta(hours=2))
        plan.add(at, "call", "phone", ContactAttempt.Outcome.NO_ANSWER, "")
        plan.add(later, "call", "phone", ContactAttempt.Outcome.NO_ANSWER, "")
        plan.add(
            later + dt.timedelta(minutes=5),
            "record",
            "2.21",
            "confirmed active; contact never available",
        )


def _end(wave: Wave, now: dt.datetime) -> dt.datetime:
    return min(wave.ends_at or now, now - dt.timedelta(hours=1))


def _moment(rng: np.random.Generator, wave: Wave, now: dt.datetime) -> dt.datetime:
    """When a firm answers in a wave: soonest after its emails, fewer as weeks pass."""
    span = max((_end(wave, now) - wave.starts_at).total_seconds(), 3600.0)
    scale = QUICK_HOURS * 3600 if rng.random() < QUICK_SHARE else span / 4
    offset = min(rng.exponential(scale), span * 0.98)
    return wave.starts_at + dt.timedelta(seconds=float(offset))


def _working_moment(rng: np.random.Generator, wave: Wave, now: dt.datetime) -> dt.datetime:
    """A moment in office hours within the wave, when the call centre works."""
    for _attempt in range(20):
        moment = wave.starts_at + (_end(wave, now) - wave.starts_at) * float(rng.random())
        local = timezone.localtime(moment)
        if WORK_HOURS[0] <= local.hour < WORK_HOURS[1] and local.weekday() < 5:
            return moment
    return moment


def answers_for(
    case: Case, rng: np.random.Generator, last: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Answers shaped on the published figures of the seed survey; a firm that answered
    last round mostly answers as it did (see `_like_last`)."""
    unit = case.frame_unit
    if last is None:
        adopted = rng.random() < ADOPTION[unit.size_class]
    elif last.get("sf_adopted") == "yes":
        adopted = rng.random() < ADOPTERS_STAYING
    else:
        adopted = rng.random() < ADOPTION[unit.size_class] * NEW_ADOPTERS
    important = rng.random() < (0.62 if adopted else 0.18)
    answers: dict[str, Any] = {
        "employees": unit.employees or 1,
        "sales_krw_mn": float(unit.sales_krw_mn or round(float(rng.lognormal(7, 1)), 1)),
        "importance": str(
            rng.choice(["very_important", "somewhat_important"])
            if important
            else rng.choice(
                ["neutral", "not_very_important", "not_at_all_important"], p=[0.55, 0.3, 0.15]
            )
        ),
        "implementing": "yes" if (adopted or rng.random() < 0.05) else "no",
        "sf_adopted": "yes" if adopted else "no",
        "mfg_ai": str(
            rng.choice(
                ["adopted", "planned", "none"],
                p=[0.05, 0.10, 0.85] if adopted else [0.01, 0.025, 0.965],
            )
        ),
        "contact_name": str(rng.choice(["김민수", "이지은", "박서준", "최유진", "정우성"])),
        "contact_phone": unit.phone or "02-555-0100",
        "contact_email": unit.email or "contact@example.co.kr",
    }
    if adopted:
        answers.update(_adopter_answers(rng))
    if last is not None:
        answers = _like_last(answers, last, rng)
    slip = int(case.business_id.replace("-", "")) % SLIP_EVERY
    if slip == 1:
        answers["employees"] *= 10
    elif slip == 2 and answers["sales_krw_mn"] * 1000 <= SALES_LIMIT:
        answers["sales_krw_mn"] = round(answers["sales_krw_mn"] * 1000, 1)
    return answers


def _like_last(
    answers: dict[str, Any], last: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
    """Answers kept from last round, each with probability KEEP_SHARE: the importance, the
    AI question, and an adopter's whole account of its smart factory (its parts depend on
    one another) when it had one last year too."""
    kept = dict(answers)
    for name in ("importance", "mfg_ai"):
        if name in last and rng.random() < KEEP_SHARE:
            kept[name] = last[name]
    if answers["sf_adopted"] == last.get("sf_adopted") == "yes" and rng.random() < KEEP_SHARE:
        kept = {k: v for k, v in kept.items() if k not in ADOPTER_ITEMS}
        kept.update({k: v for k, v in last.items() if k in ADOPTER_ITEMS})
    return kept


def _adopter_answers(rng: np.random.Generator) -> dict[str, Any]:
    tech = [
        name
        for name, p in (
            ("erp", 0.763),
            ("mes", 0.144),
            ("controller", 0.169),
            ("scm", 0.06),
            ("plm", 0.04),
            ("iot_sensor", 0.12),
            ("robot", 0.08),
        )
        if rng.random() < p
    ] or ["erp"]
    collect = rng.random() < 0.924
    invest = rng.random() < 0.2656 / 0.457 * 0.5
    answers: dict[str, Any] = {
        "sf_level": str(
            rng.choice(
                ["basic", "intermediate1", "intermediate2", "advanced"],
                p=[0.755, 0.15, 0.07, 0.025],
            )
        ),
        "sf_scope": "partial" if rng.random() < 0.998 else "full",
        "sf_tech": tech,
        "data_collect": "yes" if collect else "no",
        "main_area": str(
            rng.choice(
                [
                    "production_mgmt",
                    "planning_strategy",
                    "finance",
                    "tech_innovation",
                    "hr",
                    "other",
                ],
                p=[0.422, 0.263, 0.107, 0.092, 0.044, 0.072],
            )
        ),
        "need_advance": "yes" if rng.random() < 0.457 else "no",
        "invest_own": "yes" if invest else "no",
    }
    if collect:
        answers["data_analyze"] = "yes" if rng.random() < 0.74 / 0.924 else "no"
    if answers["main_area"] == "other":
        answers["main_area_other"] = "품질관리"
    if invest and rng.random() < 0.8:
        answers["invest_amount"] = round(float(rng.lognormal(5.5, 0.8)), 1)
    return answers


# --- the next round's questionnaire ---------------------------------------------------------

LAST_YEAR_HINT = {
    "hint::Korean (ko)": "지난해에는 상시 근로자가 ${last.employees}명이라고 응답하셨습니다.",
    "hint::English (en)": "Last year you reported ${last.employees} employees.",
}
LAST_YEAR_RULE = {
    "name": "employees_vs_last_year",
    "type": "soft",
    "rule": "${employees} >= 0.5 * ${last.employees} and ${employees} <= 2 * ${last.employees}",
    "relevant": "${employees} != ''",
    "flag": "employees",
    "message::Korean (ko)": "상시 근로자 수가 지난해 응답의 절반 미만이거나 두 배를 넘습니다. "
    "입력하신 근로자 수가 맞는지 확인해 주십시오.",
    "message::English (en)": "The number of employees is less than half or more than twice "
    "last year's answer. Please check that it is correct.",
}


def next_round_workbook(
    data: bytes, *, form_id: str, version: str, title: str, title_en: str
) -> bytes:
    """The questionnaire as a form designer edits it for the next round: its settings, a
    line of the headcount's hint that shows last year's answer, and a soft edit rule that
    compares the headcount with it."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    settings = book["settings"]
    header = [cell.value for cell in settings[1]]
    values = {"form_id": form_id, "version": version, "form_title": title, "title_en": title_en}
    for column, value in values.items():
        settings.cell(row=2, column=header.index(column) + 1, value=value)
    survey = book["survey"]
    header = [cell.value for cell in survey[1]]
    row = next(
        r for r in survey.iter_rows(min_row=2) if r[header.index("name")].value == "employees"
    )
    for column, line in LAST_YEAR_HINT.items():
        cell = row[header.index(column)]
        cell.value = f"{line}\n{cell.value}" if cell.value else line
    edits = book["edits"]
    header = [cell.value for cell in edits[1]]
    edits.append([LAST_YEAR_RULE.get(str(column), "") for column in header])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- playing the plan -----------------------------------------------------------------------


class Play:
    """The simulated weeks: each step runs at its moment, as the platform would see it."""

    def __init__(
        self,
        survey: Survey,
        manager: Any,
        form: Form,
        relay: BaseEmailBackend,
        relay_per_hour: int,
        rng: np.random.Generator,
    ) -> None:
        self.survey, self.manager, self.form, self.relay = survey, manager, form, relay
        self.batch = max(1, relay_per_hour // 12)
        self.rng = rng
        self.queue: list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]] = []
        self.order = itertools.count()
        self.emails = self.responses = 0

    def at(self, moment: dt.datetime, action: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self.queue, (moment, next(self.order), action, args))

    def run(self, clock: time_machine.Traveller, *, until: dt.datetime) -> None:
        while self.queue and self.queue[0][0] <= until:
            # Steps commit in groups: each still runs in its own (nested) transaction, and
            # the demo does not pay a commit for each of its tens of thousands of steps.
            with transaction.atomic():
                for _step in range(STEPS_PER_COMMIT):
                    if not self.queue or self.queue[0][0] > until:
                        break
                    moment, _order, action, args = heapq.heappop(self.queue)
                    clock.move_to(moment)
                    action(*args)

    def schedule_waves(self, waves: list[Wave], now: dt.datetime) -> None:
        for wave in waves:
            if wave.ends_at is not None and wave.ends_at <= now:
                self.at(wave.ends_at, self.close, wave)
            if wave.kind != Wave.Kind.PHONE:
                self.at(wave.starts_at, self.send, wave)

    def schedule_plan(self, plan: Plan) -> None:
        for moment, action, details in plan.steps:
            self.at(moment, getattr(self, f"_{action}"), plan.case, *details)

    # The manager and the worker.

    def send(self, wave: Wave) -> None:
        """The manager presses "send"; the worker starts on the queue at once."""
        mailing.queue_wave(wave, user=self.manager)
        self.at(timezone.now(), self._send_batch, wave)

    def _send_batch(self, wave: Wave) -> None:
        result = mailing.send_batch(wave.pk, self.batch, self.relay)
        self.emails += result.tried
        if result.tried:
            self.at(timezone.now() + dt.timedelta(minutes=5), self._send_batch, wave)

    def close(self, wave: Wave) -> None:
        """The manager closes the wave at its end: its official estimates."""
        wave.refresh_from_db()
        pipeline.close_wave(wave, user=self.manager)

    # The firms.

    def _open(self, case: Case) -> None:
        case.record_opened()

    def _start(self, case: Case, answers: dict[str, Any]) -> None:
        """Answers the first pages and leaves before the end."""
        response = Response.objects.start(case)
        pages = self.form.relevant_pages(answers)
        stop = int(self.rng.integers(1, max(2, len(pages) - 1)))
        self._pages(response, pages[:stop], answers, by=None)

    def _answer(self, case: Case, answers: dict[str, Any], mode: str) -> None:
        by = None if mode == Response.Mode.WEB else self.manager
        response = Response.objects.start(case, mode=mode, by=by)
        pages = self.form.relevant_pages(answers)
        two = int(case.business_id.replace("-", "")) % TWO_PEOPLE_EVERY == 0
        if mode == Response.Mode.WEB and two and len(pages) > 2:
            # Two people of the firm: the second finishes and corrects the headcount, which
            # the case page's answer history shows by browser.
            half = len(pages) // 2
            self._pages(response, pages[:half], answers, by=None)
            answers = {**answers, "employees": answers["employees"] + 1}
            pages = [pages[0], *pages[half:]]
        self._pages(response, pages, answers, by=by)
        _response, errors = response.submit(by=by)
        if errors:
            raise ValueError(f"simulated answers of {case.business_id} invalid: {errors}")
        self.responses += 1

    def _pages(
        self, response: Response, pages: list[Page], answers: dict[str, Any], *, by: Any
    ) -> None:
        kind = AnswerChange.Editor.STAFF if by else AnswerChange.Editor.FIRM
        editor = Editor(new_editor_id(), kind, user=by)
        for page in pages:
            posted = _posted(page, answers)
            result = flow.save_page(response, page, posted, shown=None, editor=editor)
            confirmed: set[str] = set()
            for attempt in range(3):
                if not result.queries:
                    break
                posted, more = _answer_queries(response.case, posted, result.queries, attempt)
                confirmed |= more
                result = flow.save_page(
                    response, page, posted, shown=None, editor=editor, confirmed=confirmed
                )
            if result.errors or not result.saved:
                raise ValueError(f"page {page.name} not saved: {result.errors}")

    # The call centre.

    def _call(self, case: Case, channel: str, outcome: str, note: str) -> None:
        case.log_contact(channel, outcome, by=self.manager, note=note)

    def _record(self, case: Case, code: str, reason: str) -> None:
        case.record_disposition(code, source="manager", by=self.manager, reason=reason)


def _answer_queries(
    case: Case, posted: dict[str, str | list[str]], queries: list[Failure], attempt: int
) -> tuple[dict[str, str | list[str]], set[str]]:
    """A firm asked to check unusual answers: every other one corrects them to what the
    register says, the rest confirm them as typed (and whatever is asked a second time)."""
    if case.pk % 2 or attempt:
        return posted, {failure.rule for failure in queries}
    unit = case.frame_unit
    register = {"employees": unit.employees, "sales_krw_mn": unit.sales_krw_mn}
    corrected = dict(posted)
    for failure in queries:
        if register.get(failure.flag) is not None and failure.flag in corrected:
            corrected[failure.flag] = str(register[failure.flag])
    # A rule about an answer the register does not hold (or holds no value for) is confirmed.
    return corrected, {failure.rule for failure in queries if register.get(failure.flag) is None}


def _posted(page: Page, answers: dict[str, Any]) -> dict[str, str | list[str]]:
    """The page's answers as a browser posts them."""
    posted: dict[str, str | list[str]] = {}
    for question in page.inputs:
        value = answers.get(question.name)
        if value is None:
            continue
        posted[question.name] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return posted


def open_cases(survey: Survey) -> Iterator[Case]:
    """In-sample cases still waiting for answers (for the demo's respondent links)."""
    return iter(
        Case.objects.in_sample()
        .filter(survey=survey, response__isnull=True)
        .exclude(token_hash=None)
        .open_for_contact()
        .order_by("pk")
    )
