from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from respondents.models import Wave
    from surveys.models import Survey


class WeightingSpec(models.Model):
    """The survey's weighting and publication settings; every edit is a new version."""

    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="weighting_specs")
    version = models.PositiveIntegerField()
    spec = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("weighting specification")
        verbose_name_plural = _("weighting specifications")
        constraints = [
            models.UniqueConstraint(fields=["survey", "version"], name="unique_spec_version")
        ]
        ordering = ["-version"]
        permissions = [("edit_weighting_spec", _("Can edit the weighting specification"))]

    def __str__(self) -> str:
        return f"{self.survey.slug} spec v{self.version}"


class RecomputeRequest(models.Model):
    """Outbox: written in the same transaction as the change that makes estimates stale."""

    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="recompute_requests")
    reason = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("recompute request")
        verbose_name_plural = _("recompute requests")

    def __str__(self) -> str:
        return f"{self.survey_id}: {self.reason}"


class EstimateRunQuerySet(models.QuerySet["EstimateRun"]):
    def published(self) -> EstimateRunQuerySet:
        return self.filter(status=EstimateRun.Status.PUBLISHED)

    def latest_published(self, survey: Survey) -> EstimateRun | None:
        return self.published().filter(survey=survey).order_by("-number").first()

    def by_wave(self, survey: Survey) -> list[ListedRun]:
        """The versions people choose between, newest first: the latest run when it is
        provisional (no wave's official figures), then each closed wave's official run.
        Two queries; fields deferred on this queryset stay deferred."""
        runs = self.published().filter(survey=survey).select_related("wave")
        deferred = self.query.deferred_loading[0] if self.query.deferred_loading[1] else ()
        # The Wave model through the run's own field: respondents.models asks this app for
        # recomputes, so this module does not import it.
        wave_model: Any = self.model._meta.get_field("wave").related_model
        waves = (
            wave_model.objects.filter(survey=survey, official_run__in=runs.values("pk"))
            .select_related("official_run__wave")
            .defer(*(f"official_run__{name}" for name in deferred))
        )
        listed = sorted(
            (ListedRun(wave.official_run, wave) for wave in waves if wave.official_run),
            key=lambda entry: -entry.run.number,
        )
        latest = runs.order_by("-number").first()
        if latest is not None and all(e.run.pk != latest.pk for e in listed):
            listed.insert(0, ListedRun(latest, None))
        return listed


class EstimateRunManager(models.Manager["EstimateRun"]):
    def get_queryset(self) -> EstimateRunQuerySet:
        # Replicate weights run to tens of megabytes: read only where asked for.
        return EstimateRunQuerySet(self.model, using=self._db).defer("replicate_weights")


