"""Annual rounds: the next round of a survey, started from the last (methodology M).

A round is a survey of its own. It starts with a copy of what the last round settled: the
questionnaire version in use (its edit rules and statistics with it), the latest weighting
specification, the email templates, and the sample design's settings (not its draw). The
new year's frame, its mapping of changed business IDs and the draw follow on the round's
own pages. Roles are global groups, so there is nothing of them to copy.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from analytics.models import WeightingSpec
from respondents.models import MessageTemplate, SampleDesign
from surveys.models import EditRule, EditStatistic, QuestionnaireVersion, Survey


def start_next_round(
    previous: Survey, *, slug: str, title: str, title_en: str, year: int | None, user: Any
) -> Survey:
    """Create the round after `previous` with copies of its questionnaire, weighting
    specification (as version 1), email templates and design settings."""
    by = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        survey = Survey.objects.create(
            slug=slug,
            title=title,
            title_en=title_en,
            year=year,
            previous_round=previous,
            target_responses=previous.target_responses,
        )
        if previous.current_questionnaire_id is not None:
            survey.current_questionnaire = _copy_questionnaire(previous, survey, by)
            survey.save(update_fields=["current_questionnaire"])
        _copy_weighting(previous, survey, by)
        _copy_templates(previous, survey, by)
        _copy_design(previous, survey, by)
    return survey


def _copy_questionnaire(previous: Survey, survey: Survey, by: Any) -> QuestionnaireVersion:
    source = QuestionnaireVersion.objects.get(pk=previous.questionnaire_id)
    definition = {**source.definition, "form_id": survey.slug}
    version = QuestionnaireVersion.objects.create(
        survey=survey,
        version=source.version,
        title=survey.title,
        default_language=source.default_language,
        definition=definition,
        source_name=source.source_name,
        source=bytes(source.source),
        loaded_by=by,
    )
    rules = list(EditRule.objects.filter(questionnaire=source))
    statistics = list(EditStatistic.objects.filter(questionnaire=source))
    for rule in rules:
        rule.pk, rule.questionnaire = None, version
    for statistic in statistics:
        statistic.pk, statistic.questionnaire = None, version
    EditRule.objects.bulk_create(rules)
    EditStatistic.objects.bulk_create(statistics)
    return version


def _copy_weighting(previous: Survey, survey: Survey, by: Any) -> None:
    latest = WeightingSpec.objects.filter(survey=previous).order_by("-version").first()
    if latest is not None:
        WeightingSpec.objects.create(survey=survey, version=1, spec=latest.spec, created_by=by)


def _copy_templates(previous: Survey, survey: Survey, by: Any) -> None:
    MessageTemplate.objects.bulk_create(
        MessageTemplate(
            survey=survey,
            kind=template.kind,
            language=template.language,
            subject=template.subject,
            body=template.body,
            updated_by=by,
        )
        for template in MessageTemplate.objects.filter(survey=previous)
    )


def design_to_copy(previous: Survey) -> SampleDesign | None:
    """The round's drawn design, else its latest settings."""
    drawn = previous.designs.filter(drawn_at__isnull=False).first()
    return drawn or previous.designs.order_by("-pk").first()


def _copy_design(previous: Survey, survey: Survey, by: Any) -> None:
    """The last design's settings; a round drawn by permanent random numbers is followed by
    one coordinated with it, positively unless it chose otherwise (methodology M2)."""
    design = design_to_copy(previous)
    if design is None:
        return
    copy = design.copy_settings_to(survey, user=by)
    if copy.is_prn and copy.coordination == SampleDesign.Coordination.NONE:
        copy.coordination = SampleDesign.Coordination.POSITIVE
        copy.save(update_fields=["coordination"])
