from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from analytics.models import EstimateRun
from respondents.models import Case, Wave
from surveys.models import Response

pytestmark = pytest.mark.django_db


def test_the_demo_builds_a_survey_in_the_field_and_prints_working_links() -> None:
    out = io.StringIO()

    call_command("demo", rows=4000, sample=400, stdout=out)

    text = out.getvalue()
    assert "manager / manager-demo-2024" in text and "admin / admin-demo-2024" in text
    assert Case.objects.in_sample().count() == 400
    assert Response.objects.filter(status="submitted").exists()
    waves = list(Wave.objects.order_by("starts_at"))
    assert len(waves) == 4 and all(w.official_run for w in waves[:3])
    assert EstimateRun.objects.filter(status="published").count() >= 4
    latest = EstimateRun.objects.filter(status="published").order_by("-number").first()
    assert latest is not None and latest.spec["variance"] == "bootstrap"
    assert latest.diagnostics["controls"]["source"] == "sample"
    link = next(line.split()[-1] for line in text.splitlines() if "/r/" in line)
    assert Client().get(link.replace("http://127.0.0.1:8000", ""), follow=True).status_code == 200
    manager = Client()
    signed_in = manager.post(
        "/accounts/login/", {"username": "manager", "password": "manager-demo-2024"}
    )
    assert signed_in.status_code == 302
    assert manager.get("/manage/smart_manufacturing/fieldwork/").status_code == 200
    assert User.objects.get(username="admin").has_perm("analytics.download_identified")


def test_running_the_demo_twice_keeps_the_first_survey() -> None:
    call_command("demo", rows=4000, sample=400, stdout=io.StringIO())
    cases = set(Case.objects.values_list("pk", flat=True))

    call_command("demo", rows=4000, sample=400, stdout=io.StringIO())

    assert set(Case.objects.values_list("pk", flat=True)) == cases
