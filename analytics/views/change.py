"""Change between rounds and the trend of an item across the rounds of a series.

The change page compares two rounds' published versions (by default this survey's latest and
its previous round's latest): every item both estimate, overall or by a domain, with each
round's estimate, the change (percentage points for shares), its standard error and interval,
the correlation of the rounds and the firms answering in both. The trend page follows one
figure through every round of the series, with each round's interval and the change from
one round to the next. A suppressed figure shows no value, and neither does any change
worked out from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from analytics.engine.quality import Thresholds
from surveys.models import Survey
from surveys.questionnaire import Form, Question

from .. import change as changes
from ..models import Estimate, EstimateRun, ListedRun
from ..spec import SpecError, parse_spec
from .results import (
    HEAVY_RUN_FIELDS,
    ITEM_NAME,
    MARKERS,
    OVERALL,
    REASON_LEVELS,
    REASON_ORDER,
    STATISTIC_ORDER,
    VIEW_RESULTS,
    Legend,
    domain_title,
    forms_for,
    option_label,
    question_of,
    question_order,
    reason_texts,
    unit_of,
    value_label,
    value_order,
)

# --- the rounds and versions compared ---------------------------------------------------------


@dataclass(frozen=True)
class RoundChoice:
    survey: Survey
    label: str
    run: EstimateRun | None
    listed: list[ListedRun]


def _round(survey: Survey, number: str, language: str) -> RoundChoice:
    """A round with its version: the one asked for by number, else its latest published."""
    listed = EstimateRun.objects.defer(*HEAVY_RUN_FIELDS).by_wave(survey)
    run = listed[0].run if listed else None
    if number:
        if not (number.isascii() and number.isdigit()):
            raise Http404("no such version")
        run = (
            EstimateRun.objects.published()
            .filter(survey=survey, number=int(number))
            .select_related("wave")
            .defer(*HEAVY_RUN_FIELDS)
            .first()
        )
        if run is None:
            raise Http404("no such version")
    return RoundChoice(survey, changes.round_label(survey, language), run, listed)


def _earlier(request: HttpRequest, chain: Sequence[Survey], survey: Survey) -> Survey | None:
    """The round compared with: ?from=<slug> among the earlier rounds, else the previous."""
    earlier = chain[: chain.index(survey)]
    if not earlier:
        return None
    slug = request.GET.get("from", "")
    if not slug:
        return earlier[-1]
    found = next((s for s in earlier if s.slug == slug), None)
    if found is None:
        raise Http404("not an earlier round of this survey")
    return found


# --- what a change looks like on the page ------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One change as shown: values scaled (per cent and percentage points for shares)."""

    cell: changes.ChangeCell
    label: str
    unit: str
    notes: tuple[str, ...]
    markers: tuple[str, ...]
    url: str

    @property
    def percent(self) -> bool:
        return self.cell.statistic == Estimate.Statistic.PROPORTION

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    @property
    def digits(self) -> str:
        return "0g" if self.cell.statistic == Estimate.Statistic.TOTAL else "1g"

    def _scaled(self, value: float | None) -> float | None:
        return None if value is None else value * self.scale

    @property
    def first(self) -> float | None:
        return self._scaled(self.cell.first.estimate)

    @property
    def second(self) -> float | None:
        return self._scaled(self.cell.second.estimate)

    @property
    def change(self) -> float | None:
        return self._scaled(self.cell.estimate)

    @property
    def se(self) -> float | None:
        return self._scaled(self.cell.se)

    @property
    def low(self) -> float | None:
        return self._scaled(self.cell.ci_low)

    @property
    def high(self) -> float | None:
        return self._scaled(self.cell.ci_high)

    @property
    def direction(self) -> str:
        """up, down (the interval leaves out 0) or "" (no change shown to be real)."""
        if not self.cell.significant or self.cell.estimate is None:
            return ""
        return "up" if self.cell.estimate > 0 else "down"

    @property
    def flagged(self) -> bool:
        return bool(self.notes) and not self.cell.suppressed


