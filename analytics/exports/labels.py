"""What SPSS and Stata files can hold: labels fitted to each format's limits.

A label longer than its format allows is shortened with an ellipsis, never cut mid-character;
the codebook keeps every label whole. The limits are the formats' own, as ReadStat (through
pyreadstat) enforces or silently applies them:

- SPSS .sav: variable labels 255 bytes, value labels 120 bytes, file label 64 bytes, each
  line of the file's notes (document records) 80 bytes, all in UTF-8;
- Stata .dta (format 118): variable labels and the data label 80 characters, value labels
  32,000 characters; Stata has no notes.

Variable names are set in microdata.py: one name of at most 28 ASCII characters serves both
formats (SPSS allows 64 bytes, Stata 32 characters), leaving room for a `_2` suffix.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

ELLIPSIS = "…"
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Limits:
    variable_label: int
    value_label: int
    file_label: int
    note_line: int  # 0: the format has no notes
    in_bytes: bool  # SPSS counts UTF-8 bytes, Stata characters

    def size(self, text: str) -> int:
        return len(text.encode("utf-8")) if self.in_bytes else len(text)

    def fits(self, text: str, limit: int) -> bool:
        return self.size(text) <= limit


SAV = Limits(variable_label=255, value_label=120, file_label=64, note_line=80, in_bytes=True)
DTA = Limits(variable_label=80, value_label=32_000, file_label=80, note_line=0, in_bytes=False)


def fit(text: str, limit: int, limits: Limits) -> str:
    """The text, or its longest start that fits with an ellipsis after it."""
    if limits.fits(text, limit):
        return text
    room = limit - limits.size(ELLIPSIS)
    kept = text
    while kept and limits.size(kept) > room:
        # Shorten by the overshoot at once (at least one character), then exactly.
        over = max(1, (limits.size(kept) - room) // (4 if limits.in_bytes else 1))
        kept = kept[:-over]
    return kept.rstrip(" :;,.·-") + ELLIPSIS


def fit_pair(head: str, tail: str, separator: str, limit: int, limits: Limits) -> str:
    """`head + separator + tail` within the limit, shortening the head first: the tail (an
    option's name, say) is what tells similar labels apart."""
    whole = f"{head}{separator}{tail}"
    if limits.fits(whole, limit):
        return whole
    fixed = separator + tail
    room = limit - limits.size(fixed)
    if room < limits.size(ELLIPSIS) + 4:
        return fit(tail, limit, limits)
    return fit(head, room, limits) + fixed


def fit_distinct(
    texts: Mapping[K, str], limit: int, limits: Limits, tag: Callable[[K], str]
) -> dict[K, str]:
    """Fitted texts that stay distinct: any that shortening made equal get their key's tag."""
    fitted = {key: fit(text, limit, limits) for key, text in texts.items()}
    seen: dict[str, int] = {}
    for text in fitted.values():
        seen[text] = seen.get(text, 0) + 1
    for key, text in texts.items():
        if seen[fitted[key]] > 1:
            fitted[key] = fit_pair(text, f"[{tag(key)}]", " ", limit, limits)
    return fitted


def note_lines(text: str, limits: Limits) -> list[str]:
    """The text as lines of at most `note_line` each, broken between words."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if limits.fits(candidate, limits.note_line):
            line = candidate
            continue
        if line:
            lines.append(line)
        while not limits.fits(word, limits.note_line):
            head = word
            while not limits.fits(head, limits.note_line):
                head = head[:-1]
            lines.append(head)
            word = word[len(head) :]
        line = word
    if line:
        lines.append(line)
    return lines
