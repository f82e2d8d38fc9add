"""Imputation before estimation: what is missing or rejected, filled item by item in form
order, each value with its method and donor (methodology L4–L7).

The items and their methods are the weighting specification's `imputation` lines. A value is
imputed where the question applies to the response (its skip logic, evaluated on the
answers as edited and as imputed so far) and the response has no value: an answer the firm
left empty (a partial response) or a value editing rejected. Donors are the responses that
answered the item themselves. Classes are `imputation_classes` (size class × industry
group by default), collapsed by dropping the last variable, then all donors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.engine import imputation as engine
from respondents.models import Case
from surveys.expressions import parse
from surveys.models import Response, get_form
from surveys.questionnaire import Form, Question

from .models import ImputedValue
from .spec import ImputationRule, WeightingSpec, imputation_rule

ObjectArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
FRAME = "frame."
FRAME_NUMBERS = ("employees", "sales_krw_mn")
METHODS = {
    int(engine.Method.RATIO): ImputedValue.Method.RATIO,
    int(engine.Method.NEAREST_DONOR): ImputedValue.Method.NEAREST,
    int(engine.Method.RANDOM_DONOR): ImputedValue.Method.RANDOM,
}


@dataclass(frozen=True)
class Record:
    case_id: int
    item: str
    value: Any
    method: str
    donor_case: int | None
    imputation_class: str
    reason: str  # "missing" or "rejected"


@dataclass
class Result:
    imputed: dict[str, BoolArray] = field(default_factory=dict)  # per question, respondents
    records: list[Record] = field(default_factory=list)


@dataclass
class _Held:
    """A response that may receive values: its form, its values so far, what was rejected,
    and which questions apply (worked out again only after a value was imputed)."""

    form: Form
    values: dict[str, Any]
    rejected: frozenset[str]
    relevant: set[str] | None = None


@dataclass(frozen=True)
class _Filled:
    values: ObjectArray
    got: BoolArray
    method: list[str]
    donor: npt.NDArray[np.int64]
    level: npt.NDArray[np.int64]


def impute(
    case_ids: npt.NDArray[np.int64],
    columns: dict[str, ObjectArray],
    variables: Mapping[str, npt.NDArray[np.str_]],
    spec: WeightingSpec,
) -> Result:
    """Fill `columns` (each question's values, one per respondent in `case_ids` order) in
    place and say what was imputed. `variables` are the respondents' class variables."""
    result = Result()
    rules = [imputation_rule(line) for line in spec.imputation]
    rules = [rule for rule in rules if rule.item in columns]
    if not rules or not case_ids.size:
        return result
    position = {int(c): k for k, c in enumerate(case_ids.tolist())}
    held = _held(case_ids, columns, rules)
    if not held:
        return result
    frame = _frame_values(case_ids) if _uses_frame(rules) else {}
    names = spec.imputation_classes
    classes = [_joined(variables, names[: len(names) - k]) for k in range(len(names))]
    for rule in rules:
        column = columns[rule.item]
        missing = np.fromiter((_empty(v) for v in column.tolist()), bool, column.size)
        recipient = np.zeros(column.size, bool)
        for case_id, response in held.items():
            k = position[case_id]
            recipient[k] = missing[k] and _applies(response, rule.item)
        if not recipient.any():
            continue
        filled = _fill(
            rule, column, recipient, ~missing, columns, frame, classes, held, position, spec
        )
        result.imputed[rule.item] = filled.got
        for k in np.flatnonzero(filled.got).tolist():
            case_id = int(case_ids[k])
            response = held[case_id]
            value = _typed(filled.values[k], response.form.questions.get(rule.item))
            column[k] = value
            response.values[rule.item] = value
            response.relevant = None
            donor = int(filled.donor[k])
            level = int(filled.level[k])
            result.records.append(
                Record(
                    case_id=case_id,
                    item=rule.item,
                    value=value,
                    method=filled.method[k],
                    donor_case=int(case_ids[donor]) if donor >= 0 else None,
                    imputation_class=_class_of(classes, names, level, k),
                    reason="rejected" if rule.item in response.rejected else "missing",
                )
            )
    return result


def _fill(
    rule: ImputationRule,
    column: ObjectArray,
    recipient: BoolArray,
    donor: BoolArray,
    columns: Mapping[str, ObjectArray],
    frame: Mapping[str, FloatArray],
    classes: Sequence[npt.NDArray[np.str_]],
    held: Mapping[int, _Held],
    position: Mapping[int, int],
    spec: WeightingSpec,
) -> _Filled:
    n = column.size
    if rule.method == "derived":
        return _derived(rule, column, recipient, held, position)
    if rule.method == "ratio":
        y = np.fromiter((as_number(v) for v in column.tolist()), np.float64, n)
        x = _variable(rule.variables[0], columns, frame, n)
        usable = donor & np.isfinite(y) & np.isfinite(x)
        done = engine.ratio_impute(y, x, recipient & ~usable, usable, classes)
        values = column.copy()
        values[done.imputed] = done.values[done.imputed]
        return _from_engine(values, done.method, done.donor, done.level)
    if rule.method == "nearest":
        match = np.column_stack([_variable(v, columns, frame, n) for v in rule.variables])
        known = np.isfinite(match).all(axis=1)
        # A recipient without its own matching values cannot be placed: it gets no donor.
        donors = engine.nearest_donors(
            np.nan_to_num(match),
            recipient & known,
            donor & known,
            classes,
            seed=spec.imputation_seed,
        )
    else:
        donors = engine.random_donors(recipient, donor, classes, seed=spec.imputation_seed)
    done = engine.donate(column, recipient & (donors.donor >= 0), donors)
    return _from_engine(done.values, done.method, done.donor, done.level)


def _from_engine(
    values: ObjectArray,
    method: npt.NDArray[np.int8],
    donor: npt.NDArray[np.int64],
    level: npt.NDArray[np.int64],
) -> _Filled:
    got = method > engine.Method.REPORTED
    names = [METHODS.get(int(m), "") for m in method.tolist()]
    return _Filled(np.asarray(values, dtype=object), got, names, donor, level)


def _derived(
    rule: ImputationRule,
    column: ObjectArray,
    recipient: BoolArray,
    held: Mapping[int, _Held],
    position: Mapping[int, int],
) -> _Filled:
    """The rule's expression on the response's own values (as edited and imputed so far)."""
    expression = parse(rule.expression)
    n = column.size
    values = column.copy()
    got = np.zeros(n, bool)
    for case_id, response in held.items():
        k = position[case_id]
        if recipient[k]:
            value = expression.evaluate(response.values)
            typed = _typed(value, response.form.questions.get(rule.item))
            if typed is not None:
                values[k], got[k] = typed, True
    method = [ImputedValue.Method.DERIVED if g else "" for g in got.tolist()]
    none = np.full(n, engine.NO_DONOR, dtype=np.int64)
    return _Filled(values, got, method, none, np.full(n, engine.NO_LEVEL, dtype=np.int64))


def _held(
    case_ids: npt.NDArray[np.int64],
    columns: Mapping[str, ObjectArray],
    rules: Sequence[ImputationRule],
) -> dict[int, _Held]:
    """The respondents with an empty value in an imputed item, read whole (few of them)."""
    wanted = np.zeros(case_ids.size, bool)
    for rule in rules:
        wanted |= np.fromiter((_empty(v) for v in columns[rule.item].tolist()), bool, case_ids.size)
    ids = case_ids[wanted].tolist()
    held: dict[int, _Held] = {}
    rows = Response.objects.filter(case_id__in=ids).values_list(
        "case_id", "questionnaire_id", "answers", "edited"
    )
    for case_id, version, answers, edited in rows:
        rejected = frozenset(k for k, v in edited.items() if v is None)
        held[case_id] = _Held(get_form(version), {**answers, **edited}, rejected)
    return held


def _applies(response: _Held, item: str) -> bool:
    if item not in response.form.questions:
        return False
    if response.relevant is None:
        response.relevant = response.form.evaluate(response.values)[1]
    return item in response.relevant


def _frame_values(case_ids: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
    """The register's numbers of each respondent, in case order."""
    rows = (
        Case.objects.filter(pk__in=case_ids.tolist())
        .order_by("pk")
        .values_list("pk", *(f"frame_unit__{name}" for name in FRAME_NUMBERS))
    )
    position = {int(c): k for k, c in enumerate(case_ids.tolist())}
    out = {name: np.full(case_ids.size, np.nan) for name in FRAME_NUMBERS}
    for pk, *numbers in rows:
        for name, value in zip(FRAME_NUMBERS, numbers, strict=True):
            out[name][position[pk]] = as_number(value)
    return out


def _uses_frame(rules: Sequence[ImputationRule]) -> bool:
    return any(v.startswith(FRAME) for rule in rules for v in rule.variables)


def _variable(
    name: str, columns: Mapping[str, ObjectArray], frame: Mapping[str, FloatArray], n: int
) -> FloatArray:
    """A matching or auxiliary variable: a register number (frame.employees) or an answer."""
    if name.startswith(FRAME):
        found = frame.get(name.removeprefix(FRAME))
        if found is None:
            raise ValueError(
                f"unknown frame variable {name}: use frame.employees or frame.sales_krw_mn"
            )
        return found
    column = columns.get(name)
    if column is None:
        return np.full(n, np.nan)
    return np.fromiter((as_number(v) for v in column.tolist()), np.float64, n)


def _joined(
    variables: Mapping[str, npt.NDArray[np.str_]], names: Sequence[str]
) -> npt.NDArray[np.str_]:
    parts = [variables[name].astype(str) for name in names]
    out = parts[0]
    for part in parts[1:]:
        out = np.char.add(np.char.add(out, " × "), part)
    return out


def _class_of(
    classes: Sequence[npt.NDArray[np.str_]], names: Sequence[str], level: int, k: int
) -> str:
    if level < 0:
        return ""
    if level >= len(classes):
        return "all"
    return str(classes[level][k])[:64]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def as_number(value: Any) -> float:
    """An answer as a float; NaN for a blank, a boolean or text that is not a number."""
    if isinstance(value, bool) or value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _typed(value: Any, question: Question | None) -> Any:
    """A value as the question stores it (an integer question's ratio-imputed value rounds)."""
    if value is None or value == "" or question is None:
        return None if value == "" else value
    if isinstance(value, np.generic):
        value = value.item()
    if question.type == "integer":
        number = as_number(value)
        return round(number) if np.isfinite(number) else None
    if question.type == "decimal":
        number = as_number(value)
        return round(number, 6) if np.isfinite(number) else None
    if question.type == "select_one":
        return str(value) if str(value) in question.choice_names else None
    return value
