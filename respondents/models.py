from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection, models, transaction
from django.db.models import Case as SqlCase
from django.db.models import F, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, NullIf
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from analytics.engine import aapor
from analytics.engine.prn import new_prns
from analytics.recompute import request_recompute
from config.tokens import hash_token
from surveys.models import Response, Survey

from . import dispositions
from .classifications import DERIVED, UNKNOWN, VALUE_LABELS, Region, SizeClass

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from surveys.questionnaire import Completeness


def frame_variable(name: str, prefix: str = "") -> Coalesce:
    """A derived frame variable as a database expression (`prefix` reaches the frame unit,
    "frame_unit__" from a case): the frame's own column of that name where it has a value,
    else derived from its source column by the one map in classifications.DERIVED."""
    source, mapping = DERIVED[name]
    column = f"{prefix}{source}"
    derived = SqlCase(
        *(
            When(**{f"{column}__startswith" if source == "ksic" else column: key}, then=Value(v))
            for key, v in mapping.items()
        ),
        default=Value(UNKNOWN),
        output_field=models.CharField(),
    )
    given = NullIf(KeyTextTransform(name, f"{prefix}attributes"), Value(""))
    return Coalesce(given, derived, output_field=models.CharField())


# The variables of a frame unit that other parts read by name (edit rules, statistics): its
# own columns, the derived ones (frame_variable), and any key of its attributes.
FRAME_COLUMNS = ("size_class", "region", "ksic", "employees", "sales_krw_mn")
FRAME_VARIABLES = (*FRAME_COLUMNS, *DERIVED)


def attribute_keys(survey: Survey) -> list[str]:
    """The keys that occur in the frame's ``attributes``, sorted."""
    table = FrameUnit._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"SELECT DISTINCT jsonb_object_keys(attributes) FROM {table} WHERE survey_id = %s"  # noqa: S608
    else:
        sql = (
            f"SELECT DISTINCT j.key FROM {table}, json_each({table}.attributes) j"  # noqa: S608
            " WHERE survey_id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [survey.pk])
        return sorted(row[0] for row in cursor.fetchall())


class FrameUnitQuerySet(models.QuerySet["FrameUnit"]):
    def variable_columns(self, names: Sequence[str]) -> dict[str, list[Any]]:
        """The named frame variables of these units as columns, with "pk" first, read with
        one plain cursor (163,273 model rows would cost seconds). A name is a column of the
        unit, else a derived variable (frame_variable), else a key of its attributes (text;
        None where the unit has none). Amounts come as floats, as expressions read them
        (and psycopg's Decimals would cost a third of a second on a census)."""
        wanted = [name for name in dict.fromkeys(names) if name != "pk"]
        annotations: dict[str, Any] = {}
        for k, name in enumerate(wanted):
            if name in DERIVED:
                annotations[f"v{k}"] = frame_variable(name)
            elif name not in FRAME_COLUMNS:
                annotations[f"v{k}"] = KeyTextTransform(name, "attributes")
            elif isinstance(self.model._meta.get_field(name), models.DecimalField):
                annotations[f"v{k}"] = Cast(name, models.FloatField())
        fields = [f"v{k}" if f"v{k}" in annotations else name for k, name in enumerate(wanted)]
        query = self.order_by("pk").annotate(**annotations).values_list("pk", *fields)
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        # One column at a time: zip(*rows) over a census takes ten times as long.
        return {name: list(map(itemgetter(k), rows)) for k, name in enumerate(["pk", *wanted])}


class FrameUnit(models.Model):
    """One firm of the sampling frame (the population register)."""

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="frame_units")
    business_id = models.CharField(_("business registration number"), max_length=20)
    name = models.CharField(_("name"), max_length=200)
    ksic = models.CharField(_("KSIC code"), max_length=5)
    size_class = models.CharField(_("size class"), max_length=8, choices=SizeClass.choices)
    region = models.CharField(_("region"), max_length=12, choices=Region.choices)
    employees = models.PositiveIntegerField(_("employees"))
    sales_krw_mn = models.DecimalField(
        _("sales (KRW million)"), max_digits=18, decimal_places=2, null=True, blank=True
    )
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    source_row = models.PositiveIntegerField(help_text="Line of the imported file.")
    # Methodology M1: drawn when the firm first enters a frame and carried to its unit in
    # every later round's frame, so that draws by these numbers are coordinated.
    prn = models.FloatField(_("permanent random number"), null=True, blank=True)
    # The same firm's unit in the previous round's frame (same business ID, or linked by the
    # round's mapping of changed IDs): the unit whose number this one carries.
    previous = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="+")

    objects = FrameUnitQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "business_id"], name="unique_frame_business_id"
            )
        ]
        # Covers the frame summary and the calibration totals: counts by class, one pass.
        indexes = [
            models.Index(fields=["survey", "size_class", "region", "ksic"], name="frame_classes")
        ]
        permissions = [
            ("manage_frame", _("Can import the frame and draw the sample")),
            ("view_contact_details", _("Can see firms' contact details")),
        ]
        verbose_name = _("frame unit")
        verbose_name_plural = _("frame units")

    def __str__(self) -> str:
        return f"{self.business_id} {self.name}"

    @staticmethod
    def normalise_business_id(text: str) -> str | None:
        """A business registration number as 123-45-67890, or None if it is not 10 digits."""
        digits = re.sub(r"[\s-]", "", text)
        if not re.fullmatch(r"\d{10}", digits):
            return None
        return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


