"""The staff home and a survey's overview: the survey at a glance, and a link to every
function the user's permissions open (never decided by the name of a role)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import pipeline
from analytics.models import ExportJob
from config.roles import ADMINISTRATORS, FIELDWORK_MANAGERS
from respondents import rates
from respondents.models import Case, Wave
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.conftest import client_for, staff_user

pytestmark = pytest.mark.django_db


def links(page: str) -> set[str]:
    return set(re.findall(r'href="(/[^"]*)"', page))


def test_a_manager_sees_the_survey_at_a_glance_and_the_fieldwork_functions(
    survey: Survey,
) -> None:
    # given: the synthetic case (326 sampled firms) and a wave ending in ten days
    load_synthetic_case(survey)
    Wave.objects.create(
        survey=survey,
        name="Reminder",
        kind="reminder",
        starts_at=timezone.now() - dt.timedelta(days=3),
        ends_at=timezone.now() + dt.timedelta(days=10),
    )
    in_sample = Case.objects.filter(survey=survey).in_sample()
    complete = in_sample.filter(disposition="1.1").count()
    partial = in_sample.filter(disposition="1.2").count()

    # when
    page = client_for(staff_user(FIELDWORK_MANAGERS)).get(f"/manage/{survey.slug}/")

    # then
    text = page.content.decode()
    glance = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text.split('class="glance"')[1]))
    assert page.status_code == 200
    target = rates.target_responses(survey, in_sample.count())
    assert f"{complete + partial:,} / {target:,}" in glance
    assert f"{complete:,} complete, {partial:,} partial" in glance
    assert "10 days left" in glance
    assert "Not published yet" in glance
    assert "Your exports in progress" not in glance  # no download permission
    slug = survey.slug
    assert {f"/manage/{slug}/fieldwork/", f"/manage/{slug}/fieldwork/chase/"} <= links(text)
    assert f"/manage/{slug}/downloads/" not in links(text)
    assert "/manage/api-tokens/" not in links(text) and "/admin/" not in links(text)
    assert "/api/v1/docs/" not in links(text)  # the API serves results, which managers lack


def test_an_administrator_also_sees_versions_exports_and_the_admin_tools(survey: Survey) -> None:
    # given
    load_synthetic_case(survey)
    run = pipeline.recompute(survey, trigger="test")
    assert run is not None
    admin = staff_user(ADMINISTRATORS)
    admin.is_staff = True
    admin.save()
    ExportJob.objects.create(survey=survey, user=admin, what="microdata", format="sav")
    ExportJob.objects.create(survey=survey, user=staff_user(ADMINISTRATORS), what="codebook")

    # when
    text = client_for(admin).get(f"/manage/{survey.slug}/").content.decode()

    # then
    glance = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text.split('class="glance"')[1]))
    assert f"Version {run.number}" in glance and "provisional" in glance
    assert "Your exports in progress 1 " in glance  # only the user's own jobs
    assert {
        "/manage/api-tokens/",
        "/api/v1/docs/",
        "/admin/",
        f"/manage/{survey.slug}/downloads/",
    } <= links(text)


def test_links_follow_permissions_not_role_names(survey: Survey) -> None:
    # given: a user outside both roles who may only download
    analyst = staff_user(perms=("analytics.download_results",))

    # when
    text = client_for(analyst).get(f"/manage/{survey.slug}/").content.decode()

    # then
    assert f"/manage/{survey.slug}/downloads/" in links(text)
    assert "/manage/api-tokens/" in links(text)
    assert f"/manage/{survey.slug}/fieldwork/" not in links(text)
    assert f"/manage/{survey.slug}/frame/" not in links(text)


def test_staff_without_a_survey_function_are_told_to_ask_for_a_role(survey: Survey) -> None:
    # when
    home = client_for(staff_user()).get("/")
    overview = client_for(staff_user()).get(f"/manage/{survey.slug}/")

    # then
    assert home.status_code == 200
    assert "ask a survey administrator for a role" in home.content.decode()
    assert survey.title not in home.content.decode()
    assert overview.status_code == 403


def test_the_home_lists_each_survey_with_its_glance(survey: Survey) -> None:
    # given
    Survey.objects.create(slug="pilot", title="시범 조사")

    # when
    text = client_for(staff_user(FIELDWORK_MANAGERS)).get("/").content.decode()

    # then
    assert f'id="glance-{survey.slug}"' in text and 'id="glance-pilot"' in text
    assert f'href="/manage/{survey.slug}/"' in text


@pytest.mark.parametrize(("published", "expected"), [(False, 11), (True, 12)])
def test_the_overview_costs_a_fixed_number_of_queries(
    survey: Survey, published: bool, expected: int
) -> None:
    # given
    load_synthetic_case(survey)
    if published:
        assert pipeline.recompute(survey, trigger="test") is not None
    client = client_for(staff_user(ADMINISTRATORS))
    client.get(f"/manage/{survey.slug}/")  # warm the per-process caches

    # when
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/manage/{survey.slug}/")

    # then: session, user, permissions (2), survey, its next rounds; cases by disposition,
    # the last wave end, the latest version, the wave open now, the user's export jobs; with
    # a published version, also the wave whose official figures it is
    assert response.status_code == 200
    assert len(queries) == expected, [q["sql"][:120] for q in queries.captured_queries]
