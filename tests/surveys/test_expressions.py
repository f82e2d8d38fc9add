"""The XLSForm expression engine: parsing, JavaRosa semantics, describe() and safety."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveys.expressions import (
    MAX_LENGTH,
    Expression,
    ExpressionError,
    Value,
    describe,
    evaluate_required,
    from_python,
    parse,
    to_boolean,
    to_number,
    to_string,
)

TODAY = dt.date(2024, 5, 1)
NAN = math.nan


def ev(text: str, values: Mapping[str, Any] | None = None, current: Any = None) -> Value:
    return parse(text).evaluate(values or {}, current, today=TODAY)


def same(actual: Value, expected: Value) -> bool:
    """Equality that also holds for NaN and tells 1.0 from True."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return type(actual) is type(expected) and actual == expected


def parse_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    return info.value


class Recording(dict[str, Any]):
    """Values that remember which names were read (to prove short-circuiting)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)


# --- literals, operators, precedence --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("2.5", 2.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("'it''s'", None),  # two adjacent literals: checked in the error tests
        ("'single'", "single"),
        ('"double"', "double"),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ("''", ""),
        ("(((7)))", 7.0),
    ],
)
def test_literals(text: str, expected: Value | None) -> None:
    if expected is None:
        parse_error(text)
    else:
        assert same(ev(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2", 3.0),
        ("5 - 7", -2.0),
        ("3 * 4", 12.0),
        ("10 div 4", 2.5),
        ("7 mod 3", 1.0),
        ("-7 mod 3", -1.0),  # Java %: the sign of the dividend
        ("7 mod -3", 1.0),
        ("5.5 mod 2", 1.5),
        ("-3", -3.0),
        ("- - 3", 3.0),
        ("1 = 1", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("1 = 1 and 2 = 2", True),
        ("1 = 1 and 2 = 3", False),
        ("1 = 2 or 2 = 2", True),
        ("1 = 2 or 2 = 3", False),
        ("5div 2", 2.5),
        ("5 div-1", -5.0),
    ],
)
def test_operators(text: str, expected: Value) -> None:
    assert same(ev(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),  # left-associative
        ("10 - (4 - 3)", 9.0),
        ("8 div 4 div 2", 1.0),
        ("2 * 3 mod 4", 2.0),
        ("-2 * 3", -6.0),
        ("- 2 - 3", -5.0),
        ("-(2 - 3)", 1.0),
        ("1 + 1 = 2", True),
        ("1 < 2 = true()", True),  # relational binds tighter than equality
        ("3 > 2 > 1", False),  # (3 > 2) > 1 is true > 1 is 1 > 1
        ("1 = 1 and 2 = 3 or 4 = 4", True),  # and binds tighter than or
        ("1 = 2 or 3 = 3 and 4 = 5", False),
        ("(1 = 2 or 3 = 3) and 4 = 4", True),
        ("1 = 1 = 1", True),
    ],
)
def test_precedence(text: str, expected: Value) -> None:
    assert same(ev(text), expected)


def test_long_chains_are_flat_and_evaluate() -> None:
    total = " + ".join(["${n}"] * 500)
    assert same(ev(total, {"n": 2}), 1000.0)
    clauses = " or ".join(f"${{q{i}}} = 'x'" for i in range(150))
    assert parse(clauses).truth({"q149": "x"})


def test_and_or_short_circuit() -> None:
    values = Recording(a="z", b="y")
    assert parse("${a} = 'x' and ${b} = 'y'").truth(values) is False
    assert values.read == ["a"]
    values = Recording(a="x")
    assert parse("${a} = 'x' or ${b} = 'y'").truth(values) is True
    assert values.read == ["a"]


def test_if_and_coalesce_are_lazy() -> None:
    values = Recording(c="1", a="then")
    assert ev("if(${c} = '1', ${a}, ${b})", values) == "then"
    assert "b" not in values.read
    values = Recording(a="first")
    assert ev("coalesce(${a}, ${b})", values) == "first"
    assert "b" not in values.read


# --- comparison semantics (JavaRosa) ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a blank answer is '' and converts to NaN against numbers
        ("${n} > 5", False),
        ("${n} >= 5", False),
        ("${n} < 5", False),
        ("${n} <= 5", False),
        ("${n} = 5", False),
        ("${n} != 5", True),
        ("${n} = 0", False),
        ("${n} = ''", True),
        ("${n} != ''", False),
        ("${missing} = ''", True),
        ("${n} + 1", NAN),
        ("${n} + 1 = ${n} + 1", False),  # NaN equals nothing, itself included
        ("${n} + 1 != ${n} + 1", True),
    ],
)
def test_blank_answers(text: str, expected: Value) -> None:
    assert same(ev(text, {"n": None}), expected)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("${n} = '5'", {"n": 5}, True),  # number vs string: compared as numbers
        ("${n} = ' 5 '", {"n": 5}, True),
        ("${n} = 'abc'", {"n": 5}, False),
        ("${n} != 'abc'", {"n": 5}, True),
        ("${n} = ''", {"n": 0}, False),
        ("${n} != ''", {"n": 0}, True),
        ("'5.0' = 5", {}, True),
        ("'5.0' = '5'", {}, False),  # two strings: compared as strings
        ("${s} = 'Yes'", {"s": "yes"}, False),
        ("'b' > 'a'", {}, False),  # relational operators only compare numbers
        ("'b' < 'a'", {}, False),
        ("'10' > '9'", {}, True),
        ("0.1 + 0.2 = 0.3", {}, True),  # JavaRosa's 1e-12 tolerance
        ("${x} = 2.5", {"x": decimal.Decimal("2.5")}, True),
        ("${x} > 1000000", {"x": 10**400}, True),
        ("${x} = ${x}", {"x": decimal.Decimal("NaN")}, False),
        ("1 div 0 = 1 div 0", {}, True),
        ("number('1,5') = 1.5", {}, True),  # JavaRosa accepts decimal commas
    ],
)
def test_mixed_comparisons(text: str, values: dict[str, Any], expected: Value) -> None:
    assert same(ev(text, values), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true() = 1", True),
        ("true() = 'x'", True),  # booleans win: 'x' is true
        ("true() = 'false'", True),  # a non-empty string is true, whatever it says
        ("false() = ''", True),
        ("false() = 0", True),
        ("false() != 0", False),
        ("true() > false()", True),
        ("true() + true()", 2.0),
        ("${b} = true()", True),
    ],
)
def test_booleans(text: str, expected: Value) -> None:
    assert same(ev(text, {"b": True}), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${d} < today()", True),
        ("${d} > '2023-12-31'", True),
        ("${d} < '2024-01-02'", True),
        ("${d} = '2024-01-01'", True),
        ("${d} = today()", False),
        ("today() - ${d}", 121.0),
        ("${d} + 0", 19723.0),
        ("${d} = 19723", True),
        ("${d} >= ${dd}", True),
        ("${bad} < today()", False),
        ("${dt} > ${d}", True),
        ("${dt} < '2024-01-02'", True),
        ("${dz} = ${dt}", False),  # strings differ; numerically 09:00 KST is 00:00 UTC
        ("${dz} - ${d}", 0.0),
        ("date(${d} + 30)", "2024-01-31"),
        ("date('2024-03-05T10:00:00')", "2024-03-05"),
        ("date(${dz})", "2024-01-01"),
        ("date('2024-02-30')", ""),
        ("date(0)", "1970-01-01"),
        ("date('')", ""),
        ("date('junk')", ""),
        ("date(1 div 0)", ""),
        ("date(99999999)", ""),
    ],
)
def test_dates(text: str, expected: Value) -> None:
    values = {
        "d": "2024-01-01",
        "dd": dt.date(2024, 1, 1),
        "bad": "2024-02-30",
        "dt": "2024-01-01T12:00:00",
        "dz": "2024-01-01T09:00:00+09:00",
    }
    assert same(ev(text, values), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 div 0", math.inf),
        ("-1 div 0", -math.inf),
        ("1 div -0", -math.inf),
        ("0 div 0", NAN),
        ("5 mod 0", NAN),
        ("(1 div 0) mod 2", NAN),
        ("5 mod (1 div 0)", 5.0),
        ("(1 div 0) - (1 div 0)", NAN),
        ("string(1 div 0)", "Infinity"),
        ("string(-1 div 0)", "-Infinity"),
        ("string(0 div 0)", "NaN"),
        ("1 div 0 > 10", True),
        ("${n} div 0", NAN),
    ],
)
def test_division_by_zero(text: str, expected: Value) -> None:
    assert same(ev(text, {"n": None}), expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("x", True),
        ("false", True),
        ("0", True),
        (0.0, False),
        (-0.0, False),
        (1e-13, False),  # JavaRosa treats |x| <= 1e-12 as zero
        (0.5, True),
        (NAN, False),
        (math.inf, True),
        (True, True),
        (False, False),
    ],
)
def test_truthiness(value: Value, expected: bool) -> None:
    assert to_boolean(value) is expected
    assert parse("${v}").truth({"v": value}) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("text", "text"),
        (3, 3.0),
        (2.5, 2.5),
        (True, True),
        (decimal.Decimal("1.25"), 1.25),
        (decimal.Decimal("sNaN"), NAN),
        (10**400, math.inf),
        (-(10**400), -math.inf),
        (["a", "b"], "a b"),
        (["a", None, "", "c"], "a c"),
        ([], ""),
        (("x",), "x"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.datetime(2024, 1, 2, 3, 4), "2024-01-02T03:04:00"),
    ],
)
def test_from_python(value: Any, expected: Value) -> None:
    assert same(from_python(value), expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-3.0, "-3"),
        (2.5, "2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.0000000000001, "2"),
        (1e21, "1000000000000000000000"),  # XPath 1.0: never exponent notation
        (1e-7, "0.0000001"),
        (-0.0, "0"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_to_string(value: Value, expected: str) -> None:
    assert to_string(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12.0),
        (" -1.5 ", -1.5),
        ("1,5", 1.5),
        ("", NAN),
        ("abc", NAN),
        ("1e3", NAN),  # XPath number() has no exponents
        ("Infinity", NAN),
        ("--1", NAN),
        ("1-2", NAN),
        (".", NAN),
        ("1970-01-02", 1.0),
        ("1970-01-01T12:00:00Z", 0.5),
    ],
)
def test_to_number(text: str, expected: float) -> None:
    assert same(to_number(text), expected)


# --- select_multiple and the current value ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("selected(${m}, 'b')", ["a", "b"], True),
        ("selected(${m}, 'c')", ["a", "b"], False),
        ("selected(${m}, ' b ')", ["a", "b"], True),
        ("selected(${m}, 'a')", ["ab"], False),  # whole values, not substrings
        ("selected(${m}, 'a b')", ["a", "b"], False),
        ("selected(${m}, '')", None, False),
        ("selected(${m}, 'a')", None, False),
        ("selected(${m}, 'b')", "a b", True),  # the XML form of the answer works too
        ("selected(${m}, 'yes')", "yes", True),  # and so does a select_one
        ("count-selected(${m})", ["a", "b", "c"], 3.0),
        ("count-selected(${m})", "a  b", 2.0),
        ("count-selected(${m})", None, 0.0),
        ("selected-at(${m}, 0)", ["a", "b"], "a"),
        ("selected-at(${m}, 1)", ["a", "b"], "b"),
        ("selected-at(${m}, 2)", ["a", "b"], ""),
        ("selected-at(${m}, -1)", ["a", "b"], ""),
        ("selected-at(${m}, '1')", ["a", "b"], "b"),
        ("${m} = 'a b'", ["a", "b"], True),
        ("string-length(${m})", ["a", "b"], 3.0),
    ],
)
def test_select_multiple(text: str, value: Any, expected: Value) -> None:
    assert same(ev(text, {"m": value}), expected)


def test_current_value() -> None:
    assert same(ev(". + 1", current=4), 5.0)
    assert same(ev(". >= 18 and . <= 99", current=30), True)
    assert same(ev(". >= 18", current=None), False)
    assert same(ev("selected(., 'x')", current=["x", "y"]), True)
    assert same(ev("string-length()", current="안녕하세요"), 5.0)
    assert same(ev("normalize-space()", current="  a \t b  "), "a b")
    assert same(ev("regex(., '[0-9]{3}')", current="123"), True)


# --- functions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not(true())", False),
        ("not(${blank})", True),
        ("not('x')", False),
        ("true()", True),
        ("false()", False),
        ("boolean('x')", True),
        ("boolean(0)", False),
        ("boolean-from-string('TRUE')", True),
        ("boolean-from-string('1')", True),
        ("boolean-from-string('yes')", False),
        ("string(12)", "12"),
        ("string(12.50)", "12.5"),
        ("string(true())", "true"),
        ("string(${blank})", ""),
        ("number('12.5')", 12.5),
        ("number('x')", NAN),
        ("number(true())", 1.0),
        ("int(3.7)", 3.0),
        ("int(-3.7)", -3.0),
        ("int('7.9')", 7.0),
        ("int('x')", NAN),
        ("int(1 div 0)", math.inf),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -2.0),  # ties go towards +Infinity
        ("round(2.4)", 2.0),
        ("round(1.005, 2)", 1.01),
        ("round(1234.5678, 2)", 1234.57),
        ("round(-1234.5678, 1)", -1234.6),
        ("round(1234.5, -2)", 1200.0),
        ("round(1250, -2)", 1300.0),
        ("round(1.5, 31)", NAN),
        ("round('')", NAN),
        ("round(1.5, '')", 2.0),
        ("round(1 div 0)", math.inf),
        ("abs(-2.5)", 2.5),
        ("min(3, 1, 2)", 1.0),
        ("max(3, ${blank}, 5)", 5.0),
        ("max(${blank})", NAN),
        ("if(true(), 'a', 'b')", "a"),
        ("if('', 'a', 'b')", "b"),
        ("if(1 > 0, 10, 'no')", 10.0),
        ("coalesce(${blank}, 'fallback')", "fallback"),
        ("coalesce(0 div 0, 'fallback')", "fallback"),  # NaN counts as empty
        ("coalesce(0, 'fallback')", 0.0),
        ("coalesce(${blank}, ${blank})", ""),
        ("concat('a', 1, true(), ${blank}, 2.5)", "a1true2.5"),
        ("concat()", ""),
        ("concat(${m})", "x y"),
        ("contains('hello', 'ell')", True),
        ("contains('hello', '')", True),
        ("contains('hello', 'xyz')", False),
        ("starts-with('hello', 'he')", True),
        ("starts-with('hello', 'lo')", False),
        ("ends-with('hello', 'lo')", True),
        ("ends-with('hello', 'he')", False),
        ("substr('hello', 1)", "ello"),
        ("substr('hello', 1, 3)", "el"),  # 0-based [start, end)
        ("substr('hello', -3)", "llo"),
        ("substr('hello', 3, 1)", ""),
        ("substr('hello', 0, 100)", "hello"),
        ("substr('hello', 'x')", "hello"),  # NaN is 0, as Java's (int) cast
        ("substring-before('a-b-c', '-')", "a"),
        ("substring-after('a-b-c', '-')", "b-c"),
        ("substring-before('abc', 'x')", ""),
        ("string-length('hello')", 5.0),
        ("string-length('스마트공장')", 5.0),
        ("string-length(${blank})", 0.0),
        ("string-length(12.0)", 2.0),
        ("normalize-space('  a   b ')", "a b"),
        ("today()", "2024-05-01"),
    ],
)
def test_functions(text: str, expected: Value) -> None:
    assert same(ev(text, {"blank": None, "m": ["x", "y"]}), expected)


def test_today_defaults_to_the_real_date() -> None:
    assert parse("today()").evaluate({}) == dt.date.today().isoformat()


# --- regex() ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("[0-9]{3}-[0-9]{4}", "555-1234", True),
        ("^[0-9]{3}-[0-9]{4}$", "555-1234", True),
        ("[0-9]{3}", "1234", False),  # the whole value must match (Pattern.matches)
        ("b", "abc", False),
        ("a.c", "abc", True),
        (".*", "", True),
        ("a|b|", "", True),
        ("(ab)+", "ababab", True),
        ("(?:ab){2,3}", "ababababab", False),
        ("(?<pair>ab){2}", "abab", True),
        ("x{2,}", "xxxxx", True),
        ("x{2,}", "x", False),
        ("colou?r", "color", True),
        ("a+?b", "aaab", True),  # lazy quantifiers match the same strings
        (r"\d+", "123", True),
        (r"\d+", "١٢٣", False),  # Java's \d is ASCII
        (r"\w+", "abc_09", True),
        (r"\w+", "가나", False),
        (r"\s", "\t", True),
        (r"\s", "\x0b", True),  # Java's \s has the vertical tab (RE2's does not)
        (".", "\r", False),  # Java's . stops at every line terminator
        (r"\p{IsGreek}+", "αβγ", True),
        (r"\Qa.\E?", "a", True),  # a quantifier after \Q...\E repeats the last character
        (r"\D\W\S", "a!b", True),
        ("[^0-9]+", "abc", True),
        ("[a-z-]+", "a-b", True),
        ("[]a]+", "]a", True),
        (r"[\d.]+", "1.5", True),
        ("[가-힣]+", "홍길동", True),
        (r"\p{IsHangul}+", "홍길동", True),
        (r"\p{L}+", "abc가", True),
        (r"\p{Lu}\p{Ll}+", "Hello", True),
        (r"\P{N}+", "abc", True),
        (r"\p{Alpha}+", "abc", True),
        (r"\p{Punct}", "!", True),
        (r"\pL", "x", True),
        (r"\QC++\E", "C++", True),
        (r"\.", ".", True),
        (r"\x41\u00e9", "Aé", True),
        (r"\bfoo\b", "foo", True),
        (r"a\Bb", "ab", True),
        (r"\Aabc\z", "abc", True),
        ("abc$", "abc\n", False),  # $ may precede a final newline, which must still match
        ("abc$\n", "abc\n", True),
        (r"[^@\s]+@[^@\s]+\.[a-z]{2,}", "me@example.com", True),
        (r"[^@\s]+@[^@\s]+\.[a-z]{2,}", "me@example", False),
        ("", "", True),
    ],
)
def test_regex(pattern: str, value: str, expected: bool) -> None:
    assert parse(f"regex(${{v}}, '{pattern}')").evaluate({"v": value}) is expected


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("(a+)+$", "a" * 9_000 + "!"),
        ("(a|aa)*b", "a" * 9_000),
        ("(x+x+)+y", "x" * 9_000),
        (r"\d*\d*\d*\d*\d*\d*x", "1" * 9_000),
        ("(.*a){20}", "a" * 5_000 + "b"),
    ],
)
def test_regex_is_linear_on_catastrophic_patterns(pattern: str, value: str) -> None:
    start = time.perf_counter()
    assert parse(f"regex(., '{pattern}')").truth({}, value) is False
    assert time.perf_counter() - start < 3


@pytest.mark.parametrize(
    ("pattern", "problem", "column"),
    [
        ("(a)\\1", "back-references", 14),
        ("(?=a)", "lookaround", 11),
        ("(?i)a", "lookaround, flags", 11),
        ("a++", "possessive", 13),
        ("[a-z&&[aeiou]]", "intersections", 15),
        ("[z-a]", "illegal character range", 14),
        ("(a", "unclosed group", 11),
        ("a)", "unmatched ')'", 12),
        ("[abc", "unclosed character class", 11),
        ("*a", "dangling meta character", 11),
        ("a{x}", "illegal repetition", 12),
        ("a{3,2}", "illegal repetition range", 12),
        ("a{5000}", "repetition count above 1000", 12),
        ("\\", "trailing backslash", 11),
        ("\\k", "unsupported escape", 11),
        ("\\p{Nope}", "unsupported property", 11),
        ("(a{1000}){1000}", "too complex", 11),
        ("a" * 501, "longer than 500", 11),
        ("(" * 60 + ")" * 60, "nested too deeply", 61),
    ],
)
def test_invalid_regex_literals_are_parse_errors(pattern: str, problem: str, column: int) -> None:
    error = parse_error(f"regex(., '{pattern}')")
    assert "invalid regular expression" in str(error)
    assert problem in str(error)
    assert error.column == column


def test_computed_invalid_patterns_and_huge_values_do_not_match() -> None:
    expression = parse("regex(., ${pattern})")
    assert expression.truth({"pattern": "(?=x)"}, "x") is False
    assert expression.truth({"pattern": "[0-9]+"}, "123") is True
    assert expression.truth({"pattern": "x*"}, "x" * 20_000) is False  # over the value cap
    assert expression.truth({"pattern": r"\p{L}{1000}"}, "x") is False  # too big to compile
    assert expression.truth({"pattern": "[0-9]+"}, "1\ud800") is False  # a lone surrogate


# --- parse errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${q} = ", "unexpected end of expression at column 8"),
        ("${q} == 'a'", "unexpected '==' at column 6 (use '=' to compare)"),
        ("${q} = 'abc", "unclosed string at column 8"),
        ('${q} = "abc', "unclosed string at column 8"),
        ("${}", "empty question reference '${}' at column 1"),
        ("${q", "unclosed '${' at column 1"),
        ("${a b} = 1", "invalid question name 'a b'"),
        ("${1a} = 1", "invalid question name '1a'"),
        ("${jr:a} = 1", "invalid question name 'jr:a'"),
        ("foo(1)", "unknown function 'foo()' at column 1"),
        ("__import__('os')", "unknown function '__import__()' at column 1"),
        ("now()", "function 'now()' is not supported at column 1"),
        ("jr:choice-name(${a}, '${a}')", "function 'jr:choice-name()' is not supported"),
        ("a:b:c(1)", "unexpected name 'a:b' at column 1"),
        ("__import__('os').system('ls')", "unknown function '__import__()' at column 1"),
        ("${qq} = 'yes')", "unexpected ')' at column 14"),
        ("(1 + 2", "expected ')' to close the '(' at column 1, found end of expression"),
        ("1 + ", "unexpected end of expression at column 5"),
        ("1 2", "unexpected '2' at column 3"),
        ("${a} ${b}", "unexpected '${b}' at column 6"),
        ("'a' 'b'", "unexpected string 'b' at column 5"),
        ("'it''s'", "unexpected string 's' at column 5"),
        ("()", "unexpected ')' at column 2"),
        (", 1", "unexpected ',' at column 1"),
        ("* 2", "unexpected '*' at column 1"),
        ("+ 2", "unexpected '+' at column 1"),
        ("concat('a',)", "unexpected ')' at column 12"),
        ("concat('a' 'b')", "expected ',' or ')' in concat(), found string 'b' at column 12"),
        ("if(${a}, 1)", "if() takes 3 arguments, not 2 at column 1"),
        ("not()", "not() takes 1 argument, not 0"),
        ("today(1)", "today() takes 0 arguments, not 1"),
        ("round(1, 2, 3)", "round() takes 1-2 arguments, not 3"),
        ("min()", "min() takes 1 or more arguments, not 0"),
        ("selected(${m}, 1)", "selected() needs the choice value in quotes at column 16"),
        ("a", "unexpected name 'a' at column 1 (refer to questions as ${a})"),
        ("true", "unexpected name 'true' at column 1 (write true())"),
        ("${a} = 1 AND ${b} = 2", "unexpected name 'AND' at column 10"),
        ("1e5", "unexpected name 'e5' at column 2"),
        ("${a} && ${b}", "unexpected '&&' at column 6 (use 'and')"),
        ("${a} || ${b}", "(use 'or')"),
        ("${a} <> 1", "(use '!=' for 'not equal')"),
        ("!(${a})", "(use not(...) or '!=')"),
        ("${a} / 2", "unexpected character '/' at column 6"),
        ("${a} % 2", "(use 'mod')"),
        ("$a", "(refer to questions as ${name})"),
        ("${a} = \u2018x\u2019", "(use straight quotes"),
        ("../a", "unexpected '..' at column 1"),
        ("@a", "unexpected character '@' at column 1"),
        ("${a}[1]", "unexpected character '['"),
        ("", "empty expression at column 1"),
        ("   ", "empty expression at column 1"),
        ("${a} = 'x' ${b}", "unexpected '${b}' at column 12"),
        ("not(${a}) not(${b})", "unexpected 'not' at column 11"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    assert message in str(parse_error(text))


def test_error_attributes() -> None:
    error = parse_error("${qq} = 'yes')")
    assert isinstance(error, ValueError)
    assert error.position == 13
    assert error.column == 14
    assert error.message == "unexpected ')'"
    assert str(error) == "unexpected ')' at column 14"


def test_limits() -> None:
    error = parse_error("1" + " + 1" * MAX_LENGTH)
    assert "too long" in str(error)
    assert error.column == MAX_LENGTH + 1
    assert ev(" + ".join(["1"] * 1000)) == 1000.0  # within the limit
    for deep in ("(" * 200 + "1" + ")" * 200, "-" * 200 + "1", "not(" * 200 + "1" + ")" * 200):
        assert "nested too deeply" in str(parse_error(deep))
    assert "nested too deeply" in str(parse_error("1" + " = 1" * 150))
    assert ev("(" * 20 + "1" + ")" * 20) == 1.0


# --- the Expression object --------------------------------------------------------------


def test_references_and_current() -> None:
    expression = parse("${a} = 1 and selected(${b}, 'x') or ${a} > count-selected(${c})")
    assert expression.references == frozenset({"a", "b", "c"})
    assert expression.uses_current is False
    assert parse(". > ${min}").uses_current is True
    assert parse("string-length() > 3").uses_current is True
    assert parse("string-length(${a}) > 3").uses_current is False
    assert parse("1 + 1").references == frozenset()
    assert parse("${성별} = '1' and ${q.1-a} = 2").references == {"성별", "q.1-a"}


def test_expression_is_immutable_cached_and_printable() -> None:
    expression = parse("${a} = 1")
    assert isinstance(expression, Expression)
    assert parse("${a} = 1") is expression
    assert str(expression) == "${a} = 1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        expression.text = "other"  # type: ignore[misc]


def test_truth_and_evaluate() -> None:
    expression = parse("${a} + 1")
    assert expression.evaluate({"a": 1}) == 2.0
    assert expression.truth({"a": 1}) is True
    assert expression.truth({"a": -1}) is False
    assert expression.truth({}) is False


# --- evaluate_required ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("yes", True),
        ("YES", True),
        (" true ", True),
        ("true()", True),
        ("TRUE()", True),
        ("1", True),
        (True, True),
        (None, False),
        ("", False),
        ("  ", False),
        ("no", False),
        ("No", False),
        ("false", False),
        ("false()", False),
        ("0", False),
        (False, False),
        ("${a} = 'x'", True),
        ("${a} = 'y'", False),
        (". = ''", True),
    ],
)
def test_evaluate_required(spec: str | bool | None, expected: bool) -> None:
    assert evaluate_required(spec, {"a": "x"}, None) is expected


def test_evaluate_required_rejects_broken_expressions() -> None:
    with pytest.raises(ExpressionError):
        evaluate_required("${a} ==", {}, None)


# --- describe() ---------------------------------------------------------------------------

LABELS_EN = {"sf_adopted": "Smart factory adopted", "a": "A", "b": "B", "c": "C"}
LABELS_KO = {"sf_adopted": "스마트공장 도입 여부", "a": "가", "b": "나", "c": "다"}
CHOICES_EN = {("sf_adopted", "yes"): "Yes", ("c", "x"): "X"}
CHOICES_KO = {("sf_adopted", "yes"): "예", ("c", "x"): "엑스"}


def words(text: str, language: str) -> str:
    labels, choices = (LABELS_KO, CHOICES_KO) if language == "ko" else (LABELS_EN, CHOICES_EN)
    return describe(
        text,
        lambda name: labels.get(name, ""),
        lambda name, value: choices.get((name, value), ""),
        language,
    )


@pytest.mark.parametrize(
    ("text", "english", "korean"),
    [
        (
            "${sf_adopted} = 'yes'",
            '"Smart factory adopted" is "Yes"',
            '"스마트공장 도입 여부"이(가) "예"인 경우',
        ),
        (
            "'yes' != ${sf_adopted}",
            '"Smart factory adopted" is not "Yes"',
            '"스마트공장 도입 여부"이(가) "예"이(가) 아닌 경우',
        ),
        ("selected(${c}, 'x')", '"C" includes "X"', '"다"에서 "엑스"을(를) 선택한 경우'),
        (
            "not(selected(${c}, 'x'))",
            '"C" does not include "X"',
            '"다"에서 "엑스"을(를) 선택하지 않은 경우',
        ),
        ("${a} > 3", '"A" is greater than 3', '"가"이(가) 3보다 큰 경우'),
        ("3 < ${a}", '"A" is greater than 3', '"가"이(가) 3보다 큰 경우'),
        ("${a} >= 3", '"A" is greater than or equal to 3', '"가"이(가) 3 이상인 경우'),
        ("${a} < 3", '"A" is less than 3', '"가"이(가) 3보다 작은 경우'),
        ("${a} <= 3.5", '"A" is less than or equal to 3.5', '"가"이(가) 3.5 이하인 경우'),
        ("not(${a} > 3)", '"A" is not greater than 3', '"가"이(가) 3보다 크지 않은 경우'),
        ("${a} = ''", '"A" is empty', '"가"이(가) 비어 있는 경우'),
        ("${a} != ''", '"A" is not empty', '"가"이(가) 비어 있지 않은 경우'),
        ("${a}", '"A" is answered', '"가"에 응답한 경우'),
        ("not(${a})", '"A" is not answered', '"가"에 응답하지 않은 경우'),
        ("${a} = 'other'", '"A" is "other"', '"가"이(가) "other"인 경우'),
        (
            ". >= 18",
            "the answer is greater than or equal to 18",
            "이 문항의 응답이(가) 18 이상인 경우",
        ),
        (
            "${a} = 1 and ${b} > 3",
            '"A" is 1 and "B" is greater than 3',
            '"가"이(가) 1이고 "나"이(가) 3보다 큰 경우',
        ),
        (
            "${a} = 1 or ${b} = 2 or ${c} = ''",
            '"A" is 1 or "B" is 2 or "C" is empty',
            '"가"이(가) 1이거나 "나"이(가) 2이거나 "다"이(가) 비어 있는 경우',
        ),
        (
            "${sf_adopted} = 'yes' or (${b} > 3 and selected(${c}, 'x'))",
            '"Smart factory adopted" is "Yes" or ("B" is greater than 3 and "C" includes "X")',
            '"스마트공장 도입 여부"이(가) "예"이거나 '
            '("나"이(가) 3보다 크고 "다"에서 "엑스"을(를) 선택한 경우)에 해당하는 경우',
        ),
        (
            "not(${a} = 1 or ${b} = 2)",
            'not ("A" is 1 or "B" is 2)',
            '("가"이(가) 1이거나 "나"이(가) 2인 경우)에 해당하지 않는 경우',
        ),
        (
            "count-selected(${c}) >= 2",
            'the number of choices selected in "C" is greater than or equal to 2',
            '"다"의 선택 개수이(가) 2 이상인 경우',
        ),
        (
            "string-length(${a}) < 5",
            'the length of "A" is less than 5',
            '"가"의 글자 수이(가) 5보다 작은 경우',
        ),
        ("${a} < today()", '"A" is less than today', '"가"이(가) 오늘보다 작은 경우'),
        (
            "${a} + ${b} * 2 > 10",
            '"A" + "B" × 2 is greater than 10',
            '"가" + "나" × 2이(가) 10보다 큰 경우',
        ),
        (
            "(${a} + ${b}) div 2 != -${c}",
            '("A" + "B") ÷ 2 is not -"C"',
            '("가" + "나") ÷ 2이(가) -"다"이(가) 아닌 경우',
        ),
        (
            "${a} - (${b} - ${c}) = 0",
            '"A" - ("B" - "C") is 0',
            '"가" - ("나" - "다")이(가) 0인 경우',
        ),
        (
            "regex(${a}, '[0-9]+')",
            "regex(${a}, '[0-9]+')",
            "regex(${a}, '[0-9]+')이(가) 참인 경우",
        ),
        (
            "not(regex(${a}, '[0-9]+'))",
            "not (regex(${a}, '[0-9]+'))",
            "regex(${a}, '[0-9]+')이(가) 거짓인 경우",
        ),
        ("${unlabelled} = 1", '"unlabelled" is 1', '"unlabelled"이(가) 1인 경우'),
        ("broken (", "broken (", "broken ("),
    ],
)
def test_describe(text: str, english: str, korean: str) -> None:
    assert words(text, "en") == english
    assert words(text, "ko") == korean


def test_describe_accepts_parsed_expressions_and_language_tags() -> None:
    expression = parse("${a} = 'x'")
    assert describe(expression, str.upper, None, "ko-KR") == '"A"이(가) "x"인 경우'
    assert describe(expression, str.upper, None, "fr") == '"A" is "x"'


# --- properties -------------------------------------------------------------------------

TOKENS = [
    *("${a}", "${b}", "${m}", "${}", "${", "$", ".", "..", "1", "2.5", ".5", "0", "-0"),
    *("'x'", '"y"', "''", "'", '"', "'2024-01-01'", "(", ")", ",", "=", "!=", "==", "<"),
    *("<=", ">", ">=", "+", "-", "*", "div", "mod", "and", "or", "/", "&", "|", "[", "]"),
    *("@", "{", "}", "!", "not(", "selected(", "count-selected(", "selected-at("),
    *("string-length(", "string(", "number(", "int(", "round(", "if(", "coalesce("),
    *("concat(", "contains(", "starts-with(", "ends-with(", "substr(", "regex(", "today()"),
    *("true()", "false()", "min(", "max(", "abs(", "date(", "normalize-space(", "foo("),
    *("__import__(", "'(a+)+$'", "'[0-9]{3}'", "'\\d+'", "'[z-a]'", "'(?=x)'", "'a{2,}'"),
    *("1e5", "x", "true", "\u2018", "\t", "\n", "가"),
]
ANSWERS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**400),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
    st.lists(st.text(alphabet="abc xyz", max_size=5), max_size=4),
    st.dates().map(dt.date.isoformat),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["", "1", "-2.5", "1,5", "a b", "2024-01-01", "yes", "NaN"]),
)
VALUES = st.fixed_dictionaries({}, optional={name: ANSWERS for name in ("a", "b", "m")})


def check_evaluation(expression: Expression, values: dict[str, Any], current: Any) -> None:
    result = expression.evaluate(values, current, today=TODAY)
    assert isinstance(result, str | float | bool)
    assert isinstance(expression.truth(values, current), bool)
    for language in ("en", "ko"):
        assert isinstance(describe(expression, str.upper, lambda q, v: v, language), str)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join),
        st.lists(st.sampled_from(TOKENS), max_size=25).map("".join),
        st.text(max_size=80),
    ),
    VALUES,
    ANSWERS,
)
def test_token_soup_only_raises_expression_errors(
    text: str, values: dict[str, Any], current: Any
) -> None:
    try:
        expression = parse(text)
    except ExpressionError as error:
        assert 0 <= error.position <= max(len(text), MAX_LENGTH)
        return
    check_evaluation(expression, values, current)


ATOMS = st.sampled_from(
    [
        *("${a}", "${b}", "${m}", ".", "0", "1", "2.5", "''", "'x'", "'a b'", "'2024-01-01'"),
        *("true()", "false()", "today()", "string-length()"),
    ]
)
UNARY = ["not", "string", "number", "int", "round", "count-selected", "string-length", "abs"]
BINARY = ["selected-at", "contains", "starts-with", "ends-with", "substr", "round"]
BINARY += ["coalesce", "min", "max", "concat", "regex", "substring-before", "substring-after"]
OPERATORS = ["or", "and", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "div", "mod"]


def compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(OPERATORS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda c: f"-{c}"),
        st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(BINARY), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(children, children, children).map(lambda t: f"if({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(children, st.sampled_from(["'[0-9]+'", "'(a|b)*c?'", "'.{2,4}'"])).map(
            lambda t: f"regex({t[0]}, {t[1]})"
        ),
        st.tuples(children, st.sampled_from(["'a'", "'x'", "${b}", "''"])).map(
            lambda t: f"selected({t[0]}, {t[1]})"
        ),
    )


EXPRESSIONS = st.recursive(ATOMS, compound, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS, VALUES, ANSWERS)
def test_valid_expressions_always_evaluate(text: str, values: dict[str, Any], current: Any) -> None:
    check_evaluation(parse(text), values, current)
