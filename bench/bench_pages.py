"""Server time of every staff page, slowest first, at 5,000 cases and at a census of 163,273.

    make bench-pages          # the embedded SQLite and PostgreSQL, one after the other
    DATABASE_URL=sqlite:////tmp/pages.sqlite3 .venv/bin/python bench/bench_pages.py [--fresh]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pages_bench .venv/bin/python \
        bench/bench_pages.py [--fresh] [--only sample|census]

Both surveys are built as bench_dashboard builds them (cases with their disposition history
over four waves, emails and calls), plus a submitted response for every complete and
partial case, the first three waves closed with their official estimates and a provisional
version after them (the real recompute), and about 1,000 edit flags on the responses with a
check of the edit rules (the editing pages); they are reused on the next run unless --fresh
is given. Each page is then requested warm through the Django test client, signed in as an
administrator who is also staff (every staff page is open to them): the median of 5
requests and the number of queries of one. The actions people take on those pages (add a
wave, queue its emails, record a disposition, log a call) are timed too, each rolled back.
Budgets: 300 ms at 5,000 cases, 1 s at 163,273.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import bench_dashboard as dashboard  # noqa: E402
from bench import common  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pages_bench"
RUNS = 5
BUDGET_MS = {"sample": 300, "census": 1000}
SLUGS = {"sample": "bench-pages-sample", "census": "bench-pages-census"}


def setup() -> str:
    """An empty DATABASE_URL is the embedded SQLite default (in VAR_DIR), as `make demo` has."""
    env = common.production_env()
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", DEFAULT_URL)
    env["STATIC_MANIFEST"] = "0"
    # Pages only: no background thread sweeping and sending behind the timings.
    env["TASKS_IN_BACKGROUND"] = "0"
    common.setup_django(env)
    return "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"


# --- the surveys --------------------------------------------------------------------------


def build(label: str, *, fresh: bool) -> Any:
    from analytics.models import EstimateRun
    from surveys.models import Survey

    slug = SLUGS[label]
    survey = Survey.objects.filter(slug=slug).first()
    ready = survey is not None and EstimateRun.objects.filter(survey=survey).count() >= 4
    if ready and not fresh:
        _edit_flags(survey)
        return survey
    started = time.perf_counter()
    _clear(slug)
    survey = dashboard.build(slug, census=label == "census", fresh=True)
    _responses(survey)
    _close_waves(survey)
    _edit_flags(survey)
    print(f"  responses and estimate versions in {time.perf_counter() - started:.0f} s")
    return survey


def _clear(slug: str) -> None:
    """What bench_dashboard does not delete itself: responses and estimate versions."""
    from django.db import connection

    from analytics.models import EditCheck, EditFlag, EstimateRun
    from respondents.models import Case, Wave
    from surveys.models import Response

    Wave.objects.filter(survey__slug=slug).update(official_run=None)
    EditFlag.objects.filter(response__case__survey__slug=slug).delete()
    EditCheck.objects.filter(survey__slug=slug).delete()
    EstimateRun.objects.filter(survey__slug=slug).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Response._meta.db_table} WHERE case_id IN "  # noqa: S608
            f"(SELECT id FROM {Case._meta.db_table} WHERE survey_id IN "
            "(SELECT id FROM surveys_survey WHERE slug = %s))",
            [slug],
        )


def _responses(survey: Any) -> None:
    """A submitted response, with answers along its path, for each complete or partial."""
    from django.db import transaction

    from config.simulation import answers_for
    from respondents.models import Case
    from surveys.models import Response, get_form

    form = get_form(survey.questionnaire_id)
    rng = np.random.default_rng(dashboard.SEED)
    respondents = (
        Case.objects.filter(survey=survey, disposition__in=["1.1", "1.2"])
        .select_related("frame_unit")
        .order_by("pk")
    )
    with transaction.atomic():
        Response.objects.bulk_create(
            (
                Response(
                    case=case,
                    questionnaire_id=survey.questionnaire_id,
                    answers=form.evaluate(answers_for(case, rng))[0],
                    status=Response.Status.SUBMITTED,
                    mode=Response.Mode.WEB,
                    submitted_at=case.disposition_at,
                    updated_at=case.disposition_at,
                    reference=f"SMF-B{case.pk:09d}",
                    page="_review",
                    revision=8,
                )
                for case in respondents.iterator(chunk_size=5000)
            ),
            batch_size=2000,
        )


FLAGS = 1000
RULES = (
    ("employees_vs_register", "soft", "employees"),
    ("sales_per_employee", "soft", "sales_krw_mn"),
    ("sales_positive", "hard", "sales_krw_mn"),
    ("invest_within_sales", "soft", "invest_amount"),
)


def _edit_flags(survey: Any) -> None:
    """About 1,000 flags on the responses, most open, with their scores, and a check, as
    the checking pipeline leaves them (once: kept with the survey)."""
    from analytics.models import EditCheck, EditFlag
    from surveys.models import Response

    if EditFlag.objects.filter(response__case__survey=survey).exists():
        return
    rng = np.random.default_rng(dashboard.SEED)
    responses = list(Response.objects.filter(case__survey=survey).values_list("pk", "answers"))
    chosen = rng.choice(len(responses), size=min(FLAGS, len(responses)), replace=False)
    statuses = rng.choice(
        ["open", "accepted", "queried", "answered"], len(chosen), p=[0.8, 0.1, 0.05, 0.05]
    )
    flags = []
    for k, index in enumerate(chosen):
        pk, answers = responses[index]
        rule, severity, item = RULES[k % len(RULES)]
        flags.append(
            EditFlag(
                response_id=pk,
                rule=rule,
                severity=severity,
                item=item,
                values={item: answers.get(item), f"frame.{item}": 20},
                message={"ko": "응답이 명부 값과 크게 다릅니다.", "en": "Far from the register."},
                score=float(rng.pareto(2.0)) / 10,
                status=statuses[k],
            )
        )
    EditFlag.objects.bulk_create(flags, batch_size=1000)
    EditCheck.objects.create(
        survey=survey,
        threshold=0.05,
        responses=len(responses),
        failed=len(flags),
        passed=len(flags) // 4,
        passed_share={"employees": 0.004, "sales_krw_mn": 0.012, "invest_amount": 0.03},
    )


def _close_waves(survey: Any) -> None:
    from analytics import pipeline
    from respondents.models import Wave

    for wave in Wave.objects.filter(survey=survey).order_by("starts_at")[:3]:
        pipeline.close_wave(wave)
    pipeline.recompute(survey, trigger="bench", force=True)


# --- the pages ----------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    ms: float
    queries: int
    cpu_ms: float  # of this process: all of it on SQLite, without the server's on PostgreSQL


def administrator() -> Any:
    from django.contrib.auth.models import Group, Permission, User

    from config.roles import ADMINISTRATORS

    user, _created = User.objects.get_or_create(username="bench-pages-admin")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.set([Group.objects.get(name=ADMINISTRATORS)])
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="analytics", codename="download_identified"
        )
    )
    return User.objects.get(pk=user.pk)


def pages(survey: Any) -> dict[str, str]:
    from respondents.models import Case, Wave

    base = f"/manage/{survey.slug}"
    case = Case.objects.filter(survey=survey, disposition="1.1").order_by("pk").first()
    silent = Case.objects.filter(survey=survey, disposition="3.19").order_by("pk").first()
    wave = Wave.objects.filter(survey=survey).order_by("starts_at").first()
    flagged = _flagged_case(survey)
    assert case and silent and wave and flagged
    return {
        "home": "/",
        "frame summary": f"{base}/frame/",
        "frame upload": f"{base}/frame/upload/",
        "sample design": f"{base}/design/",
        "sample list": f"{base}/sample/",
        "sample search": f"{base}/sample/?q={case.business_id}",
        "credentials": f"{base}/credentials/",
        "fieldwork dashboard": f"{base}/fieldwork/",
        "fieldwork weighted": f"{base}/fieldwork/?weighted=1",
        "chase list": f"{base}/fieldwork/chase/",
        "chase list page 20": f"{base}/fieldwork/chase/?page=20",
        "waves": f"{base}/waves/",
        "wave progress": f"{base}/waves/{wave.pk}/progress/",
        "email template": f"{base}/templates/reminder/ko/",
        "case (answered)": f"{base}/cases/{case.pk}/",
        "case (silent)": f"{base}/cases/{silent.pk}/",
        "keyed entry": f"{base}/cases/{silent.pk}/key/phone/",
        "imports": f"{base}/imports/",
        "editing queue": f"{base}/editing/",
        "editing queue page 10": f"{base}/editing/?page=10",
        "editing queue filtered": f"{base}/editing/?status=all&rule=sales_positive&severity=hard",
        "edit review": f"{base}/editing/cases/{flagged}/",
        "edits (CSV)": f"{base}/editing/edits.csv",
        "weighting": f"{base}/weighting/",
        "results": f"{base}/results/",
        "results item": f"{base}/results/sf_adopted/",
        "results official wave": f"{base}/results/?wave={wave.pk}",
        "downloads": f"{base}/downloads/",
        "api tokens": "/manage/api-tokens/",
        "api docs": "/api/v1/docs/",
        "questionnaire upload": "/manage/questionnaires/upload/",
        "admin index": "/admin/",
        "admin cases": "/admin/respondents/case/",
        "admin case search": f"/admin/respondents/case/?q={case.business_id}",
        "admin frame units": "/admin/respondents/frameunit/",
        "admin dispositions": "/admin/respondents/dispositionevent/",
        "admin emails": "/admin/respondents/message/",
        "admin responses": "/admin/surveys/response/",
        "admin response": f"/admin/surveys/response/{case.response.pk}/change/",
        "admin estimate runs": "/admin/analytics/estimaterun/",
    }


def _flagged_case(survey: Any) -> int | None:
    """The case of the open flag with the highest score: the queue's first."""
    from analytics.models import EditFlag

    first = EditFlag.objects.of_survey(survey.pk).to_review().in_queue_order().first()
    return first.response.case_id if first else None


