"""Fieldwork progress: AAPOR outcome rates by domain and wave, completes per day against the
target, the rate table's export and the chase list (docs/methodology.md, sec. C).

Only in-sample cases count (unreleased reserve units are not in the sample). Every row
estimates e from its own resolved cases (a domain's own cases; the total row all cases), as
``aapor.rates_by_group`` does. Weighted figures replace each case by its base weight
d_i = N_h/n_h. Since d_i is constant within a stratum, the cases are read already counted by
stratum, disposition and domain values: a census of 163,273 firms comes back as a few
thousand rows, and the number of queries is fixed whatever the number of cases.

By wave: the situation at the end of each closed wave is the disposition every case had then,
i.e. its latest applied DispositionEvent at or before the wave's end (3.11 when it had none).
It is rebuilt from the history in one pass: each event moves one case from its previous code
to its own, so the counts at a wave's end are the initial ones plus the moves up to that end.
The wave open now shows the current dispositions. The previous code of every event is stored
with it (DispositionEvent.previous), so no window over the history is needed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np
from django.core.cache import cache
from django.db.models import Case as SqlCase
from django.db.models import (
    CharField,
    Count,
    F,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Left
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from numpy.typing import NDArray

from analytics.engine import aapor
from config.spreadsheets import csv_writer, safe_cell
from surveys.models import Survey

from .classifications import (
    INDUSTRY_GROUP_LABELS,
    REGION_AREA_LABELS,
    VALUE_LABELS,
    Region,
    SizeClass,
)
from .models import (
    Case,
    DispositionEvent,
    Stratum,
    Wave,
    frame_variable,
)

# The response target when Survey.target_responses is unset: 60 % of the sample (I + P).
TARGET_RATE = 0.6
TOTAL = "all"
UNKNOWN = "unknown"
CATEGORIES = aapor.CATEGORIES
RESPONDED = ("I", "P")
DOMAINS: tuple[str, ...] = ("stratum", "size_class", "region", "region_area", "industry_group")
DOMAIN_TITLES = {
    "stratum": gettext_lazy("By stratum"),
    "size_class": gettext_lazy("By size class"),
    "region": gettext_lazy("By region"),
    "region_area": gettext_lazy("By region area"),
    "industry_group": gettext_lazy("By industry group"),
    "wave": gettext_lazy("By wave (cumulative at the end of each wave)"),
}
DOMAIN_ORDER: dict[str, list[str]] = {
    "size_class": list(SizeClass.values),
    "region": list(Region.values),
    "region_area": list(REGION_AREA_LABELS),
    "industry_group": list(INDUSTRY_GROUP_LABELS),
}
RATE_COLUMNS = tuple(name for name in aapor.RATE_NAMES if name != "e")
EXPORT_COLUMNS = ("domain", "domain_value", "cases", *CATEGORIES, "e", *RATE_COLUMNS)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a rate table: a domain value's counts (weighted or not) and rates."""

    domain: str
    value: str
    label: str
    cases: int
    counts: dict[str, float]
    rates: dict[str, float]

    @cached_property
    def percents(self) -> dict[str, float | None]:
        """Rates in per cent for display; None where the denominator is 0."""
        return {k: None if math.isnan(v) else 100 * v for k, v in self.rates.items()}

    @property
    def e(self) -> float | None:
        return None if math.isnan(self.rates["e"]) else self.rates["e"]

    @cached_property
    def shown(self) -> dict[str, str]:
        """Every figure as displayed: counts rounded with thousands separators, rates in per
        cent with one decimal, e with three, and a dash for NaN. Formatting here rather than
        with template filters keeps a table of hundreds of strata fast to render."""
        shown = {"cases": f"{self.cases:,}"}
        shown |= {name: f"{value:,.0f}" for name, value in self.counts.items()}
        shown |= {name: _percent(value) for name, value in self.rates.items()}
        shown["e"] = "—" if math.isnan(self.rates["e"]) else f"{self.rates['e']:.3f}"
        return shown

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "domain_value": self.value,
            "cases": self.cases,
            **self.counts,
            **self.rates,
        }


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.1f}"


