"""The questionnaire versions of a survey and the union of their questions."""

from __future__ import annotations

from dataclasses import dataclass

from surveys.models import QuestionnaireVersion, Survey, get_form
from surveys.questionnaire import Form, Question


@dataclass(frozen=True)
class Version:
    pk: int
    label: str
    form: Form


def survey_versions(survey: Survey) -> list[Version]:
    """Every questionnaire version of the survey, the newest first."""
    rows = QuestionnaireVersion.objects.filter(survey=survey).order_by("-loaded_at", "-pk")
    return [Version(pk, label, get_form(pk)) for pk, label in rows.values_list("pk", "version")]


def union_questions(survey: Survey) -> dict[str, Question]:
    """Each question name with its newest definition; newest version's order first."""
    questions: dict[str, Question] = {}
    for version in survey_versions(survey):
        for name, question in version.form.questions.items():
            questions.setdefault(name, question)
    return questions
