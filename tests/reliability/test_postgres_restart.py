"""PostgreSQL restarts while firms are saving pages through gunicorn: requests fail cleanly
while it is down, succeed again as soon as it is back (without restarting gunicorn), and no
page is ever stored or shown half saved."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import pytest
import requests

from tests.reliability.conftest import (
    PostgresCluster,
    WebServer,
    running_postgres,
    running_redis,
)
from tests.services import ROOT, wait_until

FIRMS = 4
PAGE = "contact"
CONNECTION_ERROR = "connection error"
SETUP = f"""
import json

import django
from django.core.management import call_command

django.setup()
call_command("migrate", interactive=False, verbosity=0)
from tests import factories

survey = factories.shipped_questionnaire().survey
firms = [factories.case(survey) for _ in range({FIRMS})]
print(json.dumps([[case.pk, token] for case, token, _code in firms]))
"""
FIELD = re.compile(r'name="(contact_\w+)" id="id-\1" value="([^"]*)"')
HIDDEN = re.compile(r'name="(csrfmiddlewaretoken|revision|editor)" value="([^"]*)"')


def contact_answers(firm: int, state: int) -> dict[str, str]:
    """Page state number `state` of a firm: every field says which state it belongs to."""
    return {
        "contact_name": f"Kim {firm}-{state}",
        "contact_department": f"Production {state}",
        "contact_position": f"Manager {state}",
        "contact_phone": f"010-{state:04d}-{firm:04d}",
        "contact_email": f"firm{firm}.s{state}@example.com",
    }


def state_of(firm: int, values: dict[str, Any]) -> int | None:
    """Which whole state these values are (0: never saved), or None for a mixture."""
    page = {name: values.get(name) or "" for name in contact_answers(firm, 0)}
    if not any(page.values()):
        return 0
    found = re.search(r"-(\d+)$", page["contact_name"])
    state = int(found.group(1)) if found else -1
    return state if page == contact_answers(firm, state) else None


@dataclass
class Outcome:
    kind: str  # "show" (GET the page) or "save" (POST it)
    started: float
    status: int | str
    state: int | None = None  # the state sent, or the state shown (None: a mixture)

    @property
    def succeeded(self) -> bool:
        return self.status == (200 if self.kind == "show" else 302)

    @property
    def failed_cleanly(self) -> bool:
        return self.status == CONNECTION_ERROR or (
            isinstance(self.status, int) and self.status >= 500
        )


@dataclass
class Firm:
    number: int
    case_id: int
    session: requests.Session
    state: int  # the last state sent
    outcomes: list[Outcome] = field(default_factory=list)
    idle: bool = False

    def saved(self, after: float = 0.0) -> list[Outcome]:
        return [
            o
            for o in list(self.outcomes)
            if o.kind == "save" and o.succeeded and (o.started > after)
        ]

    def failed(self, after: float) -> bool:
        return any(o.failed_cleanly and o.started > after for o in list(self.outcomes))

    def show_and_save(self, url: str) -> None:
        """One round: show the page, then save the next state."""
        started = time.monotonic()
        try:
            page = self.session.get(url, timeout=10)
        except requests.RequestException:
            self.outcomes.append(Outcome("show", started, CONNECTION_ERROR))
            return
        shown = state_of(self.number, dict(FIELD.findall(page.text)))
        self.outcomes.append(Outcome("show", started, page.status_code, shown))
        if page.status_code != 200:
            return
        self.state += 1
        data = {**dict(HIDDEN.findall(page.text)), **contact_answers(self.number, self.state)}
        started = time.monotonic()
        try:
            saved = self.session.post(
                url, data={**data, "action": "next"}, allow_redirects=False, timeout=10
            )
            status: int | str = saved.status_code
        except requests.RequestException:
            status = CONNECTION_ERROR
        self.outcomes.append(Outcome("save", started, status, self.state))


class Load:
    """Every firm showing and saving its page in a loop, one thread each, until the end."""

    def __init__(self, url: str, firms: list[Firm]) -> None:
        self.url, self.firms = url, firms
        self.running, self.finished = threading.Event(), threading.Event()
        self.threads = [threading.Thread(target=self._answer, args=(f,)) for f in firms]

    def __enter__(self) -> Load:
        self.running.set()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.finished.set()
        self.running.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _answer(self, firm: Firm) -> None:
        while not self.finished.is_set():
            if not self.running.is_set():
                firm.idle = True
                self.running.wait()
                firm.idle = False
                continue
            firm.show_and_save(self.url)

    def pause(self) -> None:
        self.running.clear()
        wait_until(lambda: all(firm.idle for firm in self.firms), timeout=20)

    def resume(self) -> None:
        self.running.set()

    def saved(self, count: int, after: float = 0.0) -> bool:
        return all(len(firm.saved(after)) >= count for firm in self.firms)

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for firm in self.firms for o in firm.outcomes]


@dataclass
class Site:
    web: WebServer
    postgres: PostgresCluster
    cases: list[tuple[int, str]]

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.postgres.url("survey"))
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            conn.close()

    def responses(self) -> dict[int, tuple[dict[str, Any], int]]:
        rows = self._query("SELECT case_id, answers, revision FROM surveys_response")
        return {case: (answers, revision) for case, answers, revision in rows}

    def revisions(self) -> dict[int, int]:
        return {case: revision for case, (_answers, revision) in self.responses().items()}

    def web_connections(self) -> int:
        rows = self._query(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = 'survey' AND pid <> pg_backend_pid()"
        )
        return int(rows[0][0])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """gunicorn with production settings on a migrated database with a survey and firms,
    on servers of its own (shared by this module's tests: building them is the slow part)."""
    directory = tmp_path_factory.mktemp("site")
    with running_postgres() as postgres, running_redis(directory / "redis") as redis:
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url("survey"),
            "DB_CONN_MAX_AGE": "600",
            "REDIS_URL": redis.url,
            "CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:12]}",
            "DEBUG": "0",
            "SECRET_KEY": f"fault-test-{uuid.uuid4().hex}",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        postgres.create_database("survey")
        setup = subprocess.run(
            [sys.executable, "-c", SETUP],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert setup.returncode == 0, setup.stderr[-3000:]
        cases = [(case, token) for case, token in json.loads(setup.stdout.splitlines()[-1])]
        web = WebServer(env, directory / "gunicorn.log")
        web.start()
        try:
            yield Site(web, postgres, cases)
        finally:
            web.stop()


def sign_in(site: Site) -> list[Firm]:
    stored = site.responses()
    firms = []
    for number, (case_id, token) in enumerate(site.cases):
        session = requests.Session()
        session.cookies.set("django_language", "en")
        assert session.get(f"{site.web.url}/r/{token}/", timeout=10).status_code == 200
        answers = stored.get(case_id, ({}, 0))[0]
        firms.append(Firm(number, case_id, session, state=state_of(number, answers) or 0))
    return firms


def allowed_states(first: int, outcomes: list[Outcome]) -> list[int | None]:
    """The states a firm's page may hold after these requests: its last successful save, or
    a later save whose request failed in the outage (it may have committed all the same)."""
    last: int | None = first
    unsure: list[int | None] = []
    for outcome in outcomes:
        if outcome.kind == "save" and outcome.succeeded:
            last, unsure = outcome.state, []
        elif outcome.kind == "save":
            unsure.append(outcome.state)
    return [last, *unsure]


def assert_no_page_is_half_saved(
    site: Site, firms: list[Firm], before: dict[int, tuple[int, int]]
) -> None:
    """Every page shown and every page stored is one whole state the firm sent, and never
    older than its last successful save; the revision went up once per save that worked
    (and perhaps for saves whose request failed)."""
    stored = site.responses()
    for firm in firms:
        first_state, first_revision = before[firm.case_id]
        for index, shown in enumerate(firm.outcomes):
            if shown.kind == "show" and shown.succeeded:
                allowed = allowed_states(first_state, firm.outcomes[:index])
                assert shown.state in allowed, (firm.number, shown, allowed)
        answers, revision = stored[firm.case_id]
        assert state_of(firm.number, answers) in allowed_states(first_state, firm.outcomes)
        saves = [o for o in firm.outcomes if o.kind == "save"]
        assert len(firm.saved()) <= revision - first_revision <= len(saves)


def test_requests_during_a_postgres_outage_fail_cleanly_and_no_page_is_half_saved(
    site: Site,
) -> None:
    # given: four signed-in firms showing and saving a five-question page in a loop
    firms = sign_in(site)
    revisions = site.revisions()
    before = {firm.case_id: (firm.state, revisions[firm.case_id]) for firm in firms}
    with Load(f"{site.web.url}/q/p/{PAGE}/", firms) as load:
        wait_until(lambda: load.saved(3))

        # when: PostgreSQL shuts down under load (in-flight transactions are aborted), every
        # firm meets the outage, and PostgreSQL starts again
        stopped_at = time.monotonic()
        site.postgres.stop("fast")
        wait_until(lambda: all(firm.failed(after=stopped_at) for firm in firms), timeout=20)
        site.postgres.start()
        restarted_at = time.monotonic()
        wait_until(lambda: load.saved(3, after=restarted_at))

    # then: every request succeeded or failed cleanly, and no page showed a mixture
    assert [o for o in load.outcomes if not (o.succeeded or o.failed_cleanly)] == []
    shown = [o for o in load.outcomes if o.kind == "show" and o.succeeded]
    assert [o for o in shown if o.state is None] == []
    assert [o for o in load.outcomes if o.started > restarted_at and not o.succeeded] == []
    assert_no_page_is_half_saved(site, firms, before)


def test_after_a_postgres_restart_gunicorn_serves_again_without_being_restarted(
    site: Site,
) -> None:
    # given: firms answering, and every gunicorn worker holding a persistent connection
    firms = sign_in(site)
    revisions = site.revisions()
    before = {firm.case_id: (firm.state, revisions[firm.case_id]) for firm in firms}
    gunicorn = site.web.process
    with Load(f"{site.web.url}/q/p/{PAGE}/", firms) as load:
        wait_until(lambda: load.saved(3) and site.web_connections() >= site.web.workers)

        # when: PostgreSQL restarts while nobody is asking, so those connections go stale
        load.pause()
        site.postgres.restart("fast")
        restarted_at = time.monotonic()
        load.resume()
        wait_until(lambda: load.saved(3, after=restarted_at))

    # then: the very first requests after the restart succeed, from the same gunicorn
    assert [o for o in load.outcomes if o.started > restarted_at and not o.succeeded] == []
    assert site.web.process is gunicorn and gunicorn is not None and gunicorn.poll() is None
    assert_no_page_is_half_saved(site, firms, before)
