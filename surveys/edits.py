"""Checking answers against a questionnaire version's edit rules (surveys.models.EditRule).

A rule is an expression of the form's language that holds when the answers pass. Besides
the answers (`${employees}`, calculations included, as stored), it reads the firm's frame
values (`${frame.employees}`, `${frame.industry_group}`, any attribute column of the frame)
and class statistics of the frame (`${stat.<name>}`, declared per version as EditStatistic:
a percentile of an expression over frame variables in the firm's class).

It also reads last round's answers of the same firm (`${last.employees}`, as edited; the
firm's case of the previous round is Case.previous). A rule that reads them applies only to
a firm that gave them: a new firm, or one that did not answer last year, is not checked
against them.

Two entry points: check_page() for the firm's page (the rules that concern its questions,
with their messages in the active language) and check_responses() for many responses at
once (frame values and statistics in a handful of queries). A rule that raises while it is
checked flags that response as "could not be checked" and the run goes on.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from analytics.engine.editing import percentiles_by
from respondents.models import Case, FrameUnit, FrameUnitQuerySet

from .expressions import Expression, parse
from .expressions.columns import as_numbers, evaluate_columns
from .models import EditRule, EditStatistic, QuestionnaireVersion, Response, get_form
from .questionnaire import pick

logger = logging.getLogger(__name__)

FRAME = "frame."
STAT = "stat."
LAST = "last."
REFERENCE_RE = re.compile(r"\$\{([^}]*)\}")
# The firm's pages read statistics on every save: each process keeps them this long. They
# change only when the frame is imported again, before fieldwork.
STATISTICS_CACHE_SECONDS = 600.0


def plain_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A failure's values as JSON keeps them (numpy scalars as Python numbers, a NaN as
    null), so that a stored confirmation compares equal to a fresh check of the same data."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if hasattr(value, "item") and not isinstance(value, list | dict | str):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[name] = value
    return out


def names_in_order(*texts: str) -> list[str]:
    """The ${names} of expressions, each once, in the order they are written."""
    return list(dict.fromkeys(m for text in texts for m in REFERENCE_RE.findall(text)))


@dataclass(frozen=True)
class Failure:
    """A rule a response fails, or could not be checked on (`error` then says why)."""

    rule: str
    severity: str  # EditRule.Severity
    items: tuple[str, ...]
    flag: str
    values: dict[str, Any]  # every name the rule and its condition read: the value seen
    message: dict[str, str]
    error: str = ""

    @property
    def checked(self) -> bool:
        return not self.error

    def text(self, language: str | None = None) -> str:
        if self.error:
            return _("This answer could not be checked against rule “%(rule)s”.") % {
                "rule": self.rule
            }
        return pick(self.message, language)


@dataclass(frozen=True)
class Rule:
    """An EditRule ready to check (parse() caches the parsed expressions by their text)."""

    name: str
    severity: str
    items: tuple[str, ...]
    flag: str
    message: dict[str, str]
    condition: Expression
    relevant: Expression | None
    names: tuple[str, ...]  # what it reads, in order

    @classmethod
    def of(cls, rule: EditRule) -> Rule:
        return cls(
            name=rule.name,
            severity=rule.severity,
            items=tuple(rule.items),
            flag=rule.flag,
            message=rule.message,
            condition=parse(rule.rule),
            relevant=parse(rule.relevant) if rule.relevant else None,
            names=tuple(names_in_order(rule.rule, rule.relevant)),
        )

    def check(self, scope: Mapping[str, Any]) -> Failure | None:
        """The failure of these values, or None when the rule holds or does not apply."""
        if any(scope.get(name) in (None, "") for name in self.names if name.startswith(LAST)):
            return None
        try:
            if self.relevant is not None and not self.relevant.truth(scope):
                return None
            if self.condition.truth(scope):
                return None
        except Exception as exc:  # a bug must cost one response's check, not the run
            return self._failure(scope, error=f"{type(exc).__name__}: {exc}"[:500])
        return self._failure(scope)

    def _failure(self, scope: Mapping[str, Any], error: str = "") -> Failure:
        values = {name: scope.get(name) for name in self.names}
        return Failure(self.name, self.severity, self.items, self.flag, values, self.message, error)


@dataclass(frozen=True)
class Statistic:
    name: str
    expression: Expression
    by: str  # a frame variable; "" for the whole frame
    percentile: float

    @classmethod
    def of(cls, statistic: EditStatistic) -> Statistic:
        return cls(statistic.name, parse(statistic.expression), statistic.by, statistic.percentile)

    @property
    def variables(self) -> list[str]:
        """The frame variables it reads, its classes' variable included."""
        used = [name.removeprefix(FRAME) for name in sorted(self.expression.references)]
        return [*used, self.by] if self.by else used

    @property
    def key(self) -> tuple[str, str, str, float]:
        return (self.name, self.expression.text, self.by, self.percentile)


