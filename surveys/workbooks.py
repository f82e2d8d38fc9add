"""Reading uploaded workbooks safely, and the error that lists what is wrong with one."""

from __future__ import annotations

import zipfile
import zlib
from io import BytesIO
from xml.etree.ElementTree import ParseError, iterparse

from django.conf import settings
from django.utils.translation import gettext as _


class FormError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_size(data: bytes) -> int:
    """Refuse a workbook that would expand too far, before any parser reads it: the sizes
    its zip members declare, then the rows of its sheets, counted as the XML streams by and
    never past the limit (a 5 MB file can unpack to 150 MB of 400,000 rows). Returns the
    expanded size. An .xls file is not a zip: its own size counts."""
    if not zipfile.is_zipfile(BytesIO(data)):
        if len(data) > settings.MAX_FORM_EXPANDED_BYTES:
            raise FormError([_too_large()])
        return len(data)
    try:
        with zipfile.ZipFile(BytesIO(data)) as book:
            members = book.infolist()
            expanded = sum(member.file_size for member in members)
            if len(members) > MAX_MEMBERS or expanded > settings.MAX_FORM_EXPANDED_BYTES:
                raise FormError([_too_large()])
            for member in members:
                if member.filename.startswith("xl/worksheets/") and member.filename.endswith(
                    ".xml"
                ):
                    _count_rows(book, member)
    except (zipfile.BadZipFile, zlib.error, EOFError, ParseError, OSError) as exc:
        raise FormError([_("The file could not be read as an XLSForm: %s") % exc]) from exc
    return expanded


MAX_MEMBERS = 200


def _count_rows(book: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    rows = 0
    with book.open(member) as sheet:
        # The member's size is bounded already; ElementTree resolves no external entity and
        # expat (>= 2.4) limits entity amplification.
        for _event, element in iterparse(sheet):  # noqa: S314
            if element.tag.endswith("}row") or element.tag == "row":
                rows += 1
                if rows > settings.MAX_FORM_ROWS:
                    raise FormError(
                        [
                            _(
                                "A sheet of the workbook has more than %(rows)s rows; a "
                                "questionnaire has far fewer."
                            )
                            % {"rows": f"{settings.MAX_FORM_ROWS:,}"}
                        ]
                    )
            element.clear()


def _too_large() -> str:
    return _(
        "The workbook unpacks to more than %(size)s MB; a questionnaire is far smaller. "
        "Remove unused sheets, rows and images."
    ) % {"size": settings.MAX_FORM_EXPANDED_BYTES // 2**20}
