"""A loaded questionnaire: pages, questions, skip logic and validation, decided on the server.

Built from the normalised definition stored with each QuestionnaireVersion (see xlsform.py).
The same rules serve the web form, keyed entry and batch imports.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .expressions import Expression, evaluate_required, parse

INPUT_TYPES = {"select_one", "select_multiple", "integer", "decimal", "text", "date"}
TEXT_MAX_LENGTH = 2000
INTEGER_LIMIT = 10**15
NOT_RELEVANT = object()
LAST_RE = re.compile(r"\$\{last\.([^}]*)\}")
NO_LAST_ANSWER = "—"


def pick(texts: Mapping[str, str] | None, language: str | None = None) -> str:
    """The text in the active language, else the form's first language that has one."""
    if not texts:
        return ""
    language = (language or get_language() or "ko")[:2]
    return texts.get(language) or next(iter(texts.values()), "")


@dataclass(frozen=True)
class Choice:
    name: str
    label: dict[str, str]

    def text(self, language: str | None = None) -> str:
        return pick(self.label, language) or self.name


@dataclass(frozen=True)
class Question:
    name: str
    type: str
    page: str
    row: int
    label: dict[str, str] = field(default_factory=dict)
    hint: dict[str, str] = field(default_factory=dict)
    unit: dict[str, str] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    list_name: str = ""
    required: str = ""
    required_message: dict[str, str] = field(default_factory=dict)
    relevant: str = ""
    constraint: str = ""
    constraint_message: dict[str, str] = field(default_factory=dict)
    calculation: str = ""
    appearance: str = ""
    core: bool = False
    pii: bool = False

    @property
    def is_input(self) -> bool:
        return self.type in INPUT_TYPES

    def text(self, language: str | None = None) -> str:
        return pick(self.label, language) or self.name

    def hint_text(self, language: str | None = None) -> str:
        return pick(self.hint, language)

    def unit_text(self, language: str | None = None) -> str:
        return pick(self.unit, language)

    @cached_property
    def choice_names(self) -> tuple[str, ...]:
        return tuple(choice.name for choice in self.choices)

    def choice_text(self, name: str, language: str | None = None) -> str:
        for choice in self.choices:
            if choice.name == name:
                return choice.text(language)
        return name

    @cached_property
    def relevant_expr(self) -> Expression | None:
        return parse(self.relevant) if self.relevant else None

    @cached_property
    def constraint_expr(self) -> Expression | None:
        return parse(self.constraint) if self.constraint else None

    @cached_property
    def calculation_expr(self) -> Expression | None:
        return parse(self.calculation) if self.calculation else None

    def same(self, a: str | list[str], b: str | list[str]) -> bool:
        """Whether two inputs mean the same answer ("1,200" and "1200", checkbox order)."""
        if a == b:
            return True
        try:
            return bool(self.parse_value(a) == self.parse_value(b))
        except ValueError:
            return text_of(a) == text_of(b)

    def display(self, value: Any, *, unit: bool = True) -> str:
        """An answer as people read it: choice labels, grouped digits, the unit."""
        if value is None:
            return ""
        if self.type == "select_one":
            return self.choice_text(value)
        if self.type == "select_multiple":
            return ", ".join(self.choice_text(v) for v in value)
        if isinstance(value, float):
            number = f"{value:,.10g}"
        elif isinstance(value, int):
            number = f"{value:,}"
        else:
            return str(value)
        text = self.unit_text() if unit else ""
        return f"{number} {text}" if text else number

    def shown(self, value: Any, *, unit: bool = True) -> str:
        """A stored value as `display` reads it; one that no longer fits the question (an
        earlier version's choice, say) as it was stored."""
        try:
            return self.display(value, unit=unit)
        except (KeyError, TypeError, ValueError):
            return str(value)

    @property
    def raw_limit(self) -> int:
        """The most characters a typed answer of this type can sensibly hold: longer input
        is refused, not stored, even as a draft."""
        if self.type in ("select_one", "select_multiple"):
            names = sum(len(name) + 1 for name in self.choice_names)
            return names if self.type == "select_multiple" else max(names, 1)
        if self.type in ("integer", "decimal", "date"):
            return 64
        return TEXT_MAX_LENGTH * 2

    def parse_value(self, raw: str | list[str]) -> Any:
        """Convert posted text to the stored value; ValueError carries the message to show."""
        if any("\x00" in text for text in ([raw] if isinstance(raw, str) else raw)):
            raise ValueError(_("Remove the invisible control characters from this answer."))
        if self.type == "select_multiple":
            values = raw if isinstance(raw, list) else raw.split()
            unknown = [value for value in values if value not in self.choice_names]
            if unknown:
                raise ValueError(
                    _("“%(value)s” is not one of the options.") % {"value": unknown[0]}
                )
            return [name for name in self.choice_names if name in values] or None
        text = (raw[0] if raw else "") if isinstance(raw, list) else raw
        text = text.strip()
        if text == "":
            return None
        return self._parse_text(text)

    def _without_unit(self, text: str) -> str:
        """A number typed with its unit, in either language ("35명", "12,500 백만 원")."""
        for unit in sorted(self.unit.values(), key=len, reverse=True):
            squeezed = unit.replace(" ", "")
            if squeezed and text.replace(" ", "").endswith(squeezed):
                return text.replace(" ", "")[: -len(squeezed)]
        return text

    def _parse_text(self, text: str) -> Any:
        if self.type == "select_one":
            if text not in self.choice_names:
                raise ValueError(_("“%(value)s” is not one of the options.") % {"value": text[:40]})
            return text
        if self.type == "integer":
            return parse_integer(self._without_unit(text))
        if self.type == "decimal":
            return parse_decimal(self._without_unit(text))
        if self.type == "date":
            try:
                return dt.date.fromisoformat(text).isoformat()
            except ValueError:
                raise ValueError(_("Enter a date as YYYY-MM-DD.")) from None
        if len(text) > TEXT_MAX_LENGTH:
            raise ValueError(
                _("Keep this answer under %(max)d characters.") % {"max": TEXT_MAX_LENGTH}
            )
        return text.replace("\r\n", "\n")

    def is_required(self, values: Mapping[str, Any]) -> bool:
        return evaluate_required(self.required or None, values, values.get(self.name))

    def check(self, value: Any, values: Mapping[str, Any]) -> str | None:
        """The message for a value that breaks `required` or `constraint`, else None."""
        if value is None:
            if self.is_input and self.is_required(values):
                return pick(self.required_message) or _("This question requires an answer.")
            return None
        if self.constraint_expr is not None and not self.constraint_expr.truth(values, value):
            return pick(self.constraint_message) or _("This answer is not allowed.")
        return None


