r"""regex(): Java regular expressions, run by RE2.

JavaRosa's regex(value, pattern) is java.util.regex Pattern.matches: the whole value must
match, with Java's (ASCII) \d, \w and \s. A backtracking engine (Python's re or Java's)
can take exponential time on patterns like (a+)+$, and forms are uploaded by users, so
patterns run on RE2, which matches in linear time by construction. RE2's syntax is close
to Java's but not the same, and some differences would silently change what a pattern
matches (`[a-z&&[aeiou]]`, `a{x}`, `\12`, `(?U)`, `.`), so the pattern is read here as
Java syntax, checked, and written out in RE2 syntax. What RE2 cannot run
(back-references, lookaround, possessive quantifiers) is rejected with its offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol

import re2

from .values import Value, to_string

REGEX_MAX_PATTERN: Final = 500
REGEX_MAX_VALUE: Final = 10_000
REGEX_MAX_MEMORY: Final = 2 << 20  # bytes for one compiled pattern (RE2 max_mem)


class RegexError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class _Matcher(Protocol):
    def fullmatch(self, text: bytes) -> object: ...


@dataclass(frozen=True, slots=True)
class _Set:
    """A character class as the inside of an RE2 bracket expression."""

    body: str


_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = REGEX_MAX_MEMORY  # patterns can come from answers, and are cached

_DOT: Final = r"[^\n\r\x{85}\x{2028}\x{2029}]"  # Java's '.' stops at any line terminator
# Java's $ (and \Z) also holds before a final line terminator. In a full match that only
# matters when the pattern goes on to match it, as in `abc$\n`; RE2's multi-line $
# (before any \n) gives the same answers there.
_END: Final = "(?m:$)"
_ASSERTIONS: Final = {"b": r"\b", "B": r"\B", "A": r"\A", "z": r"\z", "Z": _END}
_CLASS_ESCAPES: Final = {
    "d": _Set(r"\d"),  # RE2's \d, \w and their negations are ASCII, as Java's
    "D": _Set(r"\D"),
    "w": _Set(r"\w"),
    "W": _Set(r"\W"),
    "s": _Set(r"\x09-\x0d\x20"),  # Java's \s has \x0b, RE2's does not
    "S": _Set(r"\x00-\x08\x0e-\x1f\x21-\x{10ffff}"),
}
_CHAR_ESCAPES: Final = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b"}
_POSIX_CLASSES: Final = frozenset(
    {"lower", "upper", "ascii", "alpha", "digit", "alnum", "punct", "graph", "print"}
    | {"blank", "cntrl", "xdigit", "space"}
)
_HEX_RE: Final = {
    "x": re.compile(r"\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2})"),
    "u": re.compile(r"([0-9A-Fa-f]{4})"),
}
_NAMED_GROUP_RE: Final = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")
_QUANTIFIER_RE: Final = re.compile(r"\{([0-9]{1,5})(,([0-9]{0,5}))?\}")


def _literal(char: str) -> str:
    if char.isascii() and char.isalnum():
        return char
    if char.isascii() and char.isprintable() and char != " ":
        return "\\" + char
    return f"\\x{{{ord(char):x}}}"


class _JavaRegex:
    """Reads Java regex syntax and writes the RE2 pattern that matches the same."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.out: list[str] = []
        self.groups: list[int] = []  # offsets of the open '('
        self.last = "none"  # what a quantifier would repeat: none, atom, assertion, repeat
        self.last_start = 0

    def translate(self) -> str:
        while self.pos < len(self.pattern):
            start = self.pos
            self._step(self.pattern[start])
            if self.last != "repeat":
                self.last_start = start
        if self.groups:
            raise RegexError("unclosed group", self.groups[-1])
        return "".join(self.out)

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.pattern[index] if index < len(self.pattern) else ""

    def _emit(self, text: str, last: str) -> None:
        self.out.append(text)
        self.last = last

    def _step(self, char: str) -> None:
        if char in "*+?{":
            self._quantifier(char)
        elif char == "(":
            self._open_group()
        elif char == ")":
            self._close_group()
        elif char == "|":
            self.pos += 1
            self._emit("|", "none")
        elif char == "[":
            self._emit(f"[{self._class()}]", "atom")
        elif char == "\\":
            self._escape()
        else:
            self.pos += 1
            if char in "^$":
                self._emit("^" if char == "^" else _END, "assertion")
            else:
                self._emit(_DOT if char == "." else _literal(char), "atom")

    def _quantifier(self, char: str) -> None:
        start = self.pos
        if self.last in ("none", "repeat"):
            raise RegexError(f"dangling meta character '{char}'", start)
        if char == "{":
            self._bounds()
        else:
            self.pos += 1
        if self.last == "assertion":
            raise RegexError("nothing to repeat", self.last_start)
        text = self.pattern[start : self.pos]
        if self._peek() == "+":
            raise RegexError("possessive quantifiers are not supported", self.pos)
        if self._peek() == "?":  # lazy: matches the same strings
            self.pos += 1
            text += "?"
        self._emit(text, "repeat")

    def _bounds(self) -> None:
        match = _QUANTIFIER_RE.match(self.pattern, self.pos)
        if match is None:
            raise RegexError("illegal repetition", self.pos)
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(3)) if match.group(3) else None
        if low > 1000 or (high is not None and high > 1000):
            raise RegexError("repetition count above 1000", self.pos)
        if high is not None and high < low:
            raise RegexError("illegal repetition range", self.pos)
        self.pos = match.end()

    def _open_group(self) -> None:
        start = self.pos
        if len(self.groups) >= 50:
            raise RegexError("groups are nested too deeply", start)
        if self.pattern.startswith("(?:", start):
            self.pos += 3
            text = "(?:"
        elif named := _NAMED_GROUP_RE.match(self.pattern, start):
            self.pos = named.end()
            text = f"(?P<{named.group(1)}>"
        elif self._peek(1) == "?":
            raise RegexError("lookaround, flags and atomic groups are not supported", start)
        else:
            self.pos += 1
            text = "("
        self.groups.append(start)
        self._emit(text, "none")

    def _close_group(self) -> None:
        if not self.groups:
            raise RegexError("unmatched ')'", self.pos)
        self.groups.pop()
        self.pos += 1
        self._emit(")", "atom")

    def _escape(self) -> None:
        kind = self._peek(1)
        if kind in _ASSERTIONS:
            self.pos += 2
            self._emit(_ASSERTIONS[kind], "assertion")
        elif kind == "Q":  # \Q...\E quotes a literal run
            end = self.pattern.find("\\E", self.pos + 2)
            stop = len(self.pattern) if end < 0 else end
            text = self.pattern[self.pos + 2 : stop]
            self.pos = stop if end < 0 else end + 2
            if text:
                self._emit("".join(map(_literal, text)), "atom")
        else:
            item = self._escape_item()
            self._emit(_literal(item) if isinstance(item, str) else f"[{item.body}]", "atom")

    def _escape_item(self) -> str | _Set:
        """After a backslash: a single character (usable in ranges) or a class."""
        start = self.pos
        self.pos += 1
        char = self._peek()
        if not char:
            raise RegexError("trailing backslash", start)
        self.pos += 1
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in ("p", "P"):
            return self._property(start, negated=char == "P")
        if char in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[char]
        if char in _HEX_RE:
            return self._hex_escape(char, start)
        if char in "0123456789":
            raise RegexError("back-references and octal escapes are not supported", start)
        if char.isascii() and char.isalpha():
            raise RegexError(f"unsupported escape '\\{char}'", start)
        return char

    def _hex_escape(self, kind: str, start: int) -> str:
        match = _HEX_RE[kind].match(self.pattern, self.pos)
        if match is None:
            raise RegexError(f"illegal \\{kind} escape", start)
        self.pos = match.end()
        code = int(next(g for g in match.groups() if g), 16)
        if code > 0x10FFFF:
            raise RegexError("code point out of range", start)
        return chr(code)

    def _property(self, start: int, negated: bool) -> _Set:
        if self._peek() == "{":
            end = self.pattern.find("}", self.pos)
            if end < 0:
                raise RegexError("unclosed property name", start)
            name = self.pattern[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = self._peek()
            self.pos += 1
        body = _property(name, negated)
        if body is None:
            raise RegexError(f"unsupported property '{name}'", start)
        return _Set(body)

    def _class(self) -> str:
        start = self.pos
        self.pos += 1
        parts = ["^"] if self._peek() == "^" else []
        self.pos += len(parts)
        first = True
        while True:
            char = self._peek()
            if not char:
                raise RegexError("unclosed character class", start)
            if char == "]" and not first:
                self.pos += 1
                return "".join(parts)
            first = False
            item = self._class_item()
            if isinstance(item, _Set):
                parts.append(item.body)
            elif self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                parts.append(f"{_literal(item)}-{_literal(self._range_end(item))}")
            else:
                parts.append(_literal(item))

    def _class_item(self) -> str | _Set:
        char = self._peek()
        if char == "[" or self.pattern.startswith("&&", self.pos):
            raise RegexError("nested classes and intersections are not supported", self.pos)
        if char == "\\":
            return self._escape_item()
        self.pos += 1
        return char

    def _range_end(self, low: str) -> str:
        start = self.pos
        high = self._class_item()
        if not isinstance(high, str) or high < low:
            raise RegexError("illegal character range", start)
        return high


# RE2's general categories (Java's, less Cn and LC).
_CATEGORIES: Final = frozenset(
    {*"CLMNPSZ", "Cc", "Cf", "Co", "Cs", "Ll", "Lm", "Lo", "Lt", "Lu", "Mc", "Me", "Mn"}
    | {"Nd", "Nl", "No", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "Sc", "Sk", "Sm", "So"}
    | {"Zl", "Zp", "Zs"}
)


def _property(name: str, negated: bool) -> str | None:
    """\\p{...} as RE2 class syntax: general categories, POSIX classes, Is<Script>."""
    bare = name[2:] if name.startswith("Is") else name
    p = "P" if negated else "p"
    if bare in _CATEGORIES:
        return f"\\{p}{{{bare}}}"
    if name.lower() in _POSIX_CLASSES:
        return f"[:{'^' if negated else ''}{name.lower()}:]"
    script = "_".join(word.capitalize() for word in bare.split("_"))
    if name.startswith("Is") and script.replace("_", "").isalpha() and _re2_knows(script):
        return f"\\{p}{{{script}}}"
    return None


@lru_cache(maxsize=64)
def _re2_knows(script: str) -> bool:
    try:
        re2.compile(f"\\p{{{script}}}", _RE2_OPTIONS)
    except re2.error:
        return False
    return True


@lru_cache(maxsize=128)
def compile_regex(pattern: str) -> _Matcher:
    if len(pattern) > REGEX_MAX_PATTERN:
        raise RegexError(f"pattern is longer than {REGEX_MAX_PATTERN} characters", 0)
    translated = _JavaRegex(pattern).translate()
    try:
        matcher: _Matcher = re2.compile(translated, _RE2_OPTIONS)
    except re2.error:
        # The syntax was checked above, so what is left are RE2's size limits: nested
        # repetition over 1000 in total, or a program larger than max_mem.
        raise RegexError("pattern is too complex", 0) from None
    return matcher


def regex_matches(value: Value, pattern: Value) -> bool:
    text = to_string(value)
    try:
        matcher = compile_regex(to_string(pattern))
    except RegexError:
        return False  # a computed pattern that is not valid matches nothing
    if len(text) > REGEX_MAX_VALUE:
        return False
    # surrogatepass: an answer with a lone surrogate must not raise.
    return matcher.fullmatch(text.encode("utf-8", "surrogatepass")) is not None
