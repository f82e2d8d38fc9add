"""A round's frame against the previous round's: the change report and the mapping of
changed business IDs.

The report lists every firm that differs between the two frames: births (in this year's
frame only), deaths (in last year's only), firms whose size class, industry (KSIC division
or industry group) or region changed, and the firms linked by the mapping; it counts them
by stratum, under the previous round's stratification.

The mapping (a CSV or XLSX file with old_business_id, new_business_id, kind = merger,
split or renumbered) links firms whose business ID changed. A linked firm is no birth and
no death, and carries a permanent random number over (methodology M1): the number of an old
firm goes to at most one new firm, and a new firm takes at most one number, by these rules,
in the file's order:

- a firm that keeps its business ID keeps its own number (an absorbing firm, a split firm's
  continuing part), and such an old firm gives its number to no one else;
- a merger: the new firm takes the number of the first old firm listed for it;
- a split: the first new firm listed keeps the old firm's number, the others keep the new
  numbers drawn for them at the frame's import;
- a renumbered firm keeps its number.

A linked firm's unit points at the unit whose number it carries (FrameUnit.previous), and
so its case at the old firm's case (Case.previous, at the draw).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.spreadsheets import csv_writer
from surveys.models import Survey

from . import sampling
from .models import (
    BusinessIdLink,
    FrameChange,
    FrameImport,
    FrameUnit,
    SampleDesign,
    Stratum,
    frame_variable,
)
from .tabular import ImportRefused, ProblemLog, Source, TemplateColumn, open_binary, read_table

LINK_COLUMNS = (
    TemplateColumn(
        "old_business_id",
        gettext_lazy("The firm's business registration number in last year's frame."),
        "123-45-67890",
    ),
    TemplateColumn(
        "new_business_id",
        gettext_lazy("Its business registration number in this year's frame."),
        "123-86-54321",
    ),
    TemplateColumn(
        "kind", gettext_lazy("merger, split or renumbered (or 합병, 분할, 번호변경)."), "renumbered"
    ),
)
KINDS = {
    "merger": BusinessIdLink.Kind.MERGER,
    "합병": BusinessIdLink.Kind.MERGER,
    "split": BusinessIdLink.Kind.SPLIT,
    "분할": BusinessIdLink.Kind.SPLIT,
    "renumbered": BusinessIdLink.Kind.RENUMBERED,
    "번호변경": BusinessIdLink.Kind.RENUMBERED,
}
COUNTS = ("births", "deaths", "moved_in", "moved_out", "size", "industry", "region", "linked")


@dataclass(frozen=True)
class Firm:
    pk: int
    business_id: str
    name: str
    size_class: str
    division: str  # the KSIC division, the code's first two digits
    industry_group: str
    region: str
    stratum: str

    @property
    def classes(self) -> dict[str, str]:
        return {
            "size_class": self.size_class,
            "ksic_division": self.division,
            "industry_group": self.industry_group,
            "region": self.region,
        }


# --- the change report --------------------------------------------------------------------


def refresh(survey: Survey) -> None:
    """Write the change report of the survey's frame against the previous round's (none
    without a previous round or either frame), as FrameChange rows and, by stratum, on the
    latest FrameImport."""
    FrameChange.objects.filter(survey=survey).delete()
    latest = FrameImport.objects.filter(survey=survey).first()
    previous = survey.previous_round
    if previous is None or latest is None or not previous.frame_units.exists():
        return
    design = report_design(survey)
    before, values_before = _firms(previous, design)
    now, values_now = _firms(survey, design)
    links = list(BusinessIdLink.objects.filter(survey=survey))
    changes = list(_changes(survey, before, now, links))
    FrameChange.objects.bulk_create(changes, batch_size=2000)
    latest.report = {
        "previous": previous.slug,
        "variables": list(design.strata_variables) if design else [],
        "strata": _by_stratum(before, now, changes, {**values_before, **values_now}),
    }
    latest.save(update_fields=["report"])


def report_design(survey: Survey) -> SampleDesign | None:
    """The stratification the report counts by: the previous round's drawn design, else
    this round's design (settings copied at the start of the round)."""
    previous = survey.previous_round
    drawn = sampling.drawn_design(previous) if previous is not None else None
    return drawn or survey.designs.order_by("-pk").first()