@dataclass(frozen=True)
class Progress:
    """Cumulative completes, and completes + partials, at the end of each fieldwork day."""

    days: list[dt.date]
    completes: list[int | None]  # None after today
    responses: list[int | None]
    target: int

    def chart_data(self) -> dict[str, Any]:
        return {
            "labels": [day.isoformat() for day in self.days],
            "completes": self.completes,
            "responses": self.responses,
            "target": self.target,
            "names": {
                "completes": _("Completes (I)"),
                "responses": _("Completes and partials (I + P)"),
                "target": _("Target"),
            },
        }


@dataclass(frozen=True)
class Fieldwork:
    weighted: bool
    sampled: int
    target: int
    total: Row
    tables: dict[str, list[Row]]  # DOMAINS, then "wave"
    progress: Progress

    def rows(self) -> list[Row]:
        return [self.total, *(row for rows in self.tables.values() for row in rows)]


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """In-sample cases counted by stratum, current disposition and domain values."""

    stratum: IntArray
    category: NDArray[np.str_]
    count: IntArray
    domains: dict[str, NDArray[Any]]


@dataclass(frozen=True)
class _Moves:
    """Disposition changes counted by (wave bucket, stratum) and by (local day)."""

    bucket: IntArray
    stratum: IntArray
    before: NDArray[np.str_]  # categories
    after: NDArray[np.str_]
    count: IntArray
    day: list[dt.date]
    day_before: NDArray[np.str_]
    day_after: NDArray[np.str_]
    day_count: IntArray


def in_sample_cases(survey: Survey) -> QuerySet[Case]:
    return Case.objects.filter(survey=survey).in_sample()


def load_strata(survey: Survey) -> list[Stratum]:
    return list(
        Stratum.objects.filter(design__survey=survey, design__drawn_at__isnull=False)
        .select_related("design")
        .order_by("key")
    )


def _load_cells(survey: Survey) -> _Cells:
    rows = list(
        in_sample_cases(survey)
        .annotate(
            industry_group=frame_variable("industry_group", "frame_unit__"),
            region_area=frame_variable("region_area", "frame_unit__"),
        )
        .values(
            "stratum_id",
            "disposition",
            "frame_unit__size_class",
            "frame_unit__region",
            "industry_group",
            "region_area",
        )
        .annotate(n=Count("pk"))
        .values_list(
            "stratum_id",
            "disposition",
            "frame_unit__size_class",
            "frame_unit__region",
            "industry_group",
            "region_area",
            "n",
        )
        .order_by()
    )
    strata, codes, sizes, regions, groups, areas, counts = _columns(rows, 7)
    return _Cells(
        stratum=np.asarray(strata, dtype=np.int64),
        category=categories_of(codes),
        count=np.asarray(counts, dtype=np.int64),
        domains={
            "stratum": np.asarray(strata, dtype=np.int64),
            "size_class": _mapped(sizes, None),
            "region": _mapped(regions, None),
            "region_area": _mapped(areas, None),
            "industry_group": _mapped(groups, None),
        },
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True)) if rows else [()] * width


def categories_of(codes: Iterable[str]) -> NDArray[np.str_]:
    """AAPOR categories of disposition codes, looking each distinct code up once."""
    values = np.asarray(list(codes), dtype=object).astype(str)
    if not len(values):
        return np.empty(0, dtype="<U2")
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([aapor.category_of(code) for code in distinct])[inverse]


def _mapped(values: Sequence[Any], mapping: dict[str, str] | None) -> NDArray[np.str_]:
    found = (value if mapping is None else mapping.get(value or "") for value in values)
    return np.array([value or UNKNOWN for value in found], dtype=str)


