from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from analytics.models import EstimateRun
from surveys.models import Survey
from tests.analytics.test_recompute_synthetic import load_synthetic_case

pytestmark = pytest.mark.django_db


def test_the_command_publishes_a_version_with_its_timings(survey: Survey) -> None:
    load_synthetic_case(survey)
    out = io.StringIO()

    call_command("recompute", survey.slug, stdout=out)

    run = EstimateRun.objects.get(survey=survey)
    assert run.trigger == "command" and run.status == "published"
    assert f"Version {run.number}: 209 respondents" in out.getvalue()


def test_raking_on_the_command_line_reproduces_the_size_margin(survey: Survey) -> None:
    load_synthetic_case(survey)

    call_command(
        "recompute",
        survey.slug,
        "--calibration",
        "raking",
        "--margins",
        "size_class",
        stdout=io.StringIO(),
    )

    run = EstimateRun.objects.get(survey=survey)
    assert run.spec["calibration"] == "raking"
    assert run.diagnostics["calibration"] == ["raking"]


def test_a_survey_without_a_sample_is_a_clear_error(survey: Survey) -> None:
    with pytest.raises(CommandError, match="no drawn sample"):
        call_command("recompute", survey.slug, stdout=io.StringIO())


def test_an_unknown_margin_is_refused(survey: Survey) -> None:
    load_synthetic_case(survey)

    with pytest.raises(CommandError, match="not a frame variable"):
        call_command("recompute", survey.slug, "--calibration", "raking", "--margins", "colour")
