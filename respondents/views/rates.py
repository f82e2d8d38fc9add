"""Fieldwork pages: the response-rate dashboard, its CSV, and the chase list."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from surveys.models import Survey

from .. import chase as chasing
from .. import rates

MANAGE_FIELDWORK = "respondents.manage_fieldwork"
VIEW_CONTACTS = "respondents.view_contact_details"
PER_PAGE = 50
LAGGING = 10  # strata listed at the top of the dashboard
LONG_TABLE = 25  # rows above which a table starts collapsed
TRUE_VALUES = ("1", "true", "yes", "on")


def _weighted(request: HttpRequest) -> bool:
    return request.GET.get("weighted", "").lower() in TRUE_VALUES


@login_required
@permission_required(MANAGE_FIELDWORK, raise_exception=True)
def fieldwork(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    report = rates.fieldwork(found, weighted=_weighted(request))
    lags = _furthest_behind(chasing.stratum_lags(found))
    tables = [
        (
            domain,
            rates.DOMAIN_TITLES[domain],
            _lagging_first(rows, lags) if domain == "stratum" else rows,
        )
        for domain, rows in report.tables.items()
    ]
    by_key = {row.value: row for row in report.tables.get("stratum", [])}
    context = {
        "survey": found,
        "report": report,
        "shown": report.total.shown,
        "percents": report.total.percents,
        "tables": tables,
        "lagging": [(lag, by_key.get(lag.stratum.key)) for lag in lags if lag.shortfall > 0][
            :LAGGING
        ],
        "long_table": LONG_TABLE,
        "chart": report.progress.chart_data(),
    }
    return render(request, "respondents/fieldwork.html", context)


def _furthest_behind(lags: dict[int, chasing.StratumLag]) -> list[chasing.StratumLag]:
    return sorted(lags.values(), key=lambda lag: (-lag.shortfall, lag.stratum.key))


def _lagging_first(rows: list[rates.Row], lags: list[chasing.StratumLag]) -> list[rates.Row]:
    """The stratum rows in the chase order: the largest shortfall against the target first."""
    place = {lag.stratum.key: k for k, lag in enumerate(lags)}
    return sorted(rows, key=lambda row: place.get(row.value, len(place)))


@login_required
@permission_required(MANAGE_FIELDWORK, raise_exception=True)
def rates_csv(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    weighted = _weighted(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    rates.write_response_rates_csv(found, response, weighted=weighted, bom=True)  # type: ignore[arg-type]
    name = f"{found.slug}-response-rates{'-weighted' if weighted else ''}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@permission_required(MANAGE_FIELDWORK, raise_exception=True)
def chase(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    lags = chasing.stratum_lags(found)
    cases = chasing.chase_cases(found, lags)
    page = Paginator(cases, PER_PAGE).get_page(request.GET.get("page"))
    contact = request.user.has_perm(VIEW_CONTACTS)
    rows = [
        (rank, case, chasing.contact_summary(case), lags.get(case.stratum_id))
        for rank, case in enumerate(page, start=page.start_index())
    ]
    context = {
        "survey": found,
        "page": page,
        "rows": rows,
        "show_contacts": contact,
        "lags": sorted(lags.values(), key=lambda lag: (-lag.shortfall, lag.stratum.key)),
        "target_percent": 100 * _target_rate(lags),
    }
    return render(request, "respondents/chase.html", context)


def _target_rate(lags: dict[int, chasing.StratumLag]) -> float:
    sampled = sum(lag.sample_size for lag in lags.values())
    return sum(lag.target for lag in lags.values()) / sampled if sampled else rates.TARGET_RATE


@login_required
@permission_required(MANAGE_FIELDWORK, raise_exception=True)
def chase_csv(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    contact = request.user.has_perm(VIEW_CONTACTS)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    chasing.write_chase_csv(found, response, contact=contact)  # type: ignore[arg-type]
    response["Content-Disposition"] = f'attachment; filename="{found.slug}-chase-list.csv"'
    if contact:
        response["Cache-Control"] = "no-store"
    return response
