"""A safe evaluator for the XLSForm (ODK XPath 1.0) expression subset.

Text is tokenised, parsed into an immutable tree and interpreted; nothing is ever handed
to Python's eval/exec/compile. The server is the authority for `relevant`, `constraint`,
`required` and `calculation`, so the semantics follow ODK JavaRosa (the reference engine
behind ODK Collect) wherever the two differ from plain XPath 1.0.

Values (see `from_python`): a missing or None answer is the empty string; numbers are
floats (XPath has one number type); a select_multiple list is its space-separated string;
dates stay ISO `YYYY-MM-DD` strings. Evaluation never raises: bad input gives '' or NaN.

Comparison semantics (JavaRosa XPathEqExpr / XPathCmpExpr):
- `=`/`!=`: if either side is a boolean both become booleans; else if either side is a
  number both become numbers (equal within 1e-12); else strings are compared exactly.
  A blank answer against a number is NaN, so with `${age}` blank `${age} = 5` is false,
  `${age} != 5` is true, and `${age} = ''` is true.
- `<`, `<=`, `>`, `>=` always compare numbers, so anything involving a blank answer or a
  non-numeric string is false.
- String to number (JavaRosa toNumeric): trimmed, ',' read as '.', only digits, '-' and
  '.' allowed (no exponents, no 'Infinity'); anything else is NaN.
- Dates: JavaRosa types date answers as dates and converts them to days since 1970-01-01
  for comparisons and arithmetic. Our answers are ISO strings, so an ISO date (or
  date-time) string converts to (fractional) days in numeric contexts: `${d} > today()`
  and `${end} - ${start}` work as in ODK Collect. So does `${d} < '2024-01-01'`, which
  JavaRosa only accepts as `${d} < date('2024-01-01')` (also fine here).

Functions: not, true, false, boolean, boolean-from-string, if, coalesce, selected,
count-selected, selected-at, string, number, int, round, abs, min, max, string-length,
normalize-space, concat, contains, starts-with, ends-with, substring-before,
substring-after, substr, regex, today and date. Any other name is a parse error.

Deliberate departures from JavaRosa, all on degenerate input: `selected()` tests
membership of one whole choice value (JavaRosa's substring test makes
`selected(${q}, '')` true for a blank answer); infinities compare equal to themselves;
numbers print without exponents (XPath 1.0 `string()`); `min()`/`max()` don't inherit
JavaRosa's Double.MIN_VALUE bug; regular expressions are run by a linear-time engine
(see `regex()` below) that rejects the few Java constructs it cannot run safely.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeAlias

__all__ = [
    "MAX_LENGTH",
    "Expression",
    "ExpressionError",
    "Value",
    "describe",
    "evaluate_required",
    "from_python",
    "parse",
    "to_boolean",
    "to_number",
    "to_string",
]

Value: TypeAlias = str | float | bool

MAX_LENGTH: Final = 4000  # characters in one expression
MAX_NESTING: Final = 60  # parser recursion (parentheses, calls, unary minus)
MAX_DEPTH: Final = 100  # height of the parsed tree (bounds evaluation recursion)
REGEX_MAX_PATTERN: Final = 500
REGEX_MAX_PROGRAM: Final = 4000
REGEX_MAX_VALUE: Final = 10_000
REGEX_MAX_WORK: Final = 2_000_000  # value length x program size

_EPSILON: Final = 1e-12  # JavaRosa's tolerance for "equal" and "non-zero" numbers
_JAVA_TRIM: Final = "".join(chr(c) for c in range(33))  # String.trim() strips <= U+0020
_EPOCH: Final = dt.date(1970, 1, 1)
_EPOCH_UTC: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ExpressionError(ValueError):
    """An expression that cannot be parsed, with the 0-based position of the problem."""

    def __init__(self, message: str, position: int, hint: str = "") -> None:
        self.message = message
        self.position = position
        self.column = position + 1
        self.hint = hint
        text = f"{message} at column {self.column}"
        super().__init__(f"{text} ({hint})" if hint else text)


# --------------------------------------------------------------------------------------
# XPath type conversions


def from_python(value: Any) -> Value:
    """An answer as an XPath value: None -> '', numbers -> float, lists -> 'a b'."""
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
        return abs(value) > _EPSILON  # False for NaN
    return value != ""


_ISO_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


def to_number(value: Value) -> float:
    """XPath number() as JavaRosa's toNumeric, plus ISO dates as days since 1970-01-01."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    text = value.strip(_JAVA_TRIM)
    if _ISO_DATE_RE.match(text):
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
        if _ISO_DATE_RE.fullmatch(text):
            return float((dt.date.fromisoformat(text) - _EPOCH).days)
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
    if abs(number) < _EPSILON:
        return "0"
    whole = math.trunc(number)
    if abs(number) < 2**53 and abs(number - whole) < _EPSILON:
        return str(whole)  # JavaRosa prints near-integral doubles as integers
    # XPath 1.0 string() never uses exponent notation.
    return format(decimal.Decimal(repr(number)), "f")


def _java_int(number: float, bits: int = 32) -> int:
    """Java's (int)/(long) cast: NaN is 0, out-of-range values saturate."""
    if math.isnan(number):
        return 0
    limit = 2 ** (bits - 1)
    if number >= limit:
        return limit - 1
    if number <= -limit:
        return -limit
    return math.trunc(number)


# --------------------------------------------------------------------------------------
# regex(): a linear-time engine for the Java regular expression subset used in forms.
#
# JavaRosa's regex(value, pattern) is java.util.regex Pattern.matches: the whole value
# must match, with Java's (ASCII) \d, \w and \s. A backtracking engine (Python's re or
# Java's) can take exponential time on patterns like (a+)+$, and forms are uploaded by
# users, so patterns are compiled to a Thompson NFA and simulated state-set by state-set:
# time is O(len(value) x len(program)) whatever the pattern. Constructs an NFA cannot
# express (back-references, lookaround, possessive quantifiers) are rejected.


class _RegexError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


_CharTest: TypeAlias = Callable[[str], bool]
_LINE_TERMINATORS: Final = frozenset("\n\r\u0085\u2028\u2029")


@dataclass(frozen=True, slots=True)
class _RChar:
    test: _CharTest


@dataclass(frozen=True, slots=True)
class _RAssert:
    kind: str  # '^', '$', 'A', 'z', 'Z', 'b', 'B'


@dataclass(frozen=True, slots=True)
class _RSeq:
    items: tuple[_RNode, ...]


@dataclass(frozen=True, slots=True)
class _RAlt:
    options: tuple[_RNode, ...]


@dataclass(frozen=True, slots=True)
class _RRepeat:
    item: _RNode
    low: int
    high: int | None


