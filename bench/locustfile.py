"""Locust: a firm answering the whole questionnaire through its personal link, as a browser.

Each simulated user takes one distinct token from the file named by LOAD_TOKENS_FILE (one a
line) and, like a person with the page's JavaScript on:

  GET /r/<token>/ (signs in)  ->  GET /q/ (welcome)  ->  for every page of its path:
  GET the page, read csrfmiddlewaretoken, revision and editor from the form; one or two
  autosave POSTs while "typing" (multipart FormData, as questionnaire.js sends; the revision
  they return goes into the form); POST the page with action=next and follow the redirect,
  which must lead to the next page of its path  ->  GET /q/review/, POST it (submit)  ->
  GET /q/receipt/ and read the reference number.

The answers are `bench_load.firm_answers(token)`: a function of the token only, so the
benchmark can check afterwards what the database holds. A person thinks LOAD_THINK_MIN to
LOAD_THINK_MAX seconds (default 1-3) on each page; the autosaves come the debounce delay
after the last keystroke (LOAD_AUTOSAVE_DELAY, default 1.2 s) or 150 ms after a click, and
Next is pressed 0.2-0.6 s after the last one. Requests are named by kind ("link",
"welcome", "page GET", "autosave", "page POST", "review GET", "submit", "receipt").

When every user has finished (submitted, or given up on an error) the run quits. If
LOAD_RESULTS_FILE is set, the raw response times, failures and each firm's outcome are
written there as JSON when locust stops.

    LOAD_TOKENS_FILE=tokens.txt .venv/bin/locust -f bench/locustfile.py --headless \\
        -u 200 -r 20 --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_load import Answers, Value, firm_answers

THINK_MIN = float(os.environ.get("LOAD_THINK_MIN", "1"))
THINK_MAX = float(os.environ.get("LOAD_THINK_MAX", "3"))
# questionnaire.js saves this long after the last keystroke (AUTOSAVE_DELAY_MS), and 150 ms
# after a click on a radio button or checkbox.
AUTOSAVE_DELAY = float(os.environ.get("LOAD_AUTOSAVE_DELAY", "1.2"))
CLICK_DELAY = 0.15
TOKENS: deque[str] = deque(
    line.strip()
    for line in Path(os.environ.get("LOAD_TOKENS_FILE", "tokens.txt")).read_text().splitlines()
    if line.strip()
)
RESULTS_FILE = os.environ.get("LOAD_RESULTS_FILE", "")

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
REVISION_RE = re.compile(r'name="revision" value="(\d+)"')
EDITOR_RE = re.compile(r'name="editor" value="([^"]+)"')
RESUME_RE = re.compile(r'<a class="btn btn-primary btn-lg" href="([^"]+)"')
REFERENCE_RE = re.compile(r'<strong class="reference">([^<]+)</strong>')
RADIO_RE = re.compile(r'type="radio" name="([^"]+)"')

# What the run collected: response times by kind (and by kind and page), errors, firms.
TIMES: dict[str, list[float]] = defaultdict(list)
BY_PAGE: dict[str, list[float]] = defaultdict(list)
FAILURES: dict[str, int] = defaultdict(int)
TIMELINE: list[tuple[float, str, float]] = []  # (start, kind, ms) of every request
ERRORS: list[str] = []
FIRMS: dict[str, dict[str, Any]] = {}
SPAN = {"first": 0.0, "last": 0.0}
FINISHED = {"count": 0}


class FirmFailed(Exception):
    """The firm cannot go on (the failed request is already in the statistics)."""


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    exception: Exception | None,
    context: dict[str, Any],
    **_kwargs: Any,
) -> None:
    now = time.time()
    began = now - response_time / 1000
    SPAN["first"] = min(SPAN["first"], began) if SPAN["first"] else began
    SPAN["last"] = max(SPAN["last"], now)
    TIMES[name].append(response_time)
    TIMELINE.append((round(began, 3), name, round(response_time, 1)))
    if context.get("page"):
        BY_PAGE[f"{name} | {context['page']}"].append(response_time)
    if exception is not None:
        FAILURES[name] += 1
        if len(ERRORS) < 50:
            ERRORS.append(f"{name} {context.get('page', '')}: {exception}"[:300])


def _write_results(**_kwargs: Any) -> None:
    if not RESULTS_FILE:
        return
    data = {
        "first_request": SPAN["first"],
        "last_request": SPAN["last"],
        "requests": {
            name: {"times": times, "failures": FAILURES.get(name, 0)}
            for name, times in TIMES.items()
        },
        "by_page": BY_PAGE,
        "timeline": TIMELINE,
        "errors": ERRORS,
        "firms": FIRMS,
    }
    Path(RESULTS_FILE).write_text(json.dumps(data))


events.test_stop.add_listener(_write_results)
events.quitting.add_listener(_write_results)


def _finished(environment: Environment) -> None:
    """Quit once every user has finished its firm."""
    FINISHED["count"] += 1
    options = environment.parsed_options
    expected = options.num_users if options is not None else 0
    if expected and FINISHED["count"] == expected and environment.runner is not None:
        gevent.spawn_later(0.5, environment.runner.quit)


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body, as a browser's FormData sends it."""
    boundary = f"----LocustFormBoundary{uuid.uuid4().hex}"
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"


