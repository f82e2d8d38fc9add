"""Read-only results API (/api/v1/): the published estimate versions of the surveys an API
token may see, their estimates, and fieldwork status; and the pages that issue and revoke
tokens.

A token is a random string shown once; only its SHA-256 is stored. It sees only its own
surveys: any other survey answers 404, so the API never confirms that a survey exists. A
suppressed cell goes out with its reasons and without any value (docs/methodology.md, F4).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema, extend_schema_field
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, generics, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from analytics.engine.aapor import CATEGORIES, RATE_NAMES
from config.http import client_address
from config.tokens import hash_token
from respondents.models import Wave
from respondents.rates import response_rate_rows
from surveys.models import Survey

from . import schema_docs
from .models import ApiToken, Estimate, EstimateRun
from .spec import SpecError, parse_spec
from .views.results import REASON_LEVELS, reasons_of

DOWNLOAD_RESULTS = "analytics.download_results"
TOKEN_PREFIX = "smf_"  # noqa: S105 (a marker that lets secret scanners spot leaked tokens)
TOKEN_BYTES = 32
# last_used_at is written at most this often per token (one UPDATE, not one per request).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
SCHEMES = (b"bearer", b"token")
VALUE_FIELDS = ("estimate", "se", "ci_low", "ci_high", "cv", "deff", "population")
QUALITY = {"SUPPRESS": "suppressed", "REVIEW": "review", "CAUTION": "caution"}


# --- tokens -----------------------------------------------------------------------------------


def issue_token(
    *, name: str, surveys: Iterable[Survey], created_by: Any = None
) -> tuple[ApiToken, str]:
    """A new token for these surveys; returns it with the plaintext, which is not stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name,
            token_hash=hash_token(plaintext),
            prefix=plaintext[:8],
            created_by=created_by,
        )
        token.surveys.set(list(surveys))
    return token, plaintext


