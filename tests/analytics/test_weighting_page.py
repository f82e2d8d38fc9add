from __future__ import annotations

import pytest
from django.test import Client

from analytics.models import RecomputeRequest, WeightingSpec
from analytics.pipeline import current_spec
from surveys.models import Survey
from tests.conftest import login_as

pytestmark = pytest.mark.django_db

FORM = {
    "classes": [],
    "min_respondents": "3",
    "max_adjustment": "",
    "partials_are_respondents": "on",
    "calibration": "raking",
    "margins": ["size_class", "region_area"],
    "bound_lower": "0.3",
    "bound_upper": "3",
    "trim_lower": "",
    "trim_upper": "",
    "lonely_psu": "adjust",
    "ci_method": "logit",
    "domain_variables": [],
    "domain_questions": "sf_adopted",
    "min_n": "5",
    "nchs_min_n": "30",
    "nchs_max_width": "0.3",
    "rse_caution": "0.25",
    "rse_suppress": "0.5",
    "min_df": "8",
}


def test_an_administrator_saves_a_new_spec_version_and_the_estimates_are_recomputed(
    survey: Survey, admin_user_client: Client
) -> None:
    response = admin_user_client.post(f"/manage/{survey.slug}/weighting/", FORM)

    assert response.status_code == 302
    spec, version = current_spec(survey)
    assert version == 1 and spec.calibration == "raking" and spec.min_respondents == 3
    assert spec.margins == ("size_class", "region_area")
    assert RecomputeRequest.objects.filter(survey=survey).exists()


def test_an_inconsistent_spec_is_refused_with_a_message(
    survey: Survey, admin_user_client: Client
) -> None:
    response = admin_user_client.post(f"/manage/{survey.slug}/weighting/", {**FORM, "margins": []})

    assert response.status_code == 200
    assert "calibration needs at least one margin" in response.content.decode()
    assert not WeightingSpec.objects.exists()


def test_managers_neither_see_nor_change_the_spec(survey: Survey, manager_client: Client) -> None:
    page = manager_client.get(f"/manage/{survey.slug}/weighting/")
    refused = manager_client.post(f"/manage/{survey.slug}/weighting/", FORM)

    assert page.status_code == 403
    assert refused.status_code == 403
    assert not WeightingSpec.objects.exists()


def test_a_viewer_of_results_sees_the_spec_but_cannot_change_it(survey: Survey) -> None:
    viewer = login_as(None, perms=("analytics.view_results",))

    page = viewer.get(f"/manage/{survey.slug}/weighting/")
    refused = viewer.post(f"/manage/{survey.slug}/weighting/", FORM)

    assert page.status_code == 200 and "classes: strata" in page.content.decode()
    assert refused.status_code == 403


def test_staff_without_results_access_cannot_see_it(survey: Survey) -> None:
    assert login_as(None).get(f"/manage/{survey.slug}/weighting/").status_code == 403
