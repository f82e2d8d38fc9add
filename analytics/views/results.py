"""Results pages: the headline table of a published estimate version and one item's detail.

Every page states which version (run) it shows and offers the other published versions and
each wave's official figures. A suppressed cell shows no value anywhere: not in the tables,
not in the charts' data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from analytics.engine import quality
from analytics.engine.quality import Thresholds
from respondents.classifications import VALUE_LABELS
from respondents.models import Wave
from surveys.models import Survey, get_form
from surveys.questionnaire import Form, Question

from ..models import Estimate, EstimateRun, ListedRun
from ..spec import SpecError, WeightingSpec, parse_spec

VIEW_RESULTS = "analytics.view_results"
HEAVY_RUN_FIELDS = ("weights", "timings", "diagnostics")
OVERALL = "all"
SELECT_TYPES = ("select_one", "select_multiple")
STATISTIC_ORDER = ("proportion", "mean", "total")
ITEM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")

# Reason codes as analytics.quality orders them (most severe first), each with a fixed marker
# so that a marker means the same on every page.
REASON_ORDER = (
    quality.NO_DATA,
    quality.MIN_N,
    quality.MIN_CELL,
    quality.DOMINANCE,
    quality.NCHS_N,
    quality.NCHS_NEFF,
    quality.NCHS_WIDTH,
    quality.NCHS_RELATIVE_WIDTH,
    quality.RSE_HIGH,
    quality.RSE_UNDEFINED,
    quality.DF_LOW,
    quality.P_EXTREME,
    quality.RSE_CAUTION,
    quality.COMPLEMENTARY,
)
MARKERS = {code: "abcdefghijklmn"[k] for k, code in enumerate(REASON_ORDER)}
REASON_LEVELS = {
    **dict.fromkeys(quality.CONFIDENTIALITY, quality.SUPPRESS),
    quality.COMPLEMENTARY: quality.SUPPRESS,
    **dict.fromkeys(quality.RELIABILITY, quality.CAUTION),
    **dict.fromkeys((quality.RSE_UNDEFINED, quality.DF_LOW, quality.P_EXTREME), quality.REVIEW),
}

DOMAIN_TITLES = {
    OVERALL: gettext_lazy("All firms"),
    "stratum": gettext_lazy("By stratum"),
    "stratum_code": gettext_lazy("By stratum"),
    "size_class": gettext_lazy("By size class"),
    "industry_group": gettext_lazy("By industry group"),
    "ksic_division": gettext_lazy("By KSIC division"),
    "region_area": gettext_lazy("By region area"),
    "region": gettext_lazy("By region"),
}
UNIT_PATTERNS = (
    re.compile(r"단위\s*[:：]\s*([^.。)]+)"),
    re.compile(r"\bunit\s*:\s*([^.;)]+)", re.IGNORECASE),
)


# --- flags ------------------------------------------------------------------------------------


def reasons_of(flag: str) -> list[str]:
    """The reason codes of a stored flag, most severe first ("OK" has none)."""
    return [part for part in flag.split("+") if part in MARKERS]


def reason_texts(t: Thresholds) -> dict[str, str]:
    """What each reason code means, with the thresholds of the run's spec."""
    return {
        quality.NO_DATA: _("No respondent in the base"),
        quality.MIN_N: _("Fewer than %(n)s respondents in the base (confidentiality)")
        % {"n": t.min_n},
        quality.MIN_CELL: _("Fewer than %(n)s respondents in the cell (confidentiality)")
        % {"n": t.min_cell_n},
        quality.DOMINANCE: _(
            "One firm holds more than %(share)s %% of the total, or fewer than %(n)s firms "
            "contribute (dominance)"
        )
        % {"share": _number(t.dominance_max_share * 100), "n": t.dominance_min_n},
        quality.NCHS_N: _("n < %(n)s") % {"n": t.nchs_min_n},
        quality.NCHS_NEFF: _("Effective sample size < %(n)s") % {"n": _number(t.nchs_min_neff)},
        quality.NCHS_WIDTH: _("CI too wide (Korn–Graubard width ≥ %(width)s points)")
        % {"width": _number(t.nchs_max_width * 100)},
        quality.NCHS_RELATIVE_WIDTH: _(
            "CI too wide for a small share (Korn–Graubard width > %(share)s %% of the estimate)"
        )
        % {"share": _number(t.nchs_max_relative_width * 100)},
        quality.RSE_HIGH: _("RSE > %(rse)s %%") % {"rse": _number(t.rse_suppress * 100)},
        quality.COMPLEMENTARY: _(
            "Withheld so that another withheld figure cannot be worked out from the published "
            "ones (complementary suppression)"
        ),
        quality.RSE_UNDEFINED: _("RSE undefined (the estimate is 0)"),
        quality.DF_LOW: _("Fewer than %(df)s degrees of freedom") % {"df": t.min_df},
        quality.P_EXTREME: _("Estimate of exactly 0 or 100 per cent: no CI can be computed"),
        quality.RSE_CAUTION: _("RSE %(low)s–%(high)s %%: use with caution")
        % {"low": _number(t.rse_caution * 100), "high": _number(t.rse_suppress * 100)},
    }