class FrameImport(models.Model):
    """One import of a survey's frame: the file, and the seed that gave the permanent random
    numbers of the firms not carried from the previous round (methodology M1)."""

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="frame_imports")
    file_name = models.CharField(_("file"), max_length=255, blank=True)
    rows = models.PositiveIntegerField(_("firms"))
    carried = models.PositiveIntegerField(
        _("numbers carried"), default=0, help_text="Firms that kept the previous round's number."
    )
    prn_seed = models.BigIntegerField(_("seed of the new numbers"))
    numpy_version = models.CharField(_("numpy version"), max_length=32)
    imported_at = models.DateTimeField(_("imported"), default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The change report against the previous round's frame, by stratum (frame_changes.py);
    # written at the import and again when a mapping of changed IDs is loaded.
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-imported_at", "-pk"]
        verbose_name = _("frame import")
        verbose_name_plural = _("frame imports")

    def __str__(self) -> str:
        return f"{self.survey.slug} {self.file_name} ({self.rows})"

    def drawn_numbers(self) -> np.ndarray:
        """The numbers the import drew, one per firm in file order (frame_import._stage
        draws them batch by batch from the same generator, which gives the same stream)."""
        return new_prns(self.rows, np.random.default_rng(self.prn_seed))


class BusinessIdLink(models.Model):
    """A row of a round's mapping of changed business IDs: a firm of the previous round's
    frame (old ID) that continues as a firm of this round's frame (new ID)."""

    class Kind(models.TextChoices):
        MERGER = "merger", _("merger")
        SPLIT = "split", _("split")
        RENUMBERED = "renumbered", _("renumbered")

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="id_links")
    row = models.PositiveIntegerField(help_text="Line of the uploaded file.")
    old_business_id = models.CharField(_("old business ID"), max_length=20)
    new_business_id = models.CharField(_("new business ID"), max_length=20)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    uploaded_at = models.DateTimeField(default=timezone.now)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["row"]
        verbose_name = _("business ID link")
        verbose_name_plural = _("business ID links")
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "old_business_id", "new_business_id"], name="unique_id_link"
            )
        ]

    def __str__(self) -> str:
        return f"{self.old_business_id} -> {self.new_business_id} ({self.kind})"


class FrameChange(models.Model):
    """A firm that differs between the previous round's frame and this round's: a birth, a
    death, a change of size class, industry or region, or a link of the ID mapping."""

    class Kind(models.TextChoices):
        BIRTH = "birth", _("birth")
        DEATH = "death", _("death")
        CHANGED = "changed", _("changed")
        LINKED = "linked", _("linked by the mapping")

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="frame_changes")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    link = models.CharField(
        _("link"), max_length=12, choices=BusinessIdLink.Kind.choices, blank=True
    )
    business_id = models.CharField(_("business ID"), max_length=20, blank=True)
    previous_business_id = models.CharField(_("last year's business ID"), max_length=20, blank=True)
    name = models.CharField(_("name"), max_length=200)
    stratum_before = models.CharField(_("last year's stratum"), max_length=200, blank=True)
    stratum_now = models.CharField(_("this year's stratum"), max_length=200, blank=True)
    before = models.JSONField(default=dict, blank=True, help_text="Size, industry, region.")
    now = models.JSONField(default=dict, blank=True, help_text="Size, industry, region.")
    size_changed = models.BooleanField(default=False)
    industry_changed = models.BooleanField(default=False)
    region_changed = models.BooleanField(default=False)

    class Meta:
        ordering = ["kind", "business_id", "previous_business_id"]
        verbose_name = _("frame change")
        verbose_name_plural = _("frame changes")

    def __str__(self) -> str:
        return f"{self.kind} {self.business_id or self.previous_business_id}"