def _record_use(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional: of concurrent requests in the same minute, only one writes.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`), checked against its hash."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in SCHEMES:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Send the token as “Bearer <token>”."))
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        token = ApiToken.objects.filter(
            token_hash=hash_token(plaintext), revoked_at__isnull=True
        ).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        _record_use(token)
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        # Makes a missing token a 401 (with WWW-Authenticate) rather than a 403.
        return 'Bearer realm="api"'


class AddressRateThrottle(SimpleRateThrottle):
    """Every API request of one client address, counted before authentication."""

    scope = "api_address"

    def get_rate(self) -> str:
        return str(settings.API_RATE_PER_ADDRESS)

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


class TokenRateThrottle(SimpleRateThrottle):
    """The requests of one API token, wherever they come from."""

    scope = "api_token"

    def get_rate(self) -> str:
        return str(settings.API_RATE_PER_TOKEN)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.pk}


def address_allows(request: Any) -> float | None:
    """None when the client address may make another API request, else the seconds to wait."""
    throttle = AddressRateThrottle()
    if throttle.allow_request(request, None):
        return None
    return throttle.wait() or 1.0


class HasApiToken(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiToken)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token issued on the platform's API token page.",
        }


# --- serializers ------------------------------------------------------------------------------


class SurveySerializer(serializers.ModelSerializer):
    latest_run = serializers.IntegerField(
        allow_null=True, help_text="Number of the latest published version, if any."
    )

    class Meta:
        model = Survey
        fields = ["slug", "title", "title_en", "latest_run"]
        extra_kwargs = {
            "slug": {"help_text": "The survey's ID in every URL of the API."},
            "title": {"help_text": "Title in Korean."},
            "title_en": {"help_text": "Title in English (empty when the form has none)."},
        }


class WaveSerializer(serializers.ModelSerializer):
    class Meta:
        model = Wave
        fields = ["id", "name", "kind", "starts_at", "ends_at"]


class RunSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="Version number, increasing.")
    data_as_of = serializers.DateTimeField(allow_null=True)
    published_at = serializers.DateTimeField(source="finished_at", allow_null=True)
    wave = WaveSerializer(
        allow_null=True,
        help_text="The wave this version closed (its official figures), else the fieldwork wave "
        "open at data_as_of.",
    )
    official_for_waves = serializers.SerializerMethodField(
        help_text="Ids of the waves whose official figures this version is."
    )
    cases = serializers.IntegerField(source="snapshot.cases", allow_null=True)
    respondents = serializers.IntegerField(source="snapshot.respondents", allow_null=True)
    response_rate_rr3 = serializers.FloatField(source="snapshot.rr3", allow_null=True)
    response_rate_rr4 = serializers.FloatField(source="snapshot.rr4", allow_null=True)
    spec_version = serializers.IntegerField()
    weighting = serializers.SerializerMethodField()
    confidence_level = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_official_for_waves(self, run: EstimateRun) -> list[int]:
        return self.context.get("official", {}).get(run.pk, [])

    @extend_schema_field(serializers.CharField())
    def get_weighting(self, run: EstimateRun) -> str:
        try:
            return parse_spec(run.spec).describe()
        except (SpecError, TypeError):
            return ""

    @extend_schema_field(serializers.FloatField())
    def get_confidence_level(self, run: EstimateRun) -> float:
        return float((run.spec.get("suppression") or {}).get("level", 0.95))


class EstimateSerializer(serializers.ModelSerializer):
    reasons = serializers.SerializerMethodField(
        help_text="Reliability reason codes, most severe first (empty when none applies)."
    )
    quality = serializers.SerializerMethodField(
        help_text="ok, caution, review or suppressed (suppressed cells carry no values)."
    )

    class Meta:
        model = Estimate
        fields = [
            "item",
            "option",
            "statistic",
            "domain",
            "domain_value",
            *VALUE_FIELDS,
            "n",
            "df",
            "suppressed",
            "quality",
            "reasons",
            "grade",
            "imputed_share",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_reasons(self, row: Estimate) -> list[str]:
        return reasons_of(row.flag)

    @extend_schema_field(serializers.ChoiceField(choices=["ok", *QUALITY.values()]))
    def get_quality(self, row: Estimate) -> str:
        if row.suppressed:
            return "suppressed"
        levels = [REASON_LEVELS[code] for code in reasons_of(row.flag)]
        return QUALITY[levels[0]] if levels else "ok"

    def to_representation(self, instance: Estimate) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.suppressed:
            # Never publish a suppressed value, nor one it can be derived from (N̂·p, CV).
            data.update(dict.fromkeys(VALUE_FIELDS), grade="", imputed_share=None)
        return data


class EstimateFilter(serializers.Serializer):
    item = serializers.CharField(required=False, max_length=64, help_text="Question name.")
    option = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Answer option ('' for numbers)."
    )
    statistic = serializers.ChoiceField(choices=Estimate.Statistic.values, required=False)
    domain = serializers.CharField(
        required=False, max_length=64, help_text="all, size_class, region, sf_adopted…"
    )
    domain_value = serializers.CharField(required=False, max_length=64)


class RateRowSerializer(serializers.Serializer):
    domain = serializers.CharField(help_text="`all`, `stratum`, `size_class`, `region`…")
    domain_value = serializers.CharField(help_text="The domain's value (`all` for the sample).")
    cases = serializers.IntegerField(help_text="Sampled cases in the row.")
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Cases by AAPOR category: " + ", ".join(CATEGORIES),
    )
    rates = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="AAPOR rates as fractions (null when undefined): " + ", ".join(RATE_NAMES),
    )


class FieldworkSerializer(serializers.Serializer):
    survey = serializers.CharField(help_text="The survey's ID.")
    as_of = serializers.DateTimeField(help_text="When the counts were taken.")
    rows = RateRowSerializer(many=True, help_text="The whole sample first, then by domain.")


# --- views ------------------------------------------------------------------------------------


class Pages(LimitOffsetPagination):
    default_limit = 1000
    max_limit = 10000


class TokenView(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [HasApiToken]
    throttle_classes = [TokenRateThrottle]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # DRF checks throttles after authentication; the address is counted first, so that
        # requests with bad tokens are throttled too.
        wait = address_allows(request)
        if wait is not None:
            self.throttled(request, wait)
        super().initial(request, *args, **kwargs)

    def token_survey(self) -> Survey:
        return get_object_or_404(self.request.auth.surveys.all(), slug=self.kwargs["survey"])

    def published_runs(self) -> QuerySet[EstimateRun]:
        return (
            EstimateRun.objects.published()
            .filter(survey=self.token_survey())
            .select_related("wave")
            .defer("weights", "timings", "diagnostics")
            .order_by("-number")
        )

    def run(self) -> EstimateRun:
        runs = self.published_runs()
        number = self.kwargs.get("number")
        run = runs.filter(number=number).first() if number is not None else runs.first()
        if run is None:
            raise exceptions.NotFound(_("No such published version."))
        return run


def token_surveys(token: ApiToken) -> QuerySet[Survey]:
    published = Q(estimate_runs__status=EstimateRun.Status.PUBLISHED)
    return token.surveys.annotate(
        latest_run=Max("estimate_runs__number", filter=published)
    ).order_by("slug")


@extend_schema(summary=gettext_lazy("Surveys this token can read"), tags=["surveys"])
class SurveyList(TokenView, generics.ListAPIView):
    serializer_class = SurveySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Survey]:
        return token_surveys(self.request.auth)


@extend_schema(summary=gettext_lazy("One survey"), tags=["surveys"])
class SurveyDetail(TokenView, generics.RetrieveAPIView):
    serializer_class = SurveySerializer
    lookup_field = "slug"
    lookup_url_kwarg = "survey"

    def get_queryset(self) -> QuerySet[Survey]:
        return token_surveys(self.request.auth)


class RunView(TokenView):
    serializer_class = RunSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        official: dict[int, list[int]] = {}
        waves = Wave.objects.filter(survey=self.token_survey()).exclude(official_run=None)
        for wave_id, run_id in waves.values_list("pk", "official_run"):
            official.setdefault(run_id, []).append(wave_id)
        return {"request": self.request, "official": official}


@extend_schema(
    summary=gettext_lazy("Published versions of a survey, newest first"), tags=["versions"]
)
class RunList(RunView, generics.ListAPIView):
    pagination_class = Pages

    def get_queryset(self) -> QuerySet[EstimateRun]:
        return self.published_runs()


@extend_schema(summary=gettext_lazy("One published version"), tags=["versions"])
class RunDetail(RunView, generics.RetrieveAPIView):
    def get_object(self) -> EstimateRun:
        return self.run()


@extend_schema(summary=gettext_lazy("The latest published version"), tags=["versions"])
class LatestRun(RunDetail):
    pass


@extend_schema(
    summary=gettext_lazy("Estimates of a published version"),
    description=gettext_lazy(
        "Filter by `item`, `option`, `statistic`, `domain` and `domain_value`.\n\n"
        "A **suppressed** cell has `suppressed: true`, its `reasons` and `quality: "
        "suppressed`, and every value (`estimate`, `se`, `ci_low`, `ci_high`, `cv`, `deff`, "
        "`population`) is `null`. Proportions are fractions: `0.195` is 19.5 %."
    ),
    parameters=[EstimateFilter],
    tags=["estimates"],
)
class EstimateList(TokenView, generics.ListAPIView):
    serializer_class = EstimateSerializer
    pagination_class = Pages

    def get_queryset(self) -> QuerySet[Estimate]:
        filters = EstimateFilter(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return Estimate.objects.filter(run=self.run(), **filters.validated_data).order_by("pk")


@extend_schema(
    summary=gettext_lazy("Estimates of the latest published version"),
    parameters=[EstimateFilter],
    tags=["estimates"],
)
class LatestEstimateList(EstimateList):
    pass


@extend_schema(
    summary=gettext_lazy("Fieldwork status: cases by disposition and response rates"),
    responses=FieldworkSerializer,
    tags=["fieldwork"],
)
class Fieldwork(TokenView):
    def get(self, request: Request, survey: str) -> Response:
        found = self.token_survey()
        rows = [_rate_row(row) for row in response_rate_rows(found, weighted=False)]
        data = {"survey": found.slug, "as_of": timezone.now(), "rows": rows}
        return Response(FieldworkSerializer(data).data)


def _rate_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "domain": row["domain"],
        "domain_value": row["domain_value"],
        "cases": row["cases"],
        "counts": {c: round(row[c]) for c in CATEGORIES},
        "rates": {r: None if math.isnan(row[r]) else row[r] for r in RATE_NAMES},
    }


