"""The chase list: the strata furthest behind their share of the target, and the firms in
them to call next, with their contact history, as a page and as CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.db.models import Case as SqlCase
from django.db.models import (
    Count,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from config.spreadsheets import csv_writer, safe_cell
from surveys.models import Survey

from .models import (
    Case,
    ContactAttempt,
    Message,
    Stratum,
)
from .rates import TARGET_RATE, target_responses


@dataclass(frozen=True)
class StratumLag:
    """How far a stratum's completes + partials fall short of its share of the target."""

    stratum: Stratum
    sample_size: int
    responded: int
    target: float  # n_h × target rate
    shortfall: float  # max(0, target − responded) / n_h

    @property
    def shortfall_percent(self) -> float:
        return 100 * self.shortfall


def stratum_lags(survey: Survey) -> dict[int, StratumLag]:
    """Every stratum's shortfall against n_h × the survey's target rate.

    The target rate is Survey.target_responses / n when set, else TARGET_RATE, so every
    stratum is asked for the same response rate (I + P over n_h) and the strata furthest
    below it are chased first.
    """
    responded_filter = Q(cases__disposition__startswith="1.") & (
        Q(cases__is_reserve=False) | Q(cases__released_at__isnull=False)
    )
    strata = list(
        Stratum.objects.filter(design__survey=survey, design__drawn_at__isnull=False)
        .select_related("design")
        .annotate(responded=Count("cases", filter=responded_filter))
    )
    sampled = sum(s.sample_size for s in strata)
    rate = target_responses(survey, sampled) / sampled if sampled else TARGET_RATE
    return {s.pk: _lag(s, rate) for s in strata}


def _lag(stratum: Any, rate: float) -> StratumLag:
    n = stratum.sample_size
    target = n * rate
    shortfall = max(0.0, target - stratum.responded) / n if n else 0.0
    return StratumLag(stratum, n, stratum.responded, target, shortfall)


def chase_cases(survey: Survey, lags: dict[int, StratumLag]) -> QuerySet[Case]:
    """Cases reminders may go to and that have not submitted, the most needed first.

    Ordered by their stratum's shortfall (largest first), then by fewest contact attempts,
    then in sample order; annotated with the contact history summary. Counts are correlated
    subqueries, not a join with GROUP BY: ordering a census's open cases by them is then a
    single index probe per case, and the other columns are computed for the shown rows only.
    """
    shortfall = SqlCase(
        *(When(stratum_id=pk, then=Value(lag.shortfall)) for pk, lag in lags.items()),
        default=Value(0.0),
        output_field=FloatField(),
    )
    contacts = ContactAttempt.objects.filter(case=OuterRef("pk"))
    channels = {
        f"attempts_{channel}": _count(contacts.filter(channel=channel))
        for channel in ContactAttempt.Channel.values
    }
    last = contacts.order_by("-at", "-pk")
    last_email = Message.objects.filter(case=OuterRef("pk")).order_by("-queued_at", "-pk")
    return (
        Case.objects.filter(survey=survey)
        .open_for_contact()
        .exclude(response__status="submitted")
        .select_related("frame_unit", "stratum__design")
        .annotate(
            shortfall=shortfall,
            attempts=_count(contacts),
            **channels,
            last_contact_at=Subquery(last.values("at")[:1]),
            last_channel=Subquery(last.values("channel")[:1]),
            last_outcome=Subquery(last.values("outcome")[:1]),
            last_email_status=Subquery(last_email.values("status")[:1]),
        )
        .order_by("-shortfall", "attempts", "stratum__key", "selection_order")
    )


def _count(rows: QuerySet[Any]) -> Coalesce:
    counted = rows.order_by().values("case").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), Value(0))


def chase_columns(*, contact: bool) -> list[tuple[str, str]]:
    columns = [
        ("rank", _("rank")),
        ("business_id", _("business registration number")),
        ("name", _("name")),
        ("stratum", _("stratum")),
        ("stratum_shortfall", _("stratum shortfall (share of n_h)")),
        ("disposition", _("disposition")),
        ("attempts", _("contact attempts")),
        *((f"attempts_{value}", _("%(channel)s attempts") % {"channel": label})
          for value, label in ContactAttempt.Channel.choices),
        ("last_contact_at", _("last contact")),
        ("last_channel", _("last channel")),
        ("last_outcome", _("last outcome")),
        ("last_email_status", _("last email status")),
    ]  # fmt: skip
    if contact:
        columns += [("email", _("email")), ("phone", _("phone"))]
    return columns


@dataclass(frozen=True)
class ContactSummary:
    """A chase-list case's contact history, from the annotations of chase_cases()."""

    by_channel: list[tuple[str, str, int]]  # (channel, label, attempts) for channels tried
    last_at: dt.datetime | None
    last_channel: str
    last_outcome: str
    last_email_status: str


def contact_summary(case: Case) -> ContactSummary:
    annotated: Any = case
    channels = [
        (value, str(label), getattr(annotated, f"attempts_{value}"))
        for value, label in ContactAttempt.Channel.choices
    ]
    return ContactSummary(
        by_channel=[channel for channel in channels if channel[2]],
        last_at=annotated.last_contact_at,
        last_channel=_label(ContactAttempt.Channel, annotated.last_channel),
        last_outcome=_label(ContactAttempt.Outcome, annotated.last_outcome),
        last_email_status=_label(Message.Status, annotated.last_email_status),
    )


def _label(choices: Any, value: str | None) -> str:
    return str(dict(choices.choices).get(value, value or ""))


def chase_rows(cases: Iterable[Case], *, contact: bool, start: int = 1) -> Iterator[list[Any]]:
    """One row per case for the call centre's CSV, text made safe for spreadsheets."""
    for rank, case in enumerate(cases, start=start):
        annotated: Any = case
        summary = contact_summary(case)
        row: list[Any] = [
            rank,
            case.business_id,
            case.frame_unit.name,
            case.stratum.key,
            round(annotated.shortfall, 4),
            case.disposition,
            annotated.attempts,
            *(getattr(annotated, f"attempts_{value}") for value in ContactAttempt.Channel.values),
            _local(summary.last_at),
            summary.last_channel,
            summary.last_outcome,
            summary.last_email_status,
        ]
        if contact:
            row += [case.frame_unit.email, case.frame_unit.phone]
        yield [safe_cell(value) for value in row]


def _local(at: dt.datetime | None) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M") if at else ""


def write_chase_csv(survey: Survey, out: IO[str], *, contact: bool) -> int:
    """The whole chase list for the call centre: UTF-8 with BOM for Excel; returns rows."""
    cases = chase_cases(survey, stratum_lags(survey))
    out.write("\ufeff")
    writer = csv_writer(out)
    writer.writerow([label for _name, label in chase_columns(contact=contact)])
    written = 0
    for row in chase_rows(cases.iterator(chunk_size=2000), contact=contact):
        writer.writerow(row)
        written += 1
    return written
