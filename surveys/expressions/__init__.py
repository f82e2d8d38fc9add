r"""A safe evaluator for the XLSForm (ODK XPath 1.0) expression subset.

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
JavaRosa's Double.MIN_VALUE bug.

regex(value, pattern) is Java's Pattern.matches (the whole value must match, `\d \w \s`
are ASCII), run by RE2 (google-re2), so it takes linear time whatever the pattern. The
Java syntax is checked and translated. Back-references, lookaround and possessive
quantifiers (which RE2 cannot run), inline flags and class intersections are rejected:
in a form such a pattern is a parse error, as is any other invalid pattern, one over 500
characters, or one too big to compile. A pattern computed from answers that is invalid
matches nothing, and so does any value over 10,000 characters. On degenerate input the
result differs from Java's: `\b` is an ASCII word boundary, `$` followed by more pattern
only sees a final `\n`, and `\p{Cn}` is unknown.
"""

from .describe import describe
from .parser import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NESTING,
    Expression,
    ExpressionError,
    evaluate_required,
    parse,
)
from .regex import REGEX_MAX_MEMORY, REGEX_MAX_PATTERN, REGEX_MAX_VALUE
from .values import Value, from_python, to_boolean, to_number, to_string

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NESTING",
    "REGEX_MAX_MEMORY",
    "REGEX_MAX_PATTERN",
    "REGEX_MAX_VALUE",
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