def _number(value: float) -> str:
    return f"{value:g}"


LEVEL_LABELS = {
    quality.SUPPRESS: gettext_lazy("not published"),
    quality.REVIEW: gettext_lazy("to review"),
    quality.CAUTION: gettext_lazy("use with caution"),
}


@dataclass(frozen=True)
class Legend:
    code: str
    marker: str
    text: str
    level: str

    @property
    def level_label(self) -> str:
        return str(LEVEL_LABELS[self.level])


def legend_for(cells: Iterable[Cell], texts: dict[str, str]) -> list[Legend]:
    """The reasons that occur on a page, in severity order."""
    used = {code for cell in cells for code in cell.reasons}
    return [
        Legend(code, MARKERS[code], texts[code], REASON_LEVELS[code])
        for code in REASON_ORDER
        if code in used
    ]


# --- cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One estimate as shown: values scaled (per cent for proportions), blank when suppressed."""

    row: Estimate
    reasons: tuple[str, ...]
    notes: tuple[str, ...]  # what each reason means
    unit: str = ""  # of a mean or total, as the question states it

    @property
    def percent(self) -> bool:
        return self.row.statistic == Estimate.Statistic.PROPORTION

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    @property
    def reason_text(self) -> str:
        """The primary reason: why a suppressed cell is blank."""
        return self.notes[0] if self.notes else ""

    @property
    def suppressed(self) -> bool:
        return self.row.suppressed

    @property
    def flagged(self) -> bool:
        return bool(self.reasons) and not self.row.suppressed

    @property
    def markers(self) -> list[str]:
        return [MARKERS[code] for code in self.reasons]

    @property
    def digits(self) -> str:
        """floatformat argument: totals in whole units, the rest to one decimal."""
        return "0g" if self.row.statistic == Estimate.Statistic.TOTAL else "1g"

    def _shown(self, value: float | None, scale: float = 1.0) -> float | None:
        if self.row.suppressed or value is None:
            return None
        return value * scale

    @property
    def value(self) -> float | None:
        return self._shown(self.row.estimate, self.scale)

    @property
    def se(self) -> float | None:
        return self._shown(self.row.se, self.scale)

    @property
    def low(self) -> float | None:
        return self._shown(self.row.ci_low, self.scale)

    @property
    def high(self) -> float | None:
        return self._shown(self.row.ci_high, self.scale)

    @property
    def cv(self) -> float | None:
        return self._shown(self.row.cv, 100.0)

    @property
    def deff(self) -> float | None:
        return self._shown(self.row.deff)

    @property
    def imputed(self) -> float | None:
        return self._shown(self.row.imputed_share, 100.0)

    @property
    def population(self) -> float | None:
        # For a proportion this is N̂·p: publishing it would publish p.
        return self._shown(self.row.population)


def cell_of(row: Estimate, texts: dict[str, str], unit: str = "") -> Cell:
    reasons = tuple(reasons_of(row.flag))
    shown_unit = "" if row.statistic == Estimate.Statistic.PROPORTION else unit
    return Cell(row, reasons, tuple(texts[code] for code in reasons), shown_unit)


