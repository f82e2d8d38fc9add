"""Every edit of a survey's answers, oldest first: the audit trail as a file (sec. L)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from surveys.models import Survey, ValueEdit

from .tables import Table


def edits_table(survey: Survey) -> Table:
    header = [
        _("business registration number"), _("question"), _("old value"), _("new value"),
        _("edit"), _("edit rule"), _("reason"), _("by"), _("time"),
    ]  # fmt: skip
    edits = ValueEdit.objects.filter(response__case__survey=survey)
    widths = (16, 18, 14, 14, 12, 24, 40, 14, 18)
    return Table(header, _rows(edits), edits.count(), sheet=_("edits"), widths=widths)


def _rows(edits: Any) -> Iterator[list[Any]]:
    fields = (
        "response__case__business_id", "item", "old", "new", "kind", "rule", "reason",
        "by__username", "at",
    )  # fmt: skip
    for row in edits.order_by("at", "pk").values_list(*fields).iterator(chunk_size=2000):
        business_id, item, old, new, kind, rule, reason, by, at = row
        yield [business_id, item, _value(old), _value(new), kind, rule, reason, by or "", at]


def _value(value: Any) -> Any:
    """A stored answer as one cell: numbers stay numbers, several choices one text."""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return int(value)
    return value


def as_text(row: Sequence[Any]) -> list[Any]:
    """A row for CSV: times in the local zone, to the second."""
    return [
        timezone.localtime(v).isoformat(sep=" ", timespec="seconds") if hasattr(v, "tzinfo") else v
        for v in row
    ]
