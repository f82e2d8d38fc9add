"""Every staff page runs a fixed number of queries, whatever the number of cases: the count
is pinned here (bench/bench_pages.py times the same pages at 5,000 and 163,273 cases)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from analytics import pipeline
from config.roles import ADMINISTRATORS
from respondents import mailing
from respondents.models import Case, Wave
from surveys.models import Survey
from tests import factories
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db

# Queries of one warm request, signed in as a staff administrator: the session, the user and
# the permissions (3 to 4) come first in each; an admin list then counts, lists and fetches
# the related rows of the shown page (one query per relation).
PAGES = {
    "/": 12,
    "frame/": 8,
    "frame/upload/": 6,
    "design/": 7,
    "sample/": 9,
    "sample/?q=0": 9,
    "credentials/": 7,
    "fieldwork/": 13,
    "fieldwork/?weighted=1": 13,
    "fieldwork/chase/": 8,
    "waves/": 7,
    "waves/{wave}/progress/": 7,
    "templates/reminder/ko/": 6,
    "cases/{case}/": 13,
    "cases/{silent}/key/phone/": 6,
    "imports/": 5,
    "editing/": 10,
    "weighting/": 8,
    "results/": 8,
    "results/sf_adopted/": 9,
    "downloads/": 8,
    "edits/": 8,
    "edits/2024.1/": 8,
    "/manage/api-tokens/": 6,
    "/api/v1/docs/": 2,
    "/manage/questionnaires/upload/": 5,
    "/admin/": 5,
    "/admin/respondents/case/": 7,
    "/admin/respondents/frameunit/": 6,
    "/admin/respondents/dispositionevent/": 7,
    "/admin/respondents/message/": 6,
    "/admin/surveys/response/": 7,
    "/admin/analytics/estimaterun/": 8,
}


@pytest.fixture
def world(survey: Survey) -> dict[str, Any]:
    load_synthetic_case(survey)
    start = timezone.now() - dt.timedelta(days=30)
    first = Wave.objects.create(
        survey=survey,
        name="초청",
        kind="invitation",
        starts_at=start,
        ends_at=start + dt.timedelta(days=20),
    )
    Wave.objects.create(
        survey=survey, name="독려", kind="reminder", starts_at=start + dt.timedelta(days=20)
    )
    pipeline.close_wave(first)
    mailing.queue_wave(first)
    case = Case.objects.filter(survey=survey, disposition="1.1").order_by("pk").first()
    assert case is not None
    case.log_contact("phone", "reached")
    silent = Case.objects.filter(survey=survey, response__isnull=True).order_by("pk").first()
    assert silent is not None
    silent.record_disposition("2.21", source="manager")  # an event since the settled counts
    user = staff_user(ADMINISTRATORS)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return {
        "survey": survey,
        "wave": first,
        "case": case,
        "silent": silent,
        "client": client_for(user),
    }


def url(world: dict[str, Any], page: str) -> str:
    path = page.format(wave=world["wave"].pk, case=world["case"].pk, silent=world["silent"].pk)
    return path if path.startswith("/") else f"/manage/{world['survey'].slug}/{path}"


def queries(client: Client, path: str, django_assert_num_queries: Any, expected: int) -> None:
    assert client.get(path).status_code == 200, path  # warm: caches of this process
    with django_assert_num_queries(expected):
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_each_staff_page_runs_a_fixed_number_of_queries(
    world: dict[str, Any], page: str, django_assert_num_queries: Any
) -> None:
    # given / when / then: the pinned count
    queries(world["client"], url(world, page), django_assert_num_queries, PAGES[page])

    # and with more cases, more history and more emails: the same count
    stratum = world["case"].stratum
    for _ in range(30):
        unit = factories.frame_unit(world["survey"])
        extra = Case.objects.create(
            survey=world["survey"],
            stratum=stratum,
            frame_unit=unit,
            business_id=unit.business_id,
            selection_order=unit.pk,
        )
        extra.record_disposition("2.21", source="manager")
        extra.log_contact("phone", "no_answer")
    queries(world["client"], url(world, page), django_assert_num_queries, PAGES[page])
