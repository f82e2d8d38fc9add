from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from .questionnaire import Form


class Survey(models.Model):
    slug = models.SlugField(_("survey ID"), max_length=64, unique=True)
    title = models.CharField(_("title"), max_length=200)
    title_en = models.CharField(_("English title"), max_length=200, blank=True)
    target_responses = models.PositiveIntegerField(
        _("target number of completes"), null=True, blank=True
    )
    current_questionnaire = models.ForeignKey(
        "QuestionnaireVersion", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        permissions = [("load_questionnaire", _("Can load questionnaires"))]

    def __str__(self) -> str:
        return self.title

    @property
    def questionnaire_id(self) -> int:
        """The questionnaire version new responses are answered under."""
        if self.current_questionnaire_id is None:
            raise LookupError(f"survey {self.slug} has no questionnaire")
        return self.current_questionnaire_id

    def title_in(self, language: str) -> str:
        return self.title_en if language.startswith("en") and self.title_en else self.title


# The respondent pages read a survey on every request; it changes only when a questionnaire
# version is loaded, so each process keeps it for a few seconds.
SURVEY_CACHE_SECONDS = 10.0
_surveys: dict[int, tuple[float, Survey]] = {}


def cached_survey(pk: int) -> Survey:
    now = time.monotonic()
    hit = _surveys.get(pk)
    if hit is not None and now - hit[0] < SURVEY_CACHE_SECONDS:
        return hit[1]
    survey = Survey.objects.get(pk=pk)
    _surveys[pk] = (now, survey)
    return survey


def forget_survey(pk: int) -> None:
    _surveys.pop(pk, None)


class QuestionnaireVersion(models.Model):
    survey = models.ForeignKey(Survey, models.CASCADE, related_name="questionnaires")
    version = models.CharField(_("version"), max_length=64)
    title = models.CharField(max_length=200)
    default_language = models.CharField(max_length=8, default="ko")
    definition = models.JSONField(help_text="The normalised form: pages, questions, choices.")
    source_name = models.CharField(max_length=255, blank=True)
    source = models.BinaryField(help_text="The XLSForm file as uploaded.")
    loaded_at = models.DateTimeField(default=timezone.now)
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["survey", "version"], name="unique_survey_version")
        ]
        verbose_name = _("questionnaire version")
        verbose_name_plural = _("questionnaire versions")

    def __str__(self) -> str:
        return f"{self.survey.slug} v{self.version}"

    @property
    def form(self) -> Form:
        from .questionnaire import get_form

        return get_form(self.pk)


class ResponseQuerySet(models.QuerySet["Response"]):
    def submitted(self) -> ResponseQuerySet:
        return self.filter(status=Response.Status.SUBMITTED)


class Response(models.Model):
    """A firm's answers. One per case, whatever the mode; submitted at most once."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", _("in progress")
        SUBMITTED = "submitted", _("submitted")

    class Mode(models.TextChoices):
        WEB = "web", _("web")
        PHONE = "phone", _("phone")
        PAPER = "paper", _("paper")
        FAX = "fax", _("fax")

    case = models.OneToOneField("respondents.Case", models.CASCADE, related_name="response")
    questionnaire = models.ForeignKey(
        QuestionnaireVersion, models.PROTECT, related_name="responses"
    )
    answers = models.JSONField(default=dict, blank=True)
    drafts = models.JSONField(
        default=dict, blank=True, help_text="Raw autosaved input per question, not yet validated."
    )
    stamps = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per question: who last changed it (browser, its clock, kind) and when.",
    )
    page = models.CharField(max_length=64, blank=True, help_text="Last page visited.")
    revision = models.PositiveIntegerField(default=0)
    last_editor = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.WEB)
    keyed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reference = models.CharField(max_length=20, unique=True, null=True, blank=True)

    objects = ResponseQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status="in_progress", submitted_at__isnull=True)
                | Q(status="submitted", submitted_at__isnull=False, reference__isnull=False),
                name="submitted_response_has_time_and_reference",
            )
        ]
        verbose_name = _("response")
        verbose_name_plural = _("responses")

    def __str__(self) -> str:
        return f"response {self.pk} ({self.status})"

    @property
    def is_submitted(self) -> bool:
        return self.status == self.Status.SUBMITTED

    @staticmethod
    def new_reference() -> str:
        # Unambiguous characters: people read the receipt number over the phone.
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        body = "".join(secrets.choice(alphabet) for _ in range(10))
        return f"SMF-{body[:5]}-{body[5:]}"


class AnswerChange(models.Model):
    """One change to one answer: a disputed answer can be traced to who changed it, when."""

    class Editor(models.TextChoices):
        FIRM = "firm", _("the firm (web)")
        STAFF = "staff", _("staff keyed entry")
        IMPORT = "import", _("import")

    response = models.ForeignKey(Response, models.CASCADE, related_name="changes")
    item = models.CharField(_("question"), max_length=64)
    old = models.JSONField(_("old value"), null=True, blank=True)
    new = models.JSONField(_("new value"), null=True, blank=True)
    editor = models.CharField(_("changed by"), max_length=8, choices=Editor.choices)
    browser = models.CharField(max_length=32, blank=True, help_text="The editor's browser.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["response", "-at"], name="answer_change_by_response")]
        verbose_name = _("answer change")
        verbose_name_plural = _("answer changes")

    def __str__(self) -> str:
        return f"{self.item}: {self.old!r} -> {self.new!r}"


class QuestionnaireUpload(models.Model):
    """A large XLSForm waiting for the worker: checked and loaded outside the request."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("loading")
        DONE = "done", _("loaded")
        FAILED = "failed", _("refused")

    source_name = models.CharField(max_length=255, blank=True)
    source = models.BinaryField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    problems = models.JSONField(default=list, blank=True)
    version = models.ForeignKey(
        QuestionnaireVersion, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.source_name} ({self.status})"