class SampleDesign(models.Model):
    class Allocation(models.TextChoices):
        PROPORTIONAL = "proportional", _("proportional")
        NEYMAN = "neyman", _("Neyman")
        POWER = "power", _("power (N_h^q)")

    class Selection(models.TextChoices):
        SRS = "srs", _("simple random sampling (SRS)")
        PRN = "prn", _("permanent random numbers (PRN)")

    class Coordination(models.TextChoices):
        NONE = "none", _("none: independent of the previous round")
        POSITIVE = "positive", _("positive: keep last year's firms")
        NEGATIVE = "negative", _("negative: avoid last year's firms")
        ROTATION = "rotation", _("rotation: replace a share of each stratum")

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="designs")
    strata_variables = models.JSONField(help_text="Frame variables whose combination is a stratum.")
    groupings = models.JSONField(
        default=dict, blank=True, help_text="Maps from a frame variable's values to groups."
    )
    allocation = models.CharField(max_length=16, choices=Allocation.choices)
    sample_size = models.PositiveIntegerField(_("sample size"))
    min_per_stratum = models.PositiveIntegerField(_("minimum per stratum"), default=2)
    power = models.FloatField(_("power q"), null=True, blank=True)
    neyman_variable = models.CharField(max_length=64, blank=True)
    assumed_proportion = models.FloatField(null=True, blank=True)
    reserve_fraction = models.FloatField(_("reserve fraction"), default=0.0)
    selection = models.CharField(
        _("selection"), max_length=4, choices=Selection.choices, default=Selection.SRS
    )
    coordination = models.CharField(
        _("coordination with the previous round"),
        max_length=8,
        choices=Coordination.choices,
        default=Coordination.NONE,
    )
    rotation = models.FloatField(_("rotation share"), null=True, blank=True)
    seed = models.BigIntegerField(_("random seed"))
    # numpy does not promise the same Generator streams across versions (selection.py).
    numpy_version = models.CharField(_("numpy version"), max_length=32, blank=True)
    frame_size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    drawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("sample design")
        verbose_name_plural = _("sample designs")
        constraints = [
            models.UniqueConstraint(
                fields=["survey"], condition=Q(drawn_at__isnull=False), name="one_drawn_design"
            )
        ]

    def __str__(self) -> str:
        return f"{self.survey.slug}: {self.allocation} n={self.sample_size}"

    @property
    def is_prn(self) -> bool:
        return self.selection == self.Selection.PRN

    def copy_settings_to(self, survey: Survey, *, user: Any = None) -> SampleDesign:
        """This design's settings as the next round's draft (not drawn): strata, allocation,
        size, reserve, selection and coordination; a new seed is chosen at the draw."""
        return SampleDesign.objects.create(
            survey=survey,
            strata_variables=self.strata_variables,
            groupings=self.groupings,
            allocation=self.allocation,
            sample_size=self.sample_size,
            min_per_stratum=self.min_per_stratum,
            power=self.power,
            neyman_variable=self.neyman_variable,
            assumed_proportion=self.assumed_proportion,
            reserve_fraction=self.reserve_fraction,
            selection=self.selection,
            coordination=self.coordination,
            rotation=self.rotation,
            seed=self.seed,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )


