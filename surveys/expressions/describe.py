"""describe(): an expression in words for codebooks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .parser import (
    Arith,
    Call,
    Compare,
    Current,
    Expression,
    ExpressionError,
    Logic,
    Negate,
    Node,
    Number,
    Ref,
    String,
    parse,
)

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

    def sentence(self, node: Node) -> str:
        if self.korean:
            return f"{self._ko(node, 'end')} 경우"
        return self._en(node)

    # Conditions ---------------------------------------------------------------------

    def _en(self, node: Node) -> str:
        if isinstance(node, Logic):
            return f" {node.op} ".join(self._en_operand(o) for o in node.operands)
        phrase = self._phrase(node, negated=False)
        return _EN[phrase.kind, phrase.negated].format(a=phrase.subject, b=phrase.obj)

    def _en_operand(self, node: Node) -> str:
        return f"({self._en(node)})" if isinstance(node, Logic) else self._en(node)

    def _ko(self, node: Node, form: str) -> str:
        if isinstance(node, Logic):
            inner = "and" if node.op == "and" else "or"
            forms = [inner] * (len(node.operands) - 1) + [form]
            return " ".join(
                self._ko_operand(o, f) for o, f in zip(node.operands, forms, strict=True)
            )
        phrase = self._phrase(node, negated=False)
        stem, endings = _KO[phrase.kind, phrase.negated]
        return stem.format(a=phrase.subject, b=phrase.obj) + endings[_KO_FORMS[form]]

    def _ko_operand(self, node: Node, form: str) -> str:
        if isinstance(node, Logic):
            stem, endings = _KO["group", False]
            return stem.format(a=self._group(node)) + endings[_KO_FORMS[form]]
        return self._ko(node, form)

    def _group(self, node: Logic) -> str:
        return f"({self._ko(node, 'end')} 경우)" if self.korean else f"({self._en(node)})"

    def _phrase(self, node: Node, negated: bool) -> _Phrase:
        if isinstance(node, Call) and node.name == "not":
            return self._phrase(node.args[0], not negated)
        if isinstance(node, Logic):
            return _Phrase("group", self._group(node), negated=negated)
        if isinstance(node, Compare):
            return self._comparison(node, negated)
        if isinstance(node, Call) and node.name == "selected":
            subject, choice = node.args
            obj = self._value_for(subject, choice)
            return _Phrase("selected", self._term(subject), obj, negated)
        if isinstance(node, Ref | Current):
            return _Phrase("answered", self._term(node), negated=negated)
        return _Phrase("raw", self._raw(node), negated=negated)

    def _comparison(self, node: Compare, negated: bool) -> _Phrase:
        op, left, right = node.op, node.left, node.right
        if _is_literal(left) and not _is_literal(right):
            op, left, right = _FLIPPED[op], right, left
        if op in ("=", "!="):
            negated ^= op == "!="
            if isinstance(right, String) and right.value == "":
                return _Phrase("empty", self._term(left), negated=negated)
            return _Phrase("eq", self._term(left), self._value_for(left, right), negated)
        return _Phrase(op, self._term(left), self._term(right), negated)

    # Values ---------------------------------------------------------------------------

    def _value_for(self, subject: Node, value: Node) -> str:
        """A literal compared with a question, shown as the choice label when known."""
        if isinstance(subject, Ref) and isinstance(value, String) and self.choice_label_of:
            return _quote(self.choice_label_of(subject.name, value.value) or value.value)
        return self._term(value)

    def _term(self, node: Node) -> str:
        if isinstance(node, Ref):
            return _quote(self.label_of(node.name) or node.name)
        if isinstance(node, Current):
            return "이 문항의 응답" if self.korean else "the answer"
        if isinstance(node, String):
            return _quote(node.value)
        if isinstance(node, Number):
            return node.text
        if isinstance(node, Negate):
            return f"-{self._operand(node.operand)}"
        if isinstance(node, Arith):
            return self._arith(node)
        if isinstance(node, Call):
            return self._call(node)
        return self._raw(node)

    def _operand(self, node: Node) -> str:
        simple = isinstance(node, Ref | Current | String | Number | Call)
        return self._term(node) if simple else f"({self._term(node)})"

    def _arith(self, node: Arith) -> str:
        def side(operand: Node, first: bool) -> str:
            # Runs are left-associative: a nested run on the right of the same level
            # came from explicit parentheses, as did a looser one anywhere.
            looser = isinstance(operand, Arith) and (
                (node.multiplicative and not operand.multiplicative)
                or (not first and operand.multiplicative == node.multiplicative)
            )
            if looser or isinstance(operand, Compare | Logic):
                return f"({self._term(operand)})"
            return self._term(operand)

        parts = [side(node.first, first=True)]
        for op, operand in node.rest:
            parts.append(f"{_ARITH_SYMBOLS[op]} {side(operand, first=False)}")
        return " ".join(parts)

    def _call(self, node: Call) -> str:
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

    def _raw(self, node: Node) -> str:
        return self.text[node.start : node.end]


def _is_literal(node: Node) -> bool:
    return isinstance(node, String | Number)


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