class EstimateRun(models.Model):
    """One estimate version: a data snapshot weighted and estimated, published atomically."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        PUBLISHED = "published", _("published")
        FAILED = "failed", _("failed")

    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="estimate_runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=32, blank=True)
    snapshot_key = models.CharField(max_length=64, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    spec = models.JSONField(default=dict, blank=True)
    spec_version = models.PositiveIntegerField(default=0)
    code_version = models.CharField(max_length=64, blank=True)
    diagnostics = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    weights = models.BinaryField(
        blank=True, help_text="Per-case base and final weights of the run (numpy .npz)."
    )
    replicate_weights = models.BinaryField(
        blank=True, help_text="Respondents' replicate weights and R's svrepdesign rule (.npz)."
    )
    wave = models.ForeignKey(
        "respondents.Wave", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    data_as_of = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = EstimateRunManager.from_queryset(EstimateRunQuerySet)()

    class Meta:
        verbose_name = _("estimate version")
        verbose_name_plural = _("estimate versions")
        constraints = [
            models.UniqueConstraint(fields=["survey", "number"], name="unique_run_number"),
        ]
        ordering = ["-number"]
        permissions = [
            ("view_results", _("Can view results")),
            ("download_results", _("Can download results and microdata")),
            ("download_identified", _("Can download identified microdata")),
        ]

    def __str__(self) -> str:
        return f"{self.survey.slug} run {self.number}"


@dataclass(frozen=True)
class ListedRun:
    run: EstimateRun
    official_of: Wave | None  # the closed wave whose official figures the run is

    @property
    def wave(self) -> Wave | None:
        """The wave the figures belong to: the one they close, else the one then open."""
        return self.official_of or self.run.wave

    @property
    def provisional(self) -> bool:
        return self.official_of is None


class Estimate(models.Model):
    class Statistic(models.TextChoices):
        PROPORTION = "proportion", _("proportion")
        MEAN = "mean", _("mean")
        TOTAL = "total", _("total")

    run = models.ForeignKey(EstimateRun, models.CASCADE, related_name="estimates")
    item = models.CharField(max_length=64)
    option = models.CharField(max_length=64, blank=True)
    statistic = models.CharField(max_length=12, choices=Statistic.choices)
    domain = models.CharField(max_length=64)
    domain_value = models.CharField(max_length=64)
    estimate = models.FloatField(null=True)
    se = models.FloatField(null=True)
    ci_low = models.FloatField(null=True)
    ci_high = models.FloatField(null=True)
    cv = models.FloatField(null=True)
    deff = models.FloatField(null=True)
    n = models.PositiveIntegerField()
    population = models.FloatField(null=True)
    df = models.IntegerField(null=True)
    flag = models.CharField(max_length=200, blank=True, help_text="Quality reasons, joined by +.")
    imputed_share = models.FloatField(
        null=True, help_text="Share of the estimate carried by imputed values (sec. L)."
    )
    suppressed = models.BooleanField(default=False)
    grade = models.CharField(
        max_length=1, blank=True, help_text="Quality grade A-E by coefficient of variation."
    )

    class Meta:
        verbose_name = _("estimate")
        verbose_name_plural = _("estimates")
        indexes = [models.Index(fields=["run", "item", "domain"])]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "item", "option", "statistic", "domain", "domain_value"],
                name="unique_estimate_cell",
            )
        ]

    def __str__(self) -> str:
        return f"{self.item}/{self.option} {self.domain}={self.domain_value}"


class ExportJob(models.Model):
    """A large export written by the worker, with its progress and the file when done."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="export_jobs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    what = models.CharField(max_length=32)
    format = models.CharField(max_length=8)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    file = models.CharField(max_length=255, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("export job")
        verbose_name_plural = _("export jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.what}.{self.format} ({self.status})"


class Download(models.Model):
    """Audit log: who downloaded what, when."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="downloads")
    what = models.CharField(max_length=32)
    format = models.CharField(max_length=8)
    identified = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)
    client = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("download")
        verbose_name_plural = _("downloads")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.what}.{self.format} by {self.user_id}"


class ApiToken(models.Model):
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    surveys = models.ManyToManyField("surveys.Survey", related_name="api_tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(revoked_at__gte=models.F("created_at")),
                name="token_revoked_after_created",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def revoke(self) -> bool:
        """Revoke once; False when it was already revoked (two clicks, two admins)."""
        now = timezone.now()
        revoked = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if revoked:
            self.revoked_at = now
        return bool(revoked)


class EditCheck(models.Model):
    """One pass of the edit rules over every submitted response, with the selective-editing
    threshold's effect: how many failures passed untouched, and how much they carry."""

    survey = models.ForeignKey("surveys.Survey", models.CASCADE, related_name="edit_checks")
    run = models.ForeignKey(
        EstimateRun,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version whose weights scored the failures.",
    )
    checked_at = models.DateTimeField(default=timezone.now)
    threshold = models.FloatField()
    responses = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Responses failing a rule.")
    passed = models.PositiveIntegerField(
        default=0, help_text="Failing responses below the threshold, left as reported."
    )
    passed_share = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per flagged item: the share of its weighted total the passed responses carry.",
    )
    errors = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-checked_at"]
        get_latest_by = "checked_at"

    def __str__(self) -> str:
        return f"{self.survey_id} checked {self.checked_at:%Y-%m-%d %H:%M}"


class EditFlagQuerySet(models.QuerySet["EditFlag"]):
    def of_survey(self, survey_id: int) -> EditFlagQuerySet:
        return self.filter(response__case__survey_id=survey_id)

    def to_review(self) -> EditFlagQuerySet:
        """The flags a reviewer acts on: open, confirmed by the firm, or answered by it."""
        return self.filter(status__in=EditFlag.REVIEWABLE)

    def in_queue_order(self) -> EditFlagQuerySet:
        """Selective editing: the largest score first (unscored last), then the oldest."""
        return self.order_by(models.F("score").desc(nulls_last=True), "pk")


class EditFlag(models.Model):
    """A submitted response that fails an edit rule: one entry of the review queue (sec. L)."""

    class Status(models.TextChoices):
        OPEN = "open", _("to review")
        PASSED = "passed", _("passed (below the threshold)")
        ACCEPTED = "accepted", _("accepted")
        CORRECTED = "corrected", _("corrected")
        REJECTED = "rejected", _("rejected, imputed")
        QUERIED = "queried", _("asked the firm")
        ANSWERED = "answered", _("the firm answered")
        CONFIRMED = "confirmed", _("confirmed by the firm when answering")
        ERROR = "error", _("could not be checked")

    response = models.ForeignKey("surveys.Response", models.CASCADE, related_name="edit_flags")
    rule = models.CharField(_("edit rule"), max_length=64)
    severity = models.CharField(_("type"), max_length=8)
    item = models.CharField(_("question"), max_length=64, blank=True)
    values = models.JSONField(default=dict, blank=True, help_text="The values the rule saw.")
    message = models.JSONField(default=dict, blank=True, help_text="{ko, en}")
    score = models.FloatField(_("score"), null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    checked_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    query = models.ForeignKey(
        "surveys.EditQuery", models.SET_NULL, null=True, blank=True, related_name="flags"
    )

    # The statuses a reviewer may still act on (any other is decided): a failure above the
    # threshold, whether the firm confirmed the value when answering or not, and a firm's
    # answer to a query.
    REVIEWABLE = (Status.OPEN, Status.CONFIRMED, Status.ANSWERED)

    objects = EditFlagQuerySet.as_manager()

    class Meta:
        ordering = ["-score", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["response", "rule"], name="one_flag_per_rule")
        ]
        indexes = [models.Index(fields=["status", "-score"], name="edit_flag_queue")]
        permissions = [("review_edits", _("Can review, edit and impute responses"))]
        verbose_name = _("edit flag")
        verbose_name_plural = _("edit flags")

    def __str__(self) -> str:
        return f"{self.rule} on response {self.response_id} ({self.status})"

    @property
    def is_reviewable(self) -> bool:
        return self.status in self.REVIEWABLE

    def message_text(self, language: str | None = None) -> str:
        """The rule's message in the active language, else in the other one."""
        language = (language or get_language() or "ko")[:2]
        return str(self.message.get(language) or next(iter(self.message.values()), self.rule))


class ImputedValue(models.Model):
    """A value an estimate version imputed: its method and donor (sec. L)."""

    class Method(models.TextChoices):
        DERIVED = "derived", _("derived from other answers")
        RATIO = "ratio", _("ratio to the register")
        NEAREST = "nearest", _("nearest-neighbour donor")
        RANDOM = "random", _("random donor")

    run = models.ForeignKey(EstimateRun, models.CASCADE, related_name="imputations")
    response = models.ForeignKey("surveys.Response", models.CASCADE, related_name="+")
    item = models.CharField(max_length=64)
    value = models.JSONField(null=True)
    method = models.CharField(max_length=8, choices=Method.choices)
    donor = models.ForeignKey(
        "surveys.Response", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    imputation_class = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=8, help_text="missing or rejected")

    class Meta:
        indexes = [models.Index(fields=["run", "response"], name="imputed_by_run")]
        verbose_name = _("imputed value")
        verbose_name_plural = _("imputed values")

    def __str__(self) -> str:
        return f"{self.item} of response {self.response_id} ({self.method})"
