"""Who may open which page: every URL of the project × every role, GET and POST.

The URL list comes from walking the resolver, and a pattern without a row in EXPECTATIONS
fails the suite: nobody adds a page without deciding who may see it. Arguments are real
objects of a survey with a published estimate run (slug, firm A's case, a wave, a stratum,
an export job, a report, an API token…).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse

from tests.security.conftest import (
    ADMIN,
    ANONYMOUS,
    API_OTHER,
    API_OWN,
    FIRM_A,
    FIRM_B,
    IDENTIFIED,
    MANAGER,
    ROLES,
    STAFF,
    World,
    isolated,
)
from tests.security.resolver import Pattern, all_patterns

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Outcome:
    status: int
    location: str = ""  # start of the Location header; {argument} names a URL argument

    def __str__(self) -> str:
        return f"{self.status} → {self.location}" if self.location else str(self.status)


def redirect(location: str) -> Outcome:
    return Outcome(302, location)


OK = Outcome(200)
BAD_REQUEST = Outcome(400)
UNAUTHORIZED = Outcome(401)
FORBIDDEN = Outcome(403)
NOT_FOUND = Outcome(404)
NOT_ALLOWED = Outcome(405)
STAFF_LOGIN = redirect("/accounts/login/?next=")
FIRM_LOGIN = redirect("/login/")
ADMIN_LOGIN = redirect("/admin/login/?next=")

Grid = dict[str, Outcome]
STAFF_ROLES = (STAFF, MANAGER, ADMIN, IDENTIFIED)
FIRMS = (FIRM_A, FIRM_B)
# Fieldwork managers and both kinds of administrators: frame, sample, fieldwork, results.
MANAGES = (MANAGER, ADMIN, IDENTIFIED)
# Survey administrators: downloads, API tokens, questionnaires, weighting spec edits.
ADMINISTERS = (ADMIN, IDENTIFIED)


def everyone(outcome: Outcome) -> Grid:
    return dict.fromkeys(ROLES, outcome)


def staff_page(
    allowed: Iterable[str],
    ok: Outcome = OK,
    *,
    denied: Outcome = FORBIDDEN,
    outsider: Outcome = STAFF_LOGIN,
) -> Grid:
    """A staff page: `allowed` get `ok`, other staff `denied`, everyone else `outsider`
    (firms and API tokens carry no staff session, so they are outsiders too)."""
    allowed = set(allowed)
    return {
        role: ok if role in allowed else denied if role in STAFF_ROLES else outsider
        for role in ROLES
    }


def firm_page(ok: Outcome = OK) -> Grid:
    return {role: ok if role in FIRMS else FIRM_LOGIN for role in ROLES}


def keyed(ok: Outcome = OK) -> Grid:
    """Keyed entry needs respondents.manage_fieldwork; without it, even signed out, 403."""
    return {role: ok if role in MANAGES else FORBIDDEN for role in ROLES}


def api(own: Outcome = OK, other: Outcome = NOT_FOUND) -> Grid:
    """The API: only a token authenticates (never a session cookie); another survey's
    token gets 404, as if the survey did not exist."""
    return {role: {API_OWN: own, API_OTHER: other}.get(role, UNAUTHORIZED) for role in ROLES}


READ_ONLY_API = api(NOT_ALLOWED, NOT_ALLOWED)


@dataclass(frozen=True)
class Expect:
    get: Grid
    post: Grid | None = None  # None: the view does not handle POST (not requested)
    args: Callable[[World], dict[str, Any]] | None = None  # beyond DEFAULT_ARGUMENTS


EXPECTATIONS: dict[str, Expect] = {
    # --- site -------------------------------------------------------------------------------
    "home": Expect(staff_page(STAFF_ROLES, outsider=FIRM_LOGIN)),
    "health": Expect(everyone(OK)),
    "set_language": Expect(everyone(redirect("/")), everyone(redirect("/"))),
    "login": Expect(everyone(OK), everyone(OK)),
    "logout": Expect(everyone(NOT_ALLOWED), everyone(redirect("/accounts/login/"))),
    "admin:login": Expect(everyone(OK), everyone(OK)),
    "admin:logout": Expect(everyone(NOT_ALLOWED)),
    # --- the firm's questionnaire: the session's own case, never a case id in the URL ----
    "surveys:link": Expect(everyone(redirect("/q/"))),
    "surveys:login": Expect(everyone(OK), everyone(OK)),
    "surveys:logout": Expect(everyone(NOT_ALLOWED), everyone(redirect("/login/"))),
    "surveys:welcome": Expect(firm_page()),
    "surveys:page": Expect(firm_page(), firm_page()),
    "surveys:autosave": Expect(everyone(NOT_ALLOWED), firm_page()),
    "surveys:review": Expect(firm_page(), firm_page()),
    "surveys:receipt": Expect(firm_page(redirect("/q/"))),
    # --- keyed entry by staff (firm A's case id) --------------------------------------------
    "surveys:keyed_welcome": Expect(keyed()),
    "surveys:keyed_page": Expect(keyed(), keyed()),
    "surveys:keyed_autosave": Expect(everyone(NOT_ALLOWED), keyed()),
    "surveys:keyed_review": Expect(keyed(), keyed()),
    "surveys:keyed_receipt": Expect(keyed(redirect("/manage/{survey}/cases/{case_id}/key/"))),
    # Without surveys.load_questionnaire a signed-in user is sent to the login page, not 403.
    "surveys:upload_questionnaire": Expect(
        staff_page(ADMINISTERS, denied=STAFF_LOGIN), staff_page(ADMINISTERS, denied=STAFF_LOGIN)
    ),
    # --- frame and sample -------------------------------------------------------------------
    "respondents:frame_summary": Expect(staff_page(MANAGES)),
    "respondents:frame_upload": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:frame_report": Expect(
        staff_page(MANAGES), args=lambda w: {"name": w.report_name}
    ),
    "respondents:design": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:sample": Expect(staff_page(MANAGES)),
    "respondents:sample_export": Expect(staff_page(MANAGES)),
    "respondents:release": Expect(
        staff_page(MANAGES, NOT_ALLOWED),
        staff_page(MANAGES, redirect("/manage/{survey}/sample/")),
    ),
    "respondents:credentials": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    # --- fieldwork --------------------------------------------------------------------------
    "respondents:fieldwork": Expect(staff_page(MANAGES)),
    "respondents:chase": Expect(staff_page(MANAGES)),
    "respondents:chase_csv": Expect(staff_page(MANAGES)),
    "respondents:rates_csv": Expect(staff_page(MANAGES)),
    "respondents:waves": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:send_wave": Expect(
        everyone(NOT_ALLOWED), staff_page(MANAGES, redirect("/manage/{survey}/waves/"))
    ),
    "respondents:close_wave": Expect(
        everyone(NOT_ALLOWED), staff_page(MANAGES, redirect("/manage/{survey}/waves/"))
    ),
    "respondents:message_template": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:case": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:fieldwork_import": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    # --- weighting, downloads, results, API tokens ------------------------------------------
    # Managers see the spec; only administrators (edit_weighting_spec) may post it.
    "analytics:weighting": Expect(staff_page(MANAGES), staff_page(ADMINISTERS)),
    "analytics:downloads": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS, BAD_REQUEST)),
    # The job belongs to ADMIN: another administrator does not even learn that it exists.
    "analytics:export_job": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "analytics:export_job_status": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "analytics:export_job_file": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "results:headline": Expect(staff_page(MANAGES)),
    "results:detail": Expect(staff_page(MANAGES)),
    "results:api_tokens": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    "results:api_token_revoke": Expect(
        staff_page(ADMINISTERS, NOT_ALLOWED),
        staff_page(ADMINISTERS, redirect("/manage/api-tokens/")),
        args=lambda w: {"token": w.api_token_id},
    ),
    # --- results API ------------------------------------------------------------------------
    "api:surveys": Expect(api(OK, OK), READ_ONLY_API),
    "api:survey": Expect(api(), READ_ONLY_API),
    "api:runs": Expect(api(), READ_ONLY_API),
    "api:latest_run": Expect(api(), READ_ONLY_API),
    "api:latest_estimates": Expect(api(), READ_ONLY_API),
    "api:run": Expect(api(), READ_ONLY_API),
    "api:estimates": Expect(api(), READ_ONLY_API),
    "api:fieldwork": Expect(api(), READ_ONLY_API),
    "api:schema": Expect(everyone(OK), everyone(NOT_ALLOWED)),
    "api:docs": Expect(everyone(OK)),
}
# The admin site gates every other page of its own on is_staff, and no role here is staff.
ADMIN_SITE = Expect(everyone(ADMIN_LOGIN), everyone(ADMIN_LOGIN))

DEFAULT_ARGUMENTS: dict[str, Callable[[World], Any]] = {
    "survey": lambda w: w.survey.slug,
    "case_id": lambda w: w.firm_a.pk,
    "case": lambda w: w.firm_a.pk,
    "mode": lambda w: "phone",
    "name": lambda w: "profile",
    "token": lambda w: w.token_a,
    "wave": lambda w: w.wave.pk,
    "stratum": lambda w: w.stratum.pk,
    "kind": lambda w: "invitation",
    "language": lambda w: "ko",
    "job": lambda w: w.job.pk,
    "item": lambda w: "sf_adopted",
    "number": lambda w: w.run.number,
    "fmt": lambda w: "csv",
    # the admin site's own objects
    "object_id": lambda w: w.users[STAFF].pk,
    "id": lambda w: w.users[STAFF].pk,
    "content_type_id": lambda w: 1,
    "app_label": lambda w: "auth",
    "url": lambda w: "anything/",
}
PATTERNS = all_patterns()


def expectation(pattern: Pattern) -> Expect | None:
    if pattern.key in EXPECTATIONS:
        return EXPECTATIONS[pattern.key]
    return ADMIN_SITE if pattern.route.startswith("admin/") else None


def arguments(pattern: Pattern, world: World) -> dict[str, Any]:
    expect = expectation(pattern)
    given = expect.args(world) if expect and expect.args else {}
    return {name: given.get(name, DEFAULT_ARGUMENTS[name](world)) for name in pattern.arguments}


def url_of(pattern: Pattern, values: dict[str, Any]) -> str:
    if pattern.named:
        return reverse(pattern.key, kwargs=values)
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), pattern.route)
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m[1]]), route)
    return "/" + route.replace("^", "").replace("$", "")


def outcome_of(world: World, role: str, method: str, path: str) -> tuple[int, str]:
    client = world.client(role)
    with isolated():
        response = client.post(path) if method == "POST" else client.get(path)
    return response.status_code, response.get("Location", "")


def matches(expected: Outcome, status: int, location: str, values: dict[str, Any]) -> bool:
    wanted = expected.location.format(**values)
    return status == expected.status and location.startswith(wanted)


def test_every_url_pattern_has_a_decided_expectation() -> None:
    undecided = [p.route for p in PATTERNS if expectation(p) is None]

    assert not undecided, f"URL patterns nobody decided who may see: {undecided}"


def test_every_expectation_names_an_existing_pattern() -> None:
    keys = {p.key for p in PATTERNS}

    assert not set(EXPECTATIONS) - keys


def test_every_url_argument_has_a_realistic_value() -> None:
    missing = {a for p in PATTERNS for a in p.arguments} - set(DEFAULT_ARGUMENTS)

    assert not missing


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.key for p in PATTERNS])
def test_each_role_gets_the_decided_answer(world: World, pattern: Pattern) -> None:
    # given
    expect = expectation(pattern)
    assert expect is not None
    values = arguments(pattern, world)
    path = url_of(pattern, values)
    wrong = []
    for method, grid in (("GET", expect.get), ("POST", expect.post)):
        for role, expected in (grid or {}).items():
            # when
            status, location = outcome_of(world, role, method, path)
            # then
            if not matches(expected, status, location, values):
                got = f"{status} → {location}" if location else str(status)
                wrong.append(f"{method} {path} as {role}: expected {expected}, got {got}")

    assert not wrong, "\n".join(wrong)
