"""XPath values and JavaRosa's conversions between them."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
from typing import Any, Final, TypeAlias

Value: TypeAlias = str | float | bool

EPSILON: Final = 1e-12  # JavaRosa's tolerance for "equal" and "non-zero" numbers
JAVA_TRIM: Final = "".join(chr(c) for c in range(33))  # String.trim() strips <= U+0020
EPOCH: Final = dt.date(1970, 1, 1)
_EPOCH_UTC: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_python(value: Any) -> Value:
    """An answer as an XPath value: None -> '', numbers -> float, lists -> 'a b'."""
    # The commonest answers first, by exact type: edit rules read 150,000 values a run.
    kind = type(value)
    if kind is str or kind is float:
        return value
    if kind is int:
        return _real_to_float(value)
    if isinstance(value, list | tuple | set | frozenset):
        # select_multiple: XPath sees the space-separated choice values.
        return " ".join(part for part in (_scalar_string(item) for item in value) if part)
    return _scalar(value)


def _scalar(value: Any) -> Value:
    if value is None:
        return ""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Real):
        return _real_to_float(value)
    if isinstance(value, decimal.Decimal):
        return math.nan if value.is_snan() else float(value)
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    return str(value)


def _scalar_string(value: Any) -> str:
    return "" if isinstance(value, list | tuple | set | frozenset) else to_string(_scalar(value))


def _real_to_float(value: numbers.Real) -> float:
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def to_boolean(value: Value) -> bool:
    """XPath boolean(): non-empty strings and non-zero, non-NaN numbers are true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return abs(value) > EPSILON  # False for NaN
    return value != ""


ISO_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


def to_number(value: Value) -> float:
    """XPath number() as JavaRosa's toNumeric, plus ISO dates as days since 1970-01-01."""
    if type(value) is float:
        return value
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    text = value.strip(JAVA_TRIM)
    if ISO_DATE_RE.match(text):
        return _iso_to_days(text)
    text = text.replace(",", ".")  # JavaRosa accepts decimal commas
    if text and all(c in "0123456789-." for c in text):
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def _iso_to_days(text: str) -> float:
    """Days since 1970-01-01 (fractional for date-times, naive ones taken as UTC)."""
    try:
        if ISO_DATE_RE.fullmatch(text):
            return float((dt.date.fromisoformat(text) - EPOCH).days)
        if _ISO_DATETIME_RE.fullmatch(text):
            moment = dt.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return (moment - _EPOCH_UTC).total_seconds() / 86400
    except (ValueError, OverflowError):
        pass
    return math.nan


def to_string(value: Value) -> str:
    """XPath string(): booleans as 'true'/'false', integral numbers without decimals."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_to_string(value)
    return value


def _number_to_string(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if abs(number) < EPSILON:
        return "0"
    whole = math.trunc(number)
    if abs(number) < 2**53 and abs(number - whole) < EPSILON:
        return str(whole)  # JavaRosa prints near-integral doubles as integers
    # XPath 1.0 string() never uses exponent notation.
    return format(decimal.Decimal(repr(number)), "f")


def java_int(number: float, bits: int = 32) -> int:
    """Java's (int)/(long) cast: NaN is 0, out-of-range values saturate."""
    if math.isnan(number):
        return 0
    limit = 2 ** (bits - 1)
    if number >= limit:
        return limit - 1
    if number <= -limit:
        return -limit
    return math.trunc(number)
