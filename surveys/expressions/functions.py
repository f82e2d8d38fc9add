"""The XPath functions (JavaRosa XPathFuncExpr) and their argument counts."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from .regex import regex_matches
from .values import (
    EPOCH,
    ISO_DATE_RE,
    JAVA_TRIM,
    Value,
    from_python,
    java_int,
    to_boolean,
    to_number,
    to_string,
)

if TYPE_CHECKING:
    from .parser import Context, Node

_Impl: TypeAlias = Callable[[tuple["Node", ...], "Context"], Value]


@dataclass(frozen=True, slots=True)
class Function:
    min_args: int
    max_args: int | None
    call: _Impl


def _strict(function: Callable[..., Value]) -> _Impl:
    """A function of its evaluated arguments."""
    return lambda args, ctx: function(*(arg.eval(ctx) for arg in args))


def _or_current(function: Callable[[Value], Value]) -> _Impl:
    """A function of one argument that defaults to the current question's value."""

    def call(args: tuple[Node, ...], ctx: Context) -> Value:
        return function(args[0].eval(ctx) if args else from_python(ctx.current))

    return call


def _if(args: tuple[Node, ...], ctx: Context) -> Value:
    condition, then, otherwise = args
    return (then if to_boolean(condition.eval(ctx)) else otherwise).eval(ctx)


def _coalesce(args: tuple[Node, ...], ctx: Context) -> Value:
    first = args[0].eval(ctx)
    return args[1].eval(ctx) if _is_null(first) else first


def _is_null(value: Value) -> bool:
    return value == "" or (isinstance(value, float) and math.isnan(value))


def _today(args: tuple[Node, ...], ctx: Context) -> Value:
    return (ctx.today or dt.date.today()).isoformat()


def _choices(answer: Value) -> list[str]:
    return [part for part in to_string(answer).split(" ") if part]


def _selected(answer: Value, choice: Value) -> bool:
    return to_string(choice).strip(JAVA_TRIM) in _choices(answer)


def _selected_at(answer: Value, index: Value) -> str:
    choices = _choices(answer)
    position = java_int(to_number(index))  # 0-based, as JavaRosa
    return choices[position] if 0 <= position < len(choices) else ""


def _substr(text: Value, start: Value, end: Value | None = None) -> str:
    # JavaRosa substr(): 0-based [start, end), negative positions count from the end.
    string = to_string(text)
    length = len(string)
    first = java_int(to_number(start))
    last = length if end is None else java_int(to_number(end))
    first = first + length if first < 0 else first
    last = last + length if last < 0 else last
    first, last = min(max(0, first), length), min(max(0, last), length)
    return string[first:last] if first <= last else ""


def _to_int(value: Value) -> float:
    number = to_number(value)
    if math.isnan(number) or math.isinf(number) or abs(number) >= 2**63:
        return number
    return math.copysign(float(math.trunc(number)), number)  # int(-0.5) is -0 in Java


_DECIMAL_CONTEXT: Final = decimal.Context(prec=400)


def _round(value: Value, digits: Value = 0.0) -> float:
    number, places = to_number(value), java_int(to_number(digits))
    if math.isnan(number) or math.isinf(number):
        return number
    if not -30 <= places <= 30:
        return math.nan
    exact = decimal.Decimal(repr(number))
    if places >= 0:
        # JavaRosa: BigDecimal.setScale with HALF_UP for positives and HALF_DOWN for
        # negatives, i.e. ties go towards +Infinity as XPath round() says.
        mode = decimal.ROUND_HALF_DOWN if number < 0 else decimal.ROUND_HALF_UP
        step = decimal.Decimal(1).scaleb(-places)
        return float(exact.quantize(step, rounding=mode, context=_DECIMAL_CONTEXT))
    scaled = float(exact.scaleb(places, context=_DECIMAL_CONTEXT))
    rounded = java_int(scaled + 0.5, bits=64)  # JavaRosa: (long) (scaled + 0.5)
    return float(decimal.Decimal(rounded).scaleb(-places, context=_DECIMAL_CONTEXT))


def _extreme(pick: Callable[[list[float]], float]) -> Callable[..., Value]:
    def call(*values: Value) -> Value:
        numbers_ = [n for n in map(to_number, values) if not math.isnan(n)]
        return pick(numbers_) if numbers_ else math.nan

    return call