class Stratum(models.Model):
    design = models.ForeignKey(SampleDesign, models.CASCADE, related_name="strata")
    key = models.CharField(max_length=200)
    values = models.JSONField(help_text="Stratification variable -> value.")
    population = models.PositiveIntegerField(help_text="N_h: frame units in the stratum.")
    allocated = models.PositiveIntegerField(help_text="n_h allocated at the draw.")
    sample_size = models.PositiveIntegerField(help_text="n_h now: allocated plus released reserve.")
    reserve_size = models.PositiveIntegerField(default=0)
    take_all = models.BooleanField(default=False)
    # A PRN draw (methodology M2): where the stratum's sample starts and the number of its
    # last unit (the reserve follows it); the next round's start points are moved from them.
    prn_start = models.FloatField(null=True, blank=True)
    prn_end = models.FloatField(null=True, blank=True)
    expected_overlap = models.FloatField(
        null=True, blank=True, help_text="Expected firms also in last round's sample (M3)."
    )

    class Meta:
        verbose_name = _("stratum")
        verbose_name_plural = _("strata")
        constraints = [
            models.UniqueConstraint(fields=["design", "key"], name="unique_stratum_key"),
            models.CheckConstraint(
                condition=Q(sample_size__lte=F("population")), name="stratum_n_at_most_N"
            ),
        ]
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def base_weight(self) -> float:
        return self.population / self.sample_size

    @property
    def label(self) -> str:
        return self.label_of(self.values, self.design.strata_variables)

    @staticmethod
    def label_of(values: dict[str, str], variables: list[str] | tuple[str, ...]) -> str:
        """The stratum's values in the design's variable order, with their display labels."""
        labels = (VALUE_LABELS.get(name, {}).get(values[name], values[name]) for name in variables)
        return " · ".join(str(label) for label in labels)


class ReserveRelease(models.Model):
    """One release of reserve units into the sample: who, when, how many (ranks first..last)."""

    stratum = models.ForeignKey(Stratum, models.CASCADE, related_name="releases")
    count = models.PositiveIntegerField()
    first_rank = models.PositiveIntegerField()
    last_rank = models.PositiveIntegerField()
    released_at = models.DateTimeField(default=timezone.now)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("reserve release")
        verbose_name_plural = _("reserve releases")
        ordering = ["released_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(count__gte=1), name="release_count_positive")
        ]

    def __str__(self) -> str:
        return f"{self.stratum} +{self.count}"


class CaseQuerySet(models.QuerySet["Case"]):
    def in_sample(self) -> CaseQuerySet:
        return self.filter(Q(is_reserve=False) | Q(released_at__isnull=False))

    def reserve(self) -> CaseQuerySet:
        return self.filter(is_reserve=True, released_at__isnull=True)

    def search(self, text: str) -> CaseQuerySet:
        text = text.strip()
        if not text:
            return self
        return self.filter(Q(business_id__icontains=text) | Q(frame_unit__name__icontains=text))

    def record_invited(self, *, wave: Wave, reason: dispositions.Note) -> int:
        """These cases' first email went out: those still never invited (3.11) are now
        "nothing returned" (3.19), each with its event, as record_disposition writes them
        one by one (within one category: no estimate moves). Returns how many moved."""
        at = timezone.now()
        with transaction.atomic(savepoint=False):
            moving = self.select_for_update().filter(
                disposition=dispositions.NOT_INVITED, disposition_at__lte=at
            )
            ids = list(moving.values_list("pk", flat=True))
            DispositionEvent.objects.bulk_create(
                DispositionEvent(
                    case_id=pk,
                    code=dispositions.NOTHING_RETURNED,
                    at=at,
                    wave=wave,
                    source=DispositionEvent.Source.EMAIL,
                    reason=reason.text(),
                    reason_parts=reason.as_json(),
                    previous=dispositions.NOT_INVITED,
                )
                for pk in ids
            )
            Case.objects.filter(pk__in=ids).update(
                disposition=dispositions.NOTHING_RETURNED, disposition_at=at
            )
        return len(ids)

    def previous_answers(self) -> dict[int, dict[str, Any]]:
        """Last round's answers of these cases' firms: for each case linked to a case of the
        previous round that submitted, that response's values as edited. Two queries."""
        links = dict(self.filter(previous__isnull=False).values_list("pk", "previous_id"))
        responses = Response.objects.submitted().filter(case_id__in=set(links.values()))
        answers = {
            response.case_id: response.edited_values()
            for response in responses.only("case_id", "answers", "edited")
        }
        return {pk: answers[previous] for pk, previous in links.items() if previous in answers}

    def open_for_contact(self) -> CaseQuerySet:
        """Cases a reminder may go to: not completed, refused or found ineligible."""
        return (
            self.in_sample()
            .exclude(disposition__startswith="1.")
            .exclude(disposition__startswith="4.")
            .exclude(disposition__in=dispositions.EXPLICIT_REFUSALS)
        )


