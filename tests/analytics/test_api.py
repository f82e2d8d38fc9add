"""The read-only results API: token authentication, survey scoping, estimates without any
suppressed value, the OpenAPI schema, and the token pages."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from drf_spectacular.validation import validate_schema

from analytics import pipeline
from analytics.api import VALUE_FIELDS, issue_token
from analytics.models import ApiToken, Estimate, EstimateRun
from respondents.models import Wave
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture
def run(survey: Survey) -> EstimateRun:
    load_synthetic_case(survey)
    result = pipeline.recompute(survey, trigger="test")
    assert result is not None
    return result


@pytest.fixture
def other() -> Survey:
    return Survey.objects.create(slug="other-survey", title="다른 조사")


@pytest.fixture
def token(survey: Survey) -> str:
    return issue_token(name="ministry dashboard", surveys=[survey])[1]


def api(token: str | None, scheme: str = "Bearer") -> Client:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return Client(headers=headers)


def get(token: str | None, path: str, **params: Any) -> Any:
    return api(token).get(API + path, params)


# --- authentication ---------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused_with_401(survey: Survey) -> None:
    response = get(None, "/surveys/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_token_is_refused_with_401(survey: Survey, token: str) -> None:
    assert get(token + "x", "/surveys/").status_code == 401
    assert get("smf_nonsense", "/surveys/").status_code == 401
    assert api(token, "Basic").get(API + "/surveys/").status_code == 401


def test_a_revoked_token_is_refused_with_401(survey: Survey, token: str) -> None:
    stored = ApiToken.objects.get(token_hash=hashlib.sha256(token.encode()).hexdigest())
    assert stored.revoke()

    assert get(token, "/surveys/").status_code == 401
    assert not stored.revoke()


def test_the_token_scheme_works_as_well_as_bearer(survey: Survey, token: str) -> None:
    response = api(token, "Token").get(API + "/surveys/")

    assert response.status_code == 200


def test_a_session_login_does_not_open_the_api(survey: Survey) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("admin"))

    assert client.get(API + "/surveys/").status_code == 401


def test_only_the_hash_of_a_token_is_stored(survey: Survey) -> None:
    stored, plaintext = issue_token(name="t", surveys=[survey])

    assert stored.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert stored.prefix == plaintext[:8]
    assert not ApiToken.objects.filter(token_hash=plaintext).exists()


def test_last_use_is_recorded_at_most_once_a_minute(survey: Survey, token: str) -> None:
    stored = ApiToken.objects.get()
    assert stored.last_used_at is None

    get(token, "/surveys/")
    stored.refresh_from_db()
    first = stored.last_used_at
    get(token, "/surveys/")
    stored.refresh_from_db()

    assert first is not None and stored.last_used_at == first
    earlier = timezone.now() - dt.timedelta(minutes=2)
    ApiToken.objects.filter(pk=stored.pk).update(last_used_at=earlier)
    get(token, "/surveys/")
    stored.refresh_from_db()
    assert stored.last_used_at is not None and stored.last_used_at > earlier


# --- scoping ----------------------------------------------------------------------------------


def test_a_token_lists_only_its_own_surveys(
    survey: Survey, other: Survey, run: EstimateRun, token: str
) -> None:
    response = get(token, "/surveys/")

    assert response.json() == [
        {
            "slug": survey.slug,
            "title": survey.title,
            "title_en": survey.title_en,
            "latest_run": run.number,
        }
    ]


def test_another_survey_is_not_found_as_if_it_did_not_exist(
    survey: Survey, other: Survey, token: str
) -> None:
    for path in ("/", "/runs/", "/runs/latest/", "/runs/1/estimates/", "/fieldwork/"):
        hidden = get(token, f"/surveys/{other.slug}{path}")
        missing = get(token, f"/surveys/no-such-survey{path}")

        assert hidden.status_code == missing.status_code == 404, path
        assert hidden.json() == missing.json()


# --- versions and estimates -------------------------------------------------------------------


def test_published_versions_say_what_they_are(survey: Survey, run: EstimateRun, token: str) -> None:
    wave = Wave.objects.create(
        survey=survey, name="1차", kind="invitation", starts_at=timezone.now(), official_run=run
    )
    EstimateRun.objects.create(survey=survey, number=run.number + 1)  # still running

    response = get(token, f"/surveys/{survey.slug}/runs/")

    body = response.json()
    assert body["count"] == 1
    version = body["results"][0]
    assert version["number"] == run.number
    assert version["respondents"] == 209 and version["cases"] == 326
    assert version["response_rate_rr3"] == pytest.approx(0.6291132181, abs=1e-10)
    assert version["official_for_waves"] == [wave.pk]
    assert version["weighting"] == "조정 집단: 층; 응답 기업 2개 미만이면 병합"  # Korean by default
    assert version["confidence_level"] == 0.95


def test_the_latest_version_is_a_shortcut(survey: Survey, run: EstimateRun, token: str) -> None:
    newer = pipeline.recompute(survey, trigger="test", force=True)
    assert newer is not None

    latest = get(token, f"/surveys/{survey.slug}/runs/latest/").json()
    estimates = get(
        token, f"/surveys/{survey.slug}/runs/latest/estimates/", item="sf_adopted", domain="all"
    ).json()

    assert latest["number"] == newer.number
    assert estimates["count"] == 2
    assert get(token, f"/surveys/{survey.slug}/runs/99/").status_code == 404


def test_estimates_are_filtered_by_item_and_domain(
    survey: Survey, run: EstimateRun, token: str
) -> None:
    path = f"/surveys/{survey.slug}/runs/{run.number}/estimates/"

    response = get(token, path, item="sf_adopted", option="yes", domain="size_class")

    rows = {row["domain_value"]: row for row in response.json()["results"]}
    assert set(rows) == {"micro", "small", "medium", "midsize"}
    small = rows["small"]
    assert small["estimate"] == pytest.approx(0.3241546885, abs=1e-9)
    assert small["se"] == pytest.approx(0.06253463879, abs=1e-10)
    assert small["quality"] == "ok" and small["reasons"] == [] and small["n"] == 55
    overall = get(token, path, item="sf_adopted", option="yes", domain="all").json()["results"]
    assert [r["estimate"] for r in overall] == [pytest.approx(0.1988641096, abs=1e-10)]


def test_numbers_are_filtered_by_statistic(survey: Survey, run: EstimateRun, token: str) -> None:
    path = f"/surveys/{survey.slug}/runs/{run.number}/estimates/"

    response = get(token, path, item="invest_amount", statistic="mean", domain="all")

    [mean] = response.json()["results"]
    assert mean["estimate"] == pytest.approx(432.5741287, abs=1e-6)
    assert mean["option"] == ""


def test_a_bad_filter_is_a_400(survey: Survey, run: EstimateRun, token: str) -> None:
    path = f"/surveys/{survey.slug}/runs/{run.number}/estimates/"

    response = get(token, path, statistic="median")

    assert response.status_code == 400
    assert "statistic" in response.json()


def test_suppressed_values_never_leave_the_server(
    survey: Survey, run: EstimateRun, token: str
) -> None:
    # given: the estimates stored with suppressed cells (their SE can equal a published
    # cell's: the two options of a yes/no question share it)
    suppressed = Estimate.objects.filter(run=run, suppressed=True)
    values = suppressed.values_list("estimate", flat=True)
    published = {
        value
        for row in Estimate.objects.filter(run=run, suppressed=False).values_list(*VALUE_FIELDS)
        for value in row
    }
    hidden = [v for v in values if v is not None and len(repr(v)) > 12 and v not in published]
    assert suppressed.count() > 30 and hidden

    # when
    response = get(token, f"/surveys/{survey.slug}/runs/{run.number}/estimates/", limit=10000)

    # then
    rows = response.json()["results"]
    assert len(rows) == Estimate.objects.filter(run=run).count()
    for row in rows:
        if row["suppressed"]:
            assert all(row[field] is None for field in VALUE_FIELDS), row
            assert row["quality"] == "suppressed" and row["reasons"], row
    body = response.content.decode()
    assert not [value for value in hidden if repr(value) in body]


def test_a_suppressed_cell_carries_its_reasons(
    survey: Survey, run: EstimateRun, token: str
) -> None:
    path = f"/surveys/{survey.slug}/runs/{run.number}/estimates/"

    response = get(token, path, item="sf_level", option="advanced", domain="all")

    [row] = response.json()["results"]
    assert row["suppressed"] is True
    assert row["reasons"] == ["CONFIDENTIALITY_MIN_CELL", "NCHS_REL_WIDTH_GT_130"]
    assert row["n"] == 75 and row["grade"] == ""


def test_published_cells_carry_their_quality_grade(
    survey: Survey, run: EstimateRun, token: str
) -> None:
    path = f"/surveys/{survey.slug}/runs/{run.number}/estimates/"

    [overall] = get(token, path, item="sf_adopted", option="yes", domain="all").json()["results"]
    [micro] = get(
        token, path, item="sf_adopted", option="yes", domain="size_class", domain_value="micro"
    ).json()["results"]

    # CV 13.6 % (C, good) and 37.0 % (E, use with caution: published, with its warning)
    assert (overall["grade"], overall["quality"]) == ("C", "ok")
    assert (micro["grade"], micro["quality"], micro["suppressed"]) == ("E", "caution", False)


# --- fieldwork --------------------------------------------------------------------------------


def test_the_fieldwork_status_counts_dispositions_and_rates(
    survey: Survey, run: EstimateRun, token: str
) -> None:
    response = get(token, f"/surveys/{survey.slug}/fieldwork/")

    body = response.json()
    assert body["survey"] == survey.slug
    total = body["rows"][0]
    assert (total["domain"], total["cases"]) == ("all", 326)
    assert total["counts"] == {"I": 188, "P": 21, "R": 35, "NC": 22, "O": 9, "U": 26, "NE": 25}
    assert total["rates"]["RR3"] == pytest.approx(0.6291132181, abs=1e-10)
    assert total["rates"]["e"] == pytest.approx(0.9166666667, abs=1e-10)


# --- schema and documentation -----------------------------------------------------------------


def test_the_openapi_schema_is_served_and_valid(survey: Survey) -> None:
    response = Client().get(API + "/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert "/api/v1/surveys/{survey}/runs/{number}/estimates/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_the_schema_generates_without_warnings(survey: Survey, tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    assert "openapi: 3" in out.read_text()


def test_the_documentation_page_lists_every_endpoint(survey: Survey) -> None:
    response = Client(headers={"Accept-Language": "en"}).get(API + "/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/api/v1/surveys/{survey}/runs/latest/estimates/" in page
    assert "/api/v1/surveys/{survey}/fieldwork/" in page
    assert "Authorization: Bearer" in page


# --- token pages ------------------------------------------------------------------------------


def manager(*codenames: str) -> Client:
    user = User.objects.create_user(f"manager{User.objects.count()}")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.cookies["django_language"] = "en"
    client.force_login(user)
    return client


def test_a_new_token_is_shown_once_and_works(survey: Survey, run: EstimateRun) -> None:
    client = manager("download_results")

    response = client.post("/manage/api-tokens/", {"name": "부처 대시보드", "surveys": [survey.pk]})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    plaintext = response.context["issued"]["plaintext"]
    assert plaintext in response.content.decode()
    assert plaintext not in client.get("/manage/api-tokens/").content.decode()
    assert get(plaintext, "/surveys/").json()[0]["slug"] == survey.slug
    assert ApiToken.objects.get().created_by is not None


def test_a_token_is_revoked_from_its_page(survey: Survey, token: str) -> None:
    stored = ApiToken.objects.get()
    client = manager("download_results")

    response = client.post(f"/manage/api-tokens/{stored.pk}/revoke/")

    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert get(token, "/surveys/").status_code == 401


def test_the_token_pages_need_the_download_permission(survey: Survey, token: str) -> None:
    stored = ApiToken.objects.get()
    refused = manager("view_results")

    assert refused.get("/manage/api-tokens/").status_code == 403
    assert refused.post(f"/manage/api-tokens/{stored.pk}/revoke/").status_code == 403
    anonymous = Client().get("/manage/api-tokens/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    stored.refresh_from_db()
    assert stored.revoked_at is None


# --- titles and documentation -----------------------------------------------------------------


def test_the_english_title_is_filled_from_the_questionnaire(survey: Survey, token: str) -> None:
    # when
    found = get(token, f"/surveys/{survey.slug}/").json()

    # then
    assert found["title_en"] == "2024 Smart Manufacturing Innovation Status Survey"
    assert found["title"] == "2024 스마트제조혁신 실태조사"


def test_the_docs_show_each_response_schema_and_render_markdown(survey: Survey) -> None:
    # when
    page = Client(headers={"Cookie": "django_language=en"}).get("/api/v1/docs/")
    text = page.content.decode()

    # then: the versions list's fields, nested ones included, from the OpenAPI schema
    assert page.status_code == 200
    runs = text[text.index('id="op-surveys_runs_list-200"') :]
    runs = runs[: runs.index("</table>")]
    for field in ("count", "results[].number", "results[].wave.name", "results[].weighting"):
        assert f"<code>{field}</code>" in runs
    assert "Version number, increasing." in runs
    # Markdown: code spans and emphasis in the estimates' description
    assert "<code>domain_value</code>" in text and "<strong>suppressed</strong>" in text
