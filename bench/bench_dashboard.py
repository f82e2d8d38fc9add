"""Time the fieldwork dashboard on a 5,000-case sample and on a 163,273-case census.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rates_bench .venv/bin/python \
        bench/bench_dashboard.py [--fresh]

Both surveys are built here with bulk_create, with realistic dispositions and their history:
an invitation (3.19, or 3.30 when it bounced), then openings (2.121), starts (2.12),
submissions (1.1, 1.2), refusals, non-contacts and ineligibles spread over four waves
(Invitation, Reminder 1, Reminder 2 and the phone follow-up, still open), and the emails and
calls of the chase; the tables are then vacuumed and analysed, as autovacuum would leave them.
They are reused on the next run unless --fresh is given. The dashboard
view is then timed warm through the Django test client, signed in as a fieldwork manager,
with the number of queries it ran; the chase list is timed the same way.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/rates_bench"
POPULATION = 163_273
SAMPLE_SIZE = 5_000
SEED = 20250428
RUNS = 7
BUDGET_MS = {"sample": 150, "census": 1500}
STRATA_VARIABLES = ["size_class", "industry_group", "region_area"]
# Final categories by size class: larger firms answer more often (shares of the sample).
FINAL_SHARES = {
    "micro": {"I": 0.46, "P": 0.05, "R": 0.13, "NC": 0.06, "O": 0.02, "U": 0.19, "NE": 0.09},
    "small": {"I": 0.52, "P": 0.05, "R": 0.12, "NC": 0.05, "O": 0.02, "U": 0.16, "NE": 0.08},
    "medium": {"I": 0.58, "P": 0.05, "R": 0.11, "NC": 0.04, "O": 0.02, "U": 0.13, "NE": 0.07},
    "midsize": {"I": 0.66, "P": 0.04, "R": 0.10, "NC": 0.03, "O": 0.02, "U": 0.10, "NE": 0.05},
}
# Waves as days after the start of fieldwork; today is day 100, in the phone follow-up.
WAVES = [
    ("Invitation", "invitation", 0, 28),
    ("Reminder 1", "reminder", 28, 56),
    ("Reminder 2", "reminder", 56, 84),
    ("Phone follow-up", "phone", 84, 122),
]
TODAY = 100.0


def setup() -> None:
    env = common.production_env()
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", DEFAULT_URL)
    # Served by the finders, so the benchmark needs no collectstatic run.
    env["STATIC_MANIFEST"] = "0"
    common.setup_django(env)
    _mount_pages()


def _mount_pages() -> None:
    """Use the test URLconf until the project's URLconf serves the fieldwork pages."""
    from django.conf import settings
    from django.urls import NoReverseMatch, clear_url_caches, reverse

    try:
        reverse("respondents:fieldwork", kwargs={"survey": "x"})
    except NoReverseMatch:
        settings.ROOT_URLCONF = "tests.respondents.urls_rates"
        clear_url_caches()


# --- the population and the sample ---------------------------------------------------------


@dataclass
class Units:
    size: np.ndarray
    division: np.ndarray
    region: np.ndarray

    def strata_keys(self) -> np.ndarray:
        from respondents.classifications import KSIC_DIVISIONS, REGION_AREAS

        group = np.array([KSIC_DIVISIONS[d] for d in self.division.tolist()])
        area = np.array([REGION_AREAS[r] for r in self.region.tolist()])
        return np.char.add(np.char.add(np.char.add(self.size, "/"), group), np.char.add("/", area))


def population(rng: np.random.Generator) -> Units:
    from respondents import synthetic

    def draw(shares: dict[str, float]) -> np.ndarray:
        p = np.array(list(shares.values()))
        return rng.choice(np.array(list(shares)), POPULATION, p=p / p.sum())

    return Units(
        draw(synthetic.SIZE_SHARES), draw(synthetic.DIVISION_SHARES), draw(synthetic.REGION_SHARES)
    )