_RNode: TypeAlias = _RChar | _RAssert | _RSeq | _RAlt | _RRepeat


def _literal(char: str) -> _CharTest:
    return lambda c: c == char


def _in_set(chars: str) -> _CharTest:
    members = frozenset(chars)
    return lambda c: c in members


def _negate(test: _CharTest) -> _CharTest:
    return lambda c: not test(c)


def _ascii_range(*ranges: str) -> _CharTest:
    chars = "".join(
        "".join(chr(o) for o in range(ord(r[0]), ord(r[-1]) + 1)) if len(r) == 3 else r
        for r in ranges
    )
    return _in_set(chars)


_DIGIT = _ascii_range("0-9")
_WORD = _ascii_range("a-z", "A-Z", "0-9", "_")
_SPACE = _in_set(" \t\n\x0b\f\r")
_PUNCT = _in_set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CLASS_ESCAPES: Final[dict[str, _CharTest]] = {
    "d": _DIGIT,
    "D": _negate(_DIGIT),
    "w": _WORD,
    "W": _negate(_WORD),
    "s": _SPACE,
    "S": _negate(_SPACE),
}
_CHAR_ESCAPES: Final = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b"}
_POSIX_CLASSES: Final[dict[str, _CharTest]] = {
    "lower": _ascii_range("a-z"),
    "upper": _ascii_range("A-Z"),
    "ascii": lambda c: c < "\x80",
    "alpha": _ascii_range("a-z", "A-Z"),
    "digit": _DIGIT,
    "alnum": _ascii_range("a-z", "A-Z", "0-9"),
    "punct": _PUNCT,
    "graph": lambda c: _PUNCT(c) or _ascii_range("a-z", "A-Z", "0-9")(c),
    "print": lambda c: "\x20" <= c < "\x7f",
    "blank": _in_set(" \t"),
    "cntrl": lambda c: c < "\x20" or c == "\x7f",
    "xdigit": _ascii_range("0-9", "a-f", "A-F"),
    "space": _SPACE,
}
# Scripts by Unicode character-name prefix: close enough for letters, which is what
# forms test (e.g. \p{IsHangul}+ for a Korean name).
_SCRIPTS: Final = {
    "hangul": ("HANGUL",),
    "latin": ("LATIN",),
    "han": ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"),
    "hiragana": ("HIRAGANA",),
    "katakana": ("KATAKANA",),
    "greek": ("GREEK",),
    "cyrillic": ("CYRILLIC",),
}
_CATEGORIES: Final = frozenset(
    {*"LMNPSZC", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd"}
    | {"Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs"}
    | {"Co", "Cn"}
)


def _property(name: str) -> _CharTest | None:
    """\\p{...}: general categories, Java's POSIX classes and a few scripts."""
    bare = name[2:] if name.startswith("Is") else name
    if bare in _CATEGORIES:
        return lambda c: unicodedata.category(c).startswith(bare)
    if name.lower() in _POSIX_CLASSES:
        return _POSIX_CLASSES[name.lower()]
    prefixes = _SCRIPTS.get(bare.lower()) if name.startswith("Is") else None
    if prefixes is None:
        return None
    return lambda c: unicodedata.name(c, "").startswith(prefixes)


_NAMED_GROUP_RE: Final = re.compile(r"\?<[A-Za-z][A-Za-z0-9]*>")
_QUANTIFIER_RE: Final = re.compile(r"\{([0-9]{1,5})(,([0-9]{0,5}))?\}")


class _RegexParser:
    """Java regex syntax, restricted to what a Thompson NFA can run."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.depth = 0

    def parse(self) -> _RNode:
        node = self._alternation()
        if self.pos < len(self.pattern):  # the only way to stop early is a stray ')'
            raise _RegexError("unmatched ')'", self.pos)
        return node

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.pattern[index] if index < len(self.pattern) else ""

    def _alternation(self) -> _RNode:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return options[0] if len(options) == 1 else _RAlt(tuple(options))

    def _sequence(self) -> _RNode:
        items: list[_RNode] = []
        while self._peek() not in ("", "|", ")"):
            items.append(self._quantified())
        return items[0] if len(items) == 1 else _RSeq(tuple(items))

    def _quantified(self) -> _RNode:
        start = self.pos
        atom = self._atom()
        bounds = self._quantifier()
        if bounds is None:
            return atom
        if isinstance(atom, _RAssert):
            raise _RegexError("nothing to repeat", start)
        if self._peek() == "+":
            raise _RegexError("possessive quantifiers are not supported", self.pos)
        if self._peek() == "?":
            self.pos += 1  # a lazy quantifier matches the same strings
        return _RRepeat(atom, *bounds)

    def _quantifier(self) -> tuple[int, int | None] | None:
        simple = {"*": (0, None), "+": (1, None), "?": (0, 1)}.get(self._peek())
        if simple is not None:
            self.pos += 1
            return simple
        if self._peek() != "{":
            return None
        match = _QUANTIFIER_RE.match(self.pattern, self.pos)
        if match is None:
            raise _RegexError("illegal repetition", self.pos)
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(3)) if match.group(3) else None
        if low > 1000 or (high is not None and high > 1000):
            raise _RegexError("repetition count above 1000", self.pos)
        if high is not None and high < low:
            raise _RegexError("illegal repetition range", self.pos)
        self.pos = match.end()
        return low, high

    def _atom(self) -> _RNode:
        char = self._peek()
        if char == "(":
            return self._group()
        if char == "[":
            return self._class()
        if char == "\\":
            return self._escape()
        if char in ("*", "+", "?", "{"):
            raise _RegexError(f"dangling meta character '{char}'", self.pos)
        self.pos += 1
        if char == ".":
            return _RChar(lambda c: c not in _LINE_TERMINATORS)
        if char in ("^", "$"):
            return _RAssert(char)
        return _RChar(_literal(char))

    def _group(self) -> _RNode:
        start = self.pos
        self.depth += 1
        if self.depth > 50:
            raise _RegexError("groups are nested too deeply", start)
        self.pos += 1
        if self.pattern.startswith("?:", self.pos):
            self.pos += 2
        elif named := _NAMED_GROUP_RE.match(self.pattern, self.pos):
            self.pos = named.end()
        elif self._peek() == "?":
            raise _RegexError("lookaround, flags and atomic groups are not supported", start)
        inner = self._alternation()
        if self._peek() != ")":
            raise _RegexError("unclosed group", start)
        self.pos += 1
        self.depth -= 1
        return inner

    def _escape(self) -> _RNode:
        start = self.pos
        kind = self._peek(1)
        if kind in ("b", "B", "A", "z", "Z"):
            self.pos += 2
            return _RAssert(kind)
        if kind == "Q":  # \Q...\E quotes a literal run
            end = self.pattern.find("\\E", self.pos + 2)
            stop = len(self.pattern) if end < 0 else end
            text = self.pattern[self.pos + 2 : stop]
            self.pos = stop if end < 0 else end + 2
            return _RSeq(tuple(_RChar(_literal(c)) for c in text))
        item = self._escape_item(start)
        return _RChar(_literal(item) if isinstance(item, str) else item)

    def _escape_item(self, start: int) -> str | _CharTest:
        """After a backslash: a single character (usable in ranges) or a class test."""
        self.pos += 1
        char = self._peek()
        if not char:
            raise _RegexError("trailing backslash", start)
        self.pos += 1
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in ("p", "P"):
            test = self._property(start)
            return _negate(test) if char == "P" else test
        if char in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[char]
        if char in ("x", "u"):
            return self._hex_escape(char, start)
        if char in "0123456789":
            raise _RegexError("back-references and octal escapes are not supported", start)
        if char.isascii() and char.isalpha():
            raise _RegexError(f"unsupported escape '\\{char}'", start)
        return char

    def _hex_escape(self, kind: str, start: int) -> str:
        shape = r"\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2})" if kind == "x" else r"([0-9A-Fa-f]{4})"
        match = re.compile(shape).match(self.pattern, self.pos)
        if match is None:
            raise _RegexError(f"illegal \\{kind} escape", start)
        self.pos = match.end()
        code = int(next(g for g in match.groups() if g), 16)
        if code > 0x10FFFF:
            raise _RegexError("code point out of range", start)
        return chr(code)

    def _property(self, start: int) -> _CharTest:
        if self._peek() == "{":
            end = self.pattern.find("}", self.pos)
            if end < 0:
                raise _RegexError("unclosed property name", start)
            name = self.pattern[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = self._peek()
            self.pos += 1
        test = _property(name)
        if test is None:
            raise _RegexError(f"unsupported property '{name}'", start)
        return test

    def _class(self) -> _RNode:
        start = self.pos
        self.pos += 1
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        tests: list[_CharTest] = []
        first = True
        while True:
            char = self._peek()
            if not char:
                raise _RegexError("unclosed character class", start)
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            item = self._class_item()
            if isinstance(item, str) and self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                ranges.append((item, self._range_end(item)))
            elif isinstance(item, str):
                chars.add(item)
            else:
                tests.append(item)
        return _RChar(_char_class(frozenset(chars), tuple(ranges), tuple(tests), negated))

    def _class_item(self) -> str | _CharTest:
        char = self._peek()
        if char == "[" or self.pattern.startswith("&&", self.pos):
            raise _RegexError("nested classes and intersections are not supported", self.pos)
        if char == "\\":
            return self._escape_item(self.pos)
        self.pos += 1
        return char

    def _range_end(self, low: str) -> str:
        start = self.pos
        high = self._class_item()
        if not isinstance(high, str) or high < low:
            raise _RegexError("illegal character range", start)
        return high


def _char_class(
    chars: frozenset[str],
    ranges: tuple[tuple[str, str], ...],
    tests: tuple[_CharTest, ...],
    negated: bool,
) -> _CharTest:
    def test(c: str) -> bool:
        hit = c in chars or any(lo <= c <= hi for lo, hi in ranges) or any(t(c) for t in tests)
        return hit != negated

    return test


# Program instructions: ("char", test, 0), ("split", a, b), ("jmp", a, 0),
# ("assert", kind, 0), ("match", 0, 0).
_Op: TypeAlias = tuple[str, Any, Any]


class _RegexCompiler:
    def __init__(self) -> None:
        self.code: list[list[Any]] = []

    def compile(self, node: _RNode) -> tuple[_Op, ...]:
        self._emit(node)
        self.code.append(["match", 0, 0])
        return tuple((op[0], op[1], op[2]) for op in self.code)

    def _emit(self, node: _RNode) -> None:
        if len(self.code) > REGEX_MAX_PROGRAM:
            raise _RegexError("pattern is too complex", 0)
        if isinstance(node, _RChar):
            self.code.append(["char", node.test, 0])
        elif isinstance(node, _RAssert):
            self.code.append(["assert", node.kind, 0])
        elif isinstance(node, _RSeq):
            for item in node.items:
                self._emit(item)
        elif isinstance(node, _RAlt):
            self._emit_alternation(node.options)
        else:
            self._emit_repeat(node)

    def _emit_alternation(self, options: tuple[_RNode, ...]) -> None:
        exits = []
        for option in options[:-1]:
            split = len(self.code)
            self.code.append(["split", split + 1, None])
            self._emit(option)
            exits.append(len(self.code))
            self.code.append(["jmp", None, 0])
            self.code[split][2] = len(self.code)
        self._emit(options[-1])
        for index in exits:
            self.code[index][1] = len(self.code)

    def _emit_repeat(self, node: _RRepeat) -> None:
        for _ in range(node.low):
            self._emit(node.item)
        if node.high is None:
            loop = len(self.code)
            self.code.append(["split", loop + 1, None])
            self._emit(node.item)
            self.code.append(["jmp", loop, 0])
            self.code[loop][2] = len(self.code)
            return
        splits = []
        for _ in range(node.high - node.low):
            splits.append(len(self.code))
            self.code.append(["split", len(self.code) + 1, None])
            self._emit(node.item)
        for index in splits:
            self.code[index][2] = len(self.code)


@lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> tuple[_Op, ...]:
    if len(pattern) > REGEX_MAX_PATTERN:
        raise _RegexError(f"pattern is longer than {REGEX_MAX_PATTERN} characters", 0)
    return _RegexCompiler().compile(_RegexParser(pattern).parse())


def _is_word(text: str, index: int) -> bool:
    return 0 <= index < len(text) and (text[index] == "_" or text[index].isalnum())


def _assertion_holds(kind: str, text: str, pos: int) -> bool:
    if kind in ("^", "A"):
        return pos == 0
    if kind == "z":
        return pos == len(text)
    if kind in ("$", "Z"):  # Java: end of input, or before a final line terminator
        rest = text[pos:]
        return rest == "" or rest == "\r\n" or (len(rest) == 1 and rest in _LINE_TERMINATORS)
    boundary = _is_word(text, pos - 1) != _is_word(text, pos)
    return boundary if kind == "b" else not boundary


def _closure(program: tuple[_Op, ...], starts: list[int], text: str, pos: int) -> set[int]:
    """The consuming/matching instructions reachable from `starts` without input."""
    reached: set[int] = set()
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        kind, a, b = program[pc]
        if kind == "split":
            stack.extend((a, b))
        elif kind == "jmp":
            stack.append(a)
        elif kind == "assert":
            if _assertion_holds(a, text, pos):
                stack.append(pc + 1)
        else:
            reached.add(pc)
    return reached


def _full_match(program: tuple[_Op, ...], text: str) -> bool:
    states = _closure(program, [0], text, 0)
    for pos, char in enumerate(text):
        following = [pc + 1 for pc in states if program[pc][0] == "char" and program[pc][1](char)]
        if not following:
            return False
        states = _closure(program, following, text, pos + 1)
    return any(program[pc][0] == "match" for pc in states)


def _regex(value: Value, pattern: Value) -> bool:
    text = to_string(value)
    try:
        program = _compile_regex(to_string(pattern))
    except _RegexError:
        return False  # a computed pattern that is not valid matches nothing
    if len(text) > REGEX_MAX_VALUE or len(text) * len(program) > REGEX_MAX_WORK:
        return False
    return _full_match(program, text)


# --------------------------------------------------------------------------------------
# Syntax tree and evaluation


@dataclass(frozen=True, slots=True)
class _Context:
    values: Mapping[str, Any]
    current: Any
    today: dt.date | None


class _Node:
    __slots__ = ()
    start: int
    end: int
    depth: int

    def eval(self, ctx: _Context) -> Value:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _String(_Node):
    value: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: _Context) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class _Number(_Node):
    value: float
    text: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: _Context) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class _Ref(_Node):
    name: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: _Context) -> Value:
        return from_python(ctx.values.get(self.name))


@dataclass(frozen=True, slots=True)
class _Current(_Node):
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: _Context) -> Value:
        return from_python(ctx.current)


@dataclass(frozen=True, slots=True)
class _Negate(_Node):
    operand: _Node
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: _Context) -> Value:
        return -to_number(self.operand.eval(ctx))


@dataclass(frozen=True, slots=True)
class _Compare(_Node):
    op: str  # '=', '!=', '<', '<=', '>', '>='
    left: _Node
    right: _Node
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: _Context) -> Value:
        left, right = self.left.eval(ctx), self.right.eval(ctx)
        if self.op == "=":
            return _equal(left, right)
        if self.op == "!=":
            return not _equal(left, right)
        return _relational(self.op, to_number(left), to_number(right))


def _equal(a: Value, b: Value) -> bool:
    # JavaRosa XPathEqExpr (XPath 1.0 §3.4): booleans first, then numbers, then strings.
    if isinstance(a, bool) or isinstance(b, bool):
        return to_boolean(a) == to_boolean(b)
    if isinstance(a, float) or isinstance(b, float):
        x, y = to_number(a), to_number(b)
        return x == y or abs(x - y) < _EPSILON  # NaN equals nothing
    return a == b


def _relational(op: str, x: float, y: float) -> bool:
    # XPath 1.0 compares numbers only; any NaN makes every comparison false.
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


@dataclass(frozen=True, slots=True)
class _Arith(_Node):
    """A left-associative run of one precedence level: first (op operand)..."""

    first: _Node
    rest: tuple[tuple[str, _Node], ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    @property
    def multiplicative(self) -> bool:
        return self.rest[0][0] not in ("+", "-")

    def eval(self, ctx: _Context) -> Value:
        total = to_number(self.first.eval(ctx))
        for op, operand in self.rest:
            total = _arithmetic(op, total, to_number(operand.eval(ctx)))
        return total


def _arithmetic(op: str, x: float, y: float) -> float:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "div":
        return _divide(x, y)
    return _modulo(x, y)


def _divide(x: float, y: float) -> float:
    # IEEE 754 as XPath requires: x div 0 is ±Infinity, 0 div 0 is NaN.
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _modulo(x: float, y: float) -> float:
    # XPath mod is Java's %: truncating, with the sign of the dividend.
    if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return math.nan
    return math.fmod(x, y)


@dataclass(frozen=True, slots=True)
class _Logic(_Node):
    op: str  # 'and' | 'or'
    operands: tuple[_Node, ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: _Context) -> Value:
        # Short-circuit, as XPath 1.0 §3.4 allows and JavaRosa does.
        if self.op == "and":
            return all(to_boolean(operand.eval(ctx)) for operand in self.operands)
        return any(to_boolean(operand.eval(ctx)) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    name: str
    args: tuple[_Node, ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: _Context) -> Value:
        return _FUNCTIONS[self.name].call(self.args, ctx)


# --------------------------------------------------------------------------------------
# Functions (JavaRosa XPathFuncExpr)

_Impl: TypeAlias = Callable[[tuple[_Node, ...], _Context], Value]


@dataclass(frozen=True, slots=True)
class _Function:
    min_args: int
    max_args: int | None
    call: _Impl


def _strict(function: Callable[..., Value]) -> _Impl:
    """A function of its evaluated arguments."""
    return lambda args, ctx: function(*(arg.eval(ctx) for arg in args))


def _or_current(function: Callable[[Value], Value]) -> _Impl:
    """A function of one argument that defaults to the current question's value."""

    def call(args: tuple[_Node, ...], ctx: _Context) -> Value:
        return function(args[0].eval(ctx) if args else from_python(ctx.current))

    return call


def _if(args: tuple[_Node, ...], ctx: _Context) -> Value:
    condition, then, otherwise = args
    return (then if to_boolean(condition.eval(ctx)) else otherwise).eval(ctx)


def _coalesce(args: tuple[_Node, ...], ctx: _Context) -> Value:
    first = args[0].eval(ctx)
    return args[1].eval(ctx) if _is_null(first) else first


def _is_null(value: Value) -> bool:
    return value == "" or (isinstance(value, float) and math.isnan(value))


def _today(args: tuple[_Node, ...], ctx: _Context) -> Value:
    return (ctx.today or dt.date.today()).isoformat()


def _choices(answer: Value) -> list[str]:
    return [part for part in to_string(answer).split(" ") if part]


def _selected(answer: Value, choice: Value) -> bool:
    return to_string(choice).strip(_JAVA_TRIM) in _choices(answer)


def _selected_at(answer: Value, index: Value) -> str:
    choices = _choices(answer)
    position = _java_int(to_number(index))  # 0-based, as JavaRosa
    return choices[position] if 0 <= position < len(choices) else ""


def _substr(text: Value, start: Value, end: Value | None = None) -> str:
    # JavaRosa substr(): 0-based [start, end), negative positions count from the end.
    string = to_string(text)
    length = len(string)
    first = _java_int(to_number(start))
    last = length if end is None else _java_int(to_number(end))
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
    number, places = to_number(value), _java_int(to_number(digits))
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
    rounded = _java_int(scaled + 0.5, bits=64)  # JavaRosa: (long) (scaled + 0.5)
    return float(decimal.Decimal(rounded).scaleb(-places, context=_DECIMAL_CONTEXT))


def _extreme(pick: Callable[[list[float]], float]) -> Callable[..., Value]:
    def call(*values: Value) -> Value:
        numbers_ = [n for n in map(to_number, values) if not math.isnan(n)]
        return pick(numbers_) if numbers_ else math.nan

    return call


def _date(value: Value) -> Value:
    """date(): days since 1970-01-01 or an ISO string as an ISO date; '' when invalid."""
    if isinstance(value, str):
        text = value.strip(_JAVA_TRIM)
        valid = _ISO_DATE_RE.match(text) and not math.isnan(to_number(text))
        return text[:10] if valid else ""  # the calendar date as written, whatever the zone
    days = to_number(value) if not isinstance(value, bool) else math.nan
    try:
        return (_EPOCH + dt.timedelta(days=math.floor(days))).isoformat()
    except (ValueError, OverflowError):  # NaN, Infinity, or beyond years 1-9999
        return ""


def _normalize_space(value: Value) -> str:
    return re.sub(r"[ \t\n\x0b\f\r]+", " ", to_string(value).strip(_JAVA_TRIM))


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


_FUNCTIONS: Final[dict[str, _Function]] = {
    "true": _Function(0, 0, lambda args, ctx: True),
    "false": _Function(0, 0, lambda args, ctx: False),
    "not": _Function(1, 1, _strict(lambda v: not to_boolean(v))),
    "boolean": _Function(1, 1, _strict(to_boolean)),
    "boolean-from-string": _Function(1, 1, _strict(_boolean_from_string)),
    "if": _Function(3, 3, _if),
    "coalesce": _Function(2, 2, _coalesce),
    "selected": _Function(2, 2, _strict(_selected)),
    "count-selected": _Function(1, 1, _strict(lambda v: float(len(_choices(v))))),
    "selected-at": _Function(2, 2, _strict(_selected_at)),
    "string": _Function(1, 1, _strict(to_string)),
    "number": _Function(1, 1, _strict(to_number)),
    "int": _Function(1, 1, _strict(_to_int)),
    "round": _Function(1, 2, _strict(_round)),
    "abs": _Function(1, 1, _strict(lambda v: abs(to_number(v)))),
    "min": _Function(1, None, _strict(_extreme(min))),
    "max": _Function(1, None, _strict(_extreme(max))),
    "string-length": _Function(0, 1, _or_current(lambda v: float(len(to_string(v))))),
    "normalize-space": _Function(0, 1, _or_current(_normalize_space)),
    "concat": _Function(0, None, _strict(lambda *vs: "".join(map(to_string, vs)))),
    "contains": _Function(2, 2, _strict(lambda a, b: to_string(b) in to_string(a))),
    "starts-with": _Function(2, 2, _strict(lambda a, b: to_string(a).startswith(to_string(b)))),
    "ends-with": _Function(2, 2, _strict(lambda a, b: to_string(a).endswith(to_string(b)))),
    "substring-before": _Function(2, 2, _strict(_substring_before)),
    "substring-after": _Function(2, 2, _strict(_substring_after)),
    "substr": _Function(2, 3, _strict(_substr)),
    "regex": _Function(2, 2, _strict(_regex)),
    "today": _Function(0, 0, _today),
    "date": _Function(1, 1, _strict(_date)),
}
_USES_CURRENT_WITHOUT_ARGS: Final = frozenset({"string-length", "normalize-space"})
# Valid in ODK forms but meaningless or unsafe on this server (repeats, randomness,
# external data): named in errors so form authors know the form itself is not wrong.
_UNSUPPORTED_ODK_FUNCTIONS: Final = frozenset(
    {"now", "once", "uuid", "random", "randomize", "position", "indexed-repeat", "count"}
    | {"sum", "join", "instance", "current", "pulldata", "jr:choice-name", "format-date"}
    | {"format-date-time", "date-time", "decimal-date-time", "decimal-time", "pow", "sqrt"}
    | {"exp", "exp10", "log", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "atan2"}
    | {"pi", "digest", "base64-decode", "area", "distance", "geofence", "translate"}
    | {"checklist", "weighted-checklist", "count-non-empty", "property", "version"}
)


# --------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number string ref dot func op ( ) , end
    text: str  # source text; for strings and refs, the content
    start: int
    end: int


_OPERAND_ENDS: Final = frozenset({"number", "string", "ref", "dot", ")"})
_OPERATOR_WORD_RE: Final = re.compile(r"(and|or|div|mod)(?!\w)")
_QUESTION_NAME_RE: Final = re.compile(r"[^\W\d][\w.-]*")  # an XML NCName
_NAME_RE: Final = re.compile(r"[^\W\d][\w.-]*(:[^\W\d][\w.-]*)?")  # a QName (jr:...)
_NUMBER_RE: Final = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_SYMBOLS: Final = ("!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "(", ")", ",")
_TWO_CHAR_MISTAKES: Final = {
    "==": "use '=' to compare",
    "<>": "use '!=' for 'not equal'",
    "&&": "use 'and'",
    "||": "use 'or'",
}
_QUOTES_HINT: Final = "use straight quotes ' or \""
_ONE_CHAR_MISTAKES: Final = {
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use not(...) or '!='",
    "/": "use 'div' to divide; refer to questions as ${name}, not by path",
    "%": "use 'mod'",
    "$": "refer to questions as ${name}",
    "\u2018": _QUOTES_HINT,
    "\u2019": _QUOTES_HINT,
    "\u201c": _QUOTES_HINT,
    "\u201d": _QUOTES_HINT,
    "\u2260": "use '!='",
    "\u2264": "use '<='",
    "\u2265": "use '>='",
}


class _Tokenizer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[_Token] = []

    def run(self) -> list[_Token]:
        while True:
            while self.pos < len(self.text) and self.text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(self.text):
                self.tokens.append(_Token("end", "", self.pos, self.pos))
                return self.tokens
            self.tokens.append(self._next())

    def _operator_expected(self) -> bool:
        return bool(self.tokens) and self.tokens[-1].kind in _OPERAND_ENDS

    def _take(self, kind: str, length: int, text: str | None = None) -> _Token:
        start = self.pos
        self.pos += length
        return _Token(kind, self.text[start : self.pos] if text is None else text, start, self.pos)

    def _next(self) -> _Token:
        text, pos = self.text, self.pos
        char = text[pos]
        if text.startswith("${", pos):
            return self._reference()
        if char in ("'", '"'):
            end = text.find(char, pos + 1)
            if end < 0:
                raise ExpressionError("unclosed string", pos, f"end it with {char}")
            return self._take("string", end + 1 - pos, text[pos + 1 : end])
        if number := _NUMBER_RE.match(text, pos):
            return self._take("number", number.end() - pos)
        if char == ".":
            if text.startswith("..", pos):
                raise ExpressionError("unexpected '..'", pos, "parent paths are not supported")
            return self._take("dot", 1)
        if self._operator_expected() and (word := _OPERATOR_WORD_RE.match(text, pos)):
            return self._take("op", word.end() - pos)
        if name := _NAME_RE.match(text, pos):
            return self._name(name.group())
        return self._symbol()

    def _symbol(self) -> _Token:
        text, pos = self.text, self.pos
        for mistake, hint in _TWO_CHAR_MISTAKES.items():
            if text.startswith(mistake, pos):
                raise ExpressionError(f"unexpected '{mistake}'", pos, hint)
        for symbol in _SYMBOLS:
            if text.startswith(symbol, pos):
                return self._take(symbol if symbol in ("(", ")", ",") else "op", len(symbol))
        char = text[pos]
        hint = _ONE_CHAR_MISTAKES.get(char, "")
        raise ExpressionError(f"unexpected character {char!r}", pos, hint)

    def _reference(self) -> _Token:
        start = self.pos
        end = self.text.find("}", start)
        if end < 0:
            raise ExpressionError("unclosed '${'", start, "add the closing }")
        name = self.text[start + 2 : end]
        if not name:
            raise ExpressionError("empty question reference '${}'", start)
        if not _QUESTION_NAME_RE.fullmatch(name):
            raise ExpressionError(f"invalid question name {name!r} in '${{...}}'", start)
        return self._take("ref", end + 1 - start, name)

    def _name(self, name: str) -> _Token:
        start = self.pos
        after = start + len(name)
        while after < len(self.text) and self.text[after].isspace():
            after += 1
        if after < len(self.text) and self.text[after] == "(":
            return self._take("func", len(name))
        if name in ("true", "false"):
            raise ExpressionError(f"unexpected name '{name}'", start, f"write {name}()")
        hint = "" if ":" in name else f"refer to questions as ${{{name}}}"
        raise ExpressionError(f"unexpected name '{name}'", start, hint)


# --------------------------------------------------------------------------------------
# Parser (Pratt / precedence climbing, XPath 1.0 §3 precedence, all left-associative)

_BINDING: Final = {
    "or": 1,
    "and": 2,
    "=": 3,
    "!=": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "div": 6,
    "mod": 6,
}
_MULTIPLICATIVE_BP: Final = 6  # XPath UnaryExpr binds tighter than '*': -a*b is (-a)*b


def _describe_token(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    if token.kind == "string":
        return f"string {token.text!r}"
    if token.kind == "ref":
        return f"'${{{token.text}}}'"
    return f"'{token.text}'"


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.nesting = 0
        self.references: set[str] = set()
        self.uses_current = False

    def parse(self) -> _Node:
        node = self._expression(0)
        token = self._peek()
        if token.kind != "end":
            raise self._unexpected(token)
        return node

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _unexpected(self, token: _Token) -> ExpressionError:
        return ExpressionError(f"unexpected {_describe_token(token)}", token.start)

    def _expression(self, min_bp: int) -> _Node:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError("expression is nested too deeply", self._peek().start)
        left = self._prefix()
        while True:
            token = self._peek()
            bp = _BINDING.get(token.text) if token.kind == "op" else None
            if bp is None or bp <= min_bp:
                break
            self._advance()
            left = self._combine(token, left, self._expression(bp))
        self.nesting -= 1
        return left

    def _prefix(self) -> _Node:
        token = self._advance()
        if token.kind == "number":
            return _Number(float(token.text), token.text, token.start, token.end)
        if token.kind == "string":
            return _String(token.text, token.start, token.end)
        if token.kind == "ref":
            self.references.add(token.text)
            return _Ref(token.text, token.start, token.end)
        if token.kind == "dot":
            self.uses_current = True
            return _Current(token.start, token.end)
        if token.kind == "(":
            inner = self._expression(0)
            self._expect(")", f"expected ')' to close the '(' at column {token.start + 1}")
            return inner
        if token.kind == "op" and token.text == "-":
            operand = self._expression(_MULTIPLICATIVE_BP)
            return _checked(_Negate(operand, token.start, operand.end, operand.depth + 1))
        if token.kind == "func":
            return self._call(token)
        raise self._unexpected(token)

    def _expect(self, kind: str, message: str) -> _Token:
        token = self._peek()
        if token.kind != kind:
            found = _describe_token(token)
            raise ExpressionError(f"{message}, found {found}", token.start)
        return self._advance()

    def _call(self, name: _Token) -> _Node:
        function = _FUNCTIONS.get(name.text)
        if function is None and name.text in _UNSUPPORTED_ODK_FUNCTIONS:
            raise ExpressionError(f"function '{name.text}()' is not supported", name.start)
        if function is None:
            raise ExpressionError(f"unknown function '{name.text}()'", name.start)
        self._expect("(", f"expected '(' after '{name.text}'")
        args: list[_Node] = []
        if self._peek().kind != ")":
            args.append(self._expression(0))
            while self._peek().kind == ",":
                self._advance()
                args.append(self._expression(0))
        close = self._expect(")", f"expected ',' or ')' in {name.text}()")
        _check_call(name, function, args)
        if not args and name.text in _USES_CURRENT_WITHOUT_ARGS:
            self.uses_current = True
        depth = 1 + max((arg.depth for arg in args), default=0)
        return _checked(_Call(name.text, tuple(args), name.start, close.end, depth))

    def _combine(self, token: _Token, left: _Node, right: _Node) -> _Node:
        op, start, end = token.text, left.start, right.end
        if op in ("and", "or"):
            operands = _flatten(op, left) + _flatten(op, right)
            depth = 1 + max(o.depth for o in operands)
            return _checked(_Logic(op, operands, start, end, depth))
        if op in ("=", "!=", "<", "<=", ">", ">="):
            depth = 1 + max(left.depth, right.depth)
            return _checked(_Compare(op, left, right, start, end, depth))
        multiplicative = _BINDING[op] == _MULTIPLICATIVE_BP
        if isinstance(left, _Arith) and left.multiplicative == multiplicative:
            # Extend the run: a - b - c is ((a - b) - c), evaluated left to right.
            depth = max(left.depth, right.depth + 1)
            return _checked(_Arith(left.first, (*left.rest, (op, right)), start, end, depth))
        depth = 1 + max(left.depth, right.depth)
        return _checked(_Arith(left, ((op, right),), start, end, depth))


def _flatten(op: str, node: _Node) -> tuple[_Node, ...]:
    return node.operands if isinstance(node, _Logic) and node.op == op else (node,)


def _checked(node: _Node) -> _Node:
    if node.depth > MAX_DEPTH:
        raise ExpressionError("expression is nested too deeply", node.start)
    return node


def _check_call(name: _Token, function: _Function, args: list[_Node]) -> None:
    low, high = function.min_args, function.max_args
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if low == high else f"{low} or more" if high is None else f"{low}-{high}"
        message = f"{name.text}() takes {wanted} argument{'s' if wanted != '1' else ''}"
        raise ExpressionError(f"{message}, not {len(args)}", name.start)
    if name.text == "selected" and isinstance(args[1], _Number):
        # JavaRosa rejects this at run time; ODK's documentation asks for quotes.
        hint = f"write '{args[1].text}'"
        raise ExpressionError("selected() needs the choice value in quotes", args[1].start, hint)
    if name.text == "regex" and isinstance(args[1], _String):
        try:
            _compile_regex(args[1].value)
        except _RegexError as exc:
            where = min(args[1].start + 1 + exc.offset, args[1].end)
            raise ExpressionError(f"invalid regular expression: {exc.message}", where) from None


# --------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression. Immutable and safe to share between threads."""

    text: str
    references: frozenset[str]  # the ${names} used
    uses_current: bool  # whether '.' (or string-length() etc.) reads the current value
    _root: _Node = field(repr=False, compare=False)

    def evaluate(
        self, values: Mapping[str, Any], current: Any = None, *, today: dt.date | None = None
    ) -> Value:
        """The value: str, float or bool; never raises on answers of the documented types.

        `today` is the date today() returns (default: the process's local date).
        """
        return self._root.eval(_Context(values, current, today))

    def truth(
        self, values: Mapping[str, Any], current: Any = None, *, today: dt.date | None = None
    ) -> bool:
        """The value as XPath boolean(): for relevant, constraint and required."""
        return to_boolean(self.evaluate(values, current, today=today))

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expression:
    """Parse XLSForm expression text; raises ExpressionError. Results are cached."""
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters, the limit is {MAX_LENGTH})",
            MAX_LENGTH,
        )
    if not text.strip():
        raise ExpressionError("empty expression", 0)
    parser = _Parser(_Tokenizer(text).run())
    root = parser.parse()
    return Expression(text, frozenset(parser.references), parser.uses_current, root)


_REQUIRED_YES: Final = frozenset({"yes", "true", "true()", "1"})
_REQUIRED_NO: Final = frozenset({"", "no", "false", "false()", "0"})


def evaluate_required(
    spec: str | bool | None,
    values: Mapping[str, Any],
    current: Any = None,
    *,
    today: dt.date | None = None,
) -> bool:
    """XLSForm `required`: yes/true/true()/1, blank/no/false/false()/0, or an expression."""
    if spec is None or isinstance(spec, bool):
        return bool(spec)
    keyword = spec.strip().lower()
    if keyword in _REQUIRED_YES:
        return True
    if keyword in _REQUIRED_NO:
        return False
    return parse(spec).truth(values, current, today=today)


# --------------------------------------------------------------------------------------
# describe(): an expression in words for codebooks

# (kind, negated) -> template; {a} is the subject, {b} the object.
_EN: Final = {
    ("eq", False): "{a} is {b}",
    ("eq", True): "{a} is not {b}",
    ("empty", False): "{a} is empty",
    ("empty", True): "{a} is not empty",
    ("answered", False): "{a} is answered",
    ("answered", True): "{a} is not answered",
    (">", False): "{a} is greater than {b}",
    (">", True): "{a} is not greater than {b}",
    (">=", False): "{a} is greater than or equal to {b}",
    (">=", True): "{a} is not greater than or equal to {b}",
    ("<", False): "{a} is less than {b}",
    ("<", True): "{a} is not less than {b}",
    ("<=", False): "{a} is less than or equal to {b}",
    ("<=", True): "{a} is not less than or equal to {b}",
    ("selected", False): "{a} includes {b}",
    ("selected", True): "{a} does not include {b}",
    ("raw", False): "{a}",
    ("raw", True): "not ({a})",
    ("group", False): "{a}",
    ("group", True): "not {a}",
}

# (kind, negated) -> (stem, endings for: followed by 'and', by 'or', ending the phrase).
_KO: Final = {
    ("eq", False): ("{a}이(가) {b}", ("이고", "이거나", "인")),
    ("eq", True): ("{a}이(가) {b}이(가) ", ("아니고", "아니거나", "아닌")),
    ("empty", False): ("{a}이(가) 비어 ", ("있고", "있거나", "있는")),
    ("empty", True): ("{a}이(가) 비어 있지 ", ("않고", "않거나", "않은")),
    ("answered", False): ("{a}에 ", ("응답했고", "응답했거나", "응답한")),
    ("answered", True): ("{a}에 응답하지 ", ("않았고", "않았거나", "않은")),
    (">", False): ("{a}이(가) {b}보다 ", ("크고", "크거나", "큰")),
    (">", True): ("{a}이(가) {b}보다 크지 ", ("않고", "않거나", "않은")),
    (">=", False): ("{a}이(가) {b} 이상", ("이고", "이거나", "인")),
    (">=", True): ("{a}이(가) {b} 이상이 ", ("아니고", "아니거나", "아닌")),
    ("<", False): ("{a}이(가) {b}보다 ", ("작고", "작거나", "작은")),
    ("<", True): ("{a}이(가) {b}보다 작지 ", ("않고", "않거나", "않은")),
    ("<=", False): ("{a}이(가) {b} 이하", ("이고", "이거나", "인")),
    ("<=", True): ("{a}이(가) {b} 이하가 ", ("아니고", "아니거나", "아닌")),
    ("selected", False): ("{a}에서 {b}을(를) ", ("선택했고", "선택했거나", "선택한")),
    ("selected", True): ("{a}에서 {b}을(를) 선택하지 ", ("않았고", "않았거나", "않은")),
    ("raw", False): ("{a}이(가) ", ("참이고", "참이거나", "참인")),
    ("raw", True): ("{a}이(가) ", ("거짓이고", "거짓이거나", "거짓인")),
    ("group", False): ("{a}에 ", ("해당하고", "해당하거나", "해당하는")),
    ("group", True): ("{a}에 ", ("해당하지 않고", "해당하지 않거나", "해당하지 않는")),
}
_KO_FORMS: Final = {"and": 0, "or": 1, "end": 2}
_FLIPPED: Final = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ARITH_SYMBOLS: Final = {"+": "+", "-": "-", "*": "×", "div": "÷", "mod": "mod"}


@dataclass(frozen=True, slots=True)
class _Phrase:
    kind: str
    subject: str
    obj: str = ""
    negated: bool = False


class _Describer:
    def __init__(
        self,
        text: str,
        label_of: Callable[[str], str],
        choice_label_of: Callable[[str, str], str] | None,
        korean: bool,
    ) -> None:
        self.text = text
        self.label_of = label_of
        self.choice_label_of = choice_label_of
        self.korean = korean

    def sentence(self, node: _Node) -> str:
        if self.korean:
            return f"{self._ko(node, 'end')} 경우"
        return self._en(node)

    # Conditions ---------------------------------------------------------------------

    def _en(self, node: _Node) -> str:
        if isinstance(node, _Logic):
            return f" {node.op} ".join(self._en_operand(o) for o in node.operands)
        phrase = self._phrase(node, negated=False)
        return _EN[phrase.kind, phrase.negated].format(a=phrase.subject, b=phrase.obj)

    def _en_operand(self, node: _Node) -> str:
        return f"({self._en(node)})" if isinstance(node, _Logic) else self._en(node)

    def _ko(self, node: _Node, form: str) -> str:
        if isinstance(node, _Logic):
            inner = "and" if node.op == "and" else "or"
            forms = [inner] * (len(node.operands) - 1) + [form]
            return " ".join(
                self._ko_operand(o, f) for o, f in zip(node.operands, forms, strict=True)
            )
        phrase = self._phrase(node, negated=False)
        stem, endings = _KO[phrase.kind, phrase.negated]
        return stem.format(a=phrase.subject, b=phrase.obj) + endings[_KO_FORMS[form]]

    def _ko_operand(self, node: _Node, form: str) -> str:
        if isinstance(node, _Logic):
            stem, endings = _KO["group", False]
            return stem.format(a=self._group(node)) + endings[_KO_FORMS[form]]
        return self._ko(node, form)

    def _group(self, node: _Logic) -> str:
        return f"({self._ko(node, 'end')} 경우)" if self.korean else f"({self._en(node)})"

    def _phrase(self, node: _Node, negated: bool) -> _Phrase:
        if isinstance(node, _Call) and node.name == "not":
            return self._phrase(node.args[0], not negated)
        if isinstance(node, _Logic):
            return _Phrase("group", self._group(node), negated=negated)
        if isinstance(node, _Compare):
            return self._comparison(node, negated)
        if isinstance(node, _Call) and node.name == "selected":
            subject, choice = node.args
            obj = self._value_for(subject, choice)
            return _Phrase("selected", self._term(subject), obj, negated)
        if isinstance(node, _Ref | _Current):
            return _Phrase("answered", self._term(node), negated=negated)
        return _Phrase("raw", self._raw(node), negated=negated)

    def _comparison(self, node: _Compare, negated: bool) -> _Phrase:
        op, left, right = node.op, node.left, node.right
        if _is_literal(left) and not _is_literal(right):
            op, left, right = _FLIPPED[op], right, left
        if op in ("=", "!="):
            negated ^= op == "!="
            if isinstance(right, _String) and right.value == "":
                return _Phrase("empty", self._term(left), negated=negated)
            return _Phrase("eq", self._term(left), self._value_for(left, right), negated)
        return _Phrase(op, self._term(left), self._term(right), negated)

    # Values ---------------------------------------------------------------------------

    def _value_for(self, subject: _Node, value: _Node) -> str:
        """A literal compared with a question, shown as the choice label when known."""
        if isinstance(subject, _Ref) and isinstance(value, _String) and self.choice_label_of:
            return _quote(self.choice_label_of(subject.name, value.value) or value.value)
        return self._term(value)

    def _term(self, node: _Node) -> str:
        if isinstance(node, _Ref):
            return _quote(self.label_of(node.name) or node.name)
        if isinstance(node, _Current):
            return "이 문항의 응답" if self.korean else "the answer"
        if isinstance(node, _String):
            return _quote(node.value)
        if isinstance(node, _Number):
            return node.text
        if isinstance(node, _Negate):
            return f"-{self._operand(node.operand)}"
        if isinstance(node, _Arith):
            return self._arith(node)
        if isinstance(node, _Call):
            return self._call(node)
        return self._raw(node)

    def _operand(self, node: _Node) -> str:
        simple = isinstance(node, _Ref | _Current | _String | _Number | _Call)
        return self._term(node) if simple else f"({self._term(node)})"

    def _arith(self, node: _Arith) -> str:
        def side(operand: _Node, first: bool) -> str:
            # Runs are left-associative: a nested run on the right of the same level
            # came from explicit parentheses, as did a looser one anywhere.
            looser = isinstance(operand, _Arith) and (
                (node.multiplicative and not operand.multiplicative)
                or (not first and operand.multiplicative == node.multiplicative)
            )
            if looser or isinstance(operand, _Compare | _Logic):
                return f"({self._term(operand)})"
            return self._term(operand)

        parts = [side(node.first, first=True)]
        for op, operand in node.rest:
            parts.append(f"{_ARITH_SYMBOLS[op]} {side(operand, first=False)}")
        return " ".join(parts)

    def _call(self, node: _Call) -> str:
        if node.name == "today":
            return "오늘" if self.korean else "today"
        if node.name in ("number", "string") and node.args:
            return self._term(node.args[0])
        if node.name == "count-selected":
            subject = self._term(node.args[0])
            if self.korean:
                return f"{subject}의 선택 개수"
            return f"the number of choices selected in {subject}"
        if node.name == "string-length" and node.args:
            subject = self._term(node.args[0])
            return f"{subject}의 글자 수" if self.korean else f"the length of {subject}"
        return self._raw(node)

    def _raw(self, node: _Node) -> str:
        return self.text[node.start : node.end]


def _is_literal(node: _Node) -> bool:
    return isinstance(node, _String | _Number)


def _quote(text: str) -> str:
    return f'"{text}"'


def describe(
    expr: Expression | str,
    label_of: Callable[[str], str],
    choice_label_of: Callable[[str, str], str] | None = None,
    language: str = "en",
) -> str:
    """A condition in words for a codebook, in Korean ('ko...') or English (otherwise).

    `label_of(name)` gives a question's label and `choice_label_of(name, value)` a choice's;
    either may return '' to fall back to the name or value. Parts with no wording (and
    whole expressions that do not parse) are shown as their source text.
    """
    try:
        parsed = parse(expr) if isinstance(expr, str) else expr
    except ExpressionError:
        return str(expr)
    korean = re.split(r"[-_]", language.lower())[0] == "ko"
    describer = _Describer(parsed.text, label_of, choice_label_of, korean)
    return describer.sentence(parsed._root)