def _load_moves(survey: Survey, ends: Sequence[dt.datetime], sampled: int) -> _Moves:
    """Changes of disposition from the event history: every applied event moves its case
    from the code it had (DispositionEvent.previous) to its own. Moves are counted by (wave
    bucket, stratum) for the wave table, and by local day for the completes curve (only
    moves into or out of 1.x matter there).

    Events are never changed once written, so the counts of the settled ones (written more
    than SETTLED ago: no transaction that could still add an event with a lower id is that
    old) are kept in the cache with the last id they include, and each page adds only the
    events written since: a census's half a million events are read once, not every time."""
    key = _moves_key(survey, ends, sampled)
    settled_before = timezone.now() - SETTLED
    settled = (
        DispositionEvent.objects.filter(recorded_at__lte=settled_before)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    ) or 0
    counted: _Counted | None = cache.get(key)
    if counted is None or counted.upto > settled:
        counted = _Counted(0, {}, {})
    if counted.upto < settled:
        counted = counted.plus(_count_moves(survey, ends, after=counted.upto, upto=settled))
        cache.set(key, counted, MOVES_CACHE_SECONDS)
    return counted.plus(_count_moves(survey, ends, after=counted.upto)).moves()


SETTLED = dt.timedelta(hours=1)
RECENT_BY_ID = 5000
# The counts stay exact whatever their age; the time only bounds how long an unused
# survey's counts stay in the cache.
MOVES_CACHE_SECONDS = 24 * 3600


def _moves_key(survey: Survey, ends: Sequence[dt.datetime], sampled: int) -> str:
    """Counts hold for this survey (its creation time too: a database restored or rebuilt
    reuses ids), these wave ends and this sample (a released reserve changes it)."""
    limits = ",".join(str(end.timestamp()) for end in ends)
    return f"fieldwork-moves:{survey.pk}:{survey.created_at.timestamp()}:{sampled}:{limits}"


@dataclass(frozen=True)
class _Counted:
    upto: int  # the id of the last event counted
    by_wave: dict[tuple[int, int, str, str], int]  # (bucket, stratum, previous, code) -> n
    by_day: dict[tuple[dt.date, str, str], int]  # (local day, previous, code) -> n

    def plus(self, more: _Counted) -> _Counted:
        by_wave, by_day = dict(self.by_wave), dict(self.by_day)
        for key, n in more.by_wave.items():
            by_wave[key] = by_wave.get(key, 0) + n
        for day_key, n in more.by_day.items():
            by_day[day_key] = by_day.get(day_key, 0) + n
        return _Counted(more.upto, by_wave, by_day)

    def moves(self) -> _Moves:
        return _moves_from(
            [(*key, n) for key, n in self.by_wave.items()],
            [(*key, n) for key, n in self.by_day.items()],
        )


def _count_moves(
    survey: Survey, ends: Sequence[dt.datetime], *, after: int, upto: int | None = None
) -> _Counted:
    """The moves of the events with ids in (after, upto]. The day comes from the UTC minute,
    counted in SQL and made a local day here: converting each row's time zone in the
    database is a Python function on SQLite, seconds at a census."""
    # Conditions on the joined case, not `case__in=<in-sample cases>`: SQLite would build
    # the whole sample's id list for the few events written since the last count.
    in_sample = Q(case__is_reserve=False) | Q(case__released_at__isnull=False)
    events = DispositionEvent.objects.filter(pk__gt=after)
    if upto is not None:
        events = events.filter(pk__lte=upto)
    else:
        # The events since the last count are few: named by id, the database starts from
        # them rather than from every case of the survey.
        recent = list(events.order_by("pk").values_list("pk", flat=True)[: RECENT_BY_ID + 1])
        if not recent:
            return _Counted(after, {}, {})
        if len(recent) <= RECENT_BY_ID:
            events = DispositionEvent.objects.filter(pk__in=recent)
    moves = (
        events.filter(in_sample, applied=True, case__survey=survey)
        .exclude(previous=F("code"))
        .order_by()
    )
    bucket = SqlCase(
        *(When(at__lte=end, then=Value(k)) for k, end in enumerate(ends)),
        default=Value(len(ends)),
        output_field=IntegerField(),
    )
    by_wave = (
        moves.annotate(bucket=bucket, stratum=F("case__stratum_id"))
        .values_list("bucket", "stratum", "previous", "code")
        .annotate(n=Count("pk"))
    )
    by_minute = (
        moves.filter(Q(previous__startswith="1.") | Q(code__startswith="1."))
        .annotate(minute=Left(Cast("at", CharField()), 16))
        .values_list("minute", "previous", "code")
        .annotate(n=Count("pk"))
    )
    by_day: dict[tuple[dt.date, str, str], int] = {}
    for minute, before, after_code, n in by_minute:
        moment = dt.datetime.fromisoformat(minute).replace(tzinfo=dt.UTC)
        day_key = (timezone.localdate(moment), before, after_code)
        by_day[day_key] = by_day.get(day_key, 0) + n
    return _Counted(upto or after, {row[:4]: row[4] for row in by_wave}, by_day)