# --- the version shown ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    number: int
    data_as_of: Any
    wave_name: str | None
    official_of: str | None  # the wave whose official figures this run is


@dataclass
class Version:
    """The published run a page shows, and the ones the user can switch to: each closed
    wave's official run and the latest provisional one (EstimateRun.objects.by_wave)."""

    run: EstimateRun
    listed: list[ListedRun]

    @cached_property
    def official_waves(self) -> dict[int, Wave]:
        """Run number -> the wave whose official figures it is."""
        return {e.run.number: e.official_of for e in self.listed if e.official_of is not None}

    @cached_property
    def waves(self) -> list[Wave]:
        """The closed waves with official figures, in fieldwork order."""
        found = [e.official_of for e in self.listed if e.official_of is not None]
        return sorted(found, key=lambda wave: wave.starts_at)

    @property
    def official_wave(self) -> Wave | None:
        return self.official_waves.get(self.run.number)

    @property
    def wave(self) -> Wave | None:
        """The wave the figures belong to: the one they close, else the one then open."""
        return self.official_wave or self.run.wave

    @property
    def latest_number(self) -> int:
        return max(e.run.number for e in self.listed)

    @property
    def is_latest(self) -> bool:
        return self.run.number == self.latest_number

    @cached_property
    def choices(self) -> list[Choice]:
        entries = [(e.run, e.wave, e.official_of) for e in self.listed]
        if all(e.run.number != self.run.number for e in self.listed):
            entries.append((self.run, self.run.wave, None))  # an older version asked for
        return [
            Choice(
                run.number,
                run.data_as_of,
                wave.name if wave else None,
                official.name if official else None,
            )
            for run, wave, official in sorted(entries, key=lambda e: -e[0].number)
        ]

    @cached_property
    def spec(self) -> WeightingSpec | None:
        try:
            return parse_spec(self.run.spec)
        except (SpecError, TypeError):
            return None

    @property
    def thresholds(self) -> Thresholds:
        return self.spec.suppression if self.spec else Thresholds()

    @property
    def level(self) -> float:
        return self.thresholds.level * 100

    @property
    def weighting(self) -> str:
        return self.spec.describe() if self.spec else _("stored settings no longer readable")

    @property
    def respondents(self) -> int | None:
        return self.run.snapshot.get("respondents")

    @property
    def rr3(self) -> float | None:
        rate = self.run.snapshot.get("rr3")
        return None if rate is None else rate * 100

    @cached_property
    def texts(self) -> dict[str, str]:
        return reason_texts(self.thresholds)

    def query(self, **extra: str) -> str:
        params: dict[str, str | int] = {"run": self.run.number, **extra}
        return "?" + urlencode(params)


def _requested_number(request: HttpRequest, listed: Sequence[ListedRun]) -> int | None:
    wave_id, number = request.GET.get("wave", ""), request.GET.get("run", "")
    if wave_id:
        official = [e for e in listed if e.official_of is not None]
        entry = next((e for e in official if str(e.official_of.pk) == wave_id), None)  # type: ignore[union-attr]
        if entry is None:
            raise Http404("no official figures for this wave")
        return entry.run.number
    if number:
        if not (number.isascii() and number.isdigit()):
            raise Http404("no such version")
        return int(number)
    return None


def load_version(request: HttpRequest, survey: Survey) -> Version | None:
    """The version asked for (?run=N or ?wave=ID), else the latest published one."""
    listed = EstimateRun.objects.defer(*HEAVY_RUN_FIELDS).by_wave(survey)
    number = _requested_number(request, listed)
    if not listed:
        if number is not None:
            raise Http404("no such version")
        return None
    if number is None:
        return Version(run=listed[0].run, listed=listed)
    run = next((e.run for e in listed if e.run.number == number), None)
    run = run or (
        EstimateRun.objects.published()
        .filter(survey=survey, number=number)
        .select_related("wave")
        .defer(*HEAVY_RUN_FIELDS)
        .first()
    )
    if run is None:
        raise Http404("no such version")
    return Version(run=run, listed=listed)


# --- questionnaire labels ---------------------------------------------------------------------


