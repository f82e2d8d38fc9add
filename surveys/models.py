from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from analytics.recompute import request_recompute
from config.tokens import hash_token

from .questionnaire import Form, Question

if TYPE_CHECKING:
    from respondents.models import Case


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
    # Annual rounds: each round is a survey of its own, started from the one before.
    previous_round = models.ForeignKey(
        "self",
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="next_rounds",
        verbose_name=_("previous round"),
    )
    year = models.PositiveSmallIntegerField(_("reference year"), null=True, blank=True)
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
        return get_form(self.pk)


_FORMS: dict[int, Form] = {}


def get_form(version_id: int) -> Form:
    """The Form of a stored version, built once per process (versions never change)."""
    form = _FORMS.get(version_id)
    if form is None:
        definition = QuestionnaireVersion.objects.values_list("definition", flat=True).get(
            pk=version_id
        )
        form = _FORMS[version_id] = Form(definition)
    return form


# The case page lists this many answer changes; older ones are counted, not shown.
HISTORY_ROWS = 200


Raw = str | list[str]  # an answer as a browser posts it


def new_editor_id() -> str:
    return secrets.token_urlsafe(12)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Editor:
    """Who saves: one browser (its tabs, reloads, late save-on-leave requests)."""

    browser: str
    kind: str = "firm"  # an AnswerChange.Editor
    clock: int = field(default_factory=now_ms)
    user: Any = None


