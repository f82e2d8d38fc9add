"""Estimates of change between two rounds of a survey, from each round's published version
(methodology M4-M6).

Each round is read as its version weighted it: its respondents with the version's final
weights, the strata and N_h of its design, its answers as edited (and imputed by the version's
specification), and its calibration (E4). A firm is linked across rounds by `Case.previous`;
c_g, the firms of a later stratum in both frames, comes from the two frames. Every item both
rounds estimate (same question and option) gets its change, overall and in every domain both
versions publish, with each round's published estimate and variance and the covariance of the
firms answering in both rounds (`analytics.engine.change`).

A version is reproduced before its changes are published: answers changed since it was
computed would give estimates it never published, so the pair is refused until the next
version (`ChangeUnavailable`). Results are cached by the two versions' snapshot keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from django.core.cache import cache as django_cache
from django.db.models import Q
from django.utils.translation import gettext as _

from analytics.engine import quality
from analytics.engine.change import (
    Change,
    ChangeError,
    Round,
    change_in_mean,
    change_in_total,
    with_variances,
)
from analytics.engine.estimation import CalibrationProjection, Estimates, EstimationError
from analytics.engine.weighting import WeightingError
from respondents.models import Case, FrameUnit, SampleDesign
from respondents.sampling import SamplingError, stratum_table
from surveys.models import Survey

from . import pipeline
from .models import Estimate, EstimateRun
from .spec import SpecError, parse_spec
from .spec import WeightingSpec as Spec

FloatArray = npt.NDArray[np.float64]
OVERALL = "all"
CACHE_SECONDS = 7 * 24 * 3600
# Queued by name: analytics.tasks imports this module.
PREPARE_CHANGES = "analytics.tasks.prepare_changes"
# A reproduced estimate equals the published one up to rounding; a proportion within 1e-9
# of 0 or 1 is published as exactly 0 or 1 (E5).
REPRODUCED_RTOL = 1e-9
REPRODUCED_ATOL = 1e-9
# Which estimate a reason belongs to.
CHANGE, FIRST, SECOND = 0, 1, 2


class ChangeUnavailable(Exception):
    """The change between these versions cannot be published; the message says why."""


# --- the rounds -------------------------------------------------------------------------------


def round_chain(survey: Survey) -> list[Survey]:
    """The rounds of the survey's series, oldest first: back through the previous rounds,
    then on while a round has exactly one next round."""
    chain = [survey]
    while chain[0].previous_round_id and chain[0].previous_round_id not in _pks(chain):
        chain.insert(0, Survey.objects.get(pk=chain[0].previous_round_id))
    while True:
        following = list(Survey.objects.filter(previous_round=chain[-1])[:2])
        if len(following) != 1 or following[0].pk in _pks(chain):
            return chain
        chain.append(following[0])


def _pks(surveys: Sequence[Survey]) -> set[int]:
    return {s.pk for s in surveys}


def round_label(survey: Survey, language: str = "ko") -> str:
    """A round by its reference year, else by its title."""
    return str(survey.year) if survey.year else survey.title_in(language)


def linked_cases(earlier: Survey, later: Survey) -> dict[int, int]:
    """Each case of the later round that is a firm of the earlier round -> its case there,
    following `Case.previous` through the rounds between. A firm split in two keeps its link
    in one of them (the first case); the other is a new firm."""
    between = _rounds_between(earlier, later)
    links = _previous(later)
    for survey in between:
        step = _previous(survey)
        links = {case: step[prev] for case, prev in links.items() if prev in step}
    targets = set(
        Case.objects.filter(survey=earlier, pk__in=set(links.values())).values_list("pk", flat=True)
    )
    out: dict[int, int] = {}
    taken: set[int] = set()
    for case in sorted(links):
        target = links[case]
        if target in targets and target not in taken:
            out[case] = target
            taken.add(target)
    return out


def first_cases(chain: Sequence[Survey]) -> dict[int, int]:
    """Each case of these rounds (oldest first) -> the firm's first case among them, following
    `Case.previous`; as in linked_cases, of a firm split in two only the first case keeps it."""
    first: dict[int, int] = {}
    for survey in chain:
        taken: set[int] = set()
        found = Case.objects.filter(survey=survey).order_by("pk").values_list("pk", "previous_id")
        for pk, previous in found:
            linked = previous is not None and previous in first and previous not in taken
            first[pk] = first[previous] if linked else pk
            taken.add(previous)
    return first


def _previous(survey: Survey) -> dict[int, int]:
    found = Case.objects.filter(survey=survey, previous__isnull=False)
    return dict(found.values_list("pk", "previous_id"))


def _rounds_between(earlier: Survey, later: Survey) -> list[Survey]:
    """The rounds strictly between the two, latest first; earlier must precede later."""
    chain = round_chain(later)
    pks = [s.pk for s in chain]
    if earlier.pk not in pks or pks.index(earlier.pk) >= pks.index(later.pk):
        raise ChangeUnavailable(
            _("%(earlier)s is not an earlier round of %(later)s.")
            % {"earlier": earlier.title, "later": later.title}
        )
    return chain[pks.index(earlier.pk) + 1 : pks.index(later.pk)][::-1]


def common_population(earlier: Survey, later: Survey, links: Mapping[int, int]) -> dict[str, float]:
    """c_g (M5): the firms of each stratum of the later design that are in both frames (by
    business ID, or linked to the earlier round's sample by a changed ID). Cached: a drawn
    round's frame no longer changes, and the key names the links."""
    design = SampleDesign.objects.filter(survey=later, drawn_at__isnull=False).first()
    if design is None:
        raise ChangeUnavailable(_("%(survey)s has no drawn sample.") % {"survey": later.title})
    named = repr((earlier.pk, later.pk, design.pk, design.drawn_at, sorted(links.items())))
    key = "change:common:" + hashlib.sha256(named.encode()).hexdigest()
    found = django_cache.get(key)
    if found is None:
        earlier_ids = FrameUnit.objects.filter(survey=earlier).values("business_id")
        units = Q(business_id__in=earlier_ids) | Q(case__pk__in=list(links))
        try:
            table = stratum_table(later, design, units=units)
        except SamplingError as exc:
            raise ChangeUnavailable(str(exc)) from None
        found = {entry.key: float(entry.population) for entry in table}
        django_cache.set(key, found, CACHE_SECONDS)
    return dict(found)


@dataclass(frozen=True)
class RoundFile:
    """One round's respondents as its published version weighted and estimated them."""

    survey: Survey
    run: EstimateRun
    spec: Spec
    case_ids: npt.NDArray[np.int64]
    weights: FloatArray
    strata: npt.NDArray[np.str_]
    population: FloatArray
    projection: CalibrationProjection | None
    items: list[pipeline.Item]
    y: FloatArray
    variables: dict[str, npt.NDArray[np.str_]]
    choices: dict[str, npt.NDArray[np.object_]]

    def design(self, firm: npt.ArrayLike) -> Round:
        return Round(
            firm,
            self.weights,
            self.strata,
            self.population,
            lonely_psu=self.spec.lonely_psu,  # type: ignore[arg-type]
            calibration=self.projection,
        )

    @cached_property
    def columns(self) -> dict[tuple[str, str], int]:
        """The answer matrix's column of each (question, option)."""
        return {(item.question, item.option): j for j, item in enumerate(self.items)}

    def has_domain(self, name: str) -> bool:
        return name == OVERALL or name in self.variables or name in self.choices

    def stacked(self, columns: Sequence[tuple[int, str, str]]) -> FloatArray:
        """The answer matrix's columns (column, domain, value), each blank outside its domain."""
        out = self.y[:, [j for j, _domain, _value in columns]]
        masks: dict[tuple[str, str], npt.NDArray[np.bool_] | None] = {}
        for k, (_j, domain, value) in enumerate(columns):
            if (domain, value) not in masks:
                masks[domain, value] = self.domain(domain, value)
            mask = masks[domain, value]
            if mask is not None:
                out[~mask, k] = np.nan
        return out

    def domain(self, name: str, value: str) -> npt.NDArray[np.bool_] | None:
        """The respondents in a published domain (None: everyone)."""
        if name == OVERALL:
            return None
        if name in self.variables:
            return np.asarray(self.variables[name] == value)
        if name in self.choices:
            return np.asarray(self.choices[name] == value)
        raise KeyError(name)


def read_round(run: EstimateRun) -> RoundFile:
    """The version's respondent file: its stored weights, and the design, answers and
    calibration of the data as they are now (checked against the version later)."""
    survey = run.survey
    try:
        spec = parse_spec(run.spec)
        snapshot = pipeline.load_snapshot(survey, spec=spec)
        # The replicates add nothing here: each round keeps its published variance.
        weights = pipeline.compute_weights(snapshot, dataclasses.replace(spec, variance="taylor"))
    except (SpecError, WeightingError, EstimationError) as exc:
        raise ChangeUnavailable(str(exc)) from None
    stored = _stored_weights(run, snapshot.case_ids)
    if not np.allclose(stored, weights.final, rtol=REPRODUCED_RTOL, atol=0.0):
        raise _stale(run)
    respondent = weights.respondent
    rows = respondent[snapshot.respondent]  # of the answer matrix, which holds I and P
    return RoundFile(
        survey=survey,
        run=run,
        spec=spec,
        case_ids=snapshot.case_ids[respondent],
        weights=stored[respondent],
        strata=snapshot.strata[respondent],
        population=snapshot.population[respondent],
        projection=weights.projection,
        items=snapshot.items,
        y=snapshot.y[rows],
        variables={name: values[respondent] for name, values in snapshot.variables.items()},
        choices={name: values[rows] for name, values in snapshot.choices.items()},
    )


def _stored_weights(run: EstimateRun, case_ids: npt.NDArray[np.int64]) -> FloatArray:
    """The version's final weight of each case (0 for a case it did not have)."""
    stored = pipeline.run_weights(run)
    return np.fromiter((stored.get(int(c), (0.0, 0.0))[1] for c in case_ids), np.float64)


def _stale(run: EstimateRun) -> ChangeUnavailable:
    return ChangeUnavailable(
        _(
            "The data of %(survey)s have changed since version %(number)s was computed, so its "
            "estimates can no longer be reproduced: compare the latest version, or wait for "
            "the next one."
        )
        % {"survey": run.survey.title, "number": run.number}
    )


# --- the published cells -----------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One round's published cell, as the results pages show it."""

    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    df: int | None
    suppressed: bool
    flag: str

    @property
    def reasons(self) -> list[str]:
        return [part for part in self.flag.split("+") if part and part != quality.OK]

    @property
    def variance(self) -> float:
        return np.nan if self.se is None else self.se * self.se

    def shown(self) -> Level:
        """As published: a suppressed cell without its values."""
        if not self.suppressed:
            return self
        return dataclasses.replace(self, estimate=None, se=None, ci_low=None, ci_high=None)


CellKey = tuple[str, str, str, str, str]  # item, option, statistic, domain, domain value
LEVEL_FIELDS = ("estimate", "se", "ci_low", "ci_high", "n", "df", "suppressed", "flag")


def published_cells(run: EstimateRun) -> dict[CellKey, Level]:
    rows = (
        Estimate.objects.filter(run=run)
        .order_by("pk")
        .values_list("item", "option", "statistic", "domain", "domain_value", *LEVEL_FIELDS)
    )
    return {tuple(row[:5]): Level(*row[5:]) for row in rows}  # type: ignore[misc]


# --- the changes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeCell:
    """The change in one published cell: second round minus first. A change is suppressed
    when either round's estimate is, and then carries no value derived from it."""

    item: str
    option: str
    statistic: str
    domain: str
    domain_value: str
    first: Level
    second: Level
    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    correlation: float | None
    df: int | None
    common: int  # firms answering the item in the domain in both rounds
    reasons: tuple[tuple[str, int], ...]  # (reason code, CHANGE / FIRST / SECOND)

    @property
    def suppressed(self) -> bool:
        return self.estimate is None and (self.first.suppressed or self.second.suppressed)

    @property
    def significant(self) -> bool:
        """The interval leaves out 0: the rounds differ at the interval's level."""
        low, high = self.ci_low, self.ci_high
        return low is not None and high is not None and (low > 0 or high < 0)


@dataclass(frozen=True)
class ChangeTable:
    """Every change between two versions, in published order (items, then domains)."""

    first_run: int  # EstimateRun pks
    second_run: int
    cells: list[ChangeCell]

    def domain(self, name: str) -> list[ChangeCell]:
        return [c for c in self.cells if c.domain == name]

    def cell(self, item: str, option: str, statistic: str, domain: str, value: str) -> ChangeCell:
        key = (item, option, statistic, domain, value)
        found = next((c for c in self.cells if _key(c) == key), None)
        if found is None:
            raise KeyError(key)
        return found

    @property
    def domains(self) -> list[str]:
        return list(dict.fromkeys(c.domain for c in self.cells))


def _key(cell: ChangeCell) -> CellKey:
    return (cell.item, cell.option, cell.statistic, cell.domain, cell.domain_value)


def changes_between(first: EstimateRun, second: EstimateRun) -> ChangeTable:
    """The changes from the first version's round to the second's (an earlier round of the
    same series), cached by the versions' snapshots. ChangeUnavailable says why not."""
    key = _cache_key(first, second)
    found = django_cache.get(key)
    if found is None:
        try:
            found = _compute(first, second)
        except ChangeUnavailable as exc:
            found = str(exc)
        django_cache.set(key, found, CACHE_SECONDS)
    if isinstance(found, str):
        raise ChangeUnavailable(found)
    return found  # type: ignore[no-any-return]


def prepare(survey_id: int) -> int:
    """Compute the changes the survey's latest version takes part in (from its previous
    round's latest, to each next round's latest), so that the pages find them cached; a
    pair that cannot be compared is cached with its reason. Returns the pairs looked at."""
    survey = Survey.objects.filter(pk=survey_id).first()
    if survey is None:
        return 0
    earlier = [(survey.previous_round, survey)] if survey.previous_round else []
    later = [(survey, other) for other in Survey.objects.filter(previous_round=survey)]
    done = 0
    for pair in earlier + later:
        runs = [EstimateRun.objects.latest_published(s) for s in pair]
        if runs[0] is None or runs[1] is None:
            continue
        with contextlib.suppress(ChangeUnavailable):
            changes_between(runs[0], runs[1])
        done += 1
    return done


def _cache_key(first: EstimateRun, second: EstimateRun) -> str:
    parts = [
        f"{run.survey_id}.{run.pk}.{run.snapshot_key}.{run.finished_at}" for run in (first, second)
    ]
    digest = hashlib.sha256("|".join([*parts, _code_fingerprint()]).encode()).hexdigest()
    return f"change:{digest}"


@cache
def _code_fingerprint() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in (here / "change.py", here / "engine" / "change.py"):
        digest.update(path.read_bytes())
    return f"{pipeline.code_version()}-{digest.hexdigest()[:16]}"


def _compute(first_run: EstimateRun, second_run: EstimateRun) -> ChangeTable:
    earlier, later = first_run.survey, second_run.survey
    links = linked_cases(earlier, later)
    first, second = read_round(first_run), read_round(second_run)
    common = common_population(earlier, later, links)
    # A firm's key is its case in the earlier round; a firm new in the later round keeps
    # its own case id, negated so that it can never meet an earlier case.
    firm2 = np.fromiter((links.get(int(c), -int(c)) for c in second.case_ids), np.int64)
    rounds = first.design(first.case_ids), second.design(firm2)
    published = published_cells(first_run), published_cells(second_run)
    thresholds = second.spec.suppression
    cells: list[ChangeCell] = []
    try:
        for statistic, planned in _plan(first, second, published).items():
            for start in range(0, len(planned), BLOCK_COLUMNS):
                block = planned[start : start + BLOCK_COLUMNS]
                y1 = first.stacked([(j1, k[3], k[4]) for k, j1, _j2 in block])
                y2 = second.stacked([(j2, k[3], k[4]) for k, _j1, j2 in block])
                change = _estimate(statistic)(*rounds, y1, y2, common_population=common)
                keys = [k for k, _j1, _j2 in block]
                _check_reproduced(change, keys, published, (first_run, second_run))
                cells += _cells(change, keys, published, thresholds)
    except ChangeError as exc:
        raise ChangeUnavailable(str(exc)) from None
    order = {key: k for k, key in enumerate(published[1])}
    cells.sort(key=lambda cell: order[_key(cell)])
    return ChangeTable(first_run.pk, second_run.pk, cells)


def _estimate(statistic: str) -> Any:
    return change_in_total if statistic == Estimate.Statistic.TOTAL else change_in_mean


# Cells go through the engine a block of columns at a time, every domain at once: an item
# left blank outside its domain is the domain estimate (a firm outside it does not answer, E2).
BLOCK_COLUMNS = 400
Planned = tuple[CellKey, int, int]  # the cell, its column in round 1 and in round 2


def _plan(
    first: RoundFile, second: RoundFile, published: tuple[dict[CellKey, Level], ...]
) -> dict[str, list[Planned]]:
    """The cells both versions publish, of items both estimate, by statistic."""
    out: dict[str, list[Planned]] = {}
    for key in published[0]:
        question, option, statistic, domain, _value = key
        j1, j2 = first.columns.get((question, option)), second.columns.get((question, option))
        if key not in published[1] or j1 is None or j2 is None:
            continue
        if not (first.has_domain(domain) and second.has_domain(domain)):
            continue
        out.setdefault(statistic, []).append((key, j1, j2))
    return out


def _check_reproduced(
    change: Change,
    keys: list[CellKey],
    published: tuple[dict[CellKey, Level], ...],
    runs: tuple[EstimateRun, EstimateRun],
) -> None:
    """Each round's estimates are its version's: else its data changed since."""
    for estimates, cells, run in zip((change.first, change.second), published, runs, strict=True):
        shown = np.array([_number(cells[k].estimate) for k in keys])
        n = np.array([cells[k].n for k in keys])
        same = np.isclose(estimates.estimate, shown, rtol=REPRODUCED_RTOL, atol=REPRODUCED_ATOL)
        same |= np.isnan(estimates.estimate) & np.isnan(shown)
        if not (same.all() and np.array_equal(estimates.n, n)):
            raise _stale(run)


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _cells(
    change: Change,
    keys: list[CellKey],
    published: tuple[dict[CellKey, Level], ...],
    thresholds: quality.Thresholds,
) -> list[ChangeCell]:
    levels = [published[0][k] for k in keys], [published[1][k] for k in keys]
    # The published variances (Taylor, or the replicate variance of E7) and estimates.
    shown = with_variances(
        change, _published(change.first, levels[0]), _published(change.second, levels[1])
    )
    low, high = shown.ci(thresholds.level)
    out = []
    for j, key in enumerate(keys):
        one, two = levels[0][j], levels[1][j]
        hidden = one.suppressed or two.suppressed or one.estimate is None or two.estimate is None
        values = (shown.estimate[j], shown.se[j], low[j], high[j], shown.correlation[j])
        out.append(
            ChangeCell(
                *key,
                first=one.shown(),
                second=two.shown(),
                estimate=None if hidden else _finite(values[0]),
                se=None if hidden else _finite(values[1]),
                ci_low=None if hidden else _finite(values[2]),
                ci_high=None if hidden else _finite(values[3]),
                correlation=None if hidden else _finite(values[4]),
                df=None if hidden else int(shown.df[j]),
                common=int(change.common[j]),
                reasons=_reasons(one, two, int(shown.df[j]), hidden, thresholds),
            )
        )
    return out


def _published(estimates: Estimates, levels: list[Level]) -> Estimates:
    return dataclasses.replace(
        estimates,
        estimate=np.array([_number(level.estimate) for level in levels]),
        variance=np.array([level.variance for level in levels]),
        df=np.array([level.df if level.df is not None else 0 for level in levels], dtype=np.intp),
    )


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _reasons(
    first: Level, second: Level, df: int, hidden: bool, thresholds: quality.Thresholds
) -> tuple[tuple[str, int], ...]:
    """Why a change is suppressed (its rounds' reasons), or what to read it with: each round's
    warnings, and the change's own degrees of freedom (E5, F)."""
    carried = [(code, FIRST) for code in first.reasons] + [
        (code, SECOND) for code in second.reasons
    ]
    if hidden:
        return tuple(carried)
    own = [(quality.DF_LOW, CHANGE)] if df < thresholds.min_df else []
    return (*own, *carried)


# --- a trend across rounds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """One cell in every round of a series: each version's published level (None where it
    has no such cell; no values where suppressed) and the change from each round to the
    next (a message where it cannot be published, None where either round lacks the cell)."""

    runs: list[EstimateRun | None]
    levels: list[Level | None]
    changes: list[ChangeCell | str | None]


def trend(runs: Sequence[EstimateRun | None], key: CellKey) -> Trend:
    item, option, statistic, domain, value = key
    found = Estimate.objects.filter(
        run__in=[run for run in runs if run is not None],
        item=item,
        option=option,
        statistic=statistic,
        domain=domain,
        domain_value=value,
    ).values_list("run_id", *LEVEL_FIELDS)
    by_run = {row[0]: Level(*row[1:]).shown() for row in found}
    levels = [by_run.get(run.pk) if run is not None else None for run in runs]
    changes: list[ChangeCell | str | None] = []
    for t in range(1, len(runs)):
        before, after = runs[t - 1], runs[t]
        if before is None or after is None or levels[t - 1] is None or levels[t] is None:
            changes.append(None)
            continue
        try:
            changes.append(changes_between(before, after).cell(*key))
        except ChangeUnavailable as exc:
            changes.append(str(exc))
        except KeyError:
            changes.append(None)
    return Trend(list(runs), levels, changes)