def selection(rng: np.random.Generator, keys: np.ndarray, census: bool) -> dict[str, np.ndarray]:
    """Positions of the selected units by stratum: square-root allocation, or everyone."""
    from analytics.engine.allocation import allocate_power

    strata, counts = np.unique(keys, return_counts=True)
    n_h = counts if census else allocate_power(counts, SAMPLE_SIZE).n_h
    chosen = {}
    for key, n in zip(strata.tolist(), n_h.tolist(), strict=True):
        members = np.flatnonzero(keys == key)
        chosen[key] = members if census else np.sort(rng.choice(members, n, replace=False))
    return chosen


# --- building the survey -------------------------------------------------------------------


def build(slug: str, *, census: bool, fresh: bool) -> Any:
    from respondents.models import Case
    from surveys.models import Survey

    expected = POPULATION if census else SAMPLE_SIZE
    survey = Survey.objects.filter(slug=slug).first()
    if survey is not None and not fresh and Case.objects.filter(survey=survey).count() == expected:
        return survey
    _delete(slug)
    start = time.perf_counter()
    survey = _build(slug, census=census)
    _vacuum()
    print(f"built {slug}: {expected:,} cases in {time.perf_counter() - start:.0f} s", flush=True)
    return survey


def _vacuum() -> None:
    """Clean tables and fresh planner statistics, as autovacuum leaves them after a load."""
    from django.db import connection

    from respondents.models import Case, ContactAttempt, DispositionEvent, FrameUnit, Message

    analyze = "VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE"
    with connection.cursor() as cursor:
        for model in (Case, FrameUnit, DispositionEvent, ContactAttempt, Message):
            cursor.execute(f"{analyze} {model._meta.db_table}")


def _delete(slug: str) -> None:
    from django.db import connection

    from respondents.models import Case, ContactAttempt, DispositionEvent, FrameUnit, Message
    from surveys.models import Survey

    survey = Survey.objects.filter(slug=slug).first()
    if survey is None:
        return
    # Hundreds of thousands of rows without signals to run: plain SQL deletes.
    with connection.cursor() as cursor:
        for table in (m._meta.db_table for m in (Message, ContactAttempt, DispositionEvent)):
            cursor.execute(
                f"DELETE FROM {table} WHERE case_id IN "  # noqa: S608
                f"(SELECT id FROM {Case._meta.db_table} WHERE survey_id = %s)",
                [survey.pk],
            )
        for table in (Case._meta.db_table, FrameUnit._meta.db_table):
            cursor.execute(f"DELETE FROM {table} WHERE survey_id = %s", [survey.pk])  # noqa: S608
    common.fresh_survey(slug)
    Survey.objects.filter(slug=slug).delete()


def _build(slug: str, *, census: bool) -> Any:
    from django.db import transaction

    rng = np.random.default_rng(SEED)
    units = population(rng)
    keys = units.strata_keys()
    chosen = selection(rng, keys, census)
    with transaction.atomic():
        survey = common.fresh_survey(slug)
        survey.target_responses = None if census else 3_000
        survey.save(update_fields=["target_responses"])
        t0 = _fieldwork_start()
        waves = _waves(survey, t0)
        strata = _strata(survey, keys, chosen, census)
        cases = _cases(survey, units, strata, chosen)
        _history(rng, cases, waves, t0)
    return survey


def _fieldwork_start() -> dt.datetime:
    from django.utils import timezone

    return timezone.now() - dt.timedelta(days=TODAY)


def _waves(survey: Any, t0: dt.datetime) -> list[Any]:
    from respondents.models import Wave

    return [
        Wave.objects.create(
            survey=survey,
            name=name,
            kind=kind,
            starts_at=t0 + dt.timedelta(days=start),
            ends_at=t0 + dt.timedelta(days=end),
        )
        for name, kind, start, end in WAVES
    ]