def forms_for(survey: Survey, run: EstimateRun) -> list[Form]:
    """The current questionnaire, then the versions the run's answers came from."""
    ids = [survey.current_questionnaire_id, *sorted(run.snapshot.get("questionnaire_versions", []))]
    return [get_form(i) for i in dict.fromkeys(i for i in ids if i)]


def question_of(forms: Sequence[Form], name: str) -> Question | None:
    return next((form.questions[name] for form in forms if name in form.questions), None)


def question_order(forms: Sequence[Form]) -> dict[str, int]:
    names = dict.fromkeys(name for form in forms for name in form.questions)
    return {name: k for k, name in enumerate(names)}


def unit_of(question: Question | None) -> str:
    """The unit a numeric question states in its hint ("Unit: KRW million. ...")."""
    hint = question.hint_text() if question else ""
    for pattern in UNIT_PATTERNS:
        found = pattern.search(hint)
        if found:
            return found.group(1).strip()
    return ""


def option_label(question: Question | None, row: Estimate) -> str:
    if row.option:
        return question.choice_text(row.option) if question else row.option
    unit = unit_of(question)
    if row.statistic == Estimate.Statistic.MEAN:
        return _("Mean (%(unit)s)") % {"unit": unit} if unit else _("Mean")
    if row.statistic == Estimate.Statistic.TOTAL:
        return _("Total (%(unit)s)") % {"unit": unit} if unit else _("Total")
    return _("Share of firms")


def option_key(question: Question | None, row: Estimate) -> tuple[int, int]:
    names = question.choice_names if question else ()
    place = names.index(row.option) if row.option in names else len(names)
    return place, STATISTIC_ORDER.index(row.statistic)


def domain_title(domain: str, forms: Sequence[Form]) -> str:
    if domain in DOMAIN_TITLES:
        return str(DOMAIN_TITLES[domain])
    question = question_of(forms, domain)
    if question is not None:
        return _("By answer to “%(question)s”") % {"question": question.text()}
    return _("By %(variable)s") % {"variable": domain}


def value_label(domain: str, value: str, forms: Sequence[Form]) -> str:
    labels = VALUE_LABELS.get(domain)
    if labels is not None:
        return str(labels.get(value, value))
    question = question_of(forms, domain)
    return question.choice_text(value) if question else value


def value_order(domain: str, forms: Sequence[Form]) -> list[str]:
    if domain in VALUE_LABELS:
        return list(VALUE_LABELS[domain])
    question = question_of(forms, domain)
    return list(question.choice_names) if question else []


# --- the headline table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    label: str
    cell: Cell
    url: str


@dataclass(frozen=True)
class Block:
    """One question of the headline table with its options (or its mean)."""

    name: str
    text: str
    multiple: bool
    lines: list[Line]


def headline_blocks(
    rows: Sequence[Estimate], forms: Sequence[Form], version: Version, survey: Survey
) -> list[Block]:
    """The rows grouped by question, in questionnaire order, options in choice order."""
    by_item: dict[str, list[Estimate]] = {}
    for row in rows:
        by_item.setdefault(row.item, []).append(row)
    order = question_order(forms)
    items = sorted(by_item, key=lambda name: order.get(name, len(order)))
    return [_block(by_item[item], question_of(forms, item), version, survey) for item in items]


def _block(
    rows: list[Estimate], question: Question | None, version: Version, survey: Survey
) -> Block:
    lines = [
        Line(option_label(question, row), cell_of(row, version.texts), _url(survey, version, row))
        for row in sorted(rows, key=lambda r: option_key(question, r))
    ]
    item = rows[0].item
    multiple = question is not None and question.type == "select_multiple"
    return Block(item, question.text() if question else item, multiple, lines)


def _url(survey: Survey, version: Version, row: Estimate) -> str:
    url = reverse("results:detail", kwargs={"survey": survey.slug, "item": row.item})
    return url + version.query(option=row.option, statistic=row.statistic)