def _firms(
    survey: Survey, design: SampleDesign | None
) -> tuple[dict[str, Firm], dict[str, dict[str, str]]]:
    """The frame's firms by business ID, each with its stratum ("" when the design's
    variables do not apply to this frame), and the strata's values."""
    strata = sampling.UnitStrata({}, {})
    if design is not None:
        # A frame that lacks one of the design's variables is reported without strata.
        with contextlib.suppress(sampling.SamplingError):
            strata = sampling.strata_of(survey, design)
    rows = (
        survey.frame_units.annotate(group=frame_variable("industry_group"))
        .order_by("business_id")
        .values_list("pk", "business_id", "name", "size_class", "ksic", "group", "region")
    )
    firms = {
        business_id: Firm(
            pk, business_id, name, size, ksic[:2], group, region, strata.codes.get(pk, "")
        )
        for pk, business_id, name, size, ksic, group, region in rows.iterator(chunk_size=10_000)
    }
    return firms, strata.values


def _changes(
    survey: Survey, before: dict[str, Firm], now: dict[str, Firm], links: list[BusinessIdLink]
) -> Iterator[FrameChange]:
    linked_old = {link.old_business_id for link in links}
    linked_new = {link.new_business_id for link in links}
    for business_id, firm in now.items():
        earlier = before.get(business_id)
        if earlier is not None:
            if earlier.classes != firm.classes or earlier.stratum != firm.stratum:
                yield _change(survey, FrameChange.Kind.CHANGED, earlier, firm)
        elif business_id not in linked_new:
            yield _change(survey, FrameChange.Kind.BIRTH, None, firm)
    for business_id, firm in before.items():
        if business_id not in now and business_id not in linked_old:
            yield _change(survey, FrameChange.Kind.DEATH, firm, None)
    for link in links:
        old, new = before.get(link.old_business_id), now.get(link.new_business_id)
        if old is not None and new is not None:
            yield _change(survey, FrameChange.Kind.LINKED, old, new, link=link.kind)


def _change(
    survey: Survey, kind: str, before: Firm | None, now: Firm | None, link: str = ""
) -> FrameChange:
    flags = _flags(before, now) if before is not None and now is not None else (False,) * 3
    named = now or before
    return FrameChange(
        survey=survey,
        kind=kind,
        link=link,
        business_id=now.business_id if now else "",
        previous_business_id=before.business_id if before else "",
        name=named.name if named else "",
        stratum_before=before.stratum if before else "",
        stratum_now=now.stratum if now else "",
        before=before.classes if before else {},
        now=now.classes if now else {},
        size_changed=flags[0],
        industry_changed=flags[1],
        region_changed=flags[2],
    )


def _flags(before: Firm, now: Firm) -> tuple[bool, bool, bool]:
    """Whether the size class, the industry (division or group) and the region changed."""
    return (
        before.size_class != now.size_class,
        (before.division, before.industry_group) != (now.division, now.industry_group),
        before.region != now.region,
    )


