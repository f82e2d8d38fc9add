from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from analytics import pipeline
from analytics.models import RecomputeRequest, WeightingSpec
from analytics.pipeline import current_spec
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case
from tests.analytics.test_weighting_second_pass import RAKED
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
    "trim_rounds": "10",
    "variance": "taylor",
    "replicates": "",
    "replicate_seed": "20250428",
    "editing_threshold": "0.001",
    "imputation": "",
    "imputation_classes": [],
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


def test_the_options_read_as_words_not_codes(survey: Survey, admin_user_client: Client) -> None:
    # when
    page = admin_user_client.get(f"/manage/{survey.slug}/weighting/").content.decode()

    # then: every choice has a label of its own, and the current settings are listed by them
    assert '<option value="poststratify">post-stratification</option>' in page
    assert '<option value="korn_graubard">Korn–Graubard (Clopper–Pearson)</option>' in page
    assert "centre the lone unit at zero, as survey 4.1.1 (R: adjust)" in page
    assert 'value="region_area"' in page and "region area" in page
    settings = page[page.index('id="current-settings"') :]
    assert "<dt>Stratum with one respondent</dt><dd>centre the lone unit at zero" in settings


def test_the_description_names_variables_by_their_labels(
    survey: Survey, admin_user_client: Client
) -> None:
    # given
    admin_user_client.post(f"/manage/{survey.slug}/weighting/", FORM)

    # when
    page = admin_user_client.get(f"/manage/{survey.slug}/weighting/").content.decode()

    # then
    assert "raking to size class, region area" in page
    assert "region_area" not in page.split('id="current-settings"')[0].split("<h1>")[1]


def margins_upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("margins.csv", text.encode(), content_type="text/csv")


def test_replicate_variance_is_chosen_on_the_page(
    survey: Survey, admin_user_client: Client
) -> None:
    form = {**FORM, "variance": "bootstrap", "replicates": "200", "replicate_seed": "7"}

    response = admin_user_client.post(f"/manage/{survey.slug}/weighting/", form)

    assert response.status_code == 302
    spec, _version = current_spec(survey)
    assert (spec.variance, spec.replicates, spec.replicate_seed) == ("bootstrap", 200, 7)
    page = admin_user_client.get(f"/manage/{survey.slug}/weighting/").content.decode()
    assert "Rao–Wu rescaled bootstrap variance, 200 replicates" in page


def test_an_uploaded_margins_file_becomes_the_controls_and_stays_until_forgotten(
    survey: Survey, admin_user_client: Client
) -> None:
    load_synthetic_case(survey)
    url = f"/manage/{survey.slug}/weighting/"
    totals = "variable,level,N\nregion,Busan,80000\nregion,Gyeonggi,70000\n"
    form = {**FORM, "margins": ["region"], "min_respondents": "2"}

    first = admin_user_client.post(url, {**form, "margins_file": margins_upload(totals)})
    kept = admin_user_client.post(url, form)
    kept_spec, _v = current_spec(survey)
    forgotten = admin_user_client.post(url, {**form, "forget_margins": "on"})

    assert first.status_code == kept.status_code == forgotten.status_code == 302
    assert kept_spec.margin_totals == {"region": {"Busan": 80000.0, "Gyeonggi": 70000.0}}
    assert current_spec(survey)[0].margin_totals == {}


def test_a_bad_margins_file_is_refused_with_its_reason(
    survey: Survey, admin_user_client: Client
) -> None:
    load_synthetic_case(survey)
    url = f"/manage/{survey.slug}/weighting/"
    form = {**FORM, "margins": ["region"]}
    cases = {
        "variable,level,N\nregion,Jeju,10\nregion,Busan,5\n": "which no sampled firm has",
        "variable,level,N\nregion,Busan,x\n": "Line 2: N must be a number.",
        "name,count\nBusan,3\n": "needs the columns variable, level, N",
        "variable,level,N\nsize_class,micro,10\n": "exactly the calibration variables",
    }

    for text, message in cases.items():
        response = admin_user_client.post(url, {**form, "margins_file": margins_upload(text)})

        assert response.status_code == 200 and message in response.content.decode(), message
    assert WeightingSpec.objects.filter(survey=survey).count() == 1  # the loader's version


def test_the_page_shows_the_controls_of_the_latest_run(
    survey: Survey, admin_user_client: Client
) -> None:
    load_synthetic_case(survey)
    pipeline.recompute(survey, trigger="test", spec=replace(RAKED))

    page = admin_user_client.get(f"/manage/{survey.slug}/weighting/").content.decode()

    assert 'id="controls"' in page and "93,695.6429" in page and "Gyeonggi" in page


def test_two_saves_get_consecutive_versions(survey: Survey) -> None:
    first = pipeline.save_spec(survey, pipeline.current_spec(survey)[0])
    second = pipeline.save_spec(survey, replace(pipeline.current_spec(survey)[0], ci_method="wald"))

    assert (first, second) == (1, 2)
    assert current_spec(survey)[0].ci_method == "wald"


def test_the_imputation_lines_and_the_editing_threshold_are_saved_and_checked(
    survey: Survey, admin_user_client: Client
) -> None:
    lines = "sales_krw_mn ratio frame.employees\r\n\r\nsf_level random\r\n"
    form = {**FORM, "imputation": lines, "editing_threshold": "0.02"}
    response = admin_user_client.post(f"/manage/{survey.slug}/weighting/", form)
    assert response.status_code == 302
    spec, _version = current_spec(survey)
    assert spec.imputation == ("sales_krw_mn ratio frame.employees", "sf_level random")
    assert spec.editing_threshold == 0.02
    assert spec.imputation_classes == ("size_class", "industry_group")

    refused = admin_user_client.post(
        f"/manage/{survey.slug}/weighting/", {**FORM, "imputation": "sf_level magic"}
    )
    assert refused.status_code == 200
    assert "sf_level magic" in refused.content.decode()
    assert current_spec(survey)[0].imputation == spec.imputation
