"""Invitation letters as a print-ready PDF: one A4 page per firm, in Korean, in the order of
the letters CSV, with the personal link as text and as a QR code, and the access code.

reportlab draws the pages and embeds a subset of a Korean TrueType font (Debian's
fonts-nanum by default, LETTER_FONT to choose another); segno encodes the QR codes, which
are drawn as vector rectangles (sharp at any printer resolution). The text that every
letter shares is laid out once per file; only the firm's lines change from page to page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import segno
from django.conf import settings
from django.db.models import Max
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from surveys.models import Survey

from .credentials import letter_cases
from .models import Case, Wave

FONT, BOLD = "LetterFont", "LetterFontBold"
WIDTH, HEIGHT = A4
MARGIN = 22 * mm
TEXT_WIDTH = WIDTH - 2 * MARGIN
QR_SIZE = 38 * mm
BOX_TEXT_WIDTH = TEXT_WIDTH - QR_SIZE - 18 * mm
# Every mask is a valid QR code; choosing the one with the lowest penalty score costs four
# fifths of the encoding time, and a 38 mm symbol (modules of about 1 mm) scans with any.
QR_MASK = 2
PRIMARY = HexColor("#0b50d0")
INK = HexColor("#1e2124")
MUTED = HexColor("#464c53")
BOX = HexColor("#ecf2fe")
Progress = Callable[[float], None]


class LetterError(Exception):
    """The letters cannot be made here (no Korean font, say); the message says what to do."""


@dataclass(frozen=True)
class Letter:
    name: str
    business_id: str
    link: str
    code: str


# --- fonts ------------------------------------------------------------------------------------


def register_fonts() -> None:
    """The Korean font, read once per process; a clear message when it is not installed."""
    regular, bold = Path(settings.LETTER_FONT), Path(settings.LETTER_FONT_BOLD)
    missing = [str(path) for path in (regular, bold) if not path.is_file()]
    if missing:
        raise LetterError(
            _(
                "The Korean font for the letters is not installed (%(paths)s). Install "
                "Debian's fonts-nanum package (apt-get install fonts-nanum) or set LETTER_FONT "
                "and LETTER_FONT_BOLD to a Korean TrueType font."
            )
            % {"paths": ", ".join(missing)}
        )
    if _registered.get(FONT) == (regular, bold):
        return
    try:
        pdfmetrics.registerFont(TTFont(FONT, str(regular)))
        pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
    except TTFError as exc:
        raise LetterError(_("The letter font cannot be used: %(error)s") % {"error": exc}) from exc
    _registered[FONT] = (regular, bold)


_registered: dict[str, tuple[Path, Path]] = {}


# --- the letters ------------------------------------------------------------------------------


def letters(survey: Survey) -> Iterable[Letter]:
    """Every in-sample firm with credentials, in the letters CSV's order."""
    for case in letter_cases(survey).iterator(chunk_size=2000):
        yield _letter(case)


def _letter(case: Case) -> Letter:
    _token, code = case.derive_credentials()
    return Letter(case.frame_unit.name, case.business_id, case.respondent_link(), code)


def write_letters_pdf(survey: Survey, out: IO[bytes], progress: Progress | None = None) -> int:
    """Write every letter to `out`; returns the number of pages."""
    register_fonts()
    total = letter_cases(survey).count()
    with translation.override("ko"):
        layout = _Layout(survey)
        canvas = Canvas(out, pagesize=A4, pageCompression=1, invariant=False)
        canvas.setTitle(_("Letters: %(survey)s") % {"survey": survey.title})
        canvas.setAuthor(_("Ministry of SMEs and Startups"))
        pages = 0
        for letter in letters(survey):
            layout.draw(canvas, letter)
            canvas.showPage()
            pages += 1
            if progress and pages % 500 == 0:
                progress(pages / max(total, 1))
        if not pages:
            layout.draw_empty(canvas)
            canvas.showPage()
        canvas.save()
    if progress:
        progress(1.0)
    return pages