def raw_of(value: Any) -> Raw:
    """A stored answer as a browser shows it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 12500, not 12500.0
    return str(value)


def user_or_none(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


class ResponseQuerySet(models.QuerySet["Response"]):
    def submitted(self) -> ResponseQuerySet:
        return self.filter(status=Response.Status.SUBMITTED)

    def start(
        self, case: Case, *, mode: str = "web", by: Any = None, move: bool = True
    ) -> Response:
        """The case's response, created on first use and moved to the newest questionnaire.

        Answers given under an earlier version are all kept: the new version shows those it
        still asks, and the rest stay stored under their names.
        """
        latest = case.survey.questionnaire_id
        try:
            response: Response | None = case.response
        except Response.DoesNotExist:
            response = None
        if response is None:
            try:
                with transaction.atomic():
                    response = self.create(
                        case=case, questionnaire_id=latest, mode=mode, keyed_by=user_or_none(by)
                    )
            except IntegrityError:
                # Two tabs opened at once: the other one created it.
                response = self.get(case=case)
        # Only a page about to be shown moves to the newest version: a page posted from an
        # older version is saved under the version it was shown with.
        if move and not response.is_submitted and response.questionnaire_id != latest:
            self.filter(pk=response.pk, status=Response.Status.IN_PROGRESS).update(
                questionnaire_id=latest, revision=F("revision") + 1
            )
            response.refresh_from_db()
        return response


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
    # After submission the firm's answers stay as given; editing writes here (sec. L).
    edited = models.JSONField(
        default=dict,
        blank=True,
        help_text="Values set by editing after submission, per question (see ValueEdit).",
    )
    confirmations = models.JSONField(
        default=dict,
        blank=True,
        help_text="Soft edit rules the firm confirmed: rule name → the values it confirmed.",
    )

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

    def stored_raw(self, question: Question) -> Raw:
        """What a field holds now: the typed draft if there is one, else the answer."""
        if question.name in self.drafts:
            draft: Raw = self.drafts[question.name]
            return draft
        return raw_of(self.answers.get(question.name))

    def locked(self) -> Response:
        """This response's row, locked until the transaction ends; every write takes it."""
        # The response's row alone: a join would lock its case's row too.
        locked = Response.objects.select_for_update().get(pk=self.pk)
        locked.case = self.case
        return locked

    def record(self, questions: Iterable[Question], editor: Editor, **fields: Any) -> None:
        """Write fields of this locked response: who changed each field last (for conflicts)
        and one history row per answer that changed."""
        questions = list(questions)
        if all(getattr(self, name) == value for name, value in fields.items()):
            return  # nothing new: no write, no revision
        shown_before = {q.name: self.stored_raw(q) for q in questions}
        answers_before = dict(self.answers)
        for name, value in fields.items():
            setattr(self, name, value)
        now = timezone.now()
        stamp = [editor.browser, editor.clock, editor.kind, now.isoformat()]
        for question in questions:
            if not question.same(shown_before[question.name], self.stored_raw(question)):
                self.stamps[question.name] = stamp
        changes = self._changes(questions, answers_before, editor, now)
        update = [*fields, "stamps", "revision", "last_editor", "updated_at"]
        self.revision += 1
        self.last_editor = editor.browser
        self.updated_at = now
        if editor.kind != AnswerChange.Editor.FIRM and user_or_none(editor.user):
            self.keyed_by = editor.user
            update.append("keyed_by")
        self.save(update_fields=update)
        if changes:
            AnswerChange.objects.bulk_create(changes)

    def _changes(
        self,
        questions: list[Question],
        before: Mapping[str, Any],
        editor: Editor,
        now: dt.datetime,
    ) -> list[AnswerChange]:
        """One row per answer that differs from `before`. Typing not yet taken as an answer
        (a draft, perhaps invalid) is not an answer, so it is not history."""
        return [
            AnswerChange(
                response=self,
                item=question.name,
                old=before.get(question.name),
                new=self.answers.get(question.name),
                editor=editor.kind,
                browser=editor.browser,
                user=user_or_none(editor.user),
                at=now,
            )
            for question in questions
            if before.get(question.name) != self.answers.get(question.name)
        ]

    def submit(
        self,
        *,
        by: Any = None,
        editor: Editor | None = None,
        answers: Mapping[str, Any] | None = None,
        mode: str | None = None,
        recompute: bool = True,
    ) -> tuple[Response, dict[str, str]]:
        """Submit once: the one submit action of the web, keyed entry and imports (which
        bring the whole response as `answers`). A second submit (double click, retry, other
        tab) changes nothing. The disposition is recorded and the recompute asked for here.
        Returns the locked, submitted response and, if it was refused, the errors."""
        if editor is None:
            kind = AnswerChange.Editor.STAFF if user_or_none(by) else AnswerChange.Editor.FIRM
            editor = Editor("", kind, user=by)
        with transaction.atomic(savepoint=False):
            locked = self.locked()
            if locked.is_submitted:
                return locked, {}
            form = get_form(locked.questionnaire_id)
            given = locked.answers if answers is None else answers
            errors = form.validate_all(given)
            if errors:
                return locked, errors
            values, _relevant = form.evaluate(given)
            locked.record(
                form.inputs(),
                editor,
                status=Response.Status.SUBMITTED,
                submitted_at=timezone.now(),
                reference=Response.new_reference(),
                answers=values,
                drafts={},
                **({"mode": mode} if mode else {}),
            )
            locked.case.record_submission(
                locked,
                form.completeness(values),
                by=user_or_none(by or editor.user),
                imported=editor.kind == AnswerChange.Editor.IMPORT,
            )
            if recompute:
                request_recompute(locked.case.survey_id, reason="response submitted")
        return locked, {}

    def edited_values(self) -> dict[str, Any]:
        """The answers as edited: the firm's, with editing's values over them."""
        return {**self.answers, **self.edited}

    def edit(
        self,
        item: str,
        new: Any,
        *,
        kind: str,
        by: Any = None,
        reason: str = "",
        rule: str = "",
    ) -> ValueEdit:
        """Set one edited value of a submitted response and keep the trace: who, when, why,
        which rule, old → new. The firm's own answer is never overwritten; a value equal
        to the firm's answer removes the edit."""
        with transaction.atomic(savepoint=False):
            locked = Response.objects.select_for_update().get(pk=self.pk)
            if not locked.is_submitted:
                raise ValueError("only a submitted response is edited")
            old = locked.edited.get(item, locked.answers.get(item))
            if new == locked.answers.get(item):
                locked.edited.pop(item, None)
            else:
                locked.edited[item] = new
            locked.save(update_fields=["edited"])
            self.edited = locked.edited
            return ValueEdit.objects.create(
                response=self,
                item=item,
                old=old,
                new=new,
                kind=kind,
                rule=rule[:64],
                reason=reason,
                by=user_or_none(by),
            )

    def confirm(
        self, rule: str, values: Mapping[str, Any], *, query: int | None = None, comment: str = ""
    ) -> None:
        """Record that the firm confirmed the values a soft rule questioned (rule name →
        the values it confirmed, and when), so that checking can leave them alone."""
        entry: dict[str, Any] = {"values": dict(values), "at": timezone.now().isoformat()}
        if query is not None:
            entry["query"] = query
        if comment:
            entry["comment"] = comment
        with transaction.atomic(savepoint=False):
            locked = Response.objects.select_for_update().get(pk=self.pk)
            locked.confirmations[rule] = entry
            locked.save(update_fields=["confirmations"])
            self.confirmations = locked.confirmations

    def edit_trail(self) -> list[dict[str, Any]]:
        """Every change editing made to the answers, newest first, as people read it."""
        form = get_form(self.questionnaire_id)
        rows = []
        for edit in self.value_edits.select_related("by"):
            question = form.questions.get(edit.item)
            rows.append(
                {
                    "edit": edit,
                    "question": question.text() if question else edit.item,
                    "old": _shown(question, edit.old),
                    "new": _shown(question, edit.new),
                    "who": edit.by.get_username() if edit.by else "",
                }
            )
        return rows

    def query_trail(self) -> list[dict[str, Any]]:
        """The queries sent to the firm about these answers, newest first: the questions
        asked, when it was emailed and when the firm answered."""
        form = get_form(self.questionnaire_id)
        rows = []
        for query in self.edit_queries.select_related("created_by"):
            names = dict.fromkeys(entry["item"] for entry in query.items)
            questions = [form.questions[n].text() if n in form.questions else n for n in names]
            rows.append({"query": query, "questions": questions})
        return rows

    def history(self, limit: int = HISTORY_ROWS) -> tuple[list[dict[str, Any]], int]:
        """The latest changes to the answers, newest first, and how many there are in all,
        for the case page: each browser that answered for the firm is numbered so that two
        people can be told apart."""
        form = get_form(self.questionnaire_id)
        changes = list(self.changes.select_related("user")[: limit + 1])
        total = len(changes) if len(changes) <= limit else self.changes.count()
        changes = changes[:limit]
        browsers: dict[str, int] = {}
        for change in reversed(changes):
            if change.browser and change.editor == AnswerChange.Editor.FIRM:
                browsers.setdefault(change.browser, len(browsers) + 1)
        rows = []
        for change in changes:
            question = form.questions.get(change.item)
            if change.user is not None:
                who = change.user.get_username()
            elif change.browser in browsers:
                who = gettext("browser %(n)d") % {"n": browsers[change.browser]}
            else:
                who = ""
            rows.append(
                {
                    "change": change,
                    "question": question.text() if question else change.item,
                    "old": _shown(question, change.old),
                    "new": _shown(question, change.new),
                    "who": who,
                }
            )
        return rows, total

    @staticmethod
    def new_reference() -> str:
        # Unambiguous characters: people read the receipt number over the phone.
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        body = "".join(secrets.choice(alphabet) for _ in range(10))
        return f"SMF-{body[:5]}-{body[5:]}"


