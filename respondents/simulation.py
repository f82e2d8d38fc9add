"""Simulated fieldwork for the demo: waves, emails, contacts, dispositions and answers.

Synthetic and seeded. Response propensities and answers are shaped on the published figures
of the seed survey (adoption 8.7 / 28.5 / 54.2 / 85.7 % by size, 75.5 % of adopters at a
basic level, …) so that the demo's estimates look like the real ones. Not real data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction

from surveys.models import Response, Survey
from surveys.questionnaire import Form, get_form

from . import dispositions
from .models import Case, ContactAttempt, DispositionEvent, Message, Wave

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


@dataclass
class Plan:
    """What happens to one case over the fieldwork (decided up front, replayed by wave)."""

    case: Case
    size: str
    events: list[tuple[int, dt.datetime, str, str, str]] = field(default_factory=list)
    contacts: list[tuple[int, dt.datetime, str, str]] = field(default_factory=list)
    response: tuple[int, dt.datetime, str, dict[str, Any]] | None = None


def simulate(
    survey: Survey,
    *,
    start: dt.datetime,
    seed: int = 20241001,
    after_wave: Callable[[Wave], None] | None = None,
) -> list[Wave]:
    """Create the waves and replay the fieldwork wave by wave up to now."""
    rng = np.random.default_rng(seed)
    form = get_form(survey.questionnaire_id)
    waves = _waves(survey, start)
    cases = list(Case.objects.in_sample().filter(survey=survey).select_related("frame_unit"))
    plans = [_plan(case, waves, rng, form) for case in cases]
    for index, wave in enumerate(waves):
        if wave.starts_at > dt.datetime.now(dt.UTC):
            break
        _replay(survey, wave, index, plans)
        if after_wave is not None:
            after_wave(wave)
    return waves


def _waves(survey: Survey, start: dt.datetime) -> list[Wave]:
    waves = []
    for position, (name, kind, day) in enumerate(WAVES):
        begins = start + dt.timedelta(days=day)
        following = WAVES[position + 1][2] if position + 1 < len(WAVES) else None
        ends = start + dt.timedelta(days=following) if following is not None else None
        waves.append(
            Wave.objects.create(survey=survey, name=name, kind=kind, starts_at=begins, ends_at=ends)
        )
    return waves


def _moment(rng: np.random.Generator, wave: Wave) -> dt.datetime:
    end = wave.ends_at or min(
        wave.starts_at + dt.timedelta(days=60), dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    span = max((end - wave.starts_at).total_seconds(), 3600)
    # Answers come soonest after an email: an exponential decay within the wave.
    offset = min(rng.exponential(span / 4), span * 0.98)
    return wave.starts_at + dt.timedelta(seconds=float(offset))


def _plan(case: Case, waves: list[Wave], rng: np.random.Generator, form: Form) -> Plan:
    size = case.frame_unit.size_class
    plan = Plan(case, size)
    has_email = bool(case.frame_unit.email)
    bounced = has_email and rng.random() < 0.03
    for index, wave in enumerate(waves[:3]):
        if has_email and (index == 0 or not bounced):
            outcome = "bounced" if bounced and index == 0 else "sent"
            plan.contacts.append(
                (index, wave.starts_at + dt.timedelta(minutes=5), "email", outcome)
            )
    if bounced:
        plan.events.append(
            (
                0,
                waves[0].starts_at + dt.timedelta(minutes=6),
                dispositions.UNDELIVERABLE,
                "email",
                "recipient refused",
            )
        )
    elif has_email:
        plan.events.append(
            (
                0,
                waves[0].starts_at + dt.timedelta(minutes=6),
                dispositions.NOTHING_RETURNED,
                "email",
                "invitation sent",
            )
        )
    if rng.random() < 0.05:
        code = str(rng.choice(INELIGIBLE, p=INELIGIBLE_SHARE))
        wave_index = int(rng.integers(1, 4))
        plan.events.append(
            (
                wave_index,
                _moment(rng, waves[wave_index]),
                code,
                "manager",
                "business status checked",
            )
        )
        plan.contacts.append((wave_index, _moment(rng, waves[wave_index]), "phone", "reached"))
        return plan
    if rng.random() < RESPONSE_PROPENSITY[size]:
        _plan_response(plan, waves, rng, form)
    else:
        _plan_nonresponse(plan, waves, rng)
    return plan


def _plan_response(plan: Plan, waves: list[Wave], rng: np.random.Generator, form: Form) -> None:
    index = int(rng.choice(4, p=WAVE_SHARE))
    at = _moment(rng, waves[index])
    mode: str = Response.Mode.WEB
    if index == 3:
        mode = str(
            rng.choice(
                [Response.Mode.PHONE, Response.Mode.PAPER, Response.Mode.FAX], p=[0.6, 0.25, 0.15]
            )
        )
        plan.contacts.append((index, at - dt.timedelta(hours=2), "phone", "reached"))
    answers = answers_for(plan.case, rng, partial=rng.random() < 0.05)
    values, _relevant = form.evaluate(answers)
    code, reason = dispositions.classify(form.completeness(values))
    if mode == Response.Mode.WEB:
        plan.events.append(
            (index, at - dt.timedelta(minutes=20), dispositions.OPENED, "respondent", "link opened")
        )
    plan.events.append(
        (
            index,
            at,
            code,
            "respondent" if mode == "web" else "manager",
            f"submitted ({mode}): {reason.text()}",
        )
    )
    plan.response = (index, at, mode, values)


def _plan_nonresponse(plan: Plan, waves: list[Wave], rng: np.random.Generator) -> None:
    roll = rng.random()
    if roll < 0.12:
        index = int(rng.integers(1, 4))
        at = _moment(rng, waves[index])
        code = str(rng.choice(["2.111", "2.112"]))
        plan.contacts.append((index, at, "phone", "refused"))
        plan.events.append((index, at, code, "manager", "refused on the phone"))
    elif roll < 0.18:
        index = int(rng.integers(0, 3))
        at = _moment(rng, waves[index])
        plan.events.append((index, at, dispositions.OPENED, "respondent", "link opened"))
        plan.events.append(
            (
                index,
                at + dt.timedelta(minutes=4),
                dispositions.BROKE_OFF,
                "respondent",
                "answering started",
            )
        )
    elif roll < 0.24:
        index = int(rng.integers(0, 3))
        plan.events.append(
            (index, _moment(rng, waves[index]), dispositions.OPENED, "respondent", "link opened")
        )
    elif roll < 0.26:
        at = _moment(rng, waves[3])
        plan.contacts.append((3, at, "phone", "reached"))
        reason = str(rng.choice(["2.32", "2.35"]))
        plan.events.append((3, at, reason, "manager", "unable to take part"))
    elif roll < 0.40:
        at = _moment(rng, waves[3])
        plan.contacts.append((3, at, "phone", "no_answer"))
        plan.contacts.append((3, at + dt.timedelta(days=2), "phone", "no_answer"))
        plan.events.append(
            (
                3,
                at + dt.timedelta(days=2),
                "2.21",
                "manager",
                "confirmed active; contact never available",
            )
        )


def answers_for(case: Case, rng: np.random.Generator, *, partial: bool = False) -> dict[str, Any]:
    """Answers shaped on the published figures of the seed survey."""
    unit = case.frame_unit
    adopted = rng.random() < ADOPTION[unit.size_class]
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
    if partial:
        # Stopped before the end but with every core item: a partial (1.2), sec. C.
        for name in (
            "contact_name",
            "contact_phone",
            "contact_email",
            "need_advance",
            "invest_own",
            "invest_amount",
        ):
            answers.pop(name, None)
    return answers


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


def _replay(survey: Survey, wave: Wave, index: int, plans: list[Plan]) -> None:
    """Write one wave's simulated events, contacts, emails and responses."""
    with transaction.atomic():
        events, contacts, messages, responses, touched = [], [], [], [], []
        for plan in plans:
            mine = [e for e in plan.events if e[0] == index]
            for _wave, at, code, source, reason in mine:
                events.append(
                    DispositionEvent(
                        case=plan.case, code=code, at=at, wave=wave, source=source, reason=reason
                    )
                )
            for _wave, at, channel, outcome in (c for c in plan.contacts if c[0] == index):
                contacts.append(
                    ContactAttempt(
                        case=plan.case, channel=channel, at=at, wave=wave, outcome=outcome
                    )
                )
                if channel == "email":
                    messages.append(_message(plan.case, wave, at, outcome))
            if plan.response and plan.response[0] == index:
                responses.append(_response(survey, plan))
            if mine:
                last = max(mine, key=lambda e: e[1])
                plan.case.disposition, plan.case.disposition_at = last[2], last[1]
                touched.append(plan.case)
        DispositionEvent.objects.bulk_create(events, batch_size=2000)
        ContactAttempt.objects.bulk_create(contacts, batch_size=2000)
        Message.objects.bulk_create(messages, batch_size=2000)
        Response.objects.bulk_create(responses, batch_size=1000)
        Case.objects.bulk_update(touched, ["disposition", "disposition_at"], batch_size=2000)


