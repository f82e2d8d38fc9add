"""AAPOR final dispositions and outcome rates (docs/methodology.md, sec. C).

Categories: I complete, P partial, R refusal and break-off, NC non-contact, O other eligible
non-interview, U unknown eligibility (AAPOR's UH + UO), NE known ineligible.

With D0 = (I+P) + (R+NC+O), DU = D0 + U and De = D0 + e·U:
  RR1..6 = I/DU, (I+P)/DU, I/De, (I+P)/De, I/D0, (I+P)/D0
  COOP1..4 = I/(I+P+R+O), (I+P)/(I+P+R+O), I/(I+P+R), (I+P)/(I+P+R)
  REF1..3 = R over DU, De, D0;  CON1..3 = (I+P+R+O) over DU, De, D0
e defaults to the proportional estimate (I+P+R+NC+O)/(I+P+R+NC+O+NE), as in ropensci/outcomerate
and the AAPOR calculator. Rates are fractions. A rate whose denominator is 0 is NaN (not None),
so results stay float arrays; e is NaN when no case has a known eligibility status, and then
so are RR3, RR4, REF2 and CON2. Weighted rates use the same formulas on sums of base weights.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Rates = dict[str, float]

CATEGORIES: tuple[str, ...] = ("I", "P", "R", "NC", "O", "U", "NE")
# outcomerate splits U into UH and UO; every rate uses only their sum.
ALIASES: dict[str, str] = {"UH": "U", "UO": "U"}
RATE_NAMES: tuple[str, ...] = (
    "e",
    *(f"RR{k}" for k in range(1, 7)),
    *(f"COOP{k}" for k in range(1, 5)),
    *(f"REF{k}" for k in range(1, 4)),
    *(f"CON{k}" for k in range(1, 4)),
)


@dataclass(frozen=True)
class DispositionCode:
    code: str
    category: str
    label: str


def gettext_noop(message: str) -> str:
    """Marks a label for translation (makemessages finds it) without importing Django."""
    return message


# AAPOR Standard Definitions (2023, 10th ed.) numbering, adapted for a web survey of named
# establishments. The category follows from the leading digits; the 4.2x ineligibility
# reasons are this platform's sub-codes (sec. C: ineligibility must be confirmed).
_CODE_TABLE: tuple[tuple[str, str, str], ...] = (
    ("1.1", "I", gettext_noop("Complete")),
    ("1.2", "P", gettext_noop("Partial")),
    ("2.10", "R", gettext_noop("Refusal or break-off")),
    ("2.11", "R", gettext_noop("Refusal")),
    ("2.111", "R", gettext_noop("Establishment-level refusal")),
    ("2.112", "R", gettext_noop("Known-respondent refusal")),
    ("2.12", "R", gettext_noop("Break-off")),
    ("2.121", "R", gettext_noop("Implicit refusal (logged in, nothing answered)")),
    ("2.20", "NC", gettext_noop("Non-contact")),
    ("2.21", "NC", gettext_noop("Respondent never available")),
    ("2.22", "NC", gettext_noop("Contact details invalid, establishment confirmed eligible")),
    ("2.27", "NC", gettext_noop("Questionnaire completed after the field period")),
    ("2.30", "O", gettext_noop("Other eligible non-interview")),
    ("2.32", "O", gettext_noop("Respondent unable to take part")),
    ("2.33", "O", gettext_noop("Language barrier")),
    ("2.35", "O", gettext_noop("Technical problems")),
    ("2.36", "O", gettext_noop("Other reason")),
    ("3.10", "U", gettext_noop("Nothing known about the establishment")),
    ("3.11", "U", gettext_noop("No invitation sent")),
    ("3.19", "U", gettext_noop("Nothing ever returned")),
    ("3.20", "U", gettext_noop("Eligibility not determined")),
    ("3.21", "U", gettext_noop("Eligibility screening not completed")),
    ("3.30", "U", gettext_noop("Invitation undeliverable, status unverified")),
    ("3.90", "U", gettext_noop("Other unknown eligibility")),
    ("4.10", "NE", gettext_noop("Out of sample")),
    ("4.20", "NE", gettext_noop("Establishment out of scope")),
    ("4.21", "NE", gettext_noop("Closed or dormant")),
    ("4.22", "NE", gettext_noop("No factory")),
    ("4.23", "NE", gettext_noop("No longer manufacturing")),
    ("4.24", "NE", gettext_noop("Not an SME (large enterprise)")),
    ("4.25", "NE", gettext_noop("Duplicate listing")),
    ("4.26", "NE", gettext_noop("Merged into another firm")),
    ("4.90", "NE", gettext_noop("Other ineligible")),
)
DISPOSITION_CODES: dict[str, DispositionCode] = {
    code: DispositionCode(code, category, label) for code, category, label in _CODE_TABLE
}


@dataclass(frozen=True)
class GroupedRates:
    total: Rates
    groups: dict[Hashable, Rates]
    total_counts: dict[str, float]
    group_counts: dict[Hashable, dict[str, float]]


# --- disposition codes -----------------------------------------------------------------------


def parse_code(code: str) -> DispositionCode:
    """Look up an AAPOR disposition code such as "2.112"; anything not in the table is refused."""
    if not isinstance(code, str):
        # 2.10 and 2.1 are the same float, so codes must travel as strings.
        raise ValueError(f"disposition codes must be strings such as '2.10', got {code!r}")
    text = code.strip()
    # Call-centre files write the two-digit AAPOR codes short ("4.2" for 4.20), as the
    # Standard Definitions' own tables do; 1.1 and 1.2 are already whole codes.
    if re.fullmatch(r"[234]\.\d", text):
        text += "0"
    found = DISPOSITION_CODES.get(text)
    if found is None:
        raise ValueError(f"unknown AAPOR disposition code {code!r}")
    return found


def category_of(code: str) -> str:
    """The rate category (I, P, R, NC, O, U or NE) of an AAPOR disposition code."""
    return parse_code(code).category


# --- rates -----------------------------------------------------------------------------------


def outcome_rates(counts: Mapping[str, float], *, e: float | None = None) -> Rates:
    """All rates from (weighted) counts keyed by category; UH and UO are added into U."""
    row = np.zeros((1, len(CATEGORIES)))
    for key, value in counts.items():
        row[0, CATEGORIES.index(_category(key))] += float(value)
    if np.any(~np.isfinite(row)) or np.any(row < 0):
        raise ValueError("counts must be finite and ≥ 0")
    return _row(_rates(row, e), 0)


def tally(categories: ArrayLike, weights: ArrayLike | None = None) -> dict[str, float]:
    """Counts per category, or sums of weights (e.g. base weights d_i) when weights are given."""
    index = _category_index(categories)
    w = _weights(weights, len(index))
    sums = np.bincount(index, weights=w, minlength=len(CATEGORIES))
    return dict(zip(CATEGORIES, sums.tolist(), strict=True))


def rates_by_group(
    categories: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    groups: ArrayLike | None = None,
    e: float | None = None,
) -> GroupedRates:
    """Rates for each group and for all cases; each row estimates e from its own cases."""
    index = _category_index(categories)
    w = _weights(weights, len(index))
    labels = np.zeros(len(index), dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != index.shape:
        raise ValueError("groups must have one value per case")
    keys, row = np.unique(labels, return_inverse=True)
    cells = np.bincount(row * len(CATEGORIES) + index, w, len(keys) * len(CATEGORIES))
    table: FloatArray = cells.reshape(len(keys), len(CATEGORIES)).astype(np.float64)
    total = table.sum(axis=0, keepdims=True)
    per_group = _rates(table, e)
    group_keys = [] if groups is None else [key.item() for key in keys]
    return GroupedRates(
        total=_row(_rates(total, e), 0),
        groups={key: _row(per_group, g) for g, key in enumerate(group_keys)},
        total_counts=_row_counts(total, 0),
        group_counts={key: _row_counts(table, g) for g, key in enumerate(group_keys)},
    )


def _rates(table: FloatArray, e: float | None) -> dict[str, FloatArray]:
    """Formulas of sec. C for a table of counts: one row per group, one column per category."""
    c = {category: table[:, k] for k, category in enumerate(CATEGORIES)}
    done, resp = c["I"], c["I"] + c["P"]
    d0 = resp + c["R"] + c["NC"] + c["O"]
    e_hat = _div(d0, d0 + c["NE"]) if e is None else np.full_like(d0, _checked_e(e))
    contacted = resp + c["R"] + c["O"]
    out = {"e": e_hat}
    for k, den in enumerate((d0 + c["U"], d0 + e_hat * c["U"], d0)):  # D_U, D_e, D_0
        out[f"RR{2 * k + 1}"] = _div(done, den)
        out[f"RR{2 * k + 2}"] = _div(resp, den)
        out[f"REF{k + 1}"] = _div(c["R"], den)
        out[f"CON{k + 1}"] = _div(contacted, den)
    for k, (num, den) in enumerate(
        ((done, contacted), (resp, contacted), (done, resp + c["R"]), (resp, resp + c["R"])), 1
    ):
        out[f"COOP{k}"] = _div(num, den)
    return {name: out[name] for name in RATE_NAMES}


def _checked_e(e: float) -> float:
    if not 0.0 <= e <= 1.0:
        raise ValueError(f"e must be between 0 and 1, got {e}")
    return float(e)


def _div(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, np.nan, num / den)


# --- input checks ----------------------------------------------------------------------------


def _category(key: str) -> str:
    category = ALIASES.get(key, key)
    if category not in CATEGORIES:
        raise ValueError(f"unknown disposition category {key!r}; use one of {CATEGORIES}")
    return category


def _category_index(categories: ArrayLike) -> NDArray[np.int64]:
    values = np.asarray(categories, dtype=object)
    if values.ndim != 1:
        raise ValueError("categories must be a 1-D array of category codes")
    uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    lookup = np.array([CATEGORIES.index(_category(str(u))) for u in uniques], dtype=np.int64)
    return lookup[inverse] if len(values) else np.empty(0, dtype=np.int64)


def _weights(weights: ArrayLike | None, length: int) -> FloatArray:
    if weights is None:
        return np.ones(length)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (length,) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be one finite value ≥ 0 per case")
    return w


def _row(rates: Mapping[str, FloatArray], g: int) -> Rates:
    return {name: float(rates[name][g]) for name in RATE_NAMES}


def _row_counts(table: FloatArray, g: int) -> dict[str, float]:
    return dict(zip(CATEGORIES, table[g].tolist(), strict=True))
