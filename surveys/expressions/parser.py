"""Tokenizer, parser and syntax tree; `parse()` and `evaluate_required()`."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from .functions import FUNCTIONS, UNSUPPORTED_ODK_FUNCTIONS, USES_CURRENT_WITHOUT_ARGS, Function
from .regex import RegexError, compile_regex
from .values import EPSILON, Value, from_python, to_boolean, to_number

MAX_LENGTH: Final = 4000  # characters in one expression
MAX_NESTING: Final = 60  # parser recursion (parentheses, calls, unary minus)
MAX_DEPTH: Final = 100  # height of the parsed tree (bounds evaluation recursion)


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
# Syntax tree and evaluation


@dataclass(frozen=True, slots=True)
class Context:
    values: Mapping[str, Any]
    current: Any
    today: dt.date | None


class Node:
    __slots__ = ()
    start: int
    end: int
    depth: int

    def eval(self, ctx: Context) -> Value:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class String(Node):
    value: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: Context) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: float
    text: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: Context) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class Ref(Node):
    name: str
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: Context) -> Value:
        return from_python(ctx.values.get(self.name))


@dataclass(frozen=True, slots=True)
class Current(Node):
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(default=1, compare=False)

    def eval(self, ctx: Context) -> Value:
        return from_python(ctx.current)


@dataclass(frozen=True, slots=True)
class Negate(Node):
    operand: Node
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: Context) -> Value:
        return -to_number(self.operand.eval(ctx))


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # '=', '!=', '<', '<=', '>', '>='
    left: Node
    right: Node
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: Context) -> Value:
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
        return x == y or abs(x - y) < EPSILON  # NaN equals nothing
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
class Arith(Node):
    """A left-associative run of one precedence level: first (op operand)..."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    @property
    def multiplicative(self) -> bool:
        return self.rest[0][0] not in ("+", "-")

    def eval(self, ctx: Context) -> Value:
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
class Logic(Node):
    op: str  # 'and' | 'or'
    operands: tuple[Node, ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: Context) -> Value:
        # Short-circuit, as XPath 1.0 §3.4 allows and JavaRosa does.
        if self.op == "and":
            return all(to_boolean(operand.eval(ctx)) for operand in self.operands)
        return any(to_boolean(operand.eval(ctx)) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
    start: int = field(compare=False)
    end: int = field(compare=False)
    depth: int = field(compare=False)

    def eval(self, ctx: Context) -> Value:
        return FUNCTIONS[self.name].call(self.args, ctx)


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

    def parse(self) -> Node:
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

    def _expression(self, min_bp: int) -> Node:
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

    def _prefix(self) -> Node:
        token = self._advance()
        if token.kind == "number":
            return Number(float(token.text), token.text, token.start, token.end)
        if token.kind == "string":
            return String(token.text, token.start, token.end)
        if token.kind == "ref":
            self.references.add(token.text)
            return Ref(token.text, token.start, token.end)
        if token.kind == "dot":
            self.uses_current = True
            return Current(token.start, token.end)
        if token.kind == "(":
            inner = self._expression(0)
            self._expect(")", f"expected ')' to close the '(' at column {token.start + 1}")
            return inner
        if token.kind == "op" and token.text == "-":
            operand = self._expression(_MULTIPLICATIVE_BP)
            return _checked(Negate(operand, token.start, operand.end, operand.depth + 1))
        if token.kind == "func":
            return self._call(token)
        raise self._unexpected(token)

    def _expect(self, kind: str, message: str) -> _Token:
        token = self._peek()
        if token.kind != kind:
            found = _describe_token(token)
            raise ExpressionError(f"{message}, found {found}", token.start)
        return self._advance()

    def _call(self, name: _Token) -> Node:
        function = FUNCTIONS.get(name.text)
        if function is None and name.text in UNSUPPORTED_ODK_FUNCTIONS:
            raise ExpressionError(f"function '{name.text}()' is not supported", name.start)
        if function is None:
            raise ExpressionError(f"unknown function '{name.text}()'", name.start)
        self._expect("(", f"expected '(' after '{name.text}'")
        args: list[Node] = []
        if self._peek().kind != ")":
            args.append(self._expression(0))
            while self._peek().kind == ",":
                self._advance()
                args.append(self._expression(0))
        close = self._expect(")", f"expected ',' or ')' in {name.text}()")
        _check_call(name, function, args)
        if not args and name.text in USES_CURRENT_WITHOUT_ARGS:
            self.uses_current = True
        depth = 1 + max((arg.depth for arg in args), default=0)
        return _checked(Call(name.text, tuple(args), name.start, close.end, depth))

    def _combine(self, token: _Token, left: Node, right: Node) -> Node:
        op, start, end = token.text, left.start, right.end
        if op in ("and", "or"):
            operands = _flatten(op, left) + _flatten(op, right)
            depth = 1 + max(o.depth for o in operands)
            return _checked(Logic(op, operands, start, end, depth))
        if op in ("=", "!=", "<", "<=", ">", ">="):
            depth = 1 + max(left.depth, right.depth)
            return _checked(Compare(op, left, right, start, end, depth))
        multiplicative = _BINDING[op] == _MULTIPLICATIVE_BP
        if isinstance(left, Arith) and left.multiplicative == multiplicative:
            # Extend the run: a - b - c is ((a - b) - c), evaluated left to right.
            depth = max(left.depth, right.depth + 1)
            return _checked(Arith(left.first, (*left.rest, (op, right)), start, end, depth))
        depth = 1 + max(left.depth, right.depth)
        return _checked(Arith(left, ((op, right),), start, end, depth))


def _flatten(op: str, node: Node) -> tuple[Node, ...]:
    return node.operands if isinstance(node, Logic) and node.op == op else (node,)


def _checked(node: Node) -> Node:
    if node.depth > MAX_DEPTH:
        raise ExpressionError("expression is nested too deeply", node.start)
    return node


def _check_call(name: _Token, function: Function, args: list[Node]) -> None:
    low, high = function.min_args, function.max_args
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if low == high else f"{low} or more" if high is None else f"{low}-{high}"
        message = f"{name.text}() takes {wanted} argument{'s' if wanted != '1' else ''}"
        raise ExpressionError(f"{message}, not {len(args)}", name.start)
    if name.text == "selected" and isinstance(args[1], Number):
        # JavaRosa rejects this at run time; ODK's documentation asks for quotes.
        hint = f"write '{args[1].text}'"
        raise ExpressionError("selected() needs the choice value in quotes", args[1].start, hint)
    if name.text == "regex" and isinstance(args[1], String):
        try:
            compile_regex(args[1].value)
        except RegexError as exc:
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
    _root: Node = field(repr=False, compare=False)

    def evaluate(
        self, values: Mapping[str, Any], current: Any = None, *, today: dt.date | None = None
    ) -> Value:
        """The value: str, float or bool; never raises on answers of the documented types.

        `today` is the date today() returns (default: the process's local date).
        """
        return self._root.eval(Context(values, current, today))

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
