"""The Korean catalogue: complete, compiled, placeholders intact, and used by both engines.

Runs with Django (the project's pytest settings) or without it:
`pytest -p no:django --noconftest tests/test_translations.py` (the Django smoke tests then
set Django up themselves; no database is needed).
"""

from __future__ import annotations

import ast
import gettext
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parent.parent / "locale" / "ko" / "LC_MESSAGES"
PO = LOCALE / "django.po"
MO = LOCALE / "django.mo"

# printf-style placeholders as Python's % operator reads them ("%%" is removed first), and
# str.format / Korean message-template fields such as {link}. JSON examples ({"zone": ...})
# are not fields.
PRINTF = re.compile(r"%(?:\((?P<name>[^)]+)\))?[-#0+]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGcrsa]")
BRACE = re.compile(r"\{(\w+)\}")
TAG = re.compile(r"</?[A-Za-z][^>]*>")
# A git checkout writes django.mo and django.po within moments of each other, in either order.
CHECKOUT_SLACK_SECONDS = 5


@dataclass
class Entry:
    msgid: str
    msgid_plural: str | None
    msgctxt: str | None
    msgstr: dict[int, str]
    flags: set[str]
    line: int

    @property
    def sources(self) -> list[str]:
        return [self.msgid] if self.msgid_plural is None else [self.msgid, self.msgid_plural]

    @property
    def key(self) -> str:
        return self.msgid if self.msgctxt is None else f"{self.msgctxt}\x04{self.msgid}"


def parse_po(path: Path) -> list[Entry]:
    """A tiny PO reader: msgctxt, msgid, msgid_plural, msgstr[n] and flags; skips #~ entries."""
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    flags: set[str] = set()
    keyword, first_line = "", 0
    for number, raw in enumerate([*path.read_text(encoding="utf-8").splitlines(), ""], 1):
        line = raw.strip()
        if not line and fields:
            entries.append(_entry(fields, flags, first_line))
            fields, flags = {}, set()
        elif line.startswith("#,"):
            flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith('"'):
            fields[keyword] += ast.literal_eval(line)
        elif line and not line.startswith("#"):
            keyword, _, literal = line.partition(" ")
            fields[keyword] = ast.literal_eval(literal)
            first_line = number if keyword == "msgid" else first_line
    return entries


def _entry(fields: dict[str, str], flags: set[str], line: int) -> Entry:
    msgstr = {
        int(match[1] or 0): text
        for keyword, text in fields.items()
        if (match := re.fullmatch(r"msgstr(?:\[(\d+)\])?", keyword))
    }
    return Entry(
        msgid=fields["msgid"],
        msgid_plural=fields.get("msgid_plural"),
        msgctxt=fields.get("msgctxt"),
        msgstr=msgstr,
        flags=flags,
        line=line,
    )


def printf_placeholders(text: str) -> tuple[set[str], list[str]]:
    """Named placeholders as a set, positional ones (%s, %d) in order."""
    named: set[str] = set()
    positional: list[str] = []
    for match in PRINTF.finditer(text.replace("%%", "")):
        if match["name"] is None:
            positional.append(match[0])
        else:
            named.add(match[0])
    return named, positional


CATALOGUE = parse_po(PO)
HEADER = next(entry for entry in CATALOGUE if entry.msgid == "")
MESSAGES = [entry for entry in CATALOGUE if entry.msgid != ""]


def translations() -> Iterator[tuple[Entry, str]]:
    for entry in MESSAGES:
        for text in entry.msgstr.values():
            yield entry, text


def describe(entry: Entry) -> str:
    return f"django.po line {entry.line}: {entry.msgid!r}"


def test_the_catalogue_is_korean_with_one_plural_form() -> None:
    # given the header of the catalogue
    header = dict(line.split(": ", 1) for line in HEADER.msgstr[0].splitlines() if ": " in line)

    # then
    assert header["Language"] == "ko"
    assert "charset=UTF-8" in header["Content-Type"]
    assert header["Plural-Forms"].replace(" ", "") == "nplurals=1;plural=0;"
    assert len(MESSAGES) > 900


def test_every_message_is_translated() -> None:
    empty = [describe(entry) for entry, text in translations() if not text.strip()]
    plural_forms = [describe(e) for e in MESSAGES if e.msgid_plural and set(e.msgstr) != {0}]

    assert empty == []
    assert plural_forms == []