def _moves_from(
    by_wave: list[tuple[Any, ...]], by_day: list[tuple[dt.date, str, str, int]]
) -> _Moves:
    buckets, strata, before, after, counts = _columns(by_wave, 5)
    days, day_before, day_after, day_counts = _columns(by_day, 4)
    return _Moves(
        bucket=np.asarray(buckets, dtype=np.int64),
        stratum=np.asarray(strata, dtype=np.int64),
        before=categories_of(before),
        after=categories_of(after),
        count=np.asarray(counts, dtype=np.int64),
        day=list(days),
        day_before=categories_of(day_before),
        day_after=categories_of(day_after),
        day_count=np.asarray(day_counts, dtype=np.int64),
    )


# --- waves -----------------------------------------------------------------------------------


def _end_of(wave: Wave) -> dt.datetime | None:
    return wave.ends_at or wave.closed_at


@dataclass(frozen=True)
class _WavePlan:
    waves: list[Wave]
    ends: list[dt.datetime]  # distinct ends of the closed waves, in order: the bucket limits
    now: dt.datetime

    def closed(self, wave: Wave) -> bool:
        end = _end_of(wave)
        return end is not None and end <= self.now

    def current(self, wave: Wave) -> bool:
        return wave.starts_at <= self.now and not self.closed(wave)


def _plan_waves(survey: Survey, now: dt.datetime) -> _WavePlan:
    waves = list(Wave.objects.filter(survey=survey).order_by("starts_at", "pk"))
    ends = {end for end in map(_end_of, waves) if end is not None and end <= now}
    return _WavePlan(waves, sorted(ends), now)


# --- computing -------------------------------------------------------------------------------


def fieldwork(survey: Survey, *, weighted: bool, now: dt.datetime | None = None) -> Fieldwork:
    """Every figure of the fieldwork dashboard and of the rate-table export."""
    now = now or timezone.now()
    strata = load_strata(survey)
    plan = _plan_waves(survey, now)
    cells = _load_cells(survey)
    moves = _load_moves(survey, plan.ends, int(cells.count.sum()))
    base = base_weights(strata)
    weights = cells.count.astype(np.float64)
    if weighted:
        weights *= _lookup(base, cells.stratum)
    sampled = int(cells.count.sum())
    target = target_responses(survey, sampled)
    total = _total_row(cells.category, weights, sampled)
    tables = {domain: _domain_rows(domain, cells, weights, strata) for domain in DOMAINS}
    tables["wave"] = _wave_rows(plan, cells, moves, base if weighted else None, total)
    progress = _progress(plan, moves, target)
    return Fieldwork(weighted, sampled, target, total, tables, progress)


def base_weights(strata: Iterable[Stratum]) -> dict[int, float]:
    """d_h = N_h/n_h by stratum id."""
    return {s.pk: s.population / s.sample_size if s.sample_size else 0.0 for s in strata}


