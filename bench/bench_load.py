"""Deadline-day load test: hundreds of firms answer the whole questionnaire at once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/load_bench \\
    REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/bench_load.py [--users 200]

(`make bench-load` runs it with the Makefile's benchmark database and Redis.)

1. A fresh survey "load-bench": the shipped questionnaire, a small synthetic frame imported
   through the frame import, a stratified sample of N cases drawn (N = 2 x users by default)
   and credentials issued, as a survey manager would.
2. As deployed: gunicorn (sync workers, production settings), a Celery worker with beat
   (`celery -A config worker -B`), PostgreSQL and Redis.
3. Locust (bench/locustfile.py), headless: each simulated user takes one personal link and
   answers its whole path as a browser does (pages, autosaves, review, submit, receipt),
   until every user has submitted once or the time cap.
4. Checks: no failed request; p99 of every request kind under 1 s; exactly one submitted
   response per simulated firm holding exactly the answers it sent (after the form's skip
   logic and calculations), no other response; and a published estimate run, computed by
   the worker after the burst, that counts every submission.

Prints a summary and exits 1 when a target is missed. The answers of a firm are a function
of its token alone (`firm_answers`), so the locustfile and this check agree on them.

The load is harsh on purpose: 1-3 s of thought per page is a tenth of what people take, so
200 simulated users send about what 2,000 real people answering at the same time would
(140 requests/s on average, 230/s at the peak).

The worker count: on this 2-core machine gunicorn shares the CPU with PostgreSQL, the Celery
worker and locust. A request is ~4-5 ms of Python CPU time plus a few short PostgreSQL
round trips, so a worker more than there are cores covers those waits (2 workers left CPU
idle and had the worst p99); more than that only adds memory and time-slicing between
requests (4 measured the same as 3 within noise). Hence 3 sync workers (cores + 1);
--workers or WEB_CONCURRENCY overrides it.

The figures are only meaningful on an otherwise idle machine: the summary prints how much
CPU other processes took during the load, and warns when it is more than a fraction.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/load_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
SLUG = "load-bench"
QUEUE = "load-bench"  # the Celery queue of this benchmark only (emptied before and after)
OUT = ROOT / "var" / "load_bench"
P99_TARGET_MS = 1000.0
KINDS = (
    "link",
    "welcome",
    "page GET",
    "autosave",
    "page POST",
    "review GET",
    "submit",
    "receipt",
)

# --- a firm's answers, from its token alone (imported by the locustfile) -------------------

Value = str | list[str]
Answers = dict[str, dict[str, Value]]  # page -> posted field -> value, in page order

NAMES = ("김민수", "이지은", "박서준", "최유진", "정우성", "Lee Ji-eun", "Park Min-jun")
DEPARTMENTS = ("생산관리팀", "경영지원팀", "기술연구소", "품질관리팀", "")
POSITIONS = ("과장", "대리", "부장", "팀장", "")
TECH = ("erp", "mes", "scm", "plm", "controller", "iot_sensor", "robot", "other")
TECH_SHARE = (0.76, 0.3, 0.1, 0.06, 0.17, 0.12, 0.08, 0.05)


def firm_answers(token: str) -> Answers:
    """What the firm of this link answers, page by page, as its browser posts it.

    About half the firms have adopted smart manufacturing (and so see the three adopter
    pages); the branches inside pages (another technology, data analysis, another area, an
    investment amount) and the optional contact fields are exercised too. Numbers are typed
    as people type them: sometimes with thousands separators, decimals with a comma.
    """
    rng = random.Random(int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big"))
    adopter = rng.random() < 0.5
    employees = rng.randint(1, 9_999)
    sales = round(rng.uniform(50, 250_000), rng.choice((0, 1, 2)))
    answers: Answers = {
        "profile": {
            "employees": f"{employees:,}" if rng.random() < 0.3 else str(employees),
            "sales_krw_mn": f"{sales:,}" if rng.random() < 0.3 else str(sales),
        },
        "awareness": {
            "importance": rng.choice(
                (
                    "very_important",
                    "somewhat_important",
                    "neutral",
                    "not_very_important",
                    "not_at_all_important",
                )
            ),
            "implementing": "yes" if adopter or rng.random() < 0.1 else "no",
        },
        "adoption": {"sf_adopted": "yes" if adopter else "no"},
    }
    if adopter:
        tech = [t for t, p in zip(TECH, TECH_SHARE, strict=True) if rng.random() < p]
        tech = tech or ["erp"]
        status: dict[str, Value] = {
            "sf_level": rng.choice(("basic", "intermediate1", "intermediate2", "advanced")),
            "sf_scope": rng.choice(("partial", "full")),
            "sf_tech": tech,
        }
        if "other" in tech:
            status["sf_tech_other"] = rng.choice(("3D 프린팅", "디지털 트윈", "AR 작업지시"))
        data: dict[str, Value] = {"data_collect": rng.choice(("yes", "no"))}
        if data["data_collect"] == "yes":
            data["data_analyze"] = rng.choice(("yes", "no"))
        data["main_area"] = rng.choice(
            ("production_mgmt", "planning_strategy", "finance", "tech_innovation", "hr", "other")
        )
        if data["main_area"] == "other":
            data["main_area_other"] = "품질관리"
        future: dict[str, Value] = {
            "need_advance": rng.choice(("yes", "no")),
            "invest_own": rng.choice(("yes", "no")),
        }
        if future["invest_own"] == "yes":  # optional: some leave the amount blank
            future["invest_amount"] = (
                "" if rng.random() < 0.2 else str(round(rng.uniform(1, 50_000), 1))
            )
        answers.update(sf_status=status, sf_data=data, sf_future=future)
    answers["ai"] = {"mfg_ai": rng.choice(("adopted", "planned", "none"))}
    suffix = hashlib.sha256(token.encode()).hexdigest()[:10]
    answers["contact"] = {
        "contact_name": rng.choice(NAMES),
        "contact_department": rng.choice(DEPARTMENTS),
        "contact_position": rng.choice(POSITIONS),
        "contact_phone": "-".join(
            (f"0{rng.randint(2, 64)}", str(rng.randint(200, 9999)), f"{rng.randint(0, 9999):04d}")
        ),
        "contact_email": f"survey-{suffix}@example.co.kr",
    }
    return answers


# --- set-up --------------------------------------------------------------------------------


def prepare(cases: int, frame_rows: int) -> tuple[Any, list[str]]:
    """A fresh survey with a drawn sample of `cases` firms; their link tokens."""
    from analytics.models import EstimateRun, RecomputeRequest
    from respondents import credentials, sampling
    from respondents.frame_import import import_frame
    from respondents.synthetic import write_frame

    survey = common.fresh_survey(SLUG)
    RecomputeRequest.objects.filter(survey=survey).delete()
    EstimateRun.objects.filter(survey=survey).delete()
    frame = OUT / "frame.csv"
    write_frame(frame, rows=frame_rows, seed=20250601)
    import_frame(survey, frame, filename=frame.name)
    sampling.draw_sample(
        survey,
        strata_variables=["size_class"],
        allocation="proportional",
        sample_size=cases,
        min_per_stratum=2,
        seed=20250601,
    )
    tokens = [token for _case, token, _code in credentials.issue_credentials(survey)]
    # The draw and the issue asked for a recompute; that one is not part of the burst.
    RecomputeRequest.objects.filter(survey=survey).delete()
    return survey, tokens


def empty_queue(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, *[f"{QUEUE}\x06\x16{p}" for p in range(10)])
    client.close()


def static_is_current() -> bool:
    """Whether the hashed static files (production storage) are newer than their sources:
    compressing them all again takes half a minute on this machine."""
    from django.conf import settings

    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not manifest.exists():
        return False
    newest = max(p.stat().st_mtime for p in (ROOT / "static").rglob("*") if p.is_file())
    return manifest.stat().st_mtime > newest


# --- processes -----------------------------------------------------------------------------


def start(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115 - the child keeps writing to it
    return subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its workers
    )


def wait_until_up(url: str, timeout: float = 90) -> None:
    """The first answer of freshly booted workers can take seconds on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - http only
                answer.read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def warm_up(base: str, workers: int) -> None:
    """A deployed site's workers are warm: have each load its code and templates once.

    A cold worker's first request takes more than a second (imports, URL patterns,
    templates, translations); concurrent requests reach every idle sync worker."""
    paths = ("/login/", "/q/", "/r/" + "0" * 32 + "/")

    def fetch(path: str) -> None:
        try:
            with urllib.request.urlopen(base + path, timeout=30) as answer:  # noqa: S310
                answer.read()
        except OSError:
            pass  # the unknown link is a 404, as it should be

    with ThreadPoolExecutor(max_workers=workers * 2) as pool:
        for _round in range(2):
            list(pool.map(fetch, [p for p in paths for _ in range(workers * 2)]))


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """A warm shutdown (gunicorn and Celery finish what they are doing), then the group."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything of its group still there
    process.wait(timeout=10)


# --- where the CPU went ----------------------------------------------------------------------


class CpuMeter(threading.Thread):
    """Samples, every second, the CPU time of this benchmark's processes (by process group,
    and the PostgreSQL backends of its database) and of the whole machine, so that a run
    disturbed by other work on the machine says so."""

    def __init__(self, groups: dict[int, str], database: str) -> None:
        super().__init__(daemon=True)
        self.groups, self.database = groups, database
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.halt = threading.Event()
        self.machine_start = self.machine_end = (0.0, 0.0)

    @staticmethod
    def machine() -> tuple[float, float]:
        """Busy and total seconds of all CPUs since boot."""
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
        hertz = os.sysconf("SC_CLK_TCK")
        return (sum(ticks) - ticks[3] - ticks[4]) / hertz, sum(ticks) / hertz

    def sample(self) -> None:
        hertz = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    stat = handle.read()
                fields = stat[stat.rfind(")") + 2 :].split()
                group = self.groups.get(int(fields[2]))
                if group is None and stat[stat.find("(") + 1 :].startswith("postgres"):
                    with open(f"/proc/{entry.name}/cmdline") as handle:
                        if f" {self.database} " in handle.read().replace("\0", " "):
                            group = "postgres"
            except (OSError, IndexError, ValueError):
                continue
            if group is not None:
                seconds = (int(fields[11]) + int(fields[12])) / hertz
                self.first.setdefault(int(entry.name), (group, seconds))
                self.last[int(entry.name)] = (group, seconds)

    def run(self) -> None:
        self.machine_start = self.machine()
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(1.0)
        self.machine_end = self.machine()

    def finish(self) -> None:
        self.sample()
        self.halt.set()
        self.join(timeout=5)

    def report(self, seconds: float) -> None:
        used: dict[str, float] = defaultdict(float)
        for pid, (group, value) in self.last.items():
            used[group] += value - self.first[pid][1]
        busy = self.machine_end[0] - self.machine_start[0]
        total = self.machine_end[1] - self.machine_start[1]
        cores = os.cpu_count() or 1
        ours = sum(used.values())
        others = max(busy - ours, 0) / seconds
        print(
            f"\nCPU during the load ({cores} cores, {seconds:.0f} s): machine "
            f"{100 * busy / max(total, 1e-9):.0f}% busy; "
            + ", ".join(f"{g} {v / seconds:.2f}" for g, v in sorted(used.items()))
            + f" cores; other processes {others:.2f} cores"
        )
        if others > 0.25:
            print(
                f"WARNING: other work on this machine took {others:.2f} of {cores} cores "
                "during the load; the latencies above are worse than the platform's own."
            )


# --- figures -------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


SERVER_KINDS = (
    ("GET", re.compile(r"^/r/[^/]+/$"), "link"),
    ("GET", re.compile(r"^/q/$"), "welcome"),
    ("POST", re.compile(r"^/q/p/[^/]+/autosave/$"), "autosave"),
    ("GET", re.compile(r"^/q/p/[^/]+/$"), "page GET"),
    ("POST", re.compile(r"^/q/p/[^/]+/$"), "page POST"),
    ("GET", re.compile(r"^/q/review/$"), "review GET"),
    ("POST", re.compile(r"^/q/review/$"), "submit"),
    ("GET", re.compile(r"^/q/receipt/$"), "receipt"),
)


def server_times(access_log: Path) -> dict[str, list[float]]:
    """Time spent inside gunicorn workers per request kind (ms), from the access log."""
    times: dict[str, list[float]] = defaultdict(list)
    if not access_log.exists():
        return times
    for line in access_log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        method, path, _status, micros = parts
        for want, pattern, kind in SERVER_KINDS:
            if method == want and pattern.match(path):
                times[kind].append(int(micros) / 1000)
                break
    return times


def latency_table(results: dict[str, Any], server: dict[str, list[float]]) -> list[str]:
    """The per-kind table; returns the kinds whose p99 misses the target."""
    requests = results["requests"]
    span = max(results["last_request"] - results["first_request"], 1e-9)
    print(
        f"\n{'request kind':<12}{'count':>7}{'fail':>6}{'req/s':>8}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'max':>8}{'server p50':>12}{'server p99':>12}   (ms)"
    )
    missed = []
    every: list[float] = []
    failures = 0
    for kind in [*KINDS, *sorted(set(requests) - set(KINDS))]:
        if kind not in requests:
            continue
        times = sorted(requests[kind]["times"])
        every.extend(times)
        failures += requests[kind]["failures"]
        inside = sorted(server.get(kind, []))
        p99 = percentile(times, 0.99)
        if p99 >= P99_TARGET_MS:
            missed.append(kind)
        print(
            f"{kind:<12}{len(times):>7}{requests[kind]['failures']:>6}{len(times) / span:>8.1f}"
            f"{percentile(times, 0.5):>8.0f}{percentile(times, 0.95):>8.0f}{p99:>8.0f}"
            f"{times[-1] if times else math.nan:>8.0f}"
            f"{percentile(inside, 0.5):>12.0f}{percentile(inside, 0.99):>12.0f}"
        )
    every.sort()
    print(
        f"{'all':<12}{len(every):>7}{failures:>6}{len(every) / span:>8.1f}"
        f"{percentile(every, 0.5):>8.0f}{percentile(every, 0.95):>8.0f}"
        f"{percentile(every, 0.99):>8.0f}{every[-1] if every else math.nan:>8.0f}"
    )
    print(f"over {span:.1f} s from the first request to the last")
    by_page = results.get("by_page", {})
    if by_page:
        print("\np99 by page (ms):")
        pages = sorted({page for key in by_page for page in [key.split(" | ")[1]]})
        kinds = ("page GET", "autosave", "page POST")
        print(f"  {'page':<12}" + "".join(f"{k:>11}" for k in kinds))
        for page in pages:
            cells = []
            for kind in kinds:
                times = sorted(by_page.get(f"{kind} | {page}", []))
                cells.append(f"{percentile(times, 0.99):>11.0f}" if times else f"{'-':>11}")
            print(f"  {page:<12}" + "".join(cells))
    return missed


def timeline_table(results: dict[str, Any], window: float = 5.0) -> None:
    """Latency over the run: does it degrade, or come in waves?"""
    timeline = results.get("timeline", [])
    if not timeline:
        return
    start = results["first_request"]
    buckets: dict[int, list[float]] = defaultdict(list)
    for at, _kind, ms in timeline:
        buckets[max(0, int((at - start) // window))].append(ms)
    print(f"\n{'from s':>6}{'req/s':>8}{'p50':>8}{'p99':>8}{'max':>8}   (requests by start time)")
    for index in sorted(buckets):
        times = sorted(buckets[index])
        print(
            f"{index * window:>6.0f}{len(times) / window:>8.1f}{percentile(times, 0.5):>8.0f}"
            f"{percentile(times, 0.99):>8.0f}{times[-1]:>8.0f}"
        )


# --- checks --------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, str]] = []

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.rows.append((name, ok, detail))

    @property
    def ok(self) -> bool:
        return all(ok for _name, ok, _detail in self.rows)

    def show(self) -> None:
        print()
        for name, ok, detail in self.rows:
            print(f"  [{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))


def expected_answers(form: Any, answers: Answers) -> dict[str, Any]:
    """The answers the platform must hold: typed, then skip logic and calculations applied."""
    merged: dict[str, Any] = {}
    for page_name, posted in answers.items():
        typed, errors = form.parse_page(form.page_by_name[page_name], posted)
        if errors:
            raise ValueError(f"the simulated answers of {page_name} are invalid: {errors}")
        merged.update({k: v for k, v in typed.items() if v is not None})
    values, _relevant = form.evaluate(merged)
    return dict(values)


def verify_database(
    survey: Any, tokens: Iterable[str], firms: dict[str, Any], checks: Checks
) -> Any:
    """One submitted response per simulated firm with exactly its answers; nothing else."""
    from django.db.models import Count

    from config.tokens import hash_token
    from respondents.models import Case, DispositionEvent
    from surveys.models import Response, get_form

    simulated = list(tokens)
    cases = dict(
        Case.objects.filter(
            survey=survey, token_hash__in=[hash_token(t) for t in simulated]
        ).values_list("token_hash", "pk")
    )
    responses = {
        r.case_id: r for r in Response.objects.filter(case__survey=survey).select_related("case")
    }
    form = get_form(survey.current_questionnaire_id)
    missing, not_submitted, wrong, drafts, references = [], [], [], [], []
    for token in simulated:
        case_id = cases.get(hash_token(token))
        response = responses.get(case_id) if case_id is not None else None
        if response is None:
            missing.append(token)
            continue
        if response.status != Response.Status.SUBMITTED:
            not_submitted.append(token)
            continue
        want = expected_answers(form, firm_answers(token))
        if response.answers != want:
            wrong.append((token, want, response.answers))
        if response.drafts:
            drafts.append(token)
        seen = firms.get(token, {}).get("reference")
        if seen != response.reference:
            references.append((token, seen, response.reference))
    checks.add(
        "every simulated firm has a response",
        not missing,
        f"{len(simulated) - len(missing)}/{len(simulated)}",
    )
    checks.add(
        "every response is submitted",
        not not_submitted,
        f"{len(not_submitted)} still in progress" if not_submitted else "",
    )
    detail = ""
    if wrong:
        token, want, got = wrong[0]
        diff = {
            k: (want.get(k), got.get(k))
            for k in sorted(set(want) | set(got))
            if want.get(k) != got.get(k)
        }
        detail = f"{len(wrong)} differ, e.g. {token[:8]}…: expected/stored {diff}"
    checks.add("stored answers equal the answers sent (after skip logic)", not wrong, detail)
    checks.add("no autosave drafts left on submitted responses", not drafts, str(len(drafts)))
    checks.add(
        "receipt reference shown = reference stored",
        not references,
        f"{len(references)} differ" if references else "",
    )
    others = [r for cid, r in responses.items() if cid not in set(cases.values())]
    checks.add("no response for a firm that was not simulated", not others, str(len(others)))
    submitted_events = (
        DispositionEvent.objects.filter(case__survey=survey, reason__startswith="submitted")
        .values("case_id")
        .annotate(n=Count("pk"))
    )
    twice = [row for row in submitted_events if row["n"] != 1]
    checks.add("no duplicate submission (one submitted event per firm)", not twice, str(len(twice)))
    count = Response.objects.filter(case__survey=survey, status="submitted").count()
    checks.add(
        "submitted responses = simulated firms",
        count == len(simulated),
        f"{count} submitted, {len(simulated)} firms",
    )
    return (
        Response.objects.filter(case__survey=survey, status="submitted")
        .order_by("-submitted_at")
        .values_list("submitted_at", flat=True)
        .first()
    )


def wait_for_estimates(
    survey: Any, submitted: int, last_submit: Any, timeout: float, checks: Checks
) -> None:
    """Wait for the worker: no pending request, nothing running, a run counting everyone."""
    from analytics.models import EstimateRun, RecomputeRequest

    waited = time.monotonic()
    run = None
    while time.monotonic() - waited < timeout:
        pending = RecomputeRequest.objects.filter(survey=survey).exists()
        running = EstimateRun.objects.filter(survey=survey, status="running").exists()
        run = EstimateRun.objects.latest_published(survey)
        if (
            not pending
            and not running
            and run is not None
            and run.snapshot.get("respondents") == submitted
        ):
            break
        time.sleep(0.5)
    else:
        run = None
    failed = EstimateRun.objects.filter(survey=survey, status="failed").count()
    runs = EstimateRun.objects.filter(survey=survey, status="published").count()
    if run is None:
        latest = EstimateRun.objects.latest_published(survey)
        counted = latest.snapshot.get("respondents") if latest else None
        checks.add(
            "estimates recomputed after the burst",
            False,
            f"not settled within {timeout:.0f} s (latest published run counts {counted} of "
            f"{submitted} submissions; failed runs {failed})",
        )
        return
    finished = run.finished_at or run.started_at
    settle = (finished - last_submit).total_seconds() if last_submit else math.nan
    compute = (finished - run.started_at).total_seconds()
    checks.add(
        "estimates recomputed after the burst",
        failed == 0,
        f"run {run.number} counts {submitted} respondents; published {settle:.1f} s after "
        f"the last submission (the run itself took {compute:.1f} s); {runs} runs published "
        f"during the test, {failed} failed; waited {time.monotonic() - waited:.1f} s "
        "after the load ended",
    )


# --- main ----------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=int(os.environ.get("LOAD_USERS", "200")))
    parser.add_argument("--spawn-rate", type=float, default=20.0)
    parser.add_argument("--cases", type=int, default=0, help="sample size (default 2 x users)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 3)))
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery processes")
    parser.add_argument("--think-min", type=float, default=1.0, help="think time on a page, least")
    parser.add_argument("--think-max", type=float, default=3.0, help="think time on a page, most")
    parser.add_argument(
        "--autosave-delay",
        type=float,
        default=1.2,
        help="debounce after typing (AUTOSAVE_DELAY_MS)",
    )
    parser.add_argument("--time-cap", type=int, default=180, help="seconds of load at most")
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    parser.add_argument(
        "--collectstatic", action="store_true", help="collect static files even if current"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8791")))
    return parser.parse_args()


def main() -> int:
    args = arguments()
    cases = args.cases or 2 * args.users
    if cases < args.users:
        sys.exit("--cases must be at least --users")
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env = common.production_env()
    env.update(
        CELERY_QUEUE=QUEUE,
        CACHE_KEY_PREFIX="load-bench",
        WEB_CONCURRENCY=str(args.workers),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    common.setup_django(env)
    survey, all_tokens = prepare(cases, frame_rows=max(5_000, 10 * cases))
    tokens = all_tokens[: args.users]
    tokens_file, results_file = OUT / "tokens.txt", OUT / "results.json"
    tokens_file.write_text("\n".join(tokens) + "\n")
    results_file.unlink(missing_ok=True)
    empty_queue(env["REDIS_URL"])
    if args.collectstatic or not static_is_current():
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    print(
        f"survey {SLUG}: {len(all_tokens)} sampled firms with links, {len(tokens)} answering; "
        f"set up in {time.monotonic() - began:.1f} s"
    )
    base = f"http://127.0.0.1:{args.port}"
    access_log = OUT / "access.log"
    access_log.unlink(missing_ok=True)
    bin_dir = ROOT / ".venv" / "bin"
    web = start(
        [
            str(bin_dir / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--max-requests",
            "5000",
            "--max-requests-jitter",
            "500",
            "--timeout",
            "60",
            "--backlog",
            "2048",
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
        ],
        env,
        OUT / "gunicorn.log",
    )
    worker = start(
        [
            str(bin_dir / "celery"),
            "-A",
            "config",
            "worker",
            "-B",
            "--schedule-filename",
            str(OUT / "celerybeat-schedule"),
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(args.worker_concurrency),
        ],
        env,
        OUT / "celery.log",
    )
    checks = Checks()
    try:
        wait_until_up(base + "/login/")
        warm_up(base, args.workers)
        print(
            f"load: {args.users} users, spawn {args.spawn_rate:g}/s, think {args.think_min:g}-"
            f"{args.think_max:g} s a page + {args.autosave_delay:g} s autosave debounce, cap "
            f"{args.time_cap} s; gunicorn {args.workers} "
            f"sync workers, Celery worker -B x{args.worker_concurrency}, PostgreSQL, Redis"
        )
        load_env = {
            **env,
            "LOAD_TOKENS_FILE": str(tokens_file),
            "LOAD_RESULTS_FILE": str(results_file),
            "LOAD_THINK_MIN": str(args.think_min),
            "LOAD_THINK_MAX": str(args.think_max),
            "LOAD_AUTOSAVE_DELAY": str(args.autosave_delay),
        }
        database = env["DATABASE_URL"].rsplit("/", 1)[-1].split("?")[0]
        locust = start(
            [
                str(bin_dir / "locust"),
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{args.time_cap}s",
                "--host",
                base,
                "--csv",
                str(OUT / "locust"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            load_env,
            OUT / "locust.log",
        )
        meter = CpuMeter(
            {web.pid: "gunicorn", worker.pid: "celery", locust.pid: "locust"}, database
        )
        meter.start()
        started = time.monotonic()
        try:
            locust.wait(timeout=args.time_cap + 60)
        except subprocess.TimeoutExpired:
            print("locust did not stop by itself after the time cap: stopped")
        finally:
            meter.finish()
            stop(locust)
        load_seconds = time.monotonic() - started
        stop(web)
        if not results_file.exists():
            print((OUT / "locust.log").read_text(errors="replace")[-3000:])
            checks.add("locust wrote its results", False, f"exit {locust.returncode}")
            checks.show()
            return 1
        results = json.loads(results_file.read_text())
        firms = results["firms"]
        done = [t for t, f in firms.items() if f.get("status") == "submitted"]
        durations = sorted(f["seconds"] for f in firms.values() if "seconds" in f)
        adopters = sum(1 for t in done if firms[t]["path"] == "adopter")
        print(
            f"load ran {load_seconds:.1f} s; {len(done)}/{len(tokens)} firms submitted "
            f"({adopters} adopters); time per firm p50 {percentile(durations, 0.5):.1f} s, "
            f"max {durations[-1] if durations else math.nan:.1f} s"
        )
        missed = latency_table(results, server_times(access_log))
        timeline_table(results)
        meter.report(load_seconds)
        failures = sum(r["failures"] for r in results["requests"].values())
        checks.add(
            "zero failed requests",
            failures == 0,
            f"{failures} failed" + (f"; first: {results['errors'][:3]}" if failures else ""),
        )
        checks.add(
            f"p99 of every request kind < {P99_TARGET_MS:.0f} ms",
            not missed,
            f"missed by {', '.join(missed)}" if missed else "",
        )
        checks.add("every user submitted once", len(done) == len(tokens), f"{len(done)}")
        last_submit = verify_database(survey, tokens, firms, checks)
        wait_for_estimates(survey, len(done), last_submit, args.settle_timeout, checks)
    finally:
        stop(web)
        stop(worker, timeout=60)
        empty_queue(env["REDIS_URL"])
    checks.show()
    print(
        f"\n{'ALL TARGETS MET' if checks.ok else 'TARGET MISSED'} "
        f"(whole run {time.monotonic() - began:.0f} s; logs in {OUT.relative_to(ROOT)}/)"
    )
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