def _notes(
    cell: changes.ChangeCell, texts: dict[str, str], labels: tuple[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Each reason once, most severe first, with the rounds it comes from, and the markers."""
    rounds: dict[str, list[str]] = {}
    for code, which in cell.reasons:
        if code in MARKERS:
            named = labels[which - 1] if which in (changes.FIRST, changes.SECOND) else ""
            rounds.setdefault(code, []).append(named)
    ordered = sorted(rounds, key=REASON_ORDER.index)
    notes = []
    for code in ordered:
        named = ", ".join(name for name in rounds[code] if name)
        notes.append(f"{named}: {texts[code]}" if named else texts[code])
    return tuple(notes), tuple(MARKERS[code] for code in ordered)


def _legend(cells: Sequence[changes.ChangeCell], texts: dict[str, str]) -> list[Legend]:
    used = {code for cell in cells for code, _which in cell.reasons}
    return [
        Legend(code, MARKERS[code], texts[code], REASON_LEVELS[code])
        for code in REASON_ORDER
        if code in used
    ]


def _label(question: Question | None, cell: changes.ChangeCell) -> str:
    return option_label(question, Estimate(option=cell.option, statistic=cell.statistic))


def _cell_order(question: Question | None, cell: changes.ChangeCell) -> tuple[int, int]:
    names = question.choice_names if question else ()
    place = names.index(cell.option) if cell.option in names else len(names)
    return place, STATISTIC_ORDER.index(cell.statistic)


@dataclass(frozen=True)
class Group:
    """One option (or statistic) of a question in a domain tab: its changes by domain value."""

    label: str
    lines: list[Shown]


@dataclass(frozen=True)
class Block:
    """One question of the change table."""

    name: str
    text: str
    groups: list[Group]


@dataclass
class Page:
    """What both pages need to turn changes into lines."""

    survey: Survey
    forms: list[Form]
    texts: dict[str, str]
    labels: tuple[str, str]
    query: dict[str, str]

    def shown(self, cell: changes.ChangeCell, label: str) -> Shown:
        question = question_of(self.forms, cell.item)
        notes, markers = _notes(cell, self.texts, self.labels)
        return Shown(cell, label, unit_of(question), notes, markers, self.trend_url(cell))

    def trend_url(self, cell: changes.ChangeCell) -> str:
        url = reverse("results:trend", kwargs={"survey": self.survey.slug, "item": cell.item})
        params = {
            "option": cell.option,
            "statistic": cell.statistic,
            "domain": cell.domain,
            "value": cell.domain_value,
        }
        return url + "?" + urlencode(params)


def change_blocks(cells: Sequence[changes.ChangeCell], page: Page, domain: str) -> list[Block]:
    """The changes grouped by question in questionnaire order, options in choice order, and
    in a domain tab each option's domain values in their natural order."""
    by_item: dict[str, list[changes.ChangeCell]] = {}
    for cell in cells:
        by_item.setdefault(cell.item, []).append(cell)
    order = question_order(page.forms)
    values = {v: k for k, v in enumerate(value_order(domain, page.forms))}
    blocks = []
    for item in sorted(by_item, key=lambda name: order.get(name, len(order))):
        question = question_of(page.forms, item)
        groups: dict[tuple[str, str], list[changes.ChangeCell]] = {}
        for cell in sorted(by_item[item], key=lambda c: _cell_order(question, c)):
            groups.setdefault((cell.option, cell.statistic), []).append(cell)
        made = []
        for members in groups.values():
            members.sort(key=lambda c: (values.get(c.domain_value, len(values)), c.domain_value))
            label = _label(question, members[0])
            lines = [
                page.shown(c, label if domain == OVERALL else _value(domain, c, page.forms))
                for c in members
            ]
            made.append(Group(label, lines))
        blocks.append(Block(item, question.text() if question else item, made))
    return blocks


def _value(domain: str, cell: changes.ChangeCell, forms: Sequence[Form]) -> str:
    return value_label(domain, cell.domain_value, forms)


# --- the change page ---------------------------------------------------------------------------


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def change(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    language = get_language() or "ko"
    chain = changes.round_chain(found)
    earlier = _earlier(request, chain, found)
    context: dict[str, Any] = {
        "survey": found,
        "survey_title": found.title_in(language),
        "earlier_rounds": [
            (s, changes.round_label(s, language)) for s in chain[: chain.index(found)]
        ],
    }
    if earlier is None:
        return render(request, "analytics/change.html", context)
    rounds = (
        _round(earlier, request.GET.get("from_run", ""), language),
        _round(found, request.GET.get("run", ""), language),
    )
    context["rounds"] = rounds
    if rounds[0].run is None or rounds[1].run is None:
        context["unavailable"] = _("Both rounds need a published estimate version.")
        return render(request, "analytics/change.html", context)
    try:
        table = changes.changes_between(rounds[0].run, rounds[1].run)
    except changes.ChangeUnavailable as exc:
        context["unavailable"] = str(exc)
        return render(request, "analytics/change.html", context)
    context.update(_change_context(request, found, rounds, table))
    return render(request, "analytics/change.html", context)


def _change_context(
    request: HttpRequest,
    survey: Survey,
    rounds: tuple[RoundChoice, RoundChoice],
    table: changes.ChangeTable,
) -> dict[str, Any]:
    second = rounds[1].run
    assert second is not None
    forms = forms_for(survey, second)
    domains = table.domains
    domain = request.GET.get("domain", OVERALL)
    if domain not in domains:
        domain = OVERALL
    keep = {
        "from": rounds[0].survey.slug,
        "from_run": str(rounds[0].run.number if rounds[0].run else ""),
        "run": str(second.number),
    }
    thresholds = _thresholds(second)
    page = Page(survey, forms, reason_texts(thresholds), (rounds[0].label, rounds[1].label), keep)
    cells = table.domain(domain)
    base = reverse("results:change", kwargs={"survey": survey.slug})
    return {
        "domain": domain,
        "tabs": [
            (d, domain_title(d, forms), f"{base}?{urlencode({**keep, 'domain': d})}", d == domain)
            for d in domains
        ],
        "blocks": change_blocks(cells, page, domain),
        "legend": _legend(cells, page.texts),
        "level": thresholds.level * 100,
        "legend_version": {"level": thresholds.level * 100},
        "keep": keep,
    }


def _thresholds(run: EstimateRun) -> Thresholds:
    try:
        return parse_spec(run.spec).suppression
    except (SpecError, TypeError):
        return Thresholds()


# --- the trend page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One round of a trend: its published level as shown."""

    survey: Survey
    label: str
    run: EstimateRun | None
    level: changes.Level | None
    scale: float
    notes: tuple[str, ...]

    def _scaled(self, value: float | None) -> float | None:
        return None if value is None or self.level is None else value * self.scale

    @property
    def value(self) -> float | None:
        return self._scaled(self.level.estimate) if self.level else None

    @property
    def low(self) -> float | None:
        return self._scaled(self.level.ci_low) if self.level else None

    @property
    def high(self) -> float | None:
        return self._scaled(self.level.ci_high) if self.level else None

    @property
    def se(self) -> float | None:
        return self._scaled(self.level.se) if self.level else None


@dataclass(frozen=True)
class Step:
    """The change from one round to the next, or why it is not shown."""

    before: str
    after: str
    shown: Shown | None
    message: str


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def trend(request: HttpRequest, survey: str, item: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    if not ITEM_NAME.fullmatch(item):
        raise Http404("not a question name")
    language = get_language() or "ko"
    chain = changes.round_chain(found)
    runs = [EstimateRun.objects.defer(*HEAVY_RUN_FIELDS).latest_published(s) for s in chain]
    own = runs[chain.index(found)]
    if own is None:
        raise Http404("no published estimates yet")
    forms = forms_for(found, own)
    question = question_of(forms, item)
    overall = list(Estimate.objects.filter(run=own, item=item, domain=OVERALL).order_by("pk"))
    if not overall:
        raise Http404("no such item in this version")
    key = _trend_key(request, overall, own, item)
    labels = [changes.round_label(s, language) for s in chain]
    result = changes.trend(runs, key)
    texts = reason_texts(_thresholds(own))
    scale = 100.0 if key[2] == Estimate.Statistic.PROPORTION else 1.0
    points = [
        Point(s, label, run, level, scale, _level_notes(level, texts))
        for s, label, run, level in zip(chain, labels, runs, result.levels, strict=True)
    ]
    steps = _steps(result, labels, found, forms, texts)
    context = {
        "survey": found,
        "survey_title": found.title_in(language),
        "item": item,
        "question": question.text() if question else item,
        "label": option_label(question, Estimate(option=key[1], statistic=key[2])),
        "key": key,
        "domain_label": _domain_label(key, forms),
        "tabs": _trend_tabs(found, item, overall, question, key),
        "domains": _trend_domains(own, item, key, forms),
        "points": points,
        "steps": steps,
        "percent": scale == 100.0,
        "digits": "0g" if key[2] == Estimate.Statistic.TOTAL else "1g",
        "level": _thresholds(own).level * 100,
        "unit": "" if scale == 100.0 else unit_of(question),
        "change_url": reverse("results:change", kwargs={"survey": found.slug}),
        "chart": _trend_chart(points, scale, key, labels),
    }
    return render(request, "analytics/trend.html", context)


def _trend_key(
    request: HttpRequest, overall: Sequence[Estimate], run: EstimateRun, item: str
) -> changes.CellKey:
    asked = (request.GET.get("option", ""), request.GET.get("statistic", ""))
    if not any((r.option, r.statistic) == asked for r in overall):
        asked = (overall[0].option, overall[0].statistic)
    domain, value = request.GET.get("domain", OVERALL), request.GET.get("value", OVERALL)
    if "|" in request.GET.get("in", ""):
        domain, value = request.GET["in"].split("|", 1)
    published = Estimate.objects.filter(
        run=run, item=item, option=asked[0], statistic=asked[1], domain=domain, domain_value=value
    )
    if not published.exists():
        domain = value = OVERALL
    return (item, asked[0], asked[1], domain, value)


def _level_notes(level: changes.Level | None, texts: dict[str, str]) -> tuple[str, ...]:
    if level is None:
        return ()
    codes = sorted((c for c in level.reasons if c in MARKERS), key=REASON_ORDER.index)
    return tuple(texts[code] for code in codes)


def _steps(
    result: changes.Trend,
    labels: list[str],
    survey: Survey,
    forms: list[Form],
    texts: dict[str, str],
) -> list[Step]:
    steps = []
    for t, found in enumerate(result.changes, start=1):
        pair = (labels[t - 1], labels[t])
        if isinstance(found, changes.ChangeCell):
            page = Page(survey, forms, texts, pair, {})
            steps.append(Step(*pair, page.shown(found, ""), ""))
        else:
            message = found or _("Not published in both rounds.")
            steps.append(Step(*pair, None, message))
    return steps


def _domain_label(key: changes.CellKey, forms: Sequence[Form]) -> str:
    if key[3] == OVERALL:
        return str(domain_title(OVERALL, forms))
    return f"{domain_title(key[3], forms)}: {value_label(key[3], key[4], forms)}"


@dataclass(frozen=True)
class TrendTab:
    label: str
    url: str
    active: bool


def _trend_tabs(
    survey: Survey,
    item: str,
    overall: Sequence[Estimate],
    question: Question | None,
    key: changes.CellKey,
) -> list[TrendTab]:
    base = reverse("results:trend", kwargs={"survey": survey.slug, "item": item})
    ordered = sorted(overall, key=lambda r: _cell_order(question, _as_cell(r)))
    return [
        TrendTab(
            option_label(question, r),
            base
            + "?"
            + urlencode(
                {"option": r.option, "statistic": r.statistic, "domain": key[3], "value": key[4]}
            ),
            (r.option, r.statistic) == key[1:3],
        )
        for r in ordered
    ]


def _as_cell(row: Estimate) -> changes.ChangeCell:
    """An estimate's place in its question's order, as a change of it would have."""
    empty = changes.Level(None, None, None, None, 0, None, False, "")
    return changes.ChangeCell(
        row.item, row.option, row.statistic, row.domain, row.domain_value,
        empty, empty, None, None, None, None, None, None, 0, (),
    )  # fmt: skip


def _trend_domains(
    run: EstimateRun, item: str, key: changes.CellKey, forms: Sequence[Form]
) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    """The domains to follow the figure in: (title, [(value, label, chosen)])."""
    rows = (
        Estimate.objects.filter(run=run, item=item, option=key[1], statistic=key[2])
        .exclude(domain=item)
        .order_by("pk")
        .values_list("domain", "domain_value")
    )
    grouped: dict[str, list[str]] = {}
    for domain, value in rows:
        if domain != OVERALL:
            grouped.setdefault(domain, []).append(value)
    out = []
    for domain, values in grouped.items():
        order = {v: k for k, v in enumerate(value_order(domain, forms))}
        values.sort(key=lambda v: (order.get(v, len(order)), v))
        title = str(domain_title(domain, forms))
        out.append(
            (
                title,
                [
                    (f"{domain}|{v}", value_label(domain, v, forms), (domain, v) == key[3:])
                    for v in values
                ],
            )
        )
    return out


def _trend_chart(
    points: Sequence[Point], scale: float, key: changes.CellKey, labels: list[str]
) -> dict[str, Any]:
    return {
        "percent": scale == 100.0,
        "digits": 0 if key[2] == Estimate.Statistic.TOTAL else 1,
        "labels": labels,
        "values": [p.value for p in points],
        "low": [p.low for p in points],
        "high": [p.high for p in points],
        "names": {
            "estimate": _("Estimate"),
            "ci": _("Confidence interval"),
        },
    }