def _lookup(values: dict[int, float], keys: IntArray) -> FloatArray:
    return np.array([values.get(int(key), 0.0) for key in keys], dtype=np.float64)


def target_responses(survey: Survey, sampled: int) -> int:
    """Survey.target_responses, or else TARGET_RATE of the sample."""
    if survey.target_responses:
        return int(survey.target_responses)
    return round(sampled * TARGET_RATE)


def _total_row(categories: NDArray[np.str_], weights: FloatArray, cases: int) -> Row:
    grouped = aapor.rates_by_group(categories, weights=weights)
    return Row("all", TOTAL, _("All cases"), cases, grouped.total_counts, grouped.total)


def _domain_rows(
    domain: str, cells: _Cells, weights: FloatArray, strata: list[Stratum]
) -> list[Row]:
    values = cells.domains[domain]
    if not len(values):
        return []
    grouped = aapor.rates_by_group(cells.category, weights=weights, groups=values)
    keys, inverse = np.unique(values, return_inverse=True)
    cases = np.bincount(inverse, weights=cells.count, minlength=len(keys))
    texts, labels = _names(domain, strata)
    rows = []
    for key, n in zip(keys.tolist(), cases.tolist(), strict=True):
        text = texts.get(key, str(key))
        counts, rates = grouped.group_counts[key], grouped.groups[key]
        rows.append(Row(domain, text, labels.get(key, text), int(n), counts, rates))
    return sorted(rows, key=_sort_key(domain))


def _names(domain: str, strata: list[Stratum]) -> tuple[dict[Any, str], dict[Any, str]]:
    """How a domain's values are written in the export, and their display labels."""
    if domain == "stratum":
        texts = {s.pk: s.key for s in strata}
        return texts, {s.pk: Stratum.label_of(s.values, s.design.strata_variables) for s in strata}
    labels: dict[Any, str] = {k: str(v) for k, v in VALUE_LABELS.get(domain, {}).items()}
    return {}, {**labels, UNKNOWN: _("unknown")}


def _sort_key(domain: str) -> Any:
    order = DOMAIN_ORDER.get(domain, [])

    def key(row: Row) -> tuple[int, str]:
        position = order.index(row.value) if row.value in order else len(order)
        return (position, row.value)

    return key


def _wave_rows(
    plan: _WavePlan, cells: _Cells, moves: _Moves, base: dict[int, float] | None, current: Row
) -> list[Row]:
    states = _states_at_ends(plan, cells, moves)
    rows = []
    for wave in plan.waves:
        if plan.closed(wave):
            end = plan.ends.index(_end_of(wave))  # type: ignore[arg-type]
            rows.append(_state_row(wave, states[end], base, int(cells.count.sum())))
        elif plan.current(wave):
            label = _("%(wave)s (so far)") % {"wave": wave.name}
            rows.append(Row("wave", wave.name, label, current.cases, current.counts, current.rates))
    return rows


@dataclass(frozen=True)
class _State:
    strata: IntArray  # stratum ids, the rows of `counts`
    counts: FloatArray  # cases by stratum (rows) and category (columns, CATEGORIES order)


def _states_at_ends(plan: _WavePlan, cells: _Cells, moves: _Moves) -> list[_State]:
    """Cases by stratum and category at each closed wave's end (3.11 before any event)."""
    strata, cell_row = np.unique(cells.stratum, return_inverse=True)
    initial = np.zeros((len(strata), len(CATEGORIES)))
    initial[:, CATEGORIES.index("U")] = np.bincount(cell_row, cells.count, len(strata))
    shift = np.zeros((len(plan.ends) + 1, len(strata), len(CATEGORIES)))
    known = np.isin(moves.stratum, strata)
    row = np.searchsorted(strata, moves.stratum[known])
    bucket, count = moves.bucket[known], moves.count[known]
    np.add.at(shift, (bucket, row, _category_index(moves.after[known])), count)
    np.add.at(shift, (bucket, row, _category_index(moves.before[known])), -count)
    cumulative = initial + np.cumsum(shift, axis=0)
    return [_State(strata, cumulative[k]) for k in range(len(plan.ends))]


