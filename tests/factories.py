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


def another_survey(slug: str = "another-survey") -> Survey:
    """A second survey with the shipped questionnaire."""
    return load_questionnaire(
        SHIPPED_FORM.read_bytes(), source_name=SHIPPED_FORM.name, survey_slug=slug
    ).survey


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


ANSWERS: dict[str, Any] = {
    "employees": 45,
    "sales_krw_mn": 12500.5,
    "importance": "very_important",
    "implementing": "yes",
    "sf_adopted": "yes",
    "sf_level": "basic",
    "sf_scope": "partial",
    "sf_tech": ["erp", "mes"],
    "data_collect": "yes",
    "data_analyze": "no",
    "main_area": "production_mgmt",
    "need_advance": "yes",
    "invest_own": "yes",
    "invest_amount": 300.0,
    "mfg_ai": "planned",
}


def submitted_response(
    survey: Survey, answers: dict[str, Any] | None = None, **unit_fields: Any
) -> Any:
    """A sampled firm's submitted response with the adopter's answers (or the given ones)."""
    from surveys.models import Response, get_form

    new = case(survey, **unit_fields)[0]
    values, _relevant = get_form(survey.questionnaire_id).evaluate(answers or ANSWERS)
    response = Response.objects.create(
        case=new,
        questionnaire_id=survey.questionnaire_id,
        answers=values,
        status="submitted",
        submitted_at=timezone.now(),
        reference=Response.new_reference(),
    )
    new.record_disposition("1.1", source="respondent")
    return response


def edit_flag(response: Any, rule: str = "employees_vs_register", **fields: Any) -> Any:
    """An edit flag on a submitted response, as the checking pipeline writes one."""
    from analytics.models import EditFlag

    item = fields.pop("item", "employees")
    values: dict[str, Any] = {
        "severity": "soft",
        "item": item,
        "values": {item: response.answers.get(item), f"frame.{item}": 20},
        "message": {
            "ko": f"{rule}: 응답이 모집단 명부 값과 크게 다릅니다.",
            "en": f"{rule}: the answer is far from the register's value.",
        },
        "score": 0.5,
    }
    values.update(fields)
    return EditFlag.objects.create(response=response, rule=rule, **values)
