"""Fieldwork managers load a survey's sampling frame and see what it holds."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from surveys.models import Survey

from .. import frame_changes
from ..classifications import (
    DERIVED,
    INDUSTRY_GROUP_LABELS,
    REGION_AREA_LABELS,
    VALUE_LABELS,
    Region,
    SizeClass,
)
from ..forms import FrameUploadForm, LinkUploadForm
from ..frame_import import import_frame
from ..models import FrameChange, frame_variable
from ..sampling import attribute_keys, variable_label
from ..tabular import ImportRefused, write_report

SHOWN_PROBLEMS = 50
CHANGES_PER_PAGE = 50
REPORT_NAME_RE = re.compile(r"[0-9a-f]{32}")
# Reports name firms and their contacts: keep them only as long as a fix takes.
REPORT_MAX_AGE_SECONDS = 7 * 24 * 3600

Row = tuple[str, int, float]  # label, firms, percent of the frame
Table = tuple[str, list[Row]]


@login_required
@permission_required("respondents.manage_frame", raise_exception=True)
def summary(request: HttpRequest, survey: str) -> HttpResponse:
    target = get_object_or_404(Survey.objects.select_related("previous_round"), slug=survey)
    tables = frame_tables(target)
    context = {
        "survey": target,
        "total": sum(count for _label, count, _share in tables[0][1]),
        "tables": tables,
        "sources": derived_sources(target),
        "drawn": _is_drawn(target),
    }
    if target.previous_round is not None:
        context.update(_changes_context(request, target))
    return render(request, "respondents/frame_summary.html", context)


@dataclass(frozen=True)
class ChangeRow:
    change: FrameChange
    stratum_before: str
    stratum_now: str
    what: list[str]


def _changes_context(request: HttpRequest, survey: Survey) -> dict[str, Any]:
    """The change report against the previous round's frame: counts by stratum, and the
    firms, of one kind if asked (?kind=birth), a page at a time."""
    kind = request.GET.get("kind", "")
    changes = survey.frame_changes.all()
    if kind in FrameChange.Kind.values:
        changes = changes.filter(kind=kind)
    report = frame_changes.report(survey)
    labels = report.labels if report else {}
    page = Paginator(changes, CHANGES_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "report": report,
        "link_count": survey.id_links.count(),
        "kind": kind,
        "kinds": FrameChange.Kind.choices,
        "changes": page,
        "change_rows": [_change_row(change, labels) for change in page],
    }


def _change_row(change: FrameChange, labels: Mapping[str, str]) -> ChangeRow:
    """A firm of the change report as read: strata and classes by their labels."""
    what = []
    for flag, variable, title in (
        ("size_changed", "size_class", _("size")),
        ("industry_changed", "industry_group", _("industry")),
        ("region_changed", "region", _("region")),
    ):
        if getattr(change, flag):
            names = VALUE_LABELS[variable]
            before, now = change.before.get(variable, ""), change.now.get(variable, "")
            what.append(f"{title}: {names.get(before, before)} → {names.get(now, now)}")
    return ChangeRow(
        change,
        labels.get(change.stratum_before, change.stratum_before),
        labels.get(change.stratum_now, change.stratum_now),
        what,
    )


@login_required
@permission_required("respondents.manage_frame", raise_exception=True)
def changes_csv(request: HttpRequest, survey: str) -> HttpResponse:
    target = get_object_or_404(Survey, slug=survey)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{target.slug}-frame-changes.csv"'
    response.write("\ufeff")  # Excel reads the Korean names as UTF-8 with the BOM
    frame_changes.write_changes_csv(target, response)  # type: ignore[arg-type]
    return response


@login_required
@permission_required("respondents.manage_frame", raise_exception=True)
def links(request: HttpRequest, survey: str) -> HttpResponse:
    """The round's mapping of changed business IDs: the links, and a file to replace them."""
    target = get_object_or_404(Survey.objects.select_related("previous_round"), slug=survey)
    form = LinkUploadForm(request.POST or None, request.FILES or None)
    context: dict[str, Any] = {
        "survey": target,
        "form": form,
        "drawn": _is_drawn(target),
        "columns": frame_changes.LINK_COLUMNS,
        "id_links": target.id_links.all()[:SHOWN_PROBLEMS],
        "link_count": target.id_links.count(),
    }
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        try:
            count = frame_changes.import_links(target, file, filename=file.name, user=request.user)
        except ImportRefused as error:
            context.update(error=error, problems=error.problems[:SHOWN_PROBLEMS])
        else:
            messages.success(
                request,
                _("Loaded %(count)s links of changed business IDs; the change report is updated.")
                % {"count": f"{count:,}"},
            )
            return redirect("respondents:frame_summary", survey=target.slug)
    return render(request, "respondents/frame_links.html", context)


