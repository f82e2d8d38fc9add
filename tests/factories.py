"""Test data builders: a survey with the shipped questionnaire, frame units, cases."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from respondents.models import Case, FrameUnit, SampleDesign, Stratum
from surveys.models import QuestionnaireVersion, Survey
from surveys.xlsform import load_questionnaire

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FORM = ROOT / "surveys" / "questionnaires" / "smart_manufacturing.xlsx"
_ids = itertools.count(1)


def shipped_questionnaire() -> QuestionnaireVersion:
    return load_questionnaire(SHIPPED_FORM.read_bytes(), source_name=SHIPPED_FORM.name)


def business_id(number: int) -> str:
    digits = f"{number:010d}"
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def frame_unit(survey: Survey, **fields: Any) -> FrameUnit:
    number = next(_ids)
    values: dict[str, Any] = {
        "business_id": business_id(1_000_000 + number),
        "name": f"(주)테스트제조{number}",
        "ksic": "29199",
        "size_class": "small",
        "region": "Gyeonggi",
        "employees": 20,
        "email": f"firm{number}@example.com",
        "source_row": number + 1,
    }
    values.update(fields)
    return FrameUnit.objects.create(survey=survey, **values)


def design(survey: Survey, **fields: Any) -> SampleDesign:
    values: dict[str, Any] = {
        "strata_variables": ["size_class"],
        "allocation": "proportional",
        "sample_size": 10,
        "seed": 1,
        "drawn_at": timezone.now(),
    }
    values.update(fields)
    return SampleDesign.objects.create(survey=survey, **values)


def stratum(sample_design: SampleDesign, key: str = "small", **fields: Any) -> Stratum:
    values: dict[str, Any] = {
        "values": {"size_class": key},
        "population": 1000,
        "allocated": 10,
        "sample_size": 10,
    }
    values.update(fields)
    return Stratum.objects.get_or_create(design=sample_design, key=key, defaults=values)[0]


def case(survey: Survey, *, credentials: bool = True, **fields: Any) -> tuple[Case, str, str]:
    """A sampled case; returns it with its link token and access code."""
    sample_design = survey.designs.filter(drawn_at__isnull=False).first() or design(survey)
    unit = frame_unit(survey, **fields)
    new = Case.objects.create(
        survey=survey,
        stratum=stratum(sample_design, unit.size_class),
        frame_unit=unit,
        business_id=unit.business_id,
        selection_order=unit.pk,
        # drawn well before fieldwork, as in a real survey
        disposition_at=timezone.now() - dt.timedelta(days=120),
    )
    token, code = new.issue_credentials() if credentials else ("", "")
    return new, token, code


@dataclass
class Respondent:
    case: Case
    token: str
    code: str
    client: Any


def submitted_case(survey: Survey) -> Case:
    """A sampled firm whose (empty) response was submitted and classified complete."""
    from surveys.models import Response

    new = case(survey)[0]
    Response.objects.create(
        case=new,
        questionnaire_id=survey.questionnaire_id,
        status="submitted",
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
    )
    new.record_disposition("1.1", source="respondent")
    return new