class Case(models.Model):
    """A sampled firm (sample unit): its stratum, credentials and current disposition."""

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="cases")
    stratum = models.ForeignKey(Stratum, models.PROTECT, related_name="cases")
    frame_unit = models.OneToOneField(FrameUnit, models.PROTECT, related_name="case")
    business_id = models.CharField(max_length=20)
    # The same firm's case in the previous round (same business ID, or linked by a mapping
    # of changed IDs): last year's answers and the panel of estimates of change.
    previous = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="+")
    selection_order = models.PositiveIntegerField()
    is_reserve = models.BooleanField(default=False)
    reserve_rank = models.PositiveIntegerField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    code_hash = models.CharField(max_length=128, blank=True)
    credential_version = models.PositiveIntegerField(default=0)
    credentials_issued_at = models.DateTimeField(null=True, blank=True)
    disposition = models.CharField(max_length=8, default=dispositions.NOT_INVITED)
    disposition_at = models.DateTimeField(default=timezone.now)
    language = models.CharField(max_length=8, default="ko")

    objects = CaseQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "business_id"], name="unique_case_business_id"
            )
        ]
        permissions = [("manage_fieldwork", _("Can run fieldwork"))]
        verbose_name = _("case")
        verbose_name_plural = _("cases")

    def __str__(self) -> str:
        return self.business_id

    @property
    def in_sample(self) -> bool:
        """Drawn into the sample, or a reserve unit released into it (as the QuerySet's)."""
        return not self.is_reserve or self.released_at is not None

    def previous_answers(self) -> dict[str, Any]:
        """Last round's submitted answers of this firm, as edited; {} when there are none."""
        if self.previous_id is None:
            return {}
        return Case.objects.filter(pk=self.pk).previous_answers().get(self.pk, {})

    @property
    def has_credentials(self) -> bool:
        return self.token_hash is not None

    def derive_credentials(self) -> tuple[str, str]:
        """The link token (128 bits) and access code of the current credential version.

        The worker must put them in every invitation and reminder, so they are derived
        from CREDENTIAL_KEY rather than kept; the database holds only their hashes.
        """
        key = settings.CREDENTIAL_KEY.encode()
        stem = f"{self.pk}:{self.credential_version}"
        token_bytes = hmac.new(key, f"link:{stem}".encode(), hashlib.sha256).digest()[:16]
        token = token_bytes.hex()
        code_bytes = hmac.new(key, f"code:{stem}".encode(), hashlib.sha256).digest()
        code = "".join(ACCESS_CODE_ALPHABET[b % len(ACCESS_CODE_ALPHABET)] for b in code_bytes[:10])
        return token, f"{code[:5]}-{code[5:]}"

    def issue_credentials(self) -> tuple[str, str]:
        """Issue new credentials; the previous link and code stop working at once."""
        token, code = self.set_new_credentials()
        self.save(update_fields=CREDENTIAL_FIELDS)
        return token, code

    def set_new_credentials(self) -> tuple[str, str]:
        """New credentials on this object, not yet saved: save CREDENTIAL_FIELDS (in bulk)."""
        self.credential_version += 1
        token, code = self.derive_credentials()
        self.token_hash = hash_token(token)
        self.code_hash = AccessCodeHasher().encode(normalise_code(code), secrets.token_hex(8))
        self.credentials_issued_at = timezone.now()
        return token, code

    def revoke_credentials(self) -> None:
        self.credential_version += 1
        self.token_hash = None
        self.code_hash = ""
        self.save(update_fields=["credential_version", "token_hash", "code_hash"])

    def check_access_code(self, code: str) -> bool:
        if not self.code_hash:
            return False
        return AccessCodeHasher().verify(normalise_code(code), self.code_hash)

    def respondent_link(self) -> str:
        token, _code = self.derive_credentials()
        return settings.SITE_URL + reverse("surveys:link", args=[token])

    @property
    def base_weight(self) -> float:
        return self.stratum.base_weight

    @property
    def category(self) -> str:
        return aapor.category_of(self.disposition)

    def record_disposition(
        self,
        code: str,
        *,
        source: str,
        by: AbstractBaseUser | AnonymousUser | None = None,
        reason: str | dispositions.Note = "",
        at: dt.datetime | None = None,
        override: bool = False,
        recompute: bool = True,
        wave: Wave | None = None,
    ) -> DispositionEvent:
        """Record an event; the most recent event decides the current disposition.

        A submitted response is never moved to a non-response code (2.x, 3.x) unless the
        override is explicit, and that override is kept in the history. The event belongs
        to `wave` (an email's own wave), else to the wave open at that moment.
        """
        at = at or timezone.now()
        aapor.parse_code(code)
        # No savepoint of its own: nothing here is caught, so a failure undoes the caller's
        # whole transaction (or this one's, when there is no caller's).
        with transaction.atomic(savepoint=False):
            current, current_at, response_status = (
                Case.objects.select_for_update(of=("self",))
                .filter(pk=self.pk)
                .values_list("disposition", "disposition_at", "response__status")
                .get()
            )
            submitted = response_status == "submitted"
            blocked = submitted and dispositions.is_nonresponse(code) and not override
            event = DispositionEvent.objects.create(
                case_id=self.pk,
                code=code,
                at=at,
                wave_id=wave.pk if wave else Wave.objects.open_id_at(self.survey_id, at),
                source=source,
                by=by if by is not None and by.is_authenticated else None,  # type: ignore[misc]
                reason=reason.text() if isinstance(reason, dispositions.Note) else reason,
                reason_parts=reason.as_json() if isinstance(reason, dispositions.Note) else [],
                override=override,
                applied=not blocked and at >= current_at,
                previous=current,
            )
            if event.applied:
                Case.objects.filter(pk=self.pk).update(disposition=code, disposition_at=at)
                self.disposition, self.disposition_at = code, at
                # Within one AAPOR category (3.11 → 3.19, say) no weight or estimate moves.
                moved = aapor.category_of(code) != aapor.category_of(current)
                if recompute and moved:
                    request_recompute(self.survey_id, reason=f"disposition {code}")
        return event

    def record_opened(self) -> DispositionEvent | None:
        """The firm opened its link: 2.121 unless something more telling is recorded."""
        if aapor.category_of(self.disposition) in ("U", "NC", "O"):
            return self.record_disposition(
                dispositions.OPENED,
                source="respondent",
                reason=dispositions.history_text(gettext_noop("Link opened")),
            )
        return None

    def record_started(self) -> DispositionEvent | None:
        """The firm saved a first answer: a break-off until it submits."""
        if self.disposition == dispositions.OPENED or aapor.category_of(self.disposition) in (
            "U",
            "NC",
            "O",
        ):
            return self.record_disposition(
                dispositions.BROKE_OFF,
                source="respondent",
                reason=dispositions.history_text(gettext_noop("Answering started")),
            )
        return None

    def record_submission(
        self,
        response: Response,
        completeness: Completeness,
        *,
        by: AbstractBaseUser | None = None,
        imported: bool = False,
    ) -> DispositionEvent:
        """The disposition a submission earns (sec. C). The caller asks for the recompute:
        a submission changes the estimates even when the category stays the same."""
        code, reason = dispositions.classify(completeness)
        source = "import" if imported else "manager" if by is not None else "respondent"
        what = (
            gettext_noop("Keyed (%(mode)s)") if imported else gettext_noop("Submitted (%(mode)s)")
        )
        submitted = dispositions.history_text(
            what, mode=dispositions.mode_message(response.mode), translate=("mode",)
        )
        return self.record_disposition(
            code,
            source=source,
            by=by,
            reason=submitted + ": " + reason,
            at=response.submitted_at,
            recompute=False,
        )

    def log_contact(
        self,
        channel: str,
        outcome: str,
        *,
        by: AbstractBaseUser | AnonymousUser | None = None,
        note: str = "",
        at: dt.datetime | None = None,
    ) -> ContactAttempt:
        """Log a call, letter or visit; it belongs to the wave open at that moment."""
        at = at or timezone.now()
        return ContactAttempt.objects.create(
            case=self,
            channel=channel,
            outcome=outcome,
            at=at,
            wave_id=Wave.objects.open_id_at(self.survey_id, at),
            staff=by if by is not None and by.is_authenticated else None,  # type: ignore[misc]
            note=note,
        )