def _base_context(survey: Survey, version: Version | None) -> dict[str, Any]:
    context = {
        "survey": survey,
        "survey_title": survey.title_in(get_language() or "ko"),
        "version": version,
    }
    if version is not None:
        url = reverse("results:headline", kwargs={"survey": survey.slug})
        context["headline_url"] = url + version.query()
    return context


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def headline(request: HttpRequest, survey: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    version = load_version(request, found)
    context = _base_context(found, version)
    if version is not None:
        rows = (
            Estimate.objects.filter(run=version.run, domain=OVERALL, domain_value=OVERALL)
            .exclude(statistic=Estimate.Statistic.TOTAL)
            .order_by("pk")
        )
        blocks = headline_blocks(list(rows), forms_for(found, version.run), version, found)
        cells = (line.cell for block in blocks for line in block.lines)
        charts = headline_charts(blocks)
        context.update(
            blocks=blocks,
            legend=legend_for(cells, version.texts),
            charts=charts,
            chart=chart_data(charts, NO_HISTORY, charts[0].rows[0][1], version) if charts else None,
        )
    return render(request, "analytics/results.html", context)


NO_HISTORY: dict[str, list[Any]] = {"runs": [], "values": [], "low": [], "high": [], "official": []}


def headline_charts(blocks: Sequence[Block]) -> list[DomainTable]:
    """A bar chart with CI whiskers for each question answered by shares (choices), in the
    headline's order; a question with nothing published gets none."""
    charts = [
        DomainTable(block.name, block.text, [(line.label, line.cell) for line in block.lines])
        for block in blocks
        if block.lines and all(line.cell.percent for line in block.lines)
    ]
    return [chart for chart in charts if chart.charted]


# --- one item's detail ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tab:
    """One option (or statistic) of the item: the detail shows one at a time."""

    label: str
    option: str
    statistic: str
    url: str
    active: bool


@dataclass(frozen=True)
class DomainTable:
    key: str
    title: str
    rows: list[tuple[str, Cell]]

    @property
    def charted(self) -> bool:
        """Whether any value is published (a chart of blanks says nothing)."""
        return any(cell.value is not None for _label, cell in self.rows)


def pick_cell(rows: Sequence[Estimate], request: HttpRequest) -> tuple[str, str]:
    """The (option, statistic) asked for, else the item's first one."""
    overall = [r for r in rows if r.domain == OVERALL]
    asked = (request.GET.get("option", ""), request.GET.get("statistic", ""))
    if any((r.option, r.statistic) == asked for r in overall):
        return asked
    if not overall:
        raise Http404("no such item in this version")
    return overall[0].option, overall[0].statistic


def domain_tables(
    rows: Sequence[Estimate], forms: Sequence[Form], texts: dict[str, str], unit: str = ""
) -> list[DomainTable]:
    """One table per domain, in the order the run wrote them; values in their natural order
    (size classes by size, answers in choice order)."""
    by_domain: dict[str, list[Estimate]] = {}
    for row in rows:
        by_domain.setdefault(row.domain, []).append(row)
    return [_domain_table(domain, cells, forms, texts, unit) for domain, cells in by_domain.items()]


def _domain_table(
    domain: str, rows: list[Estimate], forms: Sequence[Form], texts: dict[str, str], unit: str
) -> DomainTable:
    order = {value: k for k, value in enumerate(value_order(domain, forms))}
    ordered = sorted(rows, key=lambda r: (order.get(r.domain_value, len(order)), r.domain_value))
    cells = [(value_label(domain, r.domain_value, forms), cell_of(r, texts, unit)) for r in ordered]
    return DomainTable(domain, domain_title(domain, forms), cells)


def history_of(
    survey: Survey, item: str, option: str, statistic: str, version: Version
) -> dict[str, list[Any]]:
    """The overall estimate and its CI in the listed versions (each closed wave's official
    run, the latest provisional one) and the one shown, oldest first."""
    numbers = {choice.number for choice in version.choices}
    points = (
        Estimate.objects.filter(
            run__survey=survey,
            run__status=EstimateRun.Status.PUBLISHED,
            run__number__in=numbers,
            item=item,
            option=option,
            statistic=statistic,
            domain=OVERALL,
            domain_value=OVERALL,
        )
        .order_by("run__number")
        .values_list("run__number", "estimate", "ci_low", "ci_high", "suppressed")
    )
    scale = 100.0 if statistic == Estimate.Statistic.PROPORTION else 1.0
    history: dict[str, list[Any]] = {k: [] for k in ("runs", "values", "low", "high", "official")}
    for number, estimate, low, high, suppressed in points:
        history["runs"].append(number)
        for key, value in (("values", estimate), ("low", low), ("high", high)):
            history[key].append(None if suppressed or value is None else value * scale)
        wave = version.official_waves.get(number)
        history["official"].append(wave.name if wave else None)
    return history


def chart_data(
    tables: Sequence[DomainTable], history: dict[str, list[Any]], cell: Cell, version: Version
) -> dict[str, Any]:
    return {
        "percent": cell.percent,
        "digits": 0 if cell.digits == "0g" else 1,
        "current": version.run.number,
        "domains": [
            {
                "key": table.key,
                "title": table.title,
                "labels": [label for label, _cell in table.rows],
                "values": [c.value for _label, c in table.rows],
                "low": [c.low for _label, c in table.rows],
                "high": [c.high for _label, c in table.rows],
            }
            for table in tables
        ],
        "history": history,
        "names": {
            "estimate": _("Estimate"),
            "low": _("Lower CI bound"),
            "high": _("Upper CI bound"),
            "ci": _("%(level)s %% confidence interval") % {"level": _number(version.level)},
            "official": _("Official figures of %(wave)s"),
            "version": _("Version %(number)s"),
        },
    }


def _tabs(
    overall: Sequence[Estimate], question: Question | None, chosen: tuple[str, str], url: str
) -> list[Tab]:
    ordered = sorted(overall, key=lambda r: option_key(question, r))
    return [
        Tab(
            option_label(question, r),
            r.option,
            r.statistic,
            url + urlencode({"option": r.option, "statistic": r.statistic}),
            (r.option, r.statistic) == chosen,
        )
        for r in ordered
    ]


def item_tables(
    rows: Sequence[Estimate],
    item: str,
    forms: Sequence[Form],
    texts: dict[str, str],
    unit: str = "",
) -> tuple[Cell, list[DomainTable]]:
    """The overall cell and the tables by domain; the item as its own domain (trivially 0
    or 100 %) is left out."""
    tables = domain_tables(rows, forms, texts, unit)
    overall = next(t for t in tables if t.key == OVERALL).rows[0][1]
    return overall, [t for t in tables if t.key not in (OVERALL, item)]


def _crumb(text: str, limit: int = 40) -> str:
    """A question's text short enough for a breadcrumb."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"


@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def detail(request: HttpRequest, survey: str, item: str) -> HttpResponse:
    found = get_object_or_404(Survey, slug=survey)
    if not ITEM_NAME.fullmatch(item):
        raise Http404("not a question name")
    version = load_version(request, found)
    if version is None:
        raise Http404("no published estimates yet")
    rows = list(Estimate.objects.filter(run=version.run, item=item).order_by("pk"))
    chosen = pick_cell(rows, request)
    forms = forms_for(found, version.run)
    question = question_of(forms, item)
    cell, tables = item_tables(
        [r for r in rows if (r.option, r.statistic) == chosen],
        item,
        forms,
        version.texts,
        unit_of(question),
    )
    keep = [("option", chosen[0]), ("statistic", chosen[1])]
    base_url = reverse("results:detail", kwargs={"survey": found.slug, "item": item})
    overall = [r for r in rows if r.domain == OVERALL]
    context = {
        **_base_context(found, version),
        "keep": keep,
        "keep_query": "&" + urlencode(keep),
        "item": item,
        "question": question.text() if question else item,
        "crumb": _crumb(question.text() if question else item),
        "label": option_label(question, cell.row),
        "cell": cell,
        "tabs": _tabs(overall, question, chosen, base_url + version.query() + "&"),
        "tables": tables,
        "legend": legend_for([cell, *(c for t in tables for _l, c in t.rows)], version.texts),
        "chart": chart_data(tables, history_of(found, item, *chosen, version), cell, version),
    }
    return render(request, "analytics/results_detail.html", context)
