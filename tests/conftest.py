from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from surveys.models import Survey
from tests import factories
from tests.services import smtp_server, worker  # noqa: F401 (fixtures)


@pytest.fixture
def survey(db: None) -> Survey:
    return factories.shipped_questionnaire().survey


@pytest.fixture
def respondent(survey: Survey, client: Client) -> factories.Respondent:
    """A sampled firm signed in through its personal link."""
    case, token, code = factories.case(survey)
    client.cookies["django_language"] = "en"
    response = client.get(f"/r/{token}/")
    assert response.status_code == 302
    return factories.Respondent(case=case, token=token, code=code, client=client)


@pytest.fixture
def colleague(respondent: factories.Respondent) -> Client:
    """Another person of the same firm, in another browser, through the same link."""
    other = Client()
    other.cookies["django_language"] = "en"
    assert other.get(f"/r/{respondent.token}/").status_code == 302
    return other


@pytest.fixture(autouse=True)
def _fresh_form_cache() -> None:
    # Questionnaire versions (and their frames' class statistics) are cached per process by
    # primary key; a test database that reuses keys must not see another test's.
    from surveys.edits import forget_statistics
    from surveys.models import _FORMS, _surveys

    _FORMS.clear()
    _surveys.clear()
    forget_statistics()


@pytest.fixture(autouse=True)
def _fast_mail(settings: Any) -> None:
    settings.EMAIL_RATE_PER_SECOND = 1000


@pytest.fixture(autouse=True)
def _api_rates_out_of_the_way(settings: Any) -> None:
    # Throttle counts live in Redis across tests; tests/analytics/test_api_throttling.py
    # sets real limits on addresses and tokens of its own.
    settings.API_RATE_PER_TOKEN = settings.API_RATE_PER_ADDRESS = "1000000/minute"


@pytest.fixture(autouse=True)
def _tasks_in_process() -> None:
    # Tasks run in-process unless a test asks for the real `worker` fixture.
    from config.celery import app

    app.conf.task_always_eager = True


def staff_user(role: str | None = None, *, perms: tuple[str, ...] = (), name: str = "") -> Any:
    """A new staff user in a role group (or none), with extra "app_label.codename" perms."""
    from django.contrib.auth.models import Group, Permission, User

    user = User.objects.create_user(name or f"user{User.objects.count() + 1}", password="x")
    if role:
        user.groups.add(Group.objects.get(name=role))
    for code in perms:
        app_label, codename = code.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def client_for(user: Any = None) -> Client:
    """A client in English, signed in as the user (anonymous for None)."""
    client = Client()
    client.cookies["django_language"] = "en"
    if user is not None:
        client.force_login(user)
    return client


def login_as(role: str | None, *, perms: tuple[str, ...] = ()) -> Client:
    """A client signed in as a new staff user in a role group (or none), with extra perms."""
    return client_for(staff_user(role, perms=perms))


@pytest.fixture
def manager_client(db: None) -> Client:
    from config.roles import FIELDWORK_MANAGERS

    return login_as(FIELDWORK_MANAGERS)


@pytest.fixture
def admin_user_client(db: None) -> Client:
    from config.roles import ADMINISTRATORS

    return login_as(ADMINISTRATORS)


@pytest.fixture(autouse=True)
def _english_outside_requests() -> Any:
    # Messages built outside a request (imports, commands) read in English in the tests;
    # pages follow the client's language (Korean unless a test sets the cookie).
    from django.utils import translation

    with translation.override("en"):
        yield