def _strata(survey: Any, keys: np.ndarray, chosen: dict[str, np.ndarray], census: bool) -> dict:
    from django.utils import timezone

    from respondents.models import SampleDesign, Stratum

    design = SampleDesign.objects.create(
        survey=survey,
        strata_variables=STRATA_VARIABLES,
        allocation="proportional" if census else "power",
        power=None if census else 0.5,
        sample_size=sum(len(v) for v in chosen.values()),
        seed=SEED,
        frame_size=POPULATION,
        drawn_at=timezone.now(),
    )
    strata, counts = np.unique(keys, return_counts=True)
    rows = Stratum.objects.bulk_create(
        Stratum(
            design=design,
            key=key,
            values=dict(zip(STRATA_VARIABLES, key.split("/"), strict=True)),
            population=int(count),
            allocated=len(chosen[key]),
            sample_size=len(chosen[key]),
            take_all=len(chosen[key]) == count,
        )
        for key, count in zip(strata.tolist(), counts.tolist(), strict=True)
    )
    return {row.key: row for row in rows}


def _cases(survey: Any, units: Units, strata: dict, chosen: dict[str, np.ndarray]) -> list[Any]:
    from respondents.models import Case, FrameUnit

    frame, cases = [], []
    for key in sorted(chosen):
        for position in chosen[key].tolist():
            number = 1_000_000_000 + position
            text = f"{number:010d}"
            frame.append(
                FrameUnit(
                    survey=survey,
                    business_id=f"{text[:3]}-{text[3:5]}-{text[5:]}",
                    name=f"(주)벤치제조{position}",
                    ksic=f"{units.division[position]}{100 + position % 900}",
                    size_class=str(units.size[position]),
                    region=str(units.region[position]),
                    employees=10,
                    email=f"firm{position}@example.com",
                    phone="031-000-0000",
                    source_row=position + 2,
                )
            )
            cases.append((key, len(frame) - 1))
    frame = FrameUnit.objects.bulk_create(frame, batch_size=5000)
    return [
        Case(
            survey=survey,
            stratum=strata[key],
            frame_unit=frame[i],
            business_id=frame[i].business_id,
            selection_order=i + 1,
        )
        for key, i in cases
    ]


# --- dispositions, emails and calls --------------------------------------------------------


