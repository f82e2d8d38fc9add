"""One realistic survey shared by a whole test module: built once, rolled back at the end.

The world is built inside a transaction that the module fixture opens and rolls back; each
test (the `db` fixture) and each request a test wraps in `isolated()` runs in a savepoint
inside it, so a POST that closes a wave or revokes a token never leaks into the next check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.test import Client, override_settings
from django.test.client import ClientHandler
from django.utils import timezone

from analytics import pipeline
from analytics.api import issue_token
from analytics.models import EditFlag, EstimateRun, ExportJob
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from respondents.models import Case, Stratum, Wave
from respondents.views.frame import _report_path
from surveys.models import EditQuery, Response, Survey
from tests import factories
from tests.analytics.test_recompute_synthetic import load_synthetic_case

ANONYMOUS = "anonymous"
FIRM_A = "firm A"
FIRM_B = "firm B"
STAFF = "staff, no group"
MANAGER = "fieldwork manager"
ADMIN = "survey administrator"
IDENTIFIED = "administrator + download_identified"
API_OWN = "API token, this survey"
API_OTHER = "API token, other survey"
ROLES = (ANONYMOUS, FIRM_A, FIRM_B, STAFF, MANAGER, ADMIN, IDENTIFIED, API_OWN, API_OTHER)
# Not in the matrix, for the properties: staff who work with firms but may not see their
# contact details, and staff with every permission except keying in answers.
CLERK = "fieldwork clerk, no contact details"
ANALYST = "analyst, downloads without contact details"
NO_KEYING = "every permission but manage_fieldwork"

FIRM_A_EMAIL = "alpha.contact@firm-a.example"
FIRM_A_PHONE = "031-777-1234"
FIRM_B_EMAIL = "beta.contact@firm-b.example"
FIRM_B_PHONE = "02-888-5678"
STAFF_PERMISSIONS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    STAFF: (None, ()),
    MANAGER: (FIELDWORK_MANAGERS, ()),
    ADMIN: (ADMINISTRATORS, ()),
    IDENTIFIED: (ADMINISTRATORS, ("analytics.download_identified",)),
    CLERK: (None, ("respondents.manage_fieldwork", "respondents.manage_frame")),
    ANALYST: (None, ("analytics.view_results", "analytics.download_results")),
    NO_KEYING: (
        None,
        (
            "respondents.manage_frame",
            "respondents.view_contact_details",
            "analytics.view_results",
            "analytics.download_results",
            "analytics.download_identified",
            "analytics.edit_weighting_spec",
            "surveys.load_questionnaire",
        ),
    ),
}


@dataclass(repr=False)
class World:
    survey: Survey
    other: Survey
    run: EstimateRun
    firm_a: Case
    firm_b: Case
    token_a: str
    code_a: str
    token_b: str
    code_b: str
    wave: Wave
    stratum: Stratum
    job: ExportJob
    report_name: str
    api_token_id: int
    media: Path
    flagged: Case  # a submitted response with an open edit flag
    query_token: str  # the link of a query to that firm, not answered
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    api_tokens: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"World({self.survey.slug}, firm A {self.firm_a.pk}, firm B {self.firm_b.pk})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis prints falsifying examples with this

    def client(self, role: str) -> Client:
        """A fresh client for the role: its session cookie or its API token, nothing else."""
        token = self.api_tokens.get(role)
        client = Client(headers={"Authorization": f"Bearer {token}"} if token else {})
        client.handler = shared_handler()
        client.cookies["django_language"] = "en"
        if role in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[role]
        return client


_HANDLER: list[ClientHandler] = []


def shared_handler() -> ClientHandler:
    """One handler for all clients: loading the middleware (WhiteNoise indexes every static
    file) takes a quarter of a second per new client."""
    if not _HANDLER:
        _HANDLER.append(ClientHandler(enforce_csrf_checks=False))
    return _HANDLER[0]


@contextmanager
def isolated() -> Iterator[None]:
    """Whatever happens inside is rolled back (a savepoint), so checks stay independent."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def staff_user(role: str) -> User:
    group, extra = STAFF_PERMISSIONS[role]
    user = User.objects.create_user(f"sec-{User.objects.count()}", password="x")
    if group:
        user.groups.add(Group.objects.get(name=group))
    for code in extra:
        app_label, codename = code.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _session_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _firm_session(token: str) -> str:
    client = Client()
    assert client.get(f"/r/{token}/").status_code == 302
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def sampled_firm(stratum: Stratum, **fields: Any) -> tuple[Case, str, str]:
    """A firm drawn into an existing stratum of the survey's design, with credentials."""
    survey = stratum.design.survey
    unit = factories.frame_unit(survey, **fields)
    case = Case.objects.create(
        survey=survey,
        stratum=stratum,
        frame_unit=unit,
        business_id=unit.business_id,
        selection_order=100_000 + unit.pk,
        disposition_at=timezone.now() - dt.timedelta(days=120),
    )
    token, code = case.issue_credentials()
    return case, token, code