class _Layout:
    """One file's letters: what every letter shares is laid out once and drawn once, as a
    PDF form that each page reuses; a page adds only its firm's name, link, codes and QR."""

    def __init__(self, survey: Survey) -> None:
        self.survey = survey
        self.login = settings.SITE_URL + reverse("surveys:login")
        deadline = Wave.objects.filter(survey=survey).aggregate(end=Max("ends_at"))["end"]
        self.deadline = _date(deadline) if deadline else ""
        self.title = _("Request to take part in the %(survey)s") % {"survey": survey.title}
        self.body = [
            _(
                "The Ministry of SMEs and Startups is carrying out the %(survey)s to learn "
                "how small and medium manufacturers adopt smart manufacturing and what "
                "support they need. Your company has been chosen by statistical sampling "
                "to represent firms like it."
            )
            % {"survey": survey.title},
            _(
                "Answering online takes about 15 minutes; you may stop and continue later "
                "with the same link. Your answers are protected under the Statistics Act, "
                "used only for statistics and never published in a way that identifies "
                "your company."
            ),
        ]
        self.steps = [
            _("1. Scan the QR code on the right with your phone's camera, or"),
            _("2. open your personal link below, or"),
            _(
                "3. go to %(login)s and sign in with the business registration number and "
                "access code."
            )
            % {"login": self.login},
        ]
        self.form = ""
        self.link_y = self.values_y = self.box_top = 0.0

    def draw(self, c: Canvas, letter: Letter) -> None:
        if not self.form:
            self._draw_form(c, letter)
        c.doForm(self.form)
        top = HEIGHT - MARGIN - 28 * mm
        c.setFillColor(INK)
        c.setFont(BOLD, 13)
        c.drawString(MARGIN, top, _("%(name)s, to the person in charge") % {"name": letter.name})
        c.setFont(FONT, 10)
        c.setFillColor(MUTED)
        c.drawString(
            MARGIN, top - 6 * mm, f"{_('Business registration number')} {letter.business_id}"
        )
        c.setFillColor(INK)
        c.setFont(BOLD, 10)
        y = self.link_y
        for line in _split_link(letter.link, BOLD, 10, BOX_TEXT_WIDTH):
            c.drawString(MARGIN + 6 * mm, y, line)
            y -= 5 * mm
        c.setFont(BOLD, 14)
        c.drawString(MARGIN + 52 * mm, self.values_y, letter.business_id)
        c.drawString(MARGIN + 52 * mm, self.values_y - 8 * mm, letter.code)
        draw_qr(
            c,
            letter.link,
            WIDTH - MARGIN - QR_SIZE - 6 * mm,
            self.box_top - QR_SIZE - 10 * mm,
            QR_SIZE,
        )

    def draw_empty(self, c: Canvas) -> None:
        self._masthead(c)
        c.setFont(FONT, 12)
        c.drawString(
            MARGIN, HEIGHT - MARGIN - 28 * mm, _("No firm has a personal link and access code yet.")
        )

    def _draw_form(self, c: Canvas, first: Letter) -> None:
        """The shared part, as a form; links are equally long, so the first one sets the
        place of the lines below it."""
        self.form = "letter"
        c.beginForm(self.form)
        self._masthead(c)
        y = HEIGHT - MARGIN - 48 * mm
        c.setFillColor(INK)
        c.setFont(BOLD, 16)
        for line in simpleSplit(self.title, BOLD, 16, TEXT_WIDTH):
            c.drawString(MARGIN, y, line)
            y -= 8 * mm
        y -= 4 * mm
        c.setFont(FONT, 11)
        for paragraph in self.body:
            for line in simpleSplit(paragraph, FONT, 11, TEXT_WIDTH):
                c.drawString(MARGIN, y, line)
                y -= 6 * mm
            y -= 3 * mm
        bottom = self._answer_box(
            c, y - 4 * mm, len(_split_link(first.link, BOLD, 10, BOX_TEXT_WIDTH))
        )
        if self.deadline:
            c.setFont(BOLD, 11)
            c.setFillColor(INK)
            c.drawString(
                MARGIN, bottom - 10 * mm, _("Please answer by %(date)s.") % {"date": self.deadline}
            )
        self._footer(c)
        c.endForm()

    def _masthead(self, c: Canvas) -> None:
        top = HEIGHT - MARGIN
        c.setFillColor(PRIMARY)
        c.rect(MARGIN, top - 12 * mm, 12 * mm, 12 * mm, stroke=0, fill=1)
        c.setFillColor(HexColor("#ffffff"))
        for x, h in ((2.2, 3.0), (5.0, 5.0), (7.8, 7.0)):  # the placeholder mark's three bars
            c.rect(MARGIN + x * mm, top - 10 * mm, 2 * mm, h * mm, stroke=0, fill=1)
        c.setFillColor(INK)
        c.setFont(BOLD, 12)
        c.drawString(MARGIN + 15 * mm, top - 5 * mm, _("Ministry of SMEs and Startups"))
        c.setFont(FONT, 10)
        c.setFillColor(MUTED)
        c.drawString(MARGIN + 15 * mm, top - 10.5 * mm, self.survey.title)
        c.setStrokeColor(PRIMARY)
        c.setLineWidth(1.5)
        c.line(MARGIN, top - 15 * mm, WIDTH - MARGIN, top - 15 * mm)

    def _answer_box(self, c: Canvas, top: float, link_lines: int) -> float:
        height = 78 * mm
        bottom = top - height
        self.box_top = top
        c.setFillColor(BOX)
        c.roundRect(MARGIN, bottom, TEXT_WIDTH, height, 3 * mm, stroke=0, fill=1)
        c.setFillColor(INK)
        c.setFont(BOLD, 12)
        c.drawString(MARGIN + 6 * mm, top - 9 * mm, _("How to answer"))
        c.setFont(FONT, 10.5)
        y = top - 17 * mm
        for step in self.steps:
            for line in simpleSplit(step, FONT, 10.5, BOX_TEXT_WIDTH):
                c.drawString(MARGIN + 6 * mm, y, line)
                y -= 5.5 * mm
        y -= 2 * mm
        c.setFont(FONT, 9)
        c.setFillColor(MUTED)
        c.drawString(MARGIN + 6 * mm, y, _("Personal link"))
        self.link_y = y - 5 * mm
        y -= 5 * mm * link_lines + 9 * mm
        self.values_y = y
        c.setFont(FONT, 10)
        c.drawString(MARGIN + 6 * mm, y, _("Business registration number"))
        c.drawString(MARGIN + 6 * mm, y - 8 * mm, _("Access code"))
        return bottom

    def _footer(self, c: Canvas) -> None:
        c.setStrokeColor(HexColor("#cdd1d5"))
        c.setLineWidth(0.5)
        c.line(MARGIN, MARGIN + 10 * mm, WIDTH - MARGIN, MARGIN + 10 * mm)
        c.setFillColor(MUTED)
        c.setFont(FONT, 9.5)
        help_desk = _("Help desk: %(desk)s (weekdays 09:00–18:00)") % {
            "desk": settings.SURVEY_HELP_DESK
        }
        c.drawString(MARGIN, MARGIN + 4 * mm, help_desk)
        c.drawRightString(WIDTH - MARGIN, MARGIN + 4 * mm, _("Ministry of SMEs and Startups"))


