"""Column-wise evaluation of the arithmetic subset with numpy, for statistics over a whole
frame: 163,273 firms in one pass instead of one interpretation per firm.

The subset: numbers, quoted numbers, ${references}, unary minus, + - * div mod, and abs(),
min(), max() and number(). Each gives, element by element, what Expression.evaluate gives
as a number (IEEE division, Java's truncating mod, min/max ignoring NaN); anything else is
refused by column_problem() before evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .parser import Arith, Call, Expression, Negate, Node, Number, Ref, String
from .values import from_python, to_number

FloatArray = npt.NDArray[np.float64]
FUNCTIONS = ("abs", "min", "max", "number")
ALLOWED = "numbers, references, + - * div mod, abs(), min(), max() and number()"


def column_problem(expression: Expression) -> str | None:
    """Why the expression cannot be evaluated column-wise, or None when it can."""
    return _problem(expression._root)


def _problem(node: Node) -> str | None:
    if isinstance(node, Number | String | Ref):
        return None
    if isinstance(node, Negate):
        return _problem(node.operand)
    if isinstance(node, Arith):
        return _first([node.first, *(operand for _op, operand in node.rest)])
    if isinstance(node, Call) and node.name in FUNCTIONS:
        return _first(list(node.args))
    what = f"{node.name}()" if isinstance(node, Call) else "a comparison, and, or or '.'"
    return f"{what} cannot be used here: only {ALLOWED}"


def _first(nodes: Sequence[Node]) -> str | None:
    return next((p for p in map(_problem, nodes) if p is not None), None)


def as_numbers(values: Sequence[Any]) -> FloatArray:
    """Values as XPath numbers (None and text that is no number are NaN); each distinct
    value is converted once."""
    if not any(type(value) is str for value in values):
        try:  # numbers and None: numpy reads them as XPath does (None is NaN)
            return np.array(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
    converted: dict[Any, float] = {}
    out = np.empty(len(values))
    for k, value in enumerate(values):
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[k] = value
            continue
        number = converted.get(value)
        if number is None:
            number = converted[value] = to_number(from_python(value))
        out[k] = number
    return out


def evaluate_columns(
    expression: Expression, columns: Mapping[str, FloatArray], size: int
) -> FloatArray:
    """The expression's value for every row: `columns` gives each reference as numbers."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.broadcast_to(_evaluate(expression._root, columns), (size,)).astype(np.float64)


def _evaluate(node: Node, columns: Mapping[str, FloatArray]) -> FloatArray:
    if isinstance(node, Number):
        return np.asarray(node.value)
    if isinstance(node, String):
        return np.asarray(to_number(node.value))
    if isinstance(node, Ref):
        return columns[node.name]
    if isinstance(node, Negate):
        return -_evaluate(node.operand, columns)
    if isinstance(node, Arith):
        total = _evaluate(node.first, columns)
        for op, operand in node.rest:
            total = _arithmetic(op, total, _evaluate(operand, columns))
        return total
    assert isinstance(node, Call), node
    args = [_evaluate(arg, columns) for arg in node.args]
    if node.name == "abs":
        return np.abs(args[0])
    if node.name == "number":
        return args[0]
    pick = np.fmin if node.name == "min" else np.fmax  # NaN ignored, as XPath min()/max()
    result = args[0]
    for arg in args[1:]:
        result = pick(result, arg)
    return result


def _arithmetic(op: str, x: FloatArray, y: FloatArray) -> FloatArray:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "div":
        return np.true_divide(x, y)
    # Java's % like math.fmod: the sign of the dividend; NaN for x infinite or y zero.
    return np.fmod(x, y)