def test_no_entry_is_fuzzy() -> None:
    fuzzy = [describe(entry) for entry in CATALOGUE if "fuzzy" in entry.flags]

    assert fuzzy == []


def test_translations_keep_every_printf_placeholder() -> None:
    wrong = []
    for entry, text in translations():
        # Korean has one form for every n, so it must carry the plural's placeholders too.
        named = set().union(*(printf_placeholders(source)[0] for source in entry.sources))
        positional = printf_placeholders(entry.sources[-1])[1]
        if printf_placeholders(text) != (named, positional):
            wrong.append(f"{describe(entry)} -> {text!r}")

    assert wrong == []


def test_translations_keep_every_brace_placeholder_and_html_tag() -> None:
    wrong = []
    for entry, text in translations():
        braces = set().union(*(set(BRACE.findall(source)) for source in entry.sources))
        tags = set().union(*(set(TAG.findall(source)) for source in entry.sources))
        if set(BRACE.findall(text)) != braces or set(TAG.findall(text)) != tags:
            wrong.append(f"{describe(entry)} -> {text!r}")

    assert wrong == []


def test_translations_keep_leading_and_trailing_whitespace() -> None:
    wrong = [
        describe(entry)
        for entry, text in translations()
        if (text[:1].isspace(), text[-1:].isspace(), text.endswith("\n"))
        != (entry.msgid[:1].isspace(), entry.msgid[-1:].isspace(), entry.msgid.endswith("\n"))
    ]

    assert wrong == []


def test_the_mo_file_is_not_older_than_the_po_file() -> None:
    assert MO.exists(), "run: python manage.py compilemessages -l ko --ignore=.venv"
    assert MO.stat().st_mtime >= PO.stat().st_mtime - CHECKOUT_SLACK_SECONDS, (
        "django.mo is older than django.po: run python manage.py compilemessages -l ko"
    )


def test_the_mo_file_holds_exactly_the_po_translations() -> None:
    # given the compiled catalogue as Python's gettext reads it
    with MO.open("rb") as fp:
        compiled = gettext.GNUTranslations(fp)._catalog  # type: ignore[attr-defined]

    # when the .po is turned into the same mapping
    expected: dict[object, str] = {}
    for entry in MESSAGES:
        if entry.msgid_plural is None:
            expected[entry.key] = entry.msgstr[0]
        else:
            expected.update({(entry.key, n): text for n, text in entry.msgstr.items()})

    # then
    compiled = {key: text for key, text in compiled.items() if key != ""}
    assert compiled == expected, "django.mo is stale: run compilemessages -l ko"


@pytest.fixture(scope="module")
def django_ready() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


@pytest.mark.usefixtures("django_ready")
def test_python_code_strings_are_korean() -> None:
    from django.utils import translation

    with translation.override("ko"):
        assert translation.gettext("Next") == "다음"
        assert translation.gettext("Business registration number") == "사업자등록번호"
        assert translation.ngettext("%(count)s firm", "%(count)s firms", 3) % {"count": 3} == (
            "기업 3개"
        )
    with translation.override("en"):
        assert translation.gettext("Next") == "Next"


@pytest.mark.usefixtures("django_ready")
def test_jinja2_respondent_strings_are_korean() -> None:
    from django.template import engines
    from django.utils import translation

    jinja = engines["jinja2"]
    template = jinja.from_string(
        '{{ _("Submit the survey") }}|{{ _("Page %(n)s of %(total)s")|format(n=2, total=5) }}'
    )

    with translation.override("ko"):
        assert template.render() == "조사표 제출|5페이지 중 2페이지"


@pytest.mark.usefixtures("django_ready")
def test_django_template_strings_are_korean() -> None:
    from django.template import engines
    from django.utils import translation

    template = engines["django"].from_string(
        "{% load i18n %}{% translate 'SE (50 %)' %}|"
        "{% blocktranslate count counter=3 %}{{ counter }} more problem is not listed."
        "{% plural %}{{ counter }} more problems are not listed.{% endblocktranslate %}"
    )

    with translation.override("ko"):
        assert template.render({}) == "표준오차 (50 %)|이 밖에 문제 3건은 표시하지 않았습니다."
