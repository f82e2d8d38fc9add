"""Fieldwork status (one row per sampled firm) and the contact log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.utils.translation import gettext as _

from analytics.engine import aapor
from respondents.models import Case, ContactAttempt, DispositionEvent, Message
from surveys.models import Response, Survey

from .options import ExportOptions, row_count
from .tables import Table


def fieldwork_table(options: ExportOptions) -> Table:
    header = [
        _("business registration number"), _("name"), _("stratum"), _("disposition"),
        _("disposition label"), _("disposition date"), _("wave"), _("response status"),
        _("response mode"), _("submitted"), _("last contact"), _("emails sent"),
    ]  # fmt: skip
    if options.contact:
        header += [_("email"), _("phone")]
    rows = _fieldwork_rows(options.survey, options.contact)
    widths = (16, 30, 20, 10, 30, 18, 16, 12, 10, 18, 18, 10, 26, 16)
    return Table(header, rows, row_count(options), sheet=_("fieldwork"), widths=widths)


def _fieldwork_rows(survey: Survey, contact: bool) -> Iterator[list[Any]]:
    current = DispositionEvent.objects.filter(case=OuterRef("pk"), applied=True)
    last = ContactAttempt.objects.filter(case=OuterRef("pk")).order_by("-at", "-pk")
    sent = (
        Message.objects.filter(case=OuterRef("pk"), status=Message.Status.SENT)
        .values("case")
        .annotate(count=Count("pk"))
        .values("count")
    )
    fields = [
        "business_id", "frame_unit__name", "stratum__key", "disposition", "disposition_at",
        "wave_name", "response__status", "response__mode", "response__submitted_at",
        "last_contact", "emails_sent",
    ]  # fmt: skip
    if contact:
        fields += ["frame_unit__email", "frame_unit__phone"]
    cases = (
        Case.objects.in_sample()
        .filter(survey=survey)
        .annotate(
            wave_name=Subquery(current.order_by("-at", "-pk").values("wave__name")[:1]),
            last_contact=Subquery(last.values("at")[:1]),
            emails_sent=Subquery(sent[:1]),
        )
        .order_by("stratum__key", "selection_order")
        .values_list(*fields)
    )
    statuses, modes = dict(Response.Status.choices), dict(Response.Mode.choices)
    for values in cases.iterator(chunk_size=2000):
        row = list(values)
        row.insert(4, _disposition_label(row[3]))
        row[6] = row[6] or ""
        row[7] = str(statuses.get(row[7], row[7] or _("not started")))
        row[8] = str(modes.get(row[8], row[8] or ""))
        row[11] = row[11] or 0
        yield row


def _disposition_label(code: str) -> str:
    found = aapor.DISPOSITION_CODES.get(code)
    return _(found.label) if found else ""


def contacts_table(options: ExportOptions) -> Table:
    header = [
        _("business registration number"), _("name"), _("channel"), _("date"), _("wave"),
        _("staff"), _("outcome"), _("note"),
    ]  # fmt: skip
    fields = [
        "case__business_id", "case__frame_unit__name", "channel", "at", "wave__name",
        "staff__username", "outcome", "note",
    ]  # fmt: skip
    if options.contact:
        header += [_("email"), _("phone")]
        fields += ["case__frame_unit__email", "case__frame_unit__phone"]
    attempts = (
        ContactAttempt.objects.filter(case__survey=options.survey)
        .order_by("at", "pk")
        .values_list(*fields)
    )
    rows = (_contact_row(values) for values in attempts.iterator(chunk_size=5000))
    widths = (16, 30, 10, 18, 16, 14, 22, 60, 26, 16)
    return Table(header, rows, row_count(options), sheet=_("contacts"), widths=widths)


CHANNELS = dict(ContactAttempt.Channel.choices)
OUTCOMES = dict(ContactAttempt.Outcome.choices)


def _contact_row(values: Sequence[Any]) -> list[Any]:
    row = list(values)
    row[2] = str(CHANNELS.get(row[2], row[2]))
    row[4] = row[4] or ""
    row[5] = row[5] or ""
    row[6] = str(OUTCOMES.get(row[6], row[6]))
    return row