_INTEGER_RE = re.compile(r"^[+-]?\d{1,16}$")
_DECIMAL_RE = re.compile(r"^[+-]?(\d{1,16}(\.\d{0,10})?|\.\d{1,10})$")


def text_of(raw: str | list[str]) -> str:
    """Posted input as one string: checkbox choices sorted, text trimmed."""
    return " ".join(sorted(raw)) if isinstance(raw, list) else raw.strip()


def parse_integer(text: str) -> int:
    cleaned = text.replace(",", "")
    if not _INTEGER_RE.match(cleaned) or abs(int(cleaned)) >= INTEGER_LIMIT:
        raise ValueError(_("Enter a whole number."))
    return int(cleaned)


def parse_decimal(text: str) -> float:
    cleaned = text.replace(",", "")
    if not _DECIMAL_RE.match(cleaned):
        raise ValueError(_("Enter a number."))
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(_("Enter a number."))
    return value


@dataclass(frozen=True)
class Page:
    name: str
    label: dict[str, str]
    relevant: str
    questions: tuple[Question, ...]

    def text(self, language: str | None = None) -> str:
        return pick(self.label, language) or self.name

    @cached_property
    def relevant_expr(self) -> Expression | None:
        return parse(self.relevant) if self.relevant else None

    @cached_property
    def inputs(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.is_input)

    @cached_property
    def question_names(self) -> frozenset[str]:
        return frozenset(q.name for q in self.questions)


@dataclass
class Completeness:
    applicable: int
    answered: int
    core_missing: list[str]

    @property
    def fraction(self) -> float:
        return self.answered / self.applicable if self.applicable else 1.0


