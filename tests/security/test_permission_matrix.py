"""Who may open which page: every URL of the project × every role, GET and POST.

The URL list comes from walking the resolver, and a pattern without a row in EXPECTATIONS
fails the suite: nobody adds a page without deciding who may see it (the admin site's own
pages share one row: they all require is_staff, which no role here has). Arguments are real
objects of a survey with a published estimate run (slug, firm A's case, a wave, a stratum,
an export job, a report, an API token…).

Then the properties behind the grid: a firm reaches only its own answers, whatever it posts;
keyed entry needs respondents.manage_fieldwork; an object named through another survey's URL
is not found; contact details need respondents.view_contact_details; identified microdata
needs analytics.download_identified; the API never answers for another survey.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import openpyxl
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from analytics.models import ExportJob
from respondents import mailing
from respondents.models import Case, ContactAttempt, Message
from surveys.models import QuestionnaireUpload, Response, get_form
from tests.security.conftest import (
    ADMIN,
    ANALYST,
    ANONYMOUS,
    API_OTHER,
    API_OWN,
    CLERK,
    FIRM_A,
    FIRM_A_EMAIL,
    FIRM_A_PHONE,
    FIRM_B,
    IDENTIFIED,
    MANAGER,
    NO_KEYING,
    ROLES,
    STAFF,
    World,
    isolated,
)
from tests.services import MailServer
from tests.surveys.answering import ADOPTER, NON_ADOPTER

pytestmark = pytest.mark.django_db


# --- every URL pattern, found by walking the resolver -------------------------------------

ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>")


@dataclass(frozen=True)
class Pattern:
    key: str  # "namespace:name", or the route itself when the pattern has no name
    route: str
    callback: Callable[..., Any]

    @property
    def arguments(self) -> tuple[str, ...]:
        return tuple(a or b for a, b in ARGUMENT.findall(self.route))

    @property
    def named(self) -> bool:
        return self.key != self.route


def _walk(
    entries: Sequence[URLPattern | URLResolver], prefix: str = "", namespace: str = ""
) -> Iterator[Pattern]:
    for entry in entries:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            continue
        route = prefix + str(entry.pattern)
        name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
        yield Pattern(name or route, route, entry.callback)


def all_patterns() -> list[Pattern]:
    return list(_walk(get_resolver().url_patterns))


# --- outcomes and expectations ---------------------------------------------------------------


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
# Fieldwork managers and both kinds of administrators: frame, sample, fieldwork.
MANAGES = (MANAGER, ADMIN, IDENTIFIED)
# Survey administrators: results, the weighting spec, downloads, API tokens, questionnaires.
ADMINISTERS = (ADMIN, IDENTIFIED)
# Editing: fieldwork managers and administrators review the edit flags (config/roles.py).
REVIEWS = (MANAGER, ADMIN, IDENTIFIED)


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
    # A survey's overview: for anyone holding one of the survey functions' permissions.
    "survey_home": Expect(staff_page(MANAGES)),
    # Starting a round copies the questionnaire and sets up a frame: both permissions.
    "next_round": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    "health": Expect(everyone(OK)),
    "set_language": Expect(everyone(redirect("/")), everyone(redirect("/"))),
    "login": Expect(everyone(OK), everyone(OK)),
    "logout": Expect(everyone(NOT_ALLOWED), everyone(redirect("/accounts/login/"))),
    "admin:login": Expect(everyone(OK), everyone(OK)),
    "admin:logout": Expect(everyone(redirect("/admin/"))),
    # --- the firm's questionnaire: the session's own case, never a case id in the URL ----
    "surveys:link": Expect(everyone(redirect("/q/"))),
    "surveys:login": Expect(everyone(OK), everyone(OK)),
    "surveys:logout": Expect(everyone(NOT_ALLOWED), everyone(redirect("/login/"))),
    "surveys:welcome": Expect(firm_page()),
    "surveys:page": Expect(firm_page(), firm_page()),
    "surveys:autosave": Expect(everyone(NOT_ALLOWED), firm_page()),
    "surveys:review": Expect(firm_page(), firm_page()),
    "surveys:receipt": Expect(firm_page(redirect("/q/"))),
    # A query about a firm's submitted answers: its link alone opens it (a bearer link, as
    # the personal link is); an empty answer is a form error, nothing saved.
    "surveys:edit_query": Expect(
        everyone(OK), everyone(OK), args=lambda w: {"token": w.query_token}
    ),
    # --- keyed entry by staff (firm A's case id) --------------------------------------------
    "surveys:keyed_welcome": Expect(keyed()),
    "surveys:keyed_page": Expect(keyed(), keyed()),
    "surveys:keyed_autosave": Expect(everyone(NOT_ALLOWED), keyed()),
    "surveys:keyed_review": Expect(keyed(), keyed()),
    "surveys:keyed_receipt": Expect(keyed(redirect("/manage/{survey}/cases/{case_id}/key/"))),
    "surveys:upload_questionnaire": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    # A large upload waiting for the worker: only its uploader sees it.
    "surveys:questionnaire_upload": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "surveys:edit_rules": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    "surveys:edit_rules_version": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    # --- frame and sample -------------------------------------------------------------------
    "respondents:frame_summary": Expect(staff_page(MANAGES)),
    "respondents:frame_upload": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:frame_report": Expect(staff_page(MANAGES), args=lambda w: {"name": w.report_name}),
    "respondents:frame_changes": Expect(staff_page(MANAGES)),
    "respondents:frame_links": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:design": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:sample": Expect(staff_page(MANAGES)),
    "respondents:sample_export": Expect(staff_page(MANAGES)),
    "respondents:release": Expect(
        staff_page(MANAGES, NOT_ALLOWED),
        staff_page(MANAGES, redirect("/manage/{survey}/sample/")),
    ),
    "respondents:credentials": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:letters_pdf": Expect(staff_page(MANAGES)),
    # --- fieldwork --------------------------------------------------------------------------
    "respondents:fieldwork": Expect(staff_page(MANAGES)),
    "respondents:chase": Expect(staff_page(MANAGES)),
    "respondents:chase_csv": Expect(staff_page(MANAGES)),
    "respondents:rates_csv": Expect(staff_page(MANAGES)),
    "respondents:waves": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:wave_progress": Expect(staff_page(MANAGES), everyone(NOT_ALLOWED)),
    "respondents:send_wave": Expect(
        everyone(NOT_ALLOWED), staff_page(MANAGES, redirect("/manage/{survey}/waves/"))
    ),
    "respondents:close_wave": Expect(
        everyone(NOT_ALLOWED), staff_page(MANAGES, redirect("/manage/{survey}/waves/"))
    ),
    "respondents:message_template": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:case": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:fieldwork_import": Expect(staff_page(MANAGES), staff_page(MANAGES)),
    "respondents:import_template": Expect(
        staff_page(MANAGES), args=lambda w: {"kind": "responses", "fmt": "xlsx"}
    ),
    # --- editing ------------------------------------------------------------------------------
    "analytics:editing": Expect(staff_page(REVIEWS)),
    # A POST without an action names no flag of the response: refused, nothing saved.
    "analytics:edit_review": Expect(
        staff_page(REVIEWS), staff_page(REVIEWS, BAD_REQUEST), args=lambda w: {"case": w.flagged.pk}
    ),
    "analytics:edits_export": Expect(staff_page(REVIEWS)),
    # --- weighting, downloads, results, API tokens ------------------------------------------
    # Estimates and how they are weighted are the administrators' until published (README).
    "analytics:weighting": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS)),
    "analytics:downloads": Expect(staff_page(ADMINISTERS), staff_page(ADMINISTERS, BAD_REQUEST)),
    # The job belongs to ADMIN: another administrator does not even learn that it exists.
    "analytics:export_job": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "analytics:export_job_status": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    "analytics:export_job_file": Expect(staff_page(ADMINISTERS) | {IDENTIFIED: NOT_FOUND}),
    # The job's file is not a released microdata file: it has no disclosure report.
    "analytics:export_job_report": Expect(staff_page(ADMINISTERS, NOT_FOUND)),
    "results:headline": Expect(staff_page(ADMINISTERS)),
    "results:detail": Expect(staff_page(ADMINISTERS)),
    "results:change": Expect(staff_page(ADMINISTERS)),
    "results:trend": Expect(staff_page(ADMINISTERS)),
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


def upload_of(world: World) -> int:
    """A queued questionnaire upload of the administrator (ADMIN)."""
    owner = world.users[ADMIN]
    found = QuestionnaireUpload.objects.filter(uploaded_by=owner).first()
    found = found or QuestionnaireUpload.objects.create(source=b"", uploaded_by=owner)
    return found.pk


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
    "upload": upload_of,
    "version": lambda w: w.survey.questionnaires.get(pk=w.survey.questionnaire_id).version,
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


# --- a firm never reaches another firm's answers ----------------------------------------------

A_MARKERS = ("ALPHA-ONLY-MARKER", "alpha.answer@firm-a.example")
A_ANSWERS: dict[str, dict[str, Any]] = {
    **ADOPTER,
    "contact": {
        "contact_name": "알파 담당자 ALPHA-ONLY-MARKER",
        "contact_phone": "031-777-0000",
        "contact_email": "alpha.answer@firm-a.example",
    },
}
FOREIGN_KEYS = ("case", "case_id", "respondent_case", "business_id", "token", "survey")


def answer_all_pages(client: Client, case: Case, answers: dict[str, dict[str, Any]]) -> None:
    client.get("/q/")
    for page, data in answers.items():
        revision = Response.objects.get(case=case).revision
        posted = {**data, "revision": revision, "editor": "tab-1", "action": "next"}
        response = client.post(f"/q/p/{page}/", posted)
        assert response.status_code == 302, (page, response.content.decode()[-1500:])


def snapshot(case: Case) -> tuple[Any, ...]:
    found = Response.objects.get(case=case)
    return found.answers, found.drafts, found.revision, found.status, found.page


def test_respondent_urls_never_carry_a_case_or_survey() -> None:
    # given: the firm's pages are everything outside the staff, admin and API areas
    staff_areas = ("manage/", "admin/", "api/")
    firm_pages = [p for p in PATTERNS if not p.route.lstrip("^").startswith(staff_areas)]

    # then: the case always comes from the session (the link token only signs in)
    assert firm_pages
    for pattern in firm_pages:
        assert set(pattern.arguments) <= {"token", "name"}, pattern.route


def test_firm_b_never_sees_firm_a_answers_on_any_of_its_pages(world: World) -> None:
    # given
    answer_all_pages(world.client(FIRM_A), world.firm_a, A_ANSWERS)
    firm_b = world.client(FIRM_B)
    form = get_form(world.survey.questionnaire_id)

    # when
    paths = ["/q/", "/q/review/", "/q/receipt/"]
    paths += [f"/q/p/{page.name}/" for page in form.pages]
    pages = [firm_b.get(path, follow=True).content.decode() for path in paths]

    # then
    shown = "\n".join(pages)
    assert world.firm_b.business_id in shown
    for secret in (*A_MARKERS, world.firm_a.business_id, world.firm_a.frame_unit.name):
        assert secret not in shown


def test_firm_b_posting_a_case_id_changes_only_its_own_answers(world: World) -> None:
    # given
    answer_all_pages(world.client(FIRM_A), world.firm_a, A_ANSWERS)
    before = snapshot(world.firm_a)
    firm_b = world.client(FIRM_B)
    pointing_at_a = dict.fromkeys(FOREIGN_KEYS, str(world.firm_a.pk))
    pointing_at_a["business_id"] = world.firm_a.business_id

    # when
    firm_b.get("/q/")
    for page, data in NON_ADOPTER.items():
        revision = Response.objects.get(case=world.firm_b).revision
        posted = {**data, **pointing_at_a, "revision": revision, "editor": "b", "action": "next"}
        firm_b.post(f"/q/p/{page}/autosave/", posted)
        firm_b.post(f"/q/p/{page}/", {**posted, "revision": revision + 1})
    firm_b.post("/q/review/", pointing_at_a)

    # then
    assert snapshot(world.firm_a) == before
    assert Response.objects.get(case=world.firm_b).is_submitted
    assert Response.objects.get(case=world.firm_b).answers["employees"] == 8


KEYED = [p for p in PATTERNS if p.key.startswith("surveys:keyed_")]


@pytest.mark.parametrize("role", [ANONYMOUS, FIRM_A, FIRM_B, STAFF, NO_KEYING])
def test_keying_firm_a_answers_is_refused_without_manage_fieldwork(world: World, role: str) -> None:
    # given
    answer_all_pages(world.client(FIRM_A), world.firm_a, {"profile": ADOPTER["profile"]})
    before = snapshot(world.firm_a)
    client = world.client(role)
    values = {"survey": world.survey.slug, "case_id": world.firm_a.pk, "mode": "phone"}

    # when
    statuses = set()
    for pattern in KEYED:
        path = url_of(
            pattern, {**values, "name": "profile"} if "name" in pattern.arguments else values
        )
        if pattern.key != "surveys:keyed_autosave":
            statuses.add(client.get(path).status_code)
        posted = {"employees": "9999", "sales_krw_mn": "1", "revision": before[2], "editor": "x"}
        statuses.add(client.post(path, posted).status_code)

    # then
    assert len(KEYED) == 5
    assert statuses == {403}
    assert snapshot(world.firm_a) == before


OBJECT_ARGUMENTS = {"case_id", "case", "wave", "stratum", "job"}
CROSS_SURVEY = [
    p for p in PATTERNS if "survey" in p.arguments and OBJECT_ARGUMENTS & set(p.arguments)
]


@pytest.mark.parametrize("pattern", CROSS_SURVEY, ids=[p.key for p in CROSS_SURVEY])
def test_an_object_addressed_through_another_survey_is_not_found(
    world: World, pattern: Pattern
) -> None:
    # given: firm A's case, the wave, the stratum and ADMIN's job, under the other survey
    values = {**arguments(pattern, world), "survey": world.other.slug}
    path = url_of(pattern, values)

    # when
    got = outcome_of(world, ADMIN, "GET", path)[0], outcome_of(world, ADMIN, "POST", path)[0]

    # then: not found (405 only where the method is refused before any lookup)
    assert got in ((404, 404), (405, 404), (404, 405)), (path, got)


# --- contact details: only with respondents.view_contact_details ---------------------------


def contact_pages(world: World) -> dict[str, str]:
    slug, a = world.survey.slug, world.firm_a
    search = f"?q={a.business_id}"
    return {
        "sample list": f"/manage/{slug}/sample/{search}",
        "sample CSV": f"/manage/{slug}/sample/export.csv{search}",
        "sample XLSX": f"/manage/{slug}/sample/export.xlsx{search}",
        "chase CSV": f"/manage/{slug}/fieldwork/chase.csv",
        "case page": f"/manage/{slug}/cases/{a.pk}/",
    }


def text_of(response: Any) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if response["Content-Type"].startswith("application/vnd.openxmlformats"):
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        cells = (
            cell for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row
        )
        return " ".join(str(cell) for cell in cells if cell is not None)
    return content.decode("utf-8-sig")


@pytest.mark.parametrize(("role", "sees"), [(MANAGER, True), (ADMIN, True), (CLERK, False)])
@pytest.mark.parametrize(
    "page", ["sample list", "sample CSV", "sample XLSX", "chase CSV", "case page"]
)
def test_contact_details_show_only_with_view_contact_details(
    world: World, page: str, role: str, sees: bool
) -> None:
    # when
    response = world.client(role).get(contact_pages(world)[page])

    # then
    assert response.status_code == 200
    shown = text_of(response)
    assert world.firm_a.business_id in shown
    assert (FIRM_A_EMAIL in shown, FIRM_A_PHONE in shown) == (sees, sees)


def chase_page_with(client: Client, world: World, case: Case) -> str:
    """The chase-list page (50 firms a page) that lists this case."""
    for number in range(1, 100):
        response = client.get(f"/manage/{world.survey.slug}/fieldwork/chase/?page={number}")
        html = response.content.decode()
        if case.business_id in html or number >= response.context["page"].paginator.num_pages:
            return html
    raise AssertionError("no chase page")


@pytest.mark.parametrize(("role", "sees"), [(MANAGER, True), (CLERK, False)])
def test_the_chase_list_shows_contacts_only_with_view_contact_details(
    world: World, role: str, sees: bool
) -> None:
    html = chase_page_with(world.client(role), world, world.firm_a)

    assert world.firm_a.business_id in html
    assert (FIRM_A_EMAIL in html, FIRM_A_PHONE in html) == (sees, sees)


def download(client: Client, world: World, what: str, **options: str) -> Any:
    data = {"what": what, f"{what}-format": "csv", f"{what}-language": "en"}
    data.update({f"{what}-{name}": value for name, value in options.items()})
    return client.post(f"/manage/{world.survey.slug}/downloads/", data)


@pytest.mark.parametrize("what", ["fieldwork", "contacts"])
def test_fieldwork_exports_carry_contacts_only_when_asked_with_the_permission(
    world: World, what: str
) -> None:
    # given
    ContactAttempt.objects.create(case=world.firm_a, channel="phone", outcome="no_answer")
    admin, analyst = world.client(ADMIN), world.client(ANALYST)

    # when
    with_contacts = text_of(download(admin, world, what, contact="on"))
    without = text_of(download(admin, world, what))
    analyst_plain = text_of(download(analyst, world, what))
    analyst_asking = download(analyst, world, what, contact="on")

    # then
    assert world.firm_a.business_id in with_contacts and FIRM_A_EMAIL in with_contacts
    for shown in (without, analyst_plain):
        assert world.firm_a.business_id in shown
        assert FIRM_A_EMAIL not in shown and FIRM_A_PHONE not in shown
    assert analyst_asking.status_code == 403


# --- identified microdata: only with analytics.download_identified ----------------------------


def microdata(client: Client, world: World, capture: Any, **options: str) -> tuple[int, str]:
    with capture(execute=True):
        started = download(client, world, "microdata", **options)
    if started.status_code != 302:
        return started.status_code, ""
    job = ExportJob.objects.filter(survey=world.survey).latest("pk")
    assert job.status == ExportJob.Status.DONE, job.error
    found = client.get(f"/manage/{world.survey.slug}/downloads/jobs/{job.pk}/file/")
    return found.status_code, text_of(found)


def test_microdata_without_download_identified_has_no_business_id_nor_contact_answers(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = world.client(FIRM_A)
    answer_all_pages(client, world.firm_a, A_ANSWERS)
    assert client.post("/q/review/").status_code == 302

    # when
    asking, _ = microdata(
        world.client(ADMIN), world, django_capture_on_commit_callbacks, level="identified"
    )
    status, plain = microdata(world.client(ADMIN), world, django_capture_on_commit_callbacks)

    # then
    assert asking == 403
    assert status == 200
    header = plain.splitlines()[0]
    assert "unit_id" in header and "employees" in header
    assert "business_id" not in header and "contact_email" not in header
    for secret in (world.firm_a.business_id, *A_MARKERS):
        assert secret not in plain


def test_identified_microdata_is_given_to_download_identified_holders(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = world.client(FIRM_A)
    answer_all_pages(client, world.firm_a, A_ANSWERS)
    assert client.post("/q/review/").status_code == 302

    # when
    status, identified = microdata(
        world.client(IDENTIFIED), world, django_capture_on_commit_callbacks, level="identified"
    )

    # then
    assert status == 200
    assert "business_id" in identified.splitlines()[0]
    for secret in (world.firm_a.business_id, *A_MARKERS):
        assert secret in identified


# --- the API never answers for another survey -------------------------------------------------


@pytest.mark.parametrize(
    "path", ["", "runs/", "runs/latest/", "runs/latest/estimates/", "runs/1/", "fieldwork/"]
)
def test_the_api_answers_another_survey_exactly_like_a_missing_one(world: World, path: str) -> None:
    # given
    client = world.client(API_OTHER)

    # when
    existing = client.get(f"/api/v1/surveys/{world.survey.slug}/{path}")
    missing = client.get(f"/api/v1/surveys/no-such-survey/{path}")

    # then
    assert existing.status_code == missing.status_code == 404
    assert existing.json() == missing.json()
    assert world.survey.slug not in existing.content.decode()


def test_the_api_survey_list_holds_only_the_token_surveys(world: World) -> None:
    own = world.client(API_OWN).get("/api/v1/surveys/").json()
    other = world.client(API_OTHER).get("/api/v1/surveys/").json()

    assert [s["slug"] for s in own] == [world.survey.slug]
    assert [s["slug"] for s in other] == [world.other.slug]


def test_a_staff_session_never_authenticates_the_api(world: World) -> None:
    response = world.client(IDENTIFIED).get(f"/api/v1/surveys/{world.survey.slug}/")

    assert response.status_code == 401


def bounce_firm_a_invitation(world: World, smtp_server: MailServer, capture: Any) -> None:
    smtp_server.refuse.add(FIRM_A_EMAIL)
    with capture(execute=True):
        mailing.queue_wave(world.wave)
    assert Message.objects.get(case=world.firm_a).status == Message.Status.BOUNCED


def test_a_bounced_invitation_does_not_show_the_address_without_view_contact_details(
    world: World, smtp_server: MailServer, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    bounce_firm_a_invitation(world, smtp_server, django_capture_on_commit_callbacks)

    # when
    html = world.client(CLERK).get(f"/manage/{world.survey.slug}/cases/{world.firm_a.pk}/")

    # then
    assert html.status_code == 200
    assert FIRM_A_EMAIL not in html.content.decode()


def test_a_bounced_invitation_does_not_put_the_address_in_the_contact_log_export(
    world: World, smtp_server: MailServer, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    bounce_firm_a_invitation(world, smtp_server, django_capture_on_commit_callbacks)

    # when
    exported = text_of(download(world.client(ANALYST), world, "contacts"))

    # then
    assert world.firm_a.business_id in exported
    assert FIRM_A_EMAIL not in exported