def _message(case: Case, wave: Wave, at: dt.datetime, outcome: str) -> Message:
    status = Message.Status.SENT if outcome == "sent" else Message.Status.BOUNCED
    return Message(
        case=case,
        wave=wave,
        kind="invitation" if wave.kind == "invitation" else "reminder",
        status=status,
        to_address=case.frame_unit.email,
        queued_at=at,
        claimed_at=at,
        sent_at=at if status == "sent" else None,
        attempts=1,
        error="" if status == "sent" else "550 No such user here",
    )


def _response(survey: Survey, plan: Plan) -> Response:
    assert plan.response is not None
    _index, at, mode, values = plan.response
    return Response(
        case=plan.case,
        questionnaire_id=survey.questionnaire_id,
        answers=values,
        status=Response.Status.SUBMITTED,
        mode=mode,
        started_at=at - dt.timedelta(minutes=20),
        updated_at=at,
        submitted_at=at,
        reference=Response.new_reference(),
        page="_review",
    )


def open_cases(survey: Survey) -> Iterator[Case]:
    """In-sample cases still waiting for answers (for the demo's respondent links)."""
    return iter(
        Case.objects.in_sample()
        .filter(survey=survey, response__isnull=True)
        .exclude(token_hash=None)
        .open_for_contact()
        .order_by("pk")
    )