def _shown(question: Question | None, value: Any) -> str:
    if value is None:
        return ""
    return question.shown(value) if question else str(value)


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


class ValueEdit(models.Model):
    """One change made by editing to a submitted response: the audit trail (sec. L)."""

    class Kind(models.TextChoices):
        ACCEPTED = "accepted", _("accepted as reported")
        CORRECTED = "corrected", _("corrected by staff")
        REJECTED = "rejected", _("rejected, to be imputed")
        FIRM = "firm", _("answered by the firm on a query")

    response = models.ForeignKey(Response, models.CASCADE, related_name="value_edits")
    item = models.CharField(_("question"), max_length=64)
    old = models.JSONField(_("old value"), null=True, blank=True)
    new = models.JSONField(_("new value"), null=True, blank=True)
    kind = models.CharField(_("edit"), max_length=12, choices=Kind.choices)
    rule = models.CharField(_("edit rule"), max_length=64, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["response", "-at"], name="value_edit_by_response")]
        verbose_name = _("edit")
        verbose_name_plural = _("edits")

    def __str__(self) -> str:
        return f"{self.item}: {self.old!r} -> {self.new!r} ({self.kind})"


# The firm's link to a query: 128 random bits, as hex.
QUERY_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class QueryAnswer:
    """The firm's answer on one questioned item: the value, confirmed or corrected."""

    value: Any
    corrected: bool
    comment: str = ""