class EditRule(models.Model):
    """An edit rule of a questionnaire version: a condition its answers must meet, read
    with the frame's values and class statistics (surveys.edits checks it). A hard rule
    must be corrected; a soft one asks to confirm or correct."""

    class Severity(models.TextChoices):
        HARD = "hard", _("hard (must be corrected)")
        SOFT = "soft", _("soft (confirm or correct)")

    questionnaire = models.ForeignKey(
        QuestionnaireVersion, models.CASCADE, related_name="edit_rules"
    )
    name = models.CharField(_("name"), max_length=64)
    severity = models.CharField(_("type"), max_length=4, choices=Severity.choices)
    rule = models.TextField(_("rule"), help_text="An expression that holds when the answers pass.")
    relevant = models.TextField(
        _("applies when"), blank=True, help_text="The rule applies only when this holds."
    )
    items = models.JSONField(
        _("questions"), default=list, help_text="The questions its rule and condition read."
    )
    flag = models.CharField(_("question blamed"), max_length=64)
    message = models.JSONField(_("message"), default=dict, help_text='{"ko": ..., "en": ...}')
    source_sheet = models.CharField(_("sheet"), max_length=255)
    source_row = models.PositiveIntegerField(_("row"))
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["questionnaire", "order"]
        constraints = [
            models.UniqueConstraint(fields=["questionnaire", "name"], name="unique_edit_rule_name"),
            models.CheckConstraint(
                condition=Q(severity__in=["hard", "soft"]), name="edit_rule_severity"
            ),
        ]
        verbose_name = _("edit rule")
        verbose_name_plural = _("edit rules")

    def __str__(self) -> str:
        return self.name

    @property
    def messages(self) -> list[tuple[str, str]]:
        """The message in each language, Korean first."""
        return sorted(self.message.items(), key=lambda item: item[0] != "ko")


class EditStatistic(models.Model):
    """A class statistic of the frame that edit rules compare answers with, as
    ${stat.<name>}: a percentile of an expression over frame variables, in the class of
    the responding firm (by a frame variable, or the whole frame)."""

    questionnaire = models.ForeignKey(
        QuestionnaireVersion, models.CASCADE, related_name="edit_statistics"
    )
    name = models.CharField(_("name"), max_length=64)
    expression = models.TextField(_("expression"))
    by = models.CharField(_("classes by"), max_length=64, blank=True)
    percentile = models.FloatField(_("percentile"))
    source_sheet = models.CharField(_("sheet"), max_length=255)
    source_row = models.PositiveIntegerField(_("row"))
    order = models.PositiveIntegerField()

    class Meta:
        ordering = ["questionnaire", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["questionnaire", "name"], name="unique_edit_statistic_name"
            ),
            models.CheckConstraint(
                condition=Q(percentile__gte=0, percentile__lte=100),
                name="edit_statistic_percentile",
            ),
        ]
        verbose_name = _("edit statistic")
        verbose_name_plural = _("edit statistics")

    def __str__(self) -> str:
        return self.name