def actions(survey: Any) -> dict[str, Callable[[Any], Any]]:
    from django.utils import timezone

    from analytics.models import EditFlag
    from respondents.models import Case, Wave

    base = f"/manage/{survey.slug}"
    silent = Case.objects.filter(survey=survey, disposition="3.19").order_by("pk").first()
    reminder = Wave.objects.filter(survey=survey, kind="reminder").order_by("starts_at").first()
    assert silent and reminder
    flag = (
        EditFlag.objects.of_survey(survey.pk)
        .to_review()
        .in_queue_order()
        .select_related("response")
        .first()
    )
    assert flag is not None
    review = f"{base}/editing/cases/{flag.response.case_id}/"
    correct = {
        "action": "correct", "flag": flag.pk, f"correct-{flag.pk}-item": flag.item,
        f"correct-{flag.pk}-value": "7", f"correct-{flag.pk}-reason": "bench",
    }  # fmt: skip
    now = timezone.localtime()
    moment = now.strftime("%Y-%m-%dT%H:%M")
    later = (now + dt.timedelta(days=14)).strftime("%Y-%m-%dT%H:%M")
    wave = {"name": "Bench", "kind": "reminder", "starts_at": moment, "ends_at": later}
    disposition = {"form": "disposition", "disposition-code": "2.21", "disposition-at": moment}
    contact = {
        "form": "contact", "contact-channel": "phone", "contact-at": moment,
        "contact-outcome": "no_answer", "contact-note": "bench",
    }  # fmt: skip
    return {
        "add a wave (POST)": lambda c: c.post(f"{base}/waves/", wave),
        "send a reminder wave (POST)": lambda c: c.post(f"{base}/waves/{reminder.pk}/send/"),
        "record a disposition (POST)": lambda c: c.post(f"{base}/cases/{silent.pk}/", disposition),
        "log a call (POST)": lambda c: c.post(f"{base}/cases/{silent.pk}/", contact),
        "correct a flagged value (POST)": lambda c: c.post(review, correct),
    }