class EditQueryQuerySet(models.QuerySet["EditQuery"]):
    def by_token(self, token: str) -> EditQuery | None:
        if len(token) != QUERY_TOKEN_LENGTH:
            return None
        found = self.select_related("response__case__frame_unit")
        return found.filter(token_hash=hash_token(token)).first()


class EditQuery(models.Model):
    """Questions sent back to a firm about its submitted answers: a link to a page that
    shows only the questioned items."""

    response = models.ForeignKey(Response, models.CASCADE, related_name="edit_queries")
    items = models.JSONField(
        help_text="The questioned items: [{item, rule, message: {ko, en}}], in form order."
    )
    note = models.TextField(_("note to the firm"), blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = EditQueryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("query to the firm")
        verbose_name_plural = _("queries to firms")

    def __str__(self) -> str:
        return f"query {self.pk} on response {self.response_id}"

    @property
    def is_answered(self) -> bool:
        return self.answered_at is not None

    @staticmethod
    def new_token() -> tuple[str, str]:
        """A new link token and its digest; only the digest is stored."""
        token = secrets.token_hex(QUERY_TOKEN_LENGTH // 2)
        return token, hash_token(token)

    @staticmethod
    def link(token: str) -> str:
        return settings.SITE_URL + reverse("surveys:edit_query", args=[token])

    def answer(self, answers: Mapping[str, QueryAnswer]) -> bool:
        """The firm's answers (by item), taken once: a corrected value becomes an edit of
        kind "firm", a confirmed one the rule's confirmation; the recompute is asked for.
        False, and nothing changed, if the query was answered already."""
        with transaction.atomic(savepoint=False):
            locked = EditQuery.objects.select_for_update().get(pk=self.pk)
            if locked.is_answered:
                return False
            response = locked.response
            edited: set[str] = set()
            items = []
            for entry in locked.items:
                item, given = entry["item"], answers[entry["item"]]
                if given.corrected and item not in edited:
                    response.edit(
                        item,
                        given.value,
                        kind=ValueEdit.Kind.FIRM,
                        rule=entry["rule"],
                        reason=given.comment,
                    )
                    edited.add(item)
                elif not given.corrected:
                    seen = {**entry.get("values", {}), item: given.value}
                    response.confirm(entry["rule"], seen, query=locked.pk, comment=given.comment)
                decided = {"corrected": given.corrected, "value": given.value}
                items.append({**entry, "answer": {**decided, "comment": given.comment}})
            locked.items, locked.answered_at = items, timezone.now()
            locked.save(update_fields=["items", "answered_at"])
            request_recompute(response.case.survey_id, reason="query answered")
        self.items, self.answered_at = locked.items, locked.answered_at
        return True


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