def _date(value: Value) -> Value:
    """date(): days since 1970-01-01 or an ISO string as an ISO date; '' when invalid."""
    if isinstance(value, str):
        text = value.strip(JAVA_TRIM)
        valid = ISO_DATE_RE.match(text) and not math.isnan(to_number(text))
        return text[:10] if valid else ""  # the calendar date as written, whatever the zone
    days = to_number(value) if not isinstance(value, bool) else math.nan
    try:
        return (EPOCH + dt.timedelta(days=math.floor(days))).isoformat()
    except (ValueError, OverflowError):  # NaN, Infinity, or beyond years 1-9999
        return ""


def _normalize_space(value: Value) -> str:
    return re.sub(r"[ \t\n\x0b\f\r]+", " ", to_string(value).strip(JAVA_TRIM))


def _substring_before(text: Value, separator: Value) -> str:
    string, sep = to_string(text), to_string(separator)
    index = string.find(sep)
    return string[:index] if index >= 0 else ""


def _substring_after(text: Value, separator: Value) -> str:
    string, sep = to_string(text), to_string(separator)
    index = string.find(sep)
    return string[index + len(sep) :] if index >= 0 else ""


def _boolean_from_string(value: Value) -> bool:
    text = to_string(value)
    return text.lower() == "true" or text == "1"


FUNCTIONS: Final[dict[str, Function]] = {
    "true": Function(0, 0, lambda args, ctx: True),
    "false": Function(0, 0, lambda args, ctx: False),
    "not": Function(1, 1, _strict(lambda v: not to_boolean(v))),
    "boolean": Function(1, 1, _strict(to_boolean)),
    "boolean-from-string": Function(1, 1, _strict(_boolean_from_string)),
    "if": Function(3, 3, _if),
    "coalesce": Function(2, 2, _coalesce),
    "selected": Function(2, 2, _strict(_selected)),
    "count-selected": Function(1, 1, _strict(lambda v: float(len(_choices(v))))),
    "selected-at": Function(2, 2, _strict(_selected_at)),
    "string": Function(1, 1, _strict(to_string)),
    "number": Function(1, 1, _strict(to_number)),
    "int": Function(1, 1, _strict(_to_int)),
    "round": Function(1, 2, _strict(_round)),
    "abs": Function(1, 1, _strict(lambda v: abs(to_number(v)))),
    "min": Function(1, None, _strict(_extreme(min))),
    "max": Function(1, None, _strict(_extreme(max))),
    "string-length": Function(0, 1, _or_current(lambda v: float(len(to_string(v))))),
    "normalize-space": Function(0, 1, _or_current(_normalize_space)),
    "concat": Function(0, None, _strict(lambda *vs: "".join(map(to_string, vs)))),
    "contains": Function(2, 2, _strict(lambda a, b: to_string(b) in to_string(a))),
    "starts-with": Function(2, 2, _strict(lambda a, b: to_string(a).startswith(to_string(b)))),
    "ends-with": Function(2, 2, _strict(lambda a, b: to_string(a).endswith(to_string(b)))),
    "substring-before": Function(2, 2, _strict(_substring_before)),
    "substring-after": Function(2, 2, _strict(_substring_after)),
    "substr": Function(2, 3, _strict(_substr)),
    "regex": Function(2, 2, _strict(regex_matches)),
    "today": Function(0, 0, _today),
    "date": Function(1, 1, _strict(_date)),
}
USES_CURRENT_WITHOUT_ARGS: Final = frozenset({"string-length", "normalize-space"})
# Valid in ODK forms but meaningless or unsafe on this server (repeats, randomness,
# external data): named in errors so form authors know the form itself is not wrong.
UNSUPPORTED_ODK_FUNCTIONS: Final = frozenset(
    {"now", "once", "uuid", "random", "randomize", "position", "indexed-repeat", "count"}
    | {"sum", "join", "instance", "current", "pulldata", "jr:choice-name", "format-date"}
    | {"format-date-time", "date-time", "decimal-date-time", "decimal-time", "pow", "sqrt"}
    | {"exp", "exp10", "log", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "atan2"}
    | {"pi", "digest", "base64-decode", "area", "distance", "geofence", "translate"}
    | {"checklist", "weighted-checklist", "count-non-empty", "property", "version"}
)