def _by_stratum(
    before: dict[str, Firm],
    now: dict[str, Firm],
    changes: list[FrameChange],
    values: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """Per stratum: firms in each frame and the changes, each counted where it shows: a
    birth in its stratum now, a death in its stratum last year, a move out of the stratum
    it left and into the one it joined, and changes of class in the firm's stratum now."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for firm in before.values():
        counts[firm.stratum]["before"] += 1
    for firm in now.values():
        counts[firm.stratum]["now"] += 1
    for change in changes:
        if change.kind == FrameChange.Kind.BIRTH:
            counts[change.stratum_now]["births"] += 1
        elif change.kind == FrameChange.Kind.DEATH:
            counts[change.stratum_before]["deaths"] += 1
            continue
        if change.kind == FrameChange.Kind.LINKED:
            counts[change.stratum_now]["linked"] += 1
        if change.stratum_before and change.stratum_before != change.stratum_now:
            counts[change.stratum_before]["moved_out"] += 1
            counts[change.stratum_now]["moved_in"] += 1
        for flag in ("size", "industry", "region"):
            counts[change.stratum_now][flag] += getattr(change, f"{flag}_changed")
    return [
        {
            "key": key,
            "values": values.get(key, {}),
            **{k: counts[key][k] for k in ("before", "now", *COUNTS)},
        }
        for key in sorted(counts)
    ]


@dataclass(frozen=True)
class Report:
    previous: str
    variables: list[str]  # the stratification's variables (names)
    strata: list[dict[str, Any]]  # key, values and counts by stratum

    @property
    def variable_labels(self) -> list[str]:
        return [sampling.variable_label(name) for name in self.variables]

    @property
    def labels(self) -> dict[str, str]:
        """Each stratum's values by their labels, in the reader's language."""
        return {row["key"]: Stratum.label_of(row["values"], self.variables) for row in self.strata}

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The strata's counts, each with its label."""
        labels = self.labels
        return [{**row, "label": labels[row["key"]]} for row in self.strata]

    @property
    def total(self) -> dict[str, int]:
        return {k: sum(row[k] for row in self.strata) for k in ("before", "now", *COUNTS)}

    @property
    def stratified(self) -> bool:
        return any(row["key"] for row in self.strata)


def report(survey: Survey) -> Report | None:
    """The stored change report of the survey's frame, None when there is none."""
    latest = FrameImport.objects.filter(survey=survey).only("report").first()
    if latest is None or not latest.report:
        return None
    stored = latest.report
    return Report(stored["previous"], stored["variables"], stored["strata"])


CSV_COLUMNS = (
    "kind", "link", "business_id", "previous_business_id", "name", "stratum_before",
    "stratum_now", "size_class_before", "size_class_now", "ksic_division_before",
    "ksic_division_now", "industry_group_before", "industry_group_now", "region_before",
    "region_now", "size_changed", "industry_changed", "region_changed",
)  # fmt: skip


def write_changes_csv(survey: Survey, out: IO[str]) -> None:
    """Every firm of the change report, one a line, with its classes in both years."""
    writer = csv_writer(out)
    writer.writerow(CSV_COLUMNS)
    for change in survey.frame_changes.order_by("kind", "business_id", "previous_business_id"):
        writer.writerow(
            [
                change.kind,
                change.link,
                change.business_id,
                change.previous_business_id,
                change.name,
                change.stratum_before,
                change.stratum_now,
                *itertools.chain.from_iterable(
                    (change.before.get(name, ""), change.now.get(name, ""))
                    for name in ("size_class", "ksic_division", "industry_group", "region")
                ),
                int(change.size_changed),
                int(change.industry_changed),
                int(change.region_changed),
            ]
        )


# --- the mapping of changed business IDs ----------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    old: str
    new: str
    kind: str


def import_links(survey: Survey, source: Source, *, filename: str, user: Any = None) -> int:
    """Replace the round's mapping of changed business IDs with the file's, all or nothing
    (ImportRefused names each problem's row), carry the numbers over and write the change
    report again. Returns the number of links."""
    with (
        open_binary(source) as stream,
        read_table(stream, filename) as (rows, _file_format),
        transaction.atomic(),
    ):
        _lock_round(survey)
        log = ProblemLog()
        positions = _link_columns(next(rows, None))
        parsed = list(_parse(rows, positions, log))
        old_ids = set(survey.previous_round.frame_units.values_list("business_id", flat=True))  # type: ignore[union-attr]
        new_ids = set(survey.frame_units.values_list("business_id", flat=True))
        _check_links(parsed, old_ids, new_ids, log)
        if log.total:
            raise log.refuse(_("The mapping was not loaded: the file has problems."))
        if not parsed:
            raise ImportRefused(_("The mapping was not loaded: the file has no links."))
        BusinessIdLink.objects.filter(survey=survey).delete()
        by = user if getattr(user, "is_authenticated", False) else None
        BusinessIdLink.objects.bulk_create(
            BusinessIdLink(
                survey=survey,
                row=row.line,
                old_business_id=row.old,
                new_business_id=row.new,
                kind=row.kind,
                uploaded_by=by,
            )
            for row in parsed
        )
        link_numbers(survey)
        refresh(survey)
    return len(parsed)


def _lock_round(survey: Survey) -> None:
    Survey.objects.select_for_update().filter(pk=survey.pk).first()
    if survey.previous_round_id is None:
        raise ImportRefused(
            _("This survey has no previous round: a mapping of changed IDs links two rounds.")
        )
    if not survey.frame_units.exists() or not survey.previous_round.frame_units.exists():  # type: ignore[union-attr]
        raise ImportRefused(
            _("Import this round's frame first: the mapping links it to the previous round's.")
        )
    if survey.designs.filter(drawn_at__isnull=False).exists():
        raise ImportRefused(
            _(
                "The sample has already been drawn from this frame, so the mapping of "
                "changed IDs can no longer be replaced."
            )
        )


def _link_columns(header: list[str] | None) -> dict[str, int]:
    if header is None:
        raise ImportRefused(_("The file is empty."))
    names = [name.strip().lower() for name in header]
    log = ProblemLog()
    for column in LINK_COLUMNS:
        if column.name not in names:
            log.add(1, column.name, "", _("this required column is missing"))
    if log.total:
        raise log.refuse(_("The mapping was not loaded: the header row has problems."))
    return {column.name: names.index(column.name) for column in LINK_COLUMNS}


def _parse(rows: Iterable[list[str]], positions: dict[str, int], log: ProblemLog) -> Iterator[_Row]:
    width = max(positions.values()) + 1
    for line, cells in enumerate(rows, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        cells = [*cells, *([""] * (width - len(cells)))]
        old, new, kind = (cells[positions[c.name]].strip() for c in LINK_COLUMNS)
        found = (
            _business_id(line, "old_business_id", old, log),
            _business_id(line, "new_business_id", new, log),
            KINDS.get(kind.lower()),
        )
        if found[2] is None:
            log.add(
                line, "kind", kind, _("must be merger, split or renumbered (합병, 분할, 번호변경)")
            )
        if None in found:
            continue
        if found[0] == found[1]:
            log.add(line, "new_business_id", new, _("is the same as the old business ID"))
            continue
        yield _Row(line, *found)  # type: ignore[arg-type]


def _business_id(line: int, column: str, text: str, log: ProblemLog) -> str | None:
    value = FrameUnit.normalise_business_id(text)
    if value is None:
        log.add(
            line,
            column,
            text,
            _("must be a 10-digit business registration number, e.g. 123-45-67890"),
        )
    return value


def _check_links(rows: list[_Row], old_ids: set[str], new_ids: set[str], log: ProblemLog) -> None:
    """Each ID in its frame, no pair twice, and each kind's shape: a renumbered firm has one
    old and one new ID and no other; a firm merges into one firm; a new firm comes from one
    split firm; one ID is not given two kinds."""
    for row in rows:
        if row.old not in old_ids:
            log.add(row.line, "old_business_id", row.old, _("is not in the previous round's frame"))
        if row.new not in new_ids:
            log.add(row.line, "new_business_id", row.new, _("is not in this round's frame"))
        if row.kind == BusinessIdLink.Kind.RENUMBERED:
            if row.old in new_ids:
                log.add(
                    row.line,
                    "old_business_id",
                    row.old,
                    _("is still in this round's frame: a renumbered firm's old ID is gone"),
                )
            if row.new in old_ids:
                log.add(
                    row.line,
                    "new_business_id",
                    row.new,
                    _("was in the previous round's frame already: it is not a new number"),
                )
    _repeated(
        rows,
        lambda r: (r.old, r.new),
        "old_business_id",
        log,
        _("the same link is in rows %(rows)s"),
    )
    _repeated(
        rows,
        lambda r: r.old,
        "old_business_id",
        log,
        _("is given different kinds in rows %(rows)s"),
        kinds=True,
    )
    _repeated(
        rows,
        lambda r: r.new,
        "new_business_id",
        log,
        _("is given different kinds in rows %(rows)s"),
        kinds=True,
    )
    single = {
        BusinessIdLink.Kind.RENUMBERED: (
            (
                lambda r: r.old,
                "old_business_id",
                _("a renumbered firm has one new ID, but this one is in rows %(rows)s"),
            ),
            (
                lambda r: r.new,
                "new_business_id",
                _("a renumbered firm has one old ID, but this one is in rows %(rows)s"),
            ),
        ),
        BusinessIdLink.Kind.MERGER: (
            (
                lambda r: r.old,
                "old_business_id",
                _("a firm merges into one firm only, but this one is in rows %(rows)s"),
            ),
        ),
        BusinessIdLink.Kind.SPLIT: (
            (
                lambda r: r.new,
                "new_business_id",
                _("a firm comes from one split firm only, but this one is in rows %(rows)s"),
            ),
        ),
    }
    for kind, checks in single.items():
        of_kind = [row for row in rows if row.kind == kind]
        for key, column, message in checks:
            _repeated(of_kind, key, column, log, message)


def _repeated(
    rows: list[_Row],
    key: Any,
    column: str,
    log: ProblemLog,
    message: str,
    *,
    kinds: bool = False,
) -> None:
    """Log every row whose key is shared with another row (with another kind, if `kinds`)."""
    groups: dict[Any, list[_Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    for group in groups.values():
        if len(group) < 2 or (kinds and len({row.kind for row in group}) < 2):
            continue
        lines = ", ".join(str(row.line) for row in group)
        for row in group:
            value = row.old if column == "old_business_id" else row.new
            log.add(row.line, column, value, message % {"rows": lines})


def link_numbers(survey: Survey) -> None:
    """Carry permanent random numbers along the mapping (rules in the module's docstring):
    units linked by an earlier mapping first take back the numbers drawn for them at the
    import, then the mapping's links give numbers in the file's order."""
    units = survey.frame_units.select_related("previous")
    mapped = units.filter(previous__isnull=False).exclude(previous__business_id=F("business_id"))
    undone = {unit.pk: unit for unit in mapped}
    if undone:
        drawn = _drawn_numbers(survey)
        for unit in undone.values():
            unit.prn, unit.previous = drawn.get(unit.pk), None
    links = list(BusinessIdLink.objects.filter(survey=survey))
    wanted_new = {link.new_business_id for link in links}
    wanted_old = {link.old_business_id for link in links}
    by_new = {unit.business_id: unit for unit in undone.values()}
    for unit in units.filter(business_id__in=wanted_new).exclude(pk__in=undone):
        by_new[unit.business_id] = unit
    old_frame = FrameUnit.objects.filter(survey__next_rounds=survey)
    old_units = {u.business_id: u for u in old_frame.filter(business_id__in=wanted_old)}
    # An old firm that continues under its own ID keeps its number for itself.
    given = set(
        survey.frame_units.filter(business_id__in=wanted_old).values_list("business_id", flat=True)
    )
    changed = dict(undone)
    for link in links:
        new, old = by_new.get(link.new_business_id), old_units.get(link.old_business_id)
        if new is None or old is None or new.previous_id is not None:
            continue
        if link.old_business_id in given:
            continue
        if old.prn is not None:
            new.prn = old.prn
        new.previous = old
        given.add(link.old_business_id)
        changed[new.pk] = new
    FrameUnit.objects.bulk_update(list(changed.values()), ["prn", "previous"], batch_size=2000)
    FrameImport.objects.filter(pk=_latest_import(survey).pk).update(
        carried=survey.frame_units.filter(previous__isnull=False).count()
    )


def _latest_import(survey: Survey) -> FrameImport:
    return FrameImport.objects.filter(survey=survey).first()  # type: ignore[return-value]


def _drawn_numbers(survey: Survey) -> dict[int, float]:
    """Each unit's number as drawn at the frame's import (file order = source_row order)."""
    latest = FrameImport.objects.filter(survey=survey).first()
    if latest is None:
        return {}
    numbers = latest.drawn_numbers().tolist()
    order = survey.frame_units.order_by("source_row").values_list("pk", flat=True)
    return dict(zip(order, numbers, strict=False))