def form_fields(values: dict[str, Value]) -> list[tuple[str, str]]:
    """The answers as a form posts them (a checkbox group also sends its __present marker)."""
    fields: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, list):
            fields.append((f"{name}__present", "1"))
            fields.extend((name, item) for item in value)
        else:
            fields.append((name, value))
    return fields


class Firm(FastHttpUser):
    """One firm: its link, its whole path through the questionnaire, submit, receipt."""

    def on_start(self) -> None:
        self.token = TOKENS.popleft() if TOKENS else ""
        self.rng = random.Random(self.token)
        self.origin = self.host.rstrip("/") if self.host else ""
        self.done = False

    @task
    def answer(self) -> None:
        if self.done:  # one firm per user: wait for the others, then the run quits
            gevent.sleep(3600)
            return
        self.done = True
        outcome: dict[str, Any] = {"status": "failed"}
        if not self.token:
            outcome["error"] = "no token left in LOAD_TOKENS_FILE"
            ERRORS.append(outcome["error"])
            _finished(self.environment)
            return
        answers = firm_answers(self.token)
        outcome["path"] = "adopter" if "sf_status" in answers else "non-adopter"
        FIRMS[self.token] = outcome
        began = time.monotonic()
        try:
            outcome["reference"] = self.complete(answers)
            outcome["status"] = "submitted"
        except Exception as exc:  # a firm that cannot go on is reported, not retried
            outcome["error"] = f"{type(exc).__name__}: {exc}"[:300]
            if not isinstance(exc, FirmFailed) and len(ERRORS) < 50:
                ERRORS.append(outcome["error"])
        finally:
            outcome["seconds"] = time.monotonic() - began
            _finished(self.environment)

    # --- the path ---------------------------------------------------------------------------

    def complete(self, answers: Answers) -> str:
        location = self.expect("GET", f"/r/{self.token}/", "link", status=302)
        if urlsplit(location).path != "/q/":
            raise FirmFailed(f"link went to {location}")
        html = self.expect("GET", "/q/", "welcome")
        resume = RESUME_RE.search(html)
        pages = list(answers)
        if resume is None or resume.group(1) != f"/q/p/{pages[0]}/":
            raise FirmFailed("the welcome page does not start at the first page")
        self.think(0.3)
        html = self.expect("GET", resume.group(1), "page GET", page=pages[0])
        for index, page in enumerate(pages):
            following = f"/q/p/{pages[index + 1]}/" if index + 1 < len(pages) else "/q/review/"
            location = self.answer_page(page, answers[page], html)
            if urlsplit(location).path != following:
                raise FirmFailed(f"{page} went to {location}, not {following}")
            if index + 1 < len(pages):
                html = self.expect("GET", following, "page GET", page=pages[index + 1])
        html = self.expect("GET", "/q/review/", "review GET")
        if 'id="error-summary"' in html:
            raise FirmFailed("the review page lists errors")
        self.think(0.5)
        location = self.expect(
            "POST", "/q/review/", "submit", status=302, form=[("csrfmiddlewaretoken", csrf(html))]
        )
        if urlsplit(location).path != "/q/receipt/":
            raise FirmFailed(f"submit went to {location}")
        html = self.expect("GET", "/q/receipt/", "receipt")
        reference = REFERENCE_RE.search(html)
        if reference is None:
            raise FirmFailed("the receipt shows no reference")
        return reference.group(1)

    def answer_page(self, page: str, values: dict[str, Value], html: str) -> str:
        """Answer the page: the person reads and answers for a think time, and the debounced
        autosave fires after the first half of the answers and again after the rest (after
        AUTOSAVE_DELAY for typed text, 150 ms after a click, as questionnaire.js); then Next."""
        form = {
            "csrfmiddlewaretoken": csrf(html),
            "revision": find(REVISION_RE, html, "revision"),
            "editor": find(EDITOR_RE, html, "editor"),
        }
        absent = [name for name in values if f'name="{name}"' not in html]
        if absent:  # a browser can only send the inputs the page has
            raise FirmFailed(f"{page} has no input for {absent}")
        think = self.rng.uniform(THINK_MIN, THINK_MAX)
        names = list(values)
        radios = set(RADIO_RE.findall(html))
        steps = [names[: (len(names) + 1) // 2], names] if len(names) > 1 else [names]
        for number, typed in enumerate(steps):
            partial = {name: values[name] for name in typed}
            last = typed[-1]
            clicked = last in radios or isinstance(values[last], list)
            if number == 0 and len(steps) > 1 and not clicked and len(values[last]) > 1:
                # The first save fired while the last field was still being typed.
                partial[last] = str(values[last])[: len(values[last]) // 2]
            self.wait_for(think / len(steps) + (CLICK_DELAY if clicked else AUTOSAVE_DELAY))
            body, content_type = multipart([*form.items(), *form_fields(partial)])
            result = self.expect_json(
                f"/q/p/{page}/autosave/",
                body,
                {"Content-Type": content_type, "X-Requested-With": "fetch"},
                page,
            )
            form["revision"] = str(result["revision"])
        self.wait_for(self.rng.uniform(0.2, 0.6))  # to the Next button
        fields = [*form.items(), *form_fields(values), ("action", "next")]
        return self.expect("POST", f"/q/p/{page}/", "page POST", status=302, form=fields, page=page)

    # --- requests -----------------------------------------------------------------------------

    def expect(
        self,
        method: str,
        path: str,
        name: str,
        *,
        status: int = 200,
        form: list[tuple[str, str]] | None = None,
        page: str = "",
    ) -> str:
        """Send one request; a wrong status fails it and the firm. Returns the body, or the
        redirect's location for a 3xx."""
        headers = {"Accept": "text/html"}
        data = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            data = urlencode(form)
        with self.client.request(
            method,
            path,
            name=name,
            data=data,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
            context={"page": page},
        ) as response:
            if response.status_code != status:
                detail = _problem(response.text or "")
                response.failure(f"HTTP {response.status_code} (wanted {status}) {detail}")
                raise FirmFailed(f"{name} {path}: HTTP {response.status_code} {detail}")
            if 300 <= status < 400:
                return str(response.headers.get("location", ""))
            return response.text or ""

    def expect_json(
        self, path: str, body: bytes, headers: dict[str, str], page: str
    ) -> dict[str, Any]:
        with self.client.request(
            "POST",
            path,
            name="autosave",
            data=body,  # type: ignore[arg-type]  # bytes go through geventhttpclient as they are
            headers={**headers, "Origin": self.origin},
            catch_response=True,
            context={"page": page},
        ) as response:
            try:
                result: dict[str, Any] = json.loads(response.text or "")
            except ValueError:
                result = {}
            if response.status_code != 200 or not result.get("saved") or result.get("errors"):
                response.failure(f"HTTP {response.status_code} {str(result)[:200]}")
                raise FirmFailed(f"autosave {page}: HTTP {response.status_code} {result}")
            return result

    def think(self, share: float) -> None:
        self.wait_for(self.rng.uniform(THINK_MIN, THINK_MAX) * share)

    def wait_for(self, seconds: float) -> None:
        gevent.sleep(seconds)


def csrf(html: str) -> str:
    return find(CSRF_RE, html, "csrfmiddlewaretoken")


def find(pattern: re.Pattern[str], html: str, what: str) -> str:
    found = pattern.search(html)
    if found is None:
        raise FirmFailed(f"no {what} in the page")
    return found.group(1)


def _problem(html: str) -> str:
    """The error messages of a page rendered again, for the failure's description."""
    messages = re.findall(r'class="invalid-feedback[^"]*"[^>]*>(.*?)</div>', html, re.S)
    return "; ".join(re.sub(r"<[^>]+>", "", m).strip() for m in messages)[:200]