def time_get(client: Any, url: str) -> Timing:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    timings, cpu = [], []
    for _ in range(RUNS):
        started, used = time.perf_counter(), time.process_time()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return Timing(url, statistics.median(timings), len(queries), statistics.median(cpu))


def time_action(client: Any, act: Callable[[Any], Any]) -> Timing:
    """An action rolled back after each run, so that every run does the same work."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    timings, cpu, queries = [], [], 0
    for run in range(RUNS + 1):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as captured:
                started, used = time.perf_counter(), time.process_time()
                response = act(client)
                if run:  # the first is a warm-up
                    timings.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - used) * 1000)
            assert response.status_code in (200, 302), response.status_code
            queries = len(captured)
            transaction.set_rollback(True)
    return Timing("", statistics.median(timings), queries, statistics.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--only", choices=list(SLUGS))
    options = parser.parse_args()
    database = setup()
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(administrator())
    client.cookies["django_language"] = "ko"
    for label in [options.only] if options.only else list(SLUGS):
        survey = build(label, fresh=options.fresh)
        cases = survey.cases.count()
        found = [(name, time_get(client, url)) for name, url in pages(survey).items()]
        found += [(name, time_action(client, act)) for name, act in actions(survey).items()]
        budget = BUDGET_MS[label]
        print(f"\n{database}, {label}: {cases:,} cases (budget {budget} ms of server time)")
        print("   server ms  (cpu ms)  queries  page")
        for name, timing in sorted(found, key=lambda item: -item[1].ms):
            over = "  OVER BUDGET" if timing.ms > budget else ""
            print(
                f"  {timing.ms:9.1f}  ({timing.cpu_ms:6.1f})  {timing.queries:7d}  {name}{over}",
                flush=True,
            )


if __name__ == "__main__":
    main()