def _date(moment: dt.datetime) -> str:
    return formats.date_format(timezone.localtime(moment).date(), "DATE_FORMAT")


def _split_link(link: str, font: str, size: float, width: float) -> list[str]:
    """A link has no spaces to break at: cut it where the line is full."""
    lines, current = [], ""
    for char in link:
        if current and pdfmetrics.stringWidth(current + char, font, size) > width:
            lines.append(current)
            current = ""
        current += char
    return [*lines, current] if current else lines


def draw_qr(c: Canvas, data: str, x: float, y: float, size: float) -> None:
    """The QR code of `data` in a size × size square (quiet zone included), each row's runs of
    dark modules as one rectangle, in module units (short numbers: small pages)."""
    # Error correction M survives a smudge or a fold; no boost keeps the symbol small.
    qr = segno.make_qr(data, error="m", boost_error=False, mask=QR_MASK)
    matrix = qr.matrix
    count = len(matrix) + 8  # four modules of quiet zone on each side
    c.saveState()
    c.translate(x, y)
    c.scale(size / count, size / count)
    c.setFillColor(HexColor("#ffffff"))
    c.rect(0, 0, count, count, stroke=0, fill=1)
    path = c.beginPath()
    for r, row in enumerate(matrix):
        bottom = count - 5 - r
        col, n = 0, len(row)
        while col < n:
            if row[col]:
                start = col
                while col < n and row[col]:
                    col += 1
                path.rect(start + 4, bottom, col - start, 1)
            else:
                col += 1
    c.setFillColor(HexColor("#000000"))
    c.drawPath(path, stroke=0, fill=1)
    c.restoreState()