# Values per class of each statistic: {name: {class value: value}}.
ClassValues = dict[str, dict[Any, float]]


@dataclass(frozen=True)
class PageCheck:
    """The rules that concern a page's questions and fail, by severity."""

    hard: list[Failure]
    soft: list[Failure]
    unchecked: list[Failure]

    def __bool__(self) -> bool:
        return bool(self.hard or self.soft or self.unchecked)


# --- public API ----------------------------------------------------------------------------


# The firm's pages check on every save: each process keeps a version's rules this long (an
# upload replacing them reaches the other processes within it).
RULES_CACHE_SECONDS = 10.0
_rules: dict[int, tuple[float, list[Rule], dict[str, Statistic]]] = {}


def rules_of(version_id: int) -> list[Rule]:
    return _held_rules(version_id)[0]


def _held_rules(version_id: int) -> tuple[list[Rule], dict[str, Statistic]]:
    now = time.monotonic()
    hit = _rules.get(version_id)
    if hit is None or now - hit[0] >= RULES_CACHE_SECONDS:
        rules = [Rule.of(rule) for rule in EditRule.objects.filter(questionnaire_id=version_id)]
        declared = EditStatistic.objects.filter(questionnaire_id=version_id)
        statistics = {s.name: Statistic.of(s) for s in declared}
        hit = _rules[version_id] = (now, rules, statistics)
    return hit[1], hit[2]


def check_page(response: Response, page: str, values: Mapping[str, Any]) -> PageCheck:
    """The failing rules that concern the questions of one page, for the values the firm
    sees (the form's evaluated values, the page's own answers included). Messages come in
    the active language (Failure.text())."""
    names = get_form(response.questionnaire_id).page_by_name[page].question_names
    rules = [r for r in rules_of(response.questionnaire_id) if names.intersection(r.items)]
    if not rules:
        return PageCheck([], [], [])
    units = FrameUnit.objects.filter(case=response.case_id)
    contexts = _contexts(response.questionnaire_id, rules, units, cached=True)
    scope = {**values, **next(iter(contexts.values()), {})}
    failures = _check(rules, scope)
    return PageCheck(
        hard=[f for f in failures if f.checked and f.severity == EditRule.Severity.HARD],
        soft=[f for f in failures if f.checked and f.severity == EditRule.Severity.SOFT],
        unchecked=[f for f in failures if not f.checked],
    )


def check_responses(
    version: QuestionnaireVersion,
    responses: QuerySet[Response] | Sequence[Response] | None = None,
) -> dict[int, list[Failure]]:
    """Every given response (default: every response answered under this version) against
    the version's rules: {response id: its failures, in rule order}, [] for a clean one.
    Stored answers are read as stored; Response objects are read as they are in memory.
    Statistics are computed afresh, once for the run."""
    rows = _rows(version, responses)
    rules = rules_of(version.pk)
    if not rules or not rows:
        return {pk: [] for pk, _answers, _unit in rows}
    units = FrameUnit.objects.filter(pk__in={unit for _pk, _answers, unit in rows})
    contexts = _contexts(version.pk, rules, units, cached=False)
    results: dict[int, list[Failure]] = {}
    broken: set[str] = set()
    for pk, answers, unit in rows:
        failures = results[pk] = _check(rules, {**answers, **contexts.get(unit, {})})
        for failure in failures:
            if failure.error and failure.rule not in broken:
                broken.add(failure.rule)
                logger.warning(
                    "Edit rule %s of questionnaire version %s could not be checked on "
                    "response %s (and maybe others): %s",
                    failure.rule,
                    version.pk,
                    pk,
                    failure.error,
                )
    return results


def check_response(response: Response) -> list[Failure]:
    """One response's failures, with the statistics a process keeps (see check_page)."""
    rules = rules_of(response.questionnaire_id)
    if not rules:
        return []
    units = FrameUnit.objects.filter(case=response.case_id)
    contexts = _contexts(response.questionnaire_id, rules, units, cached=True)
    return _check(rules, {**response.answers, **next(iter(contexts.values()), {})})


def _check(rules: Sequence[Rule], scope: Mapping[str, Any]) -> list[Failure]:
    return [failure for rule in rules if (failure := rule.check(scope)) is not None]


def _rows(
    version: QuestionnaireVersion, responses: QuerySet[Response] | Sequence[Response] | None
) -> list[tuple[int, dict[str, Any], int]]:
    """(response id, answers as edited, frame unit id) of each response: after submission
    the rules check the values editing left, not the firm's first answers."""
    if responses is None:
        responses = version.responses.all()
    if isinstance(responses, QuerySet):
        rows = responses.order_by("pk").values_list(
            "pk", "answers", "edited", "case__frame_unit_id"
        )
        return [(pk, {**answers, **edited}, unit) for pk, answers, edited, unit in rows]
    unit_of = dict(
        Case.objects.filter(pk__in={r.case_id for r in responses}).values_list(
            "pk", "frame_unit_id"
        )
    )
    return [(r.pk, r.edited_values(), unit_of[r.case_id]) for r in responses]