ACCESS_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CREDENTIAL_FIELDS = ["credential_version", "token_hash", "code_hash", "credentials_issued_at"]


def check_password_timing(code: str) -> None:
    """Spend the time of an access-code check when there is no case to check against."""
    AccessCodeHasher().encode(normalise_code(code), "timing")


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


class AccessCodeHasher(PBKDF2PasswordHasher):
    """Access codes are ~50 bits: stretched like passwords, but lighter, to issue 5,000 fast."""

    algorithm = "pbkdf2_sha256_code"
    iterations = 10_000


class WaveQuerySet(models.QuerySet["Wave"]):
    def sending_requested(self) -> WaveQuerySet:
        """Waves whose emails were asked for since they were last queued."""
        return self.filter(send_requested_at__isnull=False).filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=F("send_requested_at"))
        )

    def open_at(self, survey_id: int, at: dt.datetime) -> Wave | None:
        pk = self.open_id_at(survey_id, at)
        return None if pk is None else self.get(pk=pk)

    def open_id_at(self, survey_id: int, at: dt.datetime) -> int | None:
        """The id of the wave open at `at` (the latest started, if waves overlap). A survey
        has a handful of waves: their ends are compared here rather than in SQL, which
        halves the cost of a query run for every disposition and contact."""
        started = self.filter(survey_id=survey_id, starts_at__lte=at).order_by("-starts_at")
        for pk, ends_at in started.values_list("pk", "ends_at"):
            if ends_at is None or ends_at > at:
                return int(pk)
        return None