def flagged_case(survey: Survey) -> tuple[Case, str]:
    """A respondent of the synthetic case with an open edit flag on its investment, and a
    query to it about its technologies, not yet answered."""
    response = Response.objects.filter(
        case__survey=survey, status="submitted", answers__has_key="invest_amount"
    ).order_by("pk")[0]
    EditFlag.objects.create(
        response=response,
        rule="invest_within_sales",
        severity="soft",
        item="invest_amount",
        values={"invest_amount": response.answers["invest_amount"]},
        message={"ko": "투자 의향 금액이 매출액에 비해 큽니다.", "en": "The investment is large."},
        score=0.3,
    )
    token, digest = EditQuery.new_token()
    EditQuery.objects.create(
        response=response,
        items=[
            {"item": "sf_tech", "rule": "adopter_tech", "message": {"ko": "확인", "en": "Check"}}
        ],
        token_hash=digest,
    )
    return response.case, token


def build_world(media: Path) -> World:
    survey = factories.shipped_questionnaire().survey
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None
    stratum = Stratum.objects.filter(design__survey=survey).order_by("pk").first()
    assert stratum is not None
    firm_a, token_a, code_a = sampled_firm(
        stratum, name="(주)알파정밀", email=FIRM_A_EMAIL, phone=FIRM_A_PHONE
    )
    firm_b, token_b, code_b = sampled_firm(
        stratum, name="(주)베타기계", email=FIRM_B_EMAIL, phone=FIRM_B_PHONE
    )
    other = Survey.objects.create(slug="other-survey", title="다른 조사")
    users = {role: staff_user(role) for role in STAFF_PERMISSIONS}
    wave = Wave.objects.create(
        survey=survey,
        name="Invitation",
        kind="invitation",
        starts_at=timezone.now() - dt.timedelta(days=10),
        ends_at=timezone.now() + dt.timedelta(days=10),
    )
    job_file = media / "exports" / "estimates.csv"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text("item,estimate\nsf_adopted,0.2\n")
    job = ExportJob.objects.create(
        survey=survey,
        user=users[ADMIN],
        what="estimates",
        format="csv",
        parameters={},
        status=ExportJob.Status.DONE,
        progress=1.0,
        file="exports/estimates.csv",
        filename="estimates.csv",
    )
    report_name = "0123456789abcdef0123456789abcdef"
    report = _report_path(survey, report_name)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("row,problem\n2,bad ksic\n")
    flagged, query_token = flagged_case(survey)
    own_token, own_plain = issue_token(name="ministry dashboard", surveys=[survey])
    _other_token, other_plain = issue_token(name="other dashboard", surveys=[other])
    world = World(
        survey=survey,
        other=other,
        run=run,
        firm_a=firm_a,
        firm_b=firm_b,
        token_a=token_a,
        code_a=code_a,
        token_b=token_b,
        code_b=code_b,
        wave=wave,
        stratum=stratum,
        job=job,
        report_name=report_name,
        api_token_id=own_token.pk,
        media=media,
        flagged=flagged,
        query_token=query_token,
        users=users,
        api_tokens={API_OWN: own_plain, API_OTHER: other_plain},
    )
    world.sessions = {role: _session_of(user) for role, user in users.items()}
    world.sessions[FIRM_A] = _firm_session(token_a)
    world.sessions[FIRM_B] = _firm_session(token_b)
    return world


@pytest.fixture(scope="module")
def world(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    media = tmp_path_factory.mktemp("media")
    media_override = override_settings(MEDIA_ROOT=media)
    media_override.enable()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            built = build_world(media)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            media_override.disable()
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
    media_override.disable()
