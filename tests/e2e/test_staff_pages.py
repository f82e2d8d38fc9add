"""Every staff page, as a fieldwork manager and as a survey administrator, at 1280 and 390
pixels wide in headless Chromium: it loads, axe-core finds no serious or critical problem,
and the page itself never scrolls sideways (wide tables scroll inside their own box).

The pages are the URL patterns each role may open (tests/security/test_permission_matrix.py
decides who may open what), less the downloads; a new page joins this test by itself. The
survey is the security tests' realistic world, committed once for the module and served by
a live server thread; the database is flushed afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.testcases import LiveServerThread
from playwright.sync_api import Browser, BrowserContext

from tests.e2e.conftest import axe_violations
from tests.security.conftest import ADMIN, MANAGER, World, build_world
from tests.security.test_permission_matrix import (
    EXPECTATIONS,
    OK,
    PATTERNS,
    Pattern,
    arguments,
    upload_of,
    url_of,
)

# django_db: pytest-django sets up the test database only for modules that ask for it; each
# test's own transaction is empty (the pages are read by the server's thread).
pytestmark = [pytest.mark.browser, pytest.mark.django_db]

ROLES = (MANAGER, ADMIN)
WIDTHS = (1280, 390)
# Patterns that answer with a file or JSON, not a page.
DOWNLOADS = {
    "respondents:frame_report",
    "respondents:sample_export",
    "respondents:letters_pdf",
    "respondents:rates_csv",
    "respondents:chase_csv",
    "respondents:import_template",
    "analytics:export_job_status",
    "analytics:export_job_file",
    "analytics:edits_export",
    "respondents:wave_progress",  # a fragment the waves page polls
}


# The outermost elements that reach past the right edge of the screen.
WIDER_THAN_THE_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= width + 1)
    .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`).slice(0, 5);
}"""


def staff_pages(role: str) -> list[Pattern]:
    """The staff pages a role may open: GET answers 200 in the permission matrix."""
    return [
        p
        for p in PATTERNS
        if p.key in EXPECTATIONS
        and p.key not in DOWNLOADS
        and (p.route.startswith("manage/") or p.key in ("home", "api:docs"))
        and EXPECTATIONS[p.key].get.get(role) == OK
    ]


CASES = [(role, width, p) for role in ROLES for width in WIDTHS for p in staff_pages(role)]


@dataclass
class Site:
    url: str
    world: World


@pytest.fixture(scope="module")
def site(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    media = tmp_path_factory.mktemp("media")
    with override_settings(MEDIA_ROOT=media), django_db_blocker.unblock():
        try:
            world = build_world(media)
            upload_of(world)  # committed here: the server's thread reads it
            server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
            server.daemon = True
            server.start()
            server.is_ready.wait()
            if server.error:
                raise server.error
            yield Site(f"http://127.0.0.1:{server.port}", world)
            server.terminate()
            server.join()
        finally:
            # The world was committed for the server's thread: leave an empty database, as
            # a transactional test does, and no session of the server's threads behind.
            call_command("flush", verbosity=0, interactive=False)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close()


_contexts: dict[tuple[str, int], BrowserContext] = {}
_lock = threading.Lock()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, site: Site) -> Iterator[Any]:
    """A browser context per role and width, signed in with the role's session cookie."""

    def context(role: str, width: int) -> BrowserContext:
        with _lock:
            if (role, width) not in _contexts:
                made = browser.new_context(
                    viewport={"width": width, "height": 900}, locale="ko-KR", bypass_csp=True
                )
                made.add_cookies(
                    [
                        {"name": "sessionid", "value": site.world.sessions[role], "url": site.url},
                        {"name": "django_language", "value": "ko", "url": site.url},
                    ]
                )
                _contexts[(role, width)] = made
            return _contexts[(role, width)]

    yield context
    for made in _contexts.values():
        made.close()
    _contexts.clear()


@pytest.mark.parametrize(
    ("role", "width", "pattern"), CASES, ids=[f"{r}-{w}-{p.key}" for r, w, p in CASES]
)
def test_every_staff_page_is_accessible_and_fits_the_screen(
    site: Site, signed_in: Any, role: str, width: int, pattern: Pattern
) -> None:
    # given
    page = signed_in(role, width).new_page()
    path = url_of(pattern, arguments(pattern, site.world))

    # when
    response = page.goto(site.url + path)

    # then
    try:
        assert response is not None and response.status == 200, (path, response)
        assert "text/html" in response.headers.get("content-type", ""), path
        assert page.locator("h1").count() == 1, path
        violations = [
            (v["id"], [n["target"] for n in v["nodes"][:3]]) for v in axe_violations(page)
        ]
        assert violations == [], (path, violations)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, (path, width, overflow, page.evaluate(WIDER_THAN_THE_SCREEN))
    finally:
        page.close()