class Wave(models.Model):
    class Kind(models.TextChoices):
        INVITATION = "invitation", _("invitation")
        REMINDER = "reminder", _("reminder")
        PHONE = "phone", _("phone follow-up")
        OTHER = "other", _("other")

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="waves")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    official_run = models.ForeignKey(
        "analytics.EstimateRun", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Outbox of the send button: the worker queues the emails when asked after queued_at.
    send_requested_at = models.DateTimeField(null=True, blank=True)
    send_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(null=True, blank=True)

    objects = WaveQuerySet.as_manager()

    class Meta:
        verbose_name = _("wave")
        verbose_name_plural = _("waves")
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="wave_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def sending_requested(self) -> bool:
        requested, queued = self.send_requested_at, self.queued_at
        return requested is not None and (queued is None or queued < requested)

    def close(self, *, user: Any = None) -> bool:
        """Close once (a second close, or a close racing another, changes nothing); the
        caller then asks for the wave's official version. False when it was closed."""
        now = timezone.now()
        closed = Wave.objects.filter(pk=self.pk, closed_at__isnull=True).update(
            closed_at=now,
            closed_by=user if getattr(user, "is_authenticated", False) else None,
            ends_at=self.ends_at or now,
        )
        self.refresh_from_db()
        return bool(closed)


class DispositionEvent(models.Model):
    class Source(models.TextChoices):
        RESPONDENT = "respondent", _("respondent")
        MANAGER = "manager", _("manager")
        IMPORT = "import", _("import")
        EMAIL = "email", _("email delivery")
        SYSTEM = "system", _("system")

    case = models.ForeignKey(Case, models.CASCADE, related_name="disposition_events")
    code = models.CharField(max_length=8)
    at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    wave = models.ForeignKey(Wave, models.SET_NULL, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The reason in the platform's language, as recorded; when the platform wrote it, also
    # as translatable messages (dispositions.Note) so that each reader sees their language.
    reason = models.TextField(blank=True)
    reason_parts = models.JSONField(default=list, blank=True)
    override = models.BooleanField(default=False)
    applied = models.BooleanField(default=True)
    # The case's disposition when the event was recorded: what an applied event moved the
    # case from (applied events come in time order, so it is also the code of the applied
    # event before). Kept so that counting moves needs no window over the whole history.
    previous = models.CharField(max_length=8, blank=True)

    class Meta:
        verbose_name = _("disposition event")
        verbose_name_plural = _("disposition events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.case} {self.code} {self.at:%Y-%m-%d}"

    def reason_text(self) -> str:
        """The reason in the reader's language."""
        return dispositions.render_note(self.reason_parts, self.reason)


class ContactAttempt(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", _("email")
        PHONE = "phone", _("phone")
        LETTER = "letter", _("letter")
        FAX = "fax", _("fax")
        VISIT = "visit", _("visit")

    class Outcome(models.TextChoices):
        SENT = "sent", _("sent")
        DELIVERED = "delivered", _("delivered")
        BOUNCED = "bounced", _("bounced")
        FAILED = "failed", _("delivery failed")
        REACHED = "reached", _("reached the contact person")
        NO_ANSWER = "no_answer", _("no answer")
        CALLBACK = "callback", _("call back later")
        WRONG_NUMBER = "wrong_number", _("wrong number or address")
        REFUSED = "refused", _("refused")
        OTHER = "other", _("other")

    case = models.ForeignKey(Case, models.CASCADE, related_name="contacts")
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    at = models.DateTimeField(_("date"), default=timezone.now)
    wave = models.ForeignKey(Wave, models.SET_NULL, null=True, blank=True, related_name="+")
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("contact attempt")
        verbose_name_plural = _("contact log")
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.case} {self.channel} {self.outcome}"


class MessageTemplate(models.Model):
    """Invitation and reminder emails, per language; managers edit them."""

    class Kind(models.TextChoices):
        INVITATION = "invitation", _("invitation")
        REMINDER = "reminder", _("reminder")

    survey = models.ForeignKey(Survey, models.CASCADE, related_name="message_templates")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    subject = models.CharField(_("subject"), max_length=200)
    body = models.TextField(
        _("body"),
        help_text=_(
            "Placeholders: {name}, {business_id}, {link}, {access_code}, {deadline}, {help_desk}."
        ),
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("email template")
        verbose_name_plural = _("email templates")
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "kind", "language"], name="unique_message_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.survey.slug} {self.kind} ({self.language})"


class MessageQuerySet(models.QuerySet["Message"]):
    def stale_claims(self, older_than: dt.timedelta) -> MessageQuerySet:
        return self.filter(
            status=Message.Status.SENDING, claimed_at__lt=timezone.now() - older_than
        )


class Message(models.Model):
    """One email to one case in one wave: the record that makes sending exactly-once."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        SKIPPED = "skipped", _("skipped (case resolved)")
        FAILED = "failed", _("failed")
        BOUNCED = "bounced", _("bounced")
        UNCERTAIN = "uncertain", _("uncertain (worker stopped while sending)")

    case = models.ForeignKey(Case, models.CASCADE, related_name="messages")
    wave = models.ForeignKey(Wave, models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=16, choices=MessageTemplate.Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    to_address = models.EmailField(blank=True)
    language = models.CharField(max_length=8, default="ko")
    queued_at = models.DateTimeField(default=timezone.now)
    queued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        constraints = [
            models.UniqueConstraint(fields=["case", "wave"], name="one_message_per_case_and_wave")
        ]
        indexes = [models.Index(fields=["wave", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.case} ({self.status})"


# PostgreSQL advisory locks of the access-code check (another namespace than the recompute's).
ACCESS_LOCK_NAMESPACE = 7202


class AccessFailureQuerySet(models.QuerySet["AccessFailure"]):
    def lock(self, *, business_id: str, client: str) -> None:
        """Serialise access-code checks of one business ID and of one client until the
        transaction ends, so that counting failures, checking the code and recording a
        failure are one step: thirty parallel guesses cannot all pass the count first.
        Always the business ID, then the client: two checks never wait on each other in a
        circle. (SQLite's write transactions are serialised already.)"""
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            for key in (f"business:{business_id}", f"client:{client}"):
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ACCESS_LOCK_NAMESPACE, key]
                )

    def too_many(self, *, business_id: str, client: str) -> bool:
        since = timezone.now() - dt.timedelta(seconds=settings.ACCESS_CODE_WINDOW_SECONDS)
        recent = self.filter(at__gte=since)
        return (
            recent.filter(business_id=business_id).count() >= settings.ACCESS_CODE_MAX_FAILURES
            or recent.filter(client=client).count() >= settings.ACCESS_CODE_MAX_FAILURES_PER_CLIENT
        )


class AccessFailure(models.Model):
    """A wrong access code; counted per client address and per business ID."""

    business_id = models.CharField(max_length=40)
    client = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AccessFailureQuerySet.as_manager()

    class Meta:
        verbose_name = _("wrong access code")
        verbose_name_plural = _("wrong access codes")
        indexes = [
            models.Index(fields=["business_id", "at"]),
            models.Index(fields=["client", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.business_id} from {self.client}"