def _category_index(categories: NDArray[np.str_]) -> IntArray:
    lookup = {category: k for k, category in enumerate(CATEGORIES)}
    return np.array([lookup[c] for c in categories], dtype=np.int64)


def _state_row(wave: Wave, state: _State, base: dict[int, float] | None, cases: int) -> Row:
    categories = np.tile(np.array(CATEGORIES), len(state.strata))
    counts = state.counts.reshape(-1)
    if base is not None:
        counts = counts * np.repeat(_lookup(base, state.strata), len(CATEGORIES))
    grouped = aapor.rates_by_group(categories, weights=np.maximum(counts, 0.0))
    return Row("wave", wave.name, wave.name, cases, grouped.total_counts, grouped.total)


def _progress(plan: _WavePlan, moves: _Moves, target: int) -> Progress:
    today = timezone.localdate(plan.now)
    days = _fieldwork_days(plan, moves, today)
    offsets = np.array([(day - days[0]).days for day in moves.day], dtype=np.int64)
    index = np.clip(offsets, 0, len(days) - 1)
    series = {}
    for name, members in (("completes", ("I",)), ("responses", RESPONDED)):
        change = np.isin(moves.day_after, members).astype(np.int64)
        change -= np.isin(moves.day_before, members)
        daily = np.bincount(index, weights=change * moves.day_count, minlength=len(days))
        totals = np.cumsum(daily).astype(np.int64).tolist()
        series[name] = [n if day <= today else None for day, n in zip(days, totals, strict=True)]
    return Progress(days, series["completes"], series["responses"], target)


def _fieldwork_days(plan: _WavePlan, moves: _Moves, today: dt.date) -> list[dt.date]:
    """From the first wave's start to the last wave's planned end (today while one has none)."""
    starts = [timezone.localdate(w.starts_at) for w in plan.waves]
    first = min(starts or moves.day or [today])
    ends = [_end_of(w) for w in plan.waves]
    if ends and None not in ends:
        last = max(timezone.localdate(end) for end in ends if end is not None)
    else:
        last = today
    last = max(last, first)
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


# --- export ----------------------------------------------------------------------------------


def response_rate_rows(survey: Survey, *, weighted: bool) -> list[dict[str, Any]]:
    """One dict per domain value (EXPORT_COLUMNS): the dashboard's figures, total first.

    ``cases`` is always the number of cases; I..NE are sums of base weights when weighted.
    Rates are fractions, NaN where their denominator is 0.
    """
    return [row.as_dict() for row in fieldwork(survey, weighted=weighted).rows()]


def write_response_rates_csv(
    survey: Survey, out: IO[str], *, weighted: bool, bom: bool = False
) -> int:
    """The rate table as CSV (NaN as an empty cell); returns the number of rows written.

    ``bom`` starts the file with a UTF-8 byte-order mark so that Excel reads Korean names.
    """
    rows = response_rate_rows(survey, weighted=weighted)
    if bom:
        out.write("\ufeff")
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([_csv_value(row[column]) for column in EXPORT_COLUMNS])
    return len(rows)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return safe_cell(value)


def export_response_rates(
    survey: Survey, path: str | Path, *, weighted: bool, fmt: str = "csv"
) -> int:
    """What `manage.py export SURVEY --what response-rates --format csv --out PATH
    [--weighted]` does; returns the number of rows. Raises ValueError for another format."""
    if fmt != "csv":
        raise ValueError(f"response rates are exported as csv, not {fmt!r}")
    with open(path, "w", encoding="utf-8", newline="") as out:
        return write_response_rates_csv(survey, out, weighted=weighted)