@login_required
@permission_required("respondents.manage_frame", raise_exception=True)
def upload(request: HttpRequest, survey: str) -> HttpResponse:
    target = get_object_or_404(Survey, slug=survey)
    form = FrameUploadForm(request.POST or None, request.FILES or None)
    context: dict[str, object] = {"survey": target, "form": form, "drawn": _is_drawn(target)}
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        try:
            result = import_frame(target, file, filename=file.name, user=request.user)
        except ImportRefused as error:
            context.update(
                error=error,
                problems=error.problems[:SHOWN_PROBLEMS],
                report=_save_report(target, error) if error.problems else None,
            )
        else:
            messages.success(
                request,
                _("Imported %(rows)s firms in %(seconds).1f seconds.")
                % {"rows": f"{result.rows:,}", "seconds": result.seconds},
            )
            if result.links_removed:
                messages.warning(
                    request,
                    _(
                        "The mapping of changed business IDs (%(count)s links) belonged to the "
                        "frame replaced and was removed: upload it again."
                    )
                    % {"count": result.links_removed},
                )
            return redirect("respondents:frame_summary", survey=target.slug)
    return render(request, "respondents/frame_upload.html", context)


@login_required
@permission_required("respondents.manage_frame", raise_exception=True)
def report(request: HttpRequest, survey: str, name: str) -> FileResponse:
    target = get_object_or_404(Survey, slug=survey)
    if not REPORT_NAME_RE.fullmatch(name):
        raise Http404
    path = _report_path(target, name)
    if not path.is_file():
        raise Http404
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"frame-problems-{target.slug}.csv",
        content_type="text/csv; charset=utf-8",
    )


def frame_tables(survey: Survey) -> list[Table]:
    """Firms by size class, region, region area and industry group: one grouped pass over
    the frame, the margins summed here. The derived variables are the frame's own columns
    where it has them (respondents.models.frame_variable)."""
    cells = (
        survey.frame_units.order_by()
        .annotate(area=frame_variable("region_area"), group=frame_variable("industry_group"))
        .values_list("size_class", "region", "area", "group")
        .annotate(n=Count("id"))
    )
    margins: tuple[dict[str, int], ...] = ({}, {}, {}, {})
    for *keys, n in cells:
        for margin, key in zip(margins, keys, strict=True):
            margin[key] = margin.get(key, 0) + n
    sizes, regions, areas, groups = margins
    total = sum(sizes.values())
    return [
        (_("Size class"), _rows(sizes, dict(SizeClass.choices), total)),
        (_("Region"), _rows(regions, dict(Region.choices), total)),
        (_("Region area"), _rows(areas, _with_others(REGION_AREA_LABELS, areas), total)),
        (_("Industry group"), _rows(groups, _with_others(INDUSTRY_GROUP_LABELS, groups), total)),
    ]


def _with_others(labels: Mapping[str, str | Promise], counts: dict[str, int]) -> dict[str, Any]:
    """The usual categories, then any other value a frame's own column brings."""
    return {**labels, **{key: key for key in counts if key not in labels}}


def derived_sources(survey: Survey) -> list[tuple[str, bool]]:
    """For each derived variable, whether the frame brings it as a column of its own."""
    keys = set(attribute_keys(survey))
    return [(str(variable_label(name)), name in keys) for name in DERIVED]


def _rows(counts: dict[str, int], labels: Mapping[str, str | Promise], total: int) -> list[Row]:
    """Every category in its usual order, with zero for the empty ones."""
    return [
        (str(label), counts.get(code, 0), 100 * counts.get(code, 0) / (total or 1))
        for code, label in labels.items()
    ]


def _is_drawn(survey: Survey) -> bool:
    return survey.designs.filter(drawn_at__isnull=False).exists()


def _report_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "reports"


def _report_path(survey: Survey, name: str) -> Path:
    return _report_dir() / f"frame-{survey.pk}-{name}.csv"


def _save_report(survey: Survey, error: ImportRefused) -> str:
    """Keep the refusal report so it can be downloaded without uploading the file again."""
    _report_dir().mkdir(parents=True, exist_ok=True)
    _remove_old_reports()
    name = secrets.token_hex(16)
    # With a BOM, Excel opens the Korean text of the report correctly.
    with _report_path(survey, name).open("w", encoding="utf-8-sig", newline="") as out:
        write_report(error, out)
    return name


def _remove_old_reports() -> None:
    cutoff = time.time() - REPORT_MAX_AGE_SECONDS
    for path in _report_dir().glob("frame-*.csv"):
        with contextlib.suppress(FileNotFoundError):  # another request removed it first
            if path.stat().st_mtime < cutoff:
                path.unlink()