class Form:
    """The runtime questionnaire. Immutable; one instance per questionnaire version."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.definition = definition
        self.form_id: str = definition["form_id"]
        self.version: str = definition["version"]
        self.title: dict[str, str] = definition["title"]
        self.languages: list[str] = definition["languages"]
        self.pages: tuple[Page, ...] = tuple(_page(p) for p in definition["pages"])
        self.questions: dict[str, Question] = {
            q.name: q for page in self.pages for q in page.questions
        }
        self.page_by_name = {page.name: page for page in self.pages}

    @cached_property
    def reads_last(self) -> bool:
        """Whether a label or hint shows last round's answers (${last.<question>})."""
        texts = (t for q in self.questions.values() for t in (*q.label.values(), *q.hint.values()))
        return any(LAST_RE.search(text) for text in texts)

    def with_last(self, text: str, last: Mapping[str, Any]) -> str:
        """A label or hint with last round's answers in place of ${last.<question>}, as
        people read them but without the unit (the text says it); "—" where there is none."""

        def answer(match: re.Match[str]) -> str:
            question, value = self.questions.get(match[1]), last.get(match[1])
            if question is None or value is None or value in ("", []):
                return NO_LAST_ANSWER
            return question.shown(value, unit=False)

        return LAST_RE.sub(answer, text)

    def hint_with_last(self, question: Question, last: Mapping[str, Any]) -> str:
        """The question's hint with last round's answers. A line of the hint that shows
        them is left out for a firm without them (a new firm, or one that did not answer)."""
        lines = [
            self.with_last(line, last)
            for line in question.hint_text().split("\n")
            if not _misses_last(line, last)
        ]
        return "\n".join(lines)

    def page_index(self, name: str) -> int:
        return [page.name for page in self.pages].index(name)

    def next_page(self, current: Page, relevant: set[str]) -> Page | None:
        later = self.pages[self.page_index(current.name) + 1 :]
        return next((page for page in later if page.name in relevant), None)

    def previous_page(self, current: Page, relevant: set[str]) -> Page | None:
        earlier = reversed(self.pages[: self.page_index(current.name)])
        return next((page for page in earlier if page.name in relevant), None)

    def evaluate(self, answers: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """Apply skip logic and calculations.

        Returns the answers as they should be stored (non-relevant answers cleared,
        calculations recomputed) and the names of the relevant questions and pages.
        Answers to names this version does not know (asked by another version) are kept.
        """
        # Document order, repeated until stable so that a reference to a later question
        # sees that question's settled value, as in ODK's dependency-ordered evaluation.
        previous: Mapping[str, Any] = answers
        for _round in range(4):
            values, relevant = self._evaluate_pass(answers, previous)
            if values == previous:
                break
            previous = values
        return values, relevant

    def _evaluate_pass(
        self, answers: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> tuple[dict[str, Any], set[str]]:
        values = {k: v for k, v in answers.items() if k not in self.questions}
        ahead = {k: v for k, v in previous.items() if k in self.questions}
        scope = ChainMap(values, ahead)
        relevant: set[str] = set()
        for page in self.pages:
            page_on = page.relevant_expr is None or page.relevant_expr.truth(scope)
            if page_on:
                relevant.add(page.name)
            for question in page.questions:
                ahead.pop(question.name, None)
                on = page_on and (
                    question.relevant_expr is None or question.relevant_expr.truth(scope)
                )
                if not on:
                    continue
                relevant.add(question.name)
                if question.calculation_expr is not None:
                    value = _calculate(question.calculation_expr, scope)
                else:
                    value = answers.get(question.name)
                if value is not None:
                    values[question.name] = value
        return values, relevant

    def relevant_pages(self, answers: Mapping[str, Any]) -> list[Page]:
        _values, relevant = self.evaluate(answers)
        return [page for page in self.pages if page.name in relevant]

    def clean_page(
        self, page: Page, posted: Mapping[str, str | list[str]], answers: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str], list[str]]:
        """Validate a page's posted input against the answers given elsewhere.

        Returns the new answers (whole form), errors by question, and the questions whose
        posted answers were dropped because the question does not apply.
        """
        typed, errors = self.parse_page(page, posted)
        merged = {k: v for k, v in answers.items() if k not in page.question_names}
        merged.update({k: v for k, v in typed.items() if v is not None})
        values, relevant = self.evaluate(merged)
        dropped = [name for name, v in typed.items() if v is not None and name not in relevant]
        for question in page.inputs:
            if question.name in relevant and question.name not in errors:
                message = question.check(values.get(question.name), values)
                if message:
                    errors[question.name] = message
        return values, errors, dropped

    def parse_page(
        self, page: Page, posted: Mapping[str, str | list[str]]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        typed: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for question in page.inputs:
            raw = posted.get(question.name)
            if raw is None:
                typed[question.name] = None
                continue
            try:
                typed[question.name] = question.parse_value(raw)
            except ValueError as exc:
                errors[question.name] = str(exc)
        return typed, errors

    def validate_all(self, answers: Mapping[str, Any]) -> dict[str, str]:
        """Every rule on every relevant question: for submission and batch imports."""
        values, relevant = self.evaluate(answers)
        errors = {}
        for name, question in self.questions.items():
            if name in relevant and question.is_input:
                message = question.check(values.get(name), values)
                if message:
                    errors[name] = message
        return errors

    def completeness(self, answers: Mapping[str, Any]) -> Completeness:
        values, relevant = self.evaluate(answers)
        applicable = [q for q in self.questions.values() if q.is_input and q.name in relevant]
        answered = [q for q in applicable if values.get(q.name) is not None]
        core_missing = [q.name for q in applicable if q.core and values.get(q.name) is None]
        return Completeness(len(applicable), len(answered), core_missing)

    def inputs(self) -> Iterable[Question]:
        return (q for q in self.questions.values() if q.is_input)


def _misses_last(text: str, last: Mapping[str, Any]) -> bool:
    names = LAST_RE.findall(text)
    return bool(names) and all(last.get(name) in (None, "", []) for name in names)


def _calculate(expression: Expression, scope: Mapping[str, Any]) -> Any:
    # A calculation over questions nobody has answered yet is missing, not 0: otherwise a
    # blank would enter the estimates as a real value.
    if expression.references and all(scope.get(name) is None for name in expression.references):
        return None
    return _stored(expression.evaluate(scope))


def _stored(value: Any) -> Any:
    """A calculation's result as stored with the answers (numbers as numbers)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if value.is_integer() else value
    if value == "":
        return None
    return value


def _page(data: Mapping[str, Any]) -> Page:
    questions = tuple(_question(q, data["name"]) for q in data["questions"])
    return Page(data["name"], data["label"], data.get("relevant", ""), questions)


def _question(data: Mapping[str, Any], page: str) -> Question:
    fields = {k: v for k, v in data.items() if k not in ("choices", "page")}
    choices = tuple(Choice(c["name"], c["label"]) for c in data.get("choices", ()))
    return Question(page=page, choices=choices, **fields)