def _history(rng: np.random.Generator, cases: list[Any], waves: list[Any], t0: dt.datetime) -> None:
    """Each case's events, its current disposition (the last of them), emails and calls."""
    from respondents.models import Case, ContactAttempt, DispositionEvent, Message

    stories = [_story(rng, case.stratum.values["size_class"]) for case in cases]
    for case, story in zip(cases, stories, strict=True):
        code, day = story[-1]
        case.disposition, case.disposition_at = code, t0 + dt.timedelta(days=day)
    Case.objects.bulk_create(cases, batch_size=5000)
    events: list[Any] = []
    contacts: list[Any] = []
    messages: list[Any] = []
    for case, story in zip(cases, stories, strict=True):
        previous = "3.11"
        for code, day in story:
            at, wave = t0 + dt.timedelta(days=day), waves[min(int(day // 28), 3)]
            events.append(
                DispositionEvent(
                    case=case, code=code, at=at, recorded_at=at, wave=wave, source="system",
                    previous=previous,
                )
            )  # fmt: skip
            previous = code
        _chase(rng, case, story, waves, t0, contacts, messages)
    DispositionEvent.objects.bulk_create(events, batch_size=10_000)
    ContactAttempt.objects.bulk_create(contacts, batch_size=10_000)
    Message.objects.bulk_create(messages, batch_size=10_000)


def _story(rng: np.random.Generator, size: str) -> list[tuple[str, float]]:
    """The case's disposition events as (code, day) pairs, ending with its current code."""
    shares = FINAL_SHARES[size]
    final = rng.choice(list(shares), p=list(shares.values()))
    invited = float(rng.uniform(0, 2))
    bounced = final in ("U", "NC", "NE") and rng.random() < 0.2
    story = [("3.30" if bounced else "3.19", invited)]
    day = _answer_day(rng, invited)
    if final in ("I", "P"):
        story += [
            ("2.121", day),
            ("2.12", day + 0.01),
            ("1.1" if final == "I" else "1.2", day + 0.05),
        ]
    elif final == "R" and rng.random() < 0.5:
        story += [("2.121", day), ("2.12", day + 0.01)]
    elif final == "R":
        story.append(("2.11", day))
    elif final == "NC":
        story.append(("2.20", float(rng.uniform(84, TODAY - 0.5))))
    elif final == "O":
        story.append(("2.30", float(rng.uniform(30, TODAY - 0.5))))
    elif final == "NE":
        story.append(("4.21", float(rng.uniform(3, TODAY - 0.5))))
    return story


def _answer_day(rng: np.random.Generator, invited: float) -> float:
    wave = rng.choice(4, p=[0.6, 0.22, 0.12, 0.06])
    start = (invited, 28.0, 56.0, 84.0)[wave]
    day = start + rng.exponential((5.0, 4.0, 4.0, 6.0)[wave])
    return float(min(day, TODAY - 0.2))


def _chase(
    rng: np.random.Generator,
    case: Any,
    story: list[tuple[str, float]],
    waves: list[Any],
    t0: dt.datetime,
    contacts: list[Any],
    messages: list[Any],
) -> None:
    """The invitation, reminders to cases still open when a wave began, and phone calls."""
    from respondents.models import ContactAttempt, Message

    closing = [day for code, day in story if code[0] in "14" or code == "2.11"]
    resolved = closing[0] if closing else float("inf")
    for index, (_name, kind, start, _end) in enumerate(WAVES):
        day = story[0][1] if index == 0 else start + float(rng.uniform(0, 1))
        if day >= min(resolved, TODAY):
            break
        at = t0 + dt.timedelta(days=day)
        if kind == "phone":
            for call in range(int(rng.integers(1, 4))):
                outcome = rng.choice(["no_answer", "callback", "reached", "wrong_number"])
                contacts.append(
                    ContactAttempt(
                        case=case, channel="phone", at=at + dt.timedelta(days=call * 3),
                        wave=waves[index], outcome=outcome,
                    )
                )  # fmt: skip
            continue
        status = "bounced" if story[0][0] == "3.30" else "sent"
        messages.append(
            Message(
                case=case, wave=waves[index], kind=kind, status=status, sent_at=at, queued_at=at
            )
        )
        contacts.append(
            ContactAttempt(case=case, channel="email", at=at, wave=waves[index], outcome=status)
        )


# --- timing ----------------------------------------------------------------------------------


def manager() -> Any:
    from django.contrib.auth.models import Permission, User

    user, _created = User.objects.get_or_create(username="bench-fieldwork")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="respondents",
            codename__in=["manage_fieldwork", "view_contact_details"],
        )
    )
    return user


def time_page(client: Any, url: str) -> tuple[float, int]:
    """Median milliseconds of warm requests, and the number of queries of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        assert client.get(url).status_code == 200, url
    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(timings), len(queries)


def main() -> None:
    setup()
    from django.test import Client

    fresh = "--fresh" in sys.argv
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(manager())
    client.cookies["django_language"] = "ko"
    for label, census in (("sample", False), ("census", True)):
        survey = build(f"bench-dashboard-{label}", census=census, fresh=fresh)
        cases = survey.cases.count()
        for page, path in (
            ("dashboard", "fieldwork/"),
            ("dashboard weighted", "fieldwork/?weighted=1"),
            ("chase list", "fieldwork/chase/"),
        ):
            ms, queries = time_page(client, f"/manage/{survey.slug}/{path}")
            budget = f" (budget {BUDGET_MS[label]} ms)" if page == "dashboard" else ""
            print(f"{label} {cases:>7,} cases  {page:<19} {ms:7.1f} ms{budget}, {queries} queries")


if __name__ == "__main__":
    main()