# --- the names a rule reads beyond the answers -----------------------------------------------


def _contexts(
    version_id: int, rules: Sequence[Rule], units: FrameUnitQuerySet, *, cached: bool
) -> dict[int, dict[str, Any]]:
    """Per frame unit, the frame values and statistics its rules read, by their names in
    the rules ("frame.employees", "stat.spe_p99")."""
    read = {name for rule in rules for name in rule.names}
    frame = sorted(name.removeprefix(FRAME) for name in read if name.startswith(FRAME))
    last = sorted(name.removeprefix(LAST) for name in read if name.startswith(LAST))
    previous = _last_answers(units) if last else {}
    wanted = {name.removeprefix(STAT) for name in read if name.startswith(STAT)}
    declared = _held_rules(version_id)[1]
    statistics = [declared[name] for name in sorted(wanted) if name in declared]
    classes = sorted({s.by for s in statistics if s.by})
    columns = units.variable_columns([*frame, *classes])
    values = _statistics(version_id, statistics, cached=cached) if statistics else {}
    contexts: dict[int, dict[str, Any]] = {}
    for k, unit in enumerate(columns["pk"]):
        context = {FRAME + name: columns[name][k] for name in frame}
        context.update({LAST + name: previous.get(unit, {}).get(name) for name in last})
        for s in statistics:
            of_class = _class_of(columns[s.by][k]) if s.by else ""
            context[STAT + s.name] = values[s.name].get(of_class)
        contexts[unit] = context
    return contexts


def _last_answers(units: FrameUnitQuerySet) -> dict[int, dict[str, Any]]:
    """Last round's answers (as edited) of the units' firms, by frame unit: three queries."""
    cases = Case.objects.filter(frame_unit__in=units)
    unit_of = dict(cases.values_list("pk", "frame_unit_id"))
    return {unit_of[case]: answers for case, answers in cases.previous_answers().items()}


def _class_of(value: Any) -> Any:
    return "" if value is None else value


# --- class statistics of the frame -----------------------------------------------------------

_cache: dict[tuple[int, tuple[str, str, str, float]], tuple[float, dict[Any, float]]] = {}


def _statistics(version_id: int, statistics: Sequence[Statistic], *, cached: bool) -> ClassValues:
    now = time.monotonic()
    kept = {s.name: _cache.get((version_id, s.key)) for s in statistics} if cached else {}
    out = {
        name: hit[1]
        for name, hit in kept.items()
        if hit and now - hit[0] < STATISTICS_CACHE_SECONDS
    }
    missing = [s for s in statistics if s.name not in out]
    if missing:
        frame = FrameUnit.objects.filter(survey__questionnaires=version_id)
        variables = list(dict.fromkeys(v for s in missing for v in s.variables))
        computed = class_statistics(missing, frame.variable_columns(variables))
        for s in missing:
            _cache[version_id, s.key] = (now, computed[s.name])
        out.update(computed)
    return out


def forget_rules(version_id: int) -> None:
    """This process reads the version's rules afresh (after an upload replaced them)."""
    _rules.pop(version_id, None)
    for key in [key for key in _cache if key[0] == version_id]:
        _cache.pop(key, None)


def forget_statistics() -> None:
    """Drop what this process keeps: the class statistics and the rules."""
    _cache.clear()
    _rules.clear()


def class_statistics(
    statistics: Sequence[Statistic], frame: Mapping[str, Sequence[Any]]
) -> ClassValues:
    """Each statistic per class of the frame: the percentile (numpy's default, linear
    interpolation, as R's quantile type 7) of its expression over the units of the class
    where it is a finite number. A class without any is left out (its value is blank)."""
    size = len(frame["pk"])
    numbers: dict[str, npt.NDArray[np.float64]] = {}
    alike: dict[tuple[str, str], list[Statistic]] = {}
    for s in statistics:
        alike.setdefault((s.expression.text, s.by), []).append(s)
    out: ClassValues = {}
    # Statistics of one expression and classes (the 1st and 99th percentiles) share a pass.
    for (_text, by), group in alike.items():
        for name in group[0].expression.references:
            if name not in numbers:
                numbers[name] = as_numbers(frame[name.removeprefix(FRAME)])
        values = evaluate_columns(group[0].expression, numbers, size)
        classes = np.asarray([_class_of(v) for v in frame[by]] if by else [""] * size)
        found = percentiles_by(values, classes, [s.percentile for s in group])
        levels = found.levels.tolist()
        for j, s in enumerate(group):
            column = found.values[:, j].tolist()
            out[s.name] = {
                level: value
                for level, value, count in zip(levels, column, found.count.tolist(), strict=True)
                if count
            }
    return out