# --- documentation ----------------------------------------------------------------------------


class Schema(SpectacularAPIView):
    """The OpenAPI schema: public like the documentation, throttled like the API."""

    throttle_classes = [AddressRateThrottle]


def docs(request: HttpRequest) -> HttpResponse:
    """A readable page built from the OpenAPI schema, so that it never drifts from the API.

    Public, like the schema: it describes the endpoints and never any data or survey, and
    those who integrate the API read it before their token is issued."""
    wait = address_allows(request)
    if wait is not None:
        response = HttpResponse(_("Too many requests."), status=429, content_type="text/plain")
        response["Retry-After"] = str(math.ceil(wait))
        return response
    schema = SchemaGenerator().get_schema(request=None, public=True)
    context = {
        "endpoints": schema_docs.endpoints(schema),
        "introduction": schema_docs.render_markdown(schema["info"].get("description", "")),
        "schema_url": reverse("api:schema"),
        "base_url": request.build_absolute_uri(reverse("api:surveys")),
        "title": schema["info"]["title"],
        "version": schema["info"]["version"],
    }
    return render(request, "analytics/results_api_docs.html", context)


# --- token pages ------------------------------------------------------------------------------


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("Who or what uses it, e.g. “Ministry dashboard”."),
    )
    surveys = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Surveys it may read"),
        queryset=Survey.objects.order_by("slug"),
        widget=forms.CheckboxSelectMultiple,
    )


@login_required
@permission_required(DOWNLOAD_RESULTS, raise_exception=True)
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        token, plaintext = issue_token(
            name=form.cleaned_data["name"],
            surveys=form.cleaned_data["surveys"],
            created_by=request.user,
        )
        issued = {"token": token, "plaintext": plaintext}
        form = ApiTokenForm()
    tokens = (
        ApiToken.objects.select_related("created_by")
        .prefetch_related("surveys")
        .order_by("revoked_at", "-created_at")
    )
    context = {"form": form, "tokens": tokens, "issued": issued, "docs_url": reverse("api:docs")}
    response = render(request, "analytics/results_api_tokens.html", context)
    # The plaintext is shown once: keep it out of every cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required(DOWNLOAD_RESULTS, raise_exception=True)
@require_POST
def revoke_api_token(request: HttpRequest, token: int) -> HttpResponse:
    found = get_object_or_404(ApiToken, pk=token)
    if found.revoke():
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": found.name})
    else:
        messages.info(request, _("Token “%(name)s” was already revoked.") % {"name": found.name})
    return redirect("results:api_tokens")
