"""Sample design workflows: strata from the frame, allocation preview, the draw and reserve
releases (docs/methodology.md, sec. B). Credentials are in credentials.py, the sample list's
files in sample_list.py.

Stratification variables are frame variables: the core columns, the derived ones
(``ksic_division``, ``industry_group``, ``region_area``), any key of ``FrameUnit.attributes``
and the design's own grouping maps. A variable is resolved in that order of precedence:
grouping map, core column, attribute, derivation; so a frame file's column named like a
derived variable wins over the derivation, and an explicit map wins over both.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Left
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine import allocation as alloc
from analytics.engine import prn
from analytics.engine.selection import Sample, SelectionError, StratumDraw, select_stratified
from analytics.recompute import request_recompute
from surveys.models import Survey

from .classifications import derive
from .models import Case, FrameUnit, ReserveRelease, SampleDesign, Stratum, attribute_keys

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

CORE_VARIABLES = ("size_class", "region", "ksic")
NUMERIC_VARIABLES = ("employees", "sales_krw_mn")
KEY_SEPARATOR = "/"
MAX_RESERVE_FRACTION = 5.0
MAX_SEED = 2**63 - 1
MAX_KEY_LENGTH = 200  # Stratum.key


def _division(ksic: str) -> str | None:
    return ksic[:2] if len(ksic) >= 2 else None


# name -> (source variable, map from a source value to the derived value, None if unmapped)
DERIVED_VARIABLES: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "ksic_division": ("ksic", _division),
    "industry_group": ("ksic_division", partial(derive, "industry_group", unknown=None)),
    "region_area": ("region", partial(derive, "region_area", unknown=None)),
}

# Derivations also done in SQL, so that the frame is grouped by the 2-digit division
# (about 1,700 groups) rather than by each 5-digit code (as many groups as firms, nearly).
# The Python map still runs on the result and rejects what it would reject.
DERIVED_IN_SQL: dict[str, Callable[[F], Any]] = {"ksic_division": lambda column: Left(column, 2)}

VARIABLE_LABELS = {
    "size_class": gettext_lazy("size class"),
    "region": gettext_lazy("region (sido)"),
    "ksic": gettext_lazy("KSIC code"),
    "ksic_division": gettext_lazy("KSIC division (2 digits)"),
    "industry_group": gettext_lazy("industry group"),
    "region_area": gettext_lazy("region area"),
    "employees": gettext_lazy("employees"),
    "sales_krw_mn": gettext_lazy("sales (KRW million)"),
}


class SamplingError(Exception):
    """The design, draw, release or issue cannot be done; the message says why."""


# --- design parameters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """What a design needs before it is drawn (SampleDesign holds the drawn one)."""

    strata_variables: tuple[str, ...]
    allocation: str
    sample_size: int
    min_per_stratum: int
    reserve_fraction: float = 0.0
    power: float | None = None
    neyman_variable: str = ""
    assumed_proportion: float | None = None
    groupings: Mapping[str, Any] = field(default_factory=dict)
    selection: str = SampleDesign.Selection.SRS
    coordination: str = SampleDesign.Coordination.NONE
    rotation: float | None = None

    @property
    def is_prn(self) -> bool:
        return self.selection == SampleDesign.Selection.PRN

    @property
    def rotation_share(self) -> float:
        """The share r of last round's sample the start points move past (M2)."""
        if self.coordination == SampleDesign.Coordination.NEGATIVE:
            return 1.0
        if self.coordination == SampleDesign.Coordination.ROTATION:
            return self.rotation or 0.0
        return 0.0

    @property
    def coordinated(self) -> bool:
        return self.is_prn and self.coordination != SampleDesign.Coordination.NONE


class HasStrata(Protocol):
    @property
    def strata_variables(self) -> Sequence[str]: ...

    @property
    def groupings(self) -> Mapping[str, Any]: ...


def make_design(
    *,
    strata_variables: Sequence[str],
    allocation: str,
    sample_size: int,
    min_per_stratum: int,
    reserve_fraction: float = 0.0,
    power: float | None = None,
    neyman_variable: str = "",
    assumed_proportion: float | None = None,
    groupings: Mapping[str, Any] | None = None,
    selection: str = SampleDesign.Selection.SRS,
    coordination: str = SampleDesign.Coordination.NONE,
    rotation: float | None = None,
) -> Design:
    """Validated design parameters; power allocation defaults to q = 0.5 (square root)."""
    variables = tuple(strata_variables)
    if not variables:
        raise SamplingError(_("Choose at least one stratification variable."))
    if len(set(variables)) != len(variables):
        raise SamplingError(_("A stratification variable is listed twice."))
    if allocation not in SampleDesign.Allocation.values:
        raise SamplingError(_("Unknown allocation “%(name)s”.") % {"name": allocation})
    if allocation == SampleDesign.Allocation.POWER and power is None:
        power = 0.5
    if allocation != SampleDesign.Allocation.POWER:
        power = None
    if allocation == SampleDesign.Allocation.NEYMAN:
        _check_neyman(neyman_variable, assumed_proportion)
    else:
        neyman_variable, assumed_proportion = "", None
    if not 0.0 <= reserve_fraction <= MAX_RESERVE_FRACTION:
        raise SamplingError(
            _("The reserve fraction must be between 0 and %(max)s.") % {"max": MAX_RESERVE_FRACTION}
        )
    rotation = _check_selection(selection, coordination, rotation)
    return Design(
        strata_variables=variables,
        allocation=allocation,
        sample_size=sample_size,
        min_per_stratum=min_per_stratum,
        reserve_fraction=reserve_fraction,
        power=power,
        neyman_variable=neyman_variable,
        assumed_proportion=assumed_proportion,
        groupings=_check_groupings(groupings or {}),
        selection=selection,
        coordination=coordination,
        rotation=rotation,
    )


def _check_selection(selection: str, coordination: str, rotation: float | None) -> float | None:
    """The rotation share kept (rotation only), once the combination makes sense."""
    if selection not in SampleDesign.Selection.values:
        raise SamplingError(_("Unknown selection “%(name)s”.") % {"name": selection})
    if coordination not in SampleDesign.Coordination.values:
        raise SamplingError(_("Unknown coordination “%(name)s”.") % {"name": coordination})
    if selection == SampleDesign.Selection.SRS and coordination != SampleDesign.Coordination.NONE:
        raise SamplingError(
            _("Coordination with the previous round needs selection by permanent random numbers.")
        )
    if coordination != SampleDesign.Coordination.ROTATION:
        return None
    if rotation is None or not 0.0 < rotation < 1.0:
        raise SamplingError(_("The rotation share must be between 0 and 1, e.g. 0.2."))
    return float(rotation)


def _check_neyman(variable: str, proportion: float | None) -> None:
    if bool(variable) == (proportion is not None):
        raise SamplingError(
            _(
                "Neyman allocation needs exactly one of a numeric frame variable (such as "
                "employees) and an assumed proportion P."
            )
        )
    if proportion is not None and not 0.0 < proportion < 1.0:
        raise SamplingError(_("The assumed proportion P must be between 0 and 1."))


def _check_groupings(groupings: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, spec in groupings.items():
        if name in CORE_VARIABLES:
            raise SamplingError(
                _("A grouping cannot be called “%(name)s”: that is a frame column.")
                % {"name": name}
            )
        if (
            not isinstance(spec, Mapping)
            or not isinstance(spec.get("source"), str)
            or not isinstance(spec.get("map"), Mapping)
        ):
            raise SamplingError(
                _('Grouping “%(name)s” must be {"source": variable, "map": {value: group}}.')
                % {"name": name}
            )
        checked[str(name)] = {
            "source": spec["source"],
            "map": {str(value): str(group) for value, group in spec["map"].items()},
        }
    return checked


# --- frame variables and strata --------------------------------------------------------------


class FrameStratum(NamedTuple):
    key: str
    values: dict[str, str]
    population: int


@dataclass(frozen=True)
class _Variable:
    name: str
    source: str  # the frame column or attribute the value comes from
    column: str  # its name in values_list: the column or an annotation's alias
    steps: tuple[tuple[str, Callable[[str], str | None]], ...]  # derived variable, map


@dataclass
class _Plan:
    """How to read the stratification variables of every frame unit, and the strata met."""

    variables: list[_Variable]
    annotations: dict[str, Any]
    columns: list[str]
    strata: dict[str, dict[str, str]] = field(default_factory=dict)

    def code_of(self, raw: tuple[Any, ...], example: Callable[[], str | None]) -> str:
        """The stratum key of one combination of column values (example: a business ID)."""
        by_column = dict(zip(self.columns, raw, strict=True))
        values = {var.name: _apply(var, by_column[var.column], example) for var in self.variables}
        code = KEY_SEPARATOR.join(values.values())
        known = self.strata.setdefault(code, values)
        if known != values:
            raise SamplingError(
                _("Strata %(a)s and %(b)s would share the key “%(key)s”; a value contains “/”.")
                % {"a": known, "b": values, "key": code}
            )
        if len(code) > MAX_KEY_LENGTH:
            raise SamplingError(_("The stratum key “%(key)s” is too long.") % {"key": code})
        return code


def _apply(var: _Variable, value: Any, example: Callable[[], str | None]) -> str:
    if value is None or value == "":
        raise SamplingError(
            _("Frame unit %(id)s has no value for “%(variable)s”.")
            % {"id": example(), "variable": var.source}
        )
    text = str(value)
    for step_name, mapping in var.steps:
        mapped = mapping(text)
        if mapped is None:
            raise SamplingError(
                _(
                    "Frame variable “%(variable)s” has no value for “%(value)s” "
                    "(frame unit %(id)s). Add the value to the grouping map or correct the frame."
                )
                % {"variable": step_name, "value": text, "id": example()}
            )
        text = mapped
    return text


class FrameVariables(NamedTuple):
    strata: list[str]  # variables the frame can be stratified by
    numeric: list[str]  # variables whose per-stratum SD can drive a Neyman allocation


def frame_variables(survey: Survey, groupings: Mapping[str, Any] | None = None) -> FrameVariables:
    """The variables a design can use on this frame (attribute keys: one query)."""
    keys = attribute_keys(survey)
    strata = [*CORE_VARIABLES, *DERIVED_VARIABLES, *keys, *(groupings or {})]
    return FrameVariables(list(dict.fromkeys(strata)), [*NUMERIC_VARIABLES, *keys])


def variable_label(name: str) -> str:
    return str(VARIABLE_LABELS.get(name, name))


def _plan(design: HasStrata, keys: Iterable[str]) -> _Plan:
    attributes = set(keys)
    groupings = _check_groupings(design.groupings or {})
    annotations: dict[str, Any] = {}
    aliases: dict[str, str] = {}

    def resolve(name: str, seen: tuple[str, ...]) -> _Variable:
        if name in seen:
            raise SamplingError(_("Grouping “%(name)s” refers to itself.") % {"name": name})
        if name in groupings:
            spec = groupings[name]
            base = resolve(spec["source"], (*seen, name))
            return _Variable(name, base.source, base.column, (*base.steps, (name, spec["map"].get)))
        if name in CORE_VARIABLES:
            return _Variable(name, name, name, ())
        if name in attributes:
            alias = aliases.setdefault(name, f"attr_{len(aliases)}")
            annotations[alias] = KeyTextTransform(name, "attributes")
            return _Variable(name, name, alias, ())
        if name in DERIVED_VARIABLES:
            source, mapping = DERIVED_VARIABLES[name]
            base = resolve(source, (*seen, name))
            column = base.column
            if name in DERIVED_IN_SQL and not base.steps:
                column = f"sql_{name}"
                annotations[column] = DERIVED_IN_SQL[name](F(base.column))
            return _Variable(name, base.source, column, (*base.steps, (name, mapping)))
        raise SamplingError(
            _(
                "“%(name)s” is not a frame variable: use a frame column, a derived variable, an "
                "attribute of the frame file or a grouping of the design."
            )
            % {"name": name}
        )

    variables = [resolve(name, ()) for name in design.strata_variables]
    columns = list(dict.fromkeys(var.column for var in variables))
    return _Plan(variables, annotations, columns)


def _frame(survey: Survey, plan: _Plan) -> QuerySet[FrameUnit]:
    return FrameUnit.objects.filter(survey=survey).annotate(**plan.annotations)


def stratum_table(survey: Survey, design: HasStrata, units: Q | None = None) -> list[FrameStratum]:
    """(key, values, N_h) of every stratum of the frame, by key; one GROUP BY query. With
    `units`, only the frame units it selects are counted (strata without any are left out)."""
    plan = _plan(design, attribute_keys(survey))
    frame = _frame(survey, plan)
    if units is not None:
        frame = frame.filter(units)
    counts: dict[str, int] = {}
    for *raw, population in frame.values_list(*plan.columns).annotate(n=Count("id")).order_by():
        code = plan.code_of(tuple(raw), partial(_example, frame, plan.columns, tuple(raw)))
        counts[code] = counts.get(code, 0) + population
    return [FrameStratum(code, plan.strata[code], counts[code]) for code in sorted(counts)]


@dataclass(frozen=True)
class UnitStrata:
    codes: dict[int, str]  # frame unit id -> stratum key
    values: dict[str, dict[str, str]]  # stratum key -> variable -> value


def strata_of(survey: Survey, design: HasStrata) -> UnitStrata:
    """Each frame unit's stratum under a design's variables, and the strata's values."""
    plan = _plan(design, attribute_keys(survey))
    units = _read_units(survey, plan)
    return UnitStrata(dict(zip(units.pks, units.codes, strict=True)), dict(plan.strata))


def _example(frame: QuerySet[FrameUnit], columns: list[str], raw: Sequence[Any]) -> str | None:
    """A business ID with these raw values, to name in an error message."""
    lookups = {
        (f"{column}__isnull" if value is None else column): (True if value is None else value)
        for column, value in zip(columns, raw, strict=True)
    }
    return (
        frame.filter(**lookups)
        .order_by("business_id")
        .values_list("business_id", flat=True)
        .first()
    )


@dataclass
class _Units:
    """The frame in business-ID order: one stratum code (and numeric value) per unit."""

    pks: list[int]
    business_ids: list[str]
    codes: list[str]
    numeric: np.ndarray | None
    prns: list[float | None] = field(default_factory=list)
    previous: list[int | None] = field(default_factory=list)  # last round's frame unit

    def numbers(self) -> np.ndarray:
        """The permanent random numbers; a frame imported before they existed has none."""
        missing = [bid for bid, u in zip(self.business_ids, self.prns, strict=True) if u is None]
        if missing:
            raise SamplingError(
                _(
                    "%(count)s firms of the frame have no permanent random number (e.g. "
                    "%(id)s): import the frame again to give them one."
                )
                % {"count": f"{len(missing):,}", "id": missing[0]}
            )
        return np.asarray(self.prns, dtype=np.float64)


def _read_units(survey: Survey, plan: _Plan, numeric: str = "") -> _Units:
    frame = _frame(survey, plan)
    columns = list(plan.columns)
    if numeric and numeric not in NUMERIC_VARIABLES:
        frame = frame.annotate(numeric_attribute=KeyTextTransform(numeric, "attributes"))
        columns.append("numeric_attribute")
    elif numeric:
        columns.append(numeric)
    rows = list(
        frame.order_by("business_id").values_list(
            "pk", "business_id", "prn", "previous_id", *columns
        )
    )
    if not rows:
        return _Units([], [], [], None)
    # Column-wise, so that the per-unit work is C loops; the stratum of each distinct
    # combination of values is worked out once, in frame order so errors name the first unit.
    columns_read = (list(column) for column in zip(*rows, strict=True))
    pks, business_ids, prns, previous, *values = columns_read
    raws = list(zip(*values[: len(plan.columns)], strict=True))
    codes = {
        raw: plan.code_of(raw, partial(_first_with, raw, raws, business_ids))
        for raw in dict.fromkeys(raws)
    }
    numbers = _numbers(values[-1], numeric, business_ids) if numeric else None
    return _Units(pks, business_ids, list(map(codes.__getitem__, raws)), numbers, prns, previous)


def _first_with(raw: tuple[Any, ...], raws: list[tuple[Any, ...]], ids: list[str]) -> str:
    return ids[raws.index(raw)]


def _numbers(values: list[Any], variable: str, business_ids: list[str]) -> np.ndarray:
    try:
        numbers = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        numbers = np.array([_number(value) for value in values], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        raise SamplingError(
            _("Frame unit %(id)s has no number for “%(variable)s” (value: %(value)s).")
            % {"id": business_ids[bad[0]], "variable": variable, "value": values[bad[0]]}
        )
    return numbers


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _stratum_sd(codes: list[str], x: np.ndarray | None, table: list[FrameStratum]) -> np.ndarray:
    """Sample standard deviation (n − 1) of the numeric variable in each stratum; 0 if N_h = 1."""
    if x is None:
        raise ValueError("no numeric variable was read")
    keys = [row.key for row in table]
    index = {key: h for h, key in enumerate(keys)}
    h = np.fromiter(map(index.__getitem__, codes), dtype=np.int64, count=len(codes))
    count = np.bincount(h, minlength=len(keys))
    mean = np.bincount(h, weights=x, minlength=len(keys)) / count
    # Two passes (mean, then squared deviations) to avoid cancellation with large sales figures.
    squares = np.bincount(h, weights=(x - mean[h]) ** 2, minlength=len(keys))
    return np.sqrt(np.divide(squares, count - 1, out=np.zeros(len(keys)), where=count > 1))


# --- allocation and preview ------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewStratum:
    key: str
    values: dict[str, str]
    variables: tuple[str, ...]
    population: int
    sample_size: int
    fraction: float
    se: float  # anticipated SE of a 50 % proportion in the stratum
    reserve: int
    take_all: bool
    at_minimum: bool
    previous_size: int | None = None  # last round's n_h, for a stratum of both designs
    expected_overlap: float | None = None  # firms expected in both samples (M3)

    @property
    def label(self) -> str:
        return Stratum.label_of(self.values, self.variables)


@dataclass(frozen=True)
class Preview:
    design: Design
    strata: tuple[PreviewStratum, ...]
    population: int
    sample_size: int
    fraction: float
    se: float  # anticipated SE of a 50 % proportion, whole population (stratified)
    reserve: int
    binding: tuple[str, ...]  # allocation.TAKE_ALL and/or allocation.MINIMUM

    @property
    def take_all_count(self) -> int:
        return sum(row.take_all for row in self.strata)

    @property
    def coordinated(self) -> bool:
        return self.design.coordinated

    @property
    def previous_size(self) -> int:
        return sum(row.previous_size or 0 for row in self.strata)

    @property
    def expected_overlap(self) -> float:
        return sum(row.expected_overlap or 0.0 for row in self.strata)

    @property
    def strata_without_overlap(self) -> int:
        """Strata of this design that were no stratum of last round's: no figure (M3)."""
        return sum(row.expected_overlap is None for row in self.strata)


def preview_design(
    survey: Survey,
    *,
    strata_variables: Sequence[str],
    allocation: str,
    sample_size: int,
    min_per_stratum: int,
    reserve_fraction: float = 0.0,
    power: float | None = None,
    neyman_variable: str = "",
    assumed_proportion: float | None = None,
    groupings: Mapping[str, Any] | None = None,
    selection: str = SampleDesign.Selection.SRS,
    coordination: str = SampleDesign.Coordination.NONE,
    rotation: float | None = None,
) -> Preview:
    """N_h, n_h, f_h, anticipated SE of a 50 % proportion and reserve per stratum.

    Nothing is written.
    """
    design = make_design(
        strata_variables=strata_variables,
        allocation=allocation,
        sample_size=sample_size,
        min_per_stratum=min_per_stratum,
        reserve_fraction=reserve_fraction,
        power=power,
        neyman_variable=neyman_variable,
        assumed_proportion=assumed_proportion,
        groupings=groupings,
        selection=selection,
        coordination=coordination,
        rotation=rotation,
    )
    _require_frame(survey)
    overlaps: dict[str, Overlap] = {}
    if design.neyman_variable or design.coordinated:
        plan = _plan(design, attribute_keys(survey))
        units = _read_units(survey, plan, design.neyman_variable)
        table = _table_from_units(plan, units)
        sd = _stratum_sd(units.codes, units.numeric, table) if design.neyman_variable else None
        if design.coordinated:
            overlaps = _overlap_inputs(survey, design, units)
    else:
        table, sd = stratum_table(survey, design), None
    return _preview(design, table, sd, overlaps)


def _table_from_units(plan: _Plan, units: _Units) -> list[FrameStratum]:
    counts = Counter(units.codes)
    return [FrameStratum(key, plan.strata[key], counts[key]) for key in sorted(counts)]


def _preview(
    design: Design,
    table: list[FrameStratum],
    sd: np.ndarray | None,
    overlaps: Mapping[str, Overlap] | None = None,
) -> Preview:
    sizes = np.array([row.population for row in table], dtype=np.int64)
    result = _allocate(design, sizes, sd)
    reserves = _reserves(design.reserve_fraction, result.n_h, sizes)
    shown = alloc.preview(sizes, result.n_h, 0.5)
    overlaps = overlaps or {}
    n_h = {row.key: int(result.n_h[h]) for h, row in enumerate(table)}
    expected = _expected(overlaps, n_h, design.rotation_share)
    rows = tuple(
        PreviewStratum(
            key=row.key,
            values=row.values,
            variables=design.strata_variables,
            population=row.population,
            sample_size=int(result.n_h[h]),
            fraction=shown.strata[h].fraction,
            se=shown.strata[h].se,
            reserve=int(reserves[h]),
            take_all=bool(result.take_all[h]),
            at_minimum=bool(result.at_minimum[h]),
            previous_size=overlaps[row.key].previous_size if row.key in overlaps else None,
            expected_overlap=expected.get(row.key),
        )
        for h, row in enumerate(table)
    )
    overall = shown.overall
    return Preview(
        design=design,
        strata=rows,
        population=overall.N,
        sample_size=overall.n,
        fraction=overall.fraction,
        se=overall.se,
        reserve=int(reserves.sum()),
        binding=result.binding,
    )


def _allocate(design: Design, sizes: np.ndarray, sd: np.ndarray | None) -> alloc.Allocation:
    n, m_min = design.sample_size, design.min_per_stratum
    try:
        if design.allocation == SampleDesign.Allocation.NEYMAN:
            if sd is None:
                sd = alloc.proportion_sd(design.assumed_proportion or 0.0, sizes)
            return alloc.allocate_neyman(sizes, sd, n, m_min=m_min)
        if design.allocation == SampleDesign.Allocation.POWER:
            return alloc.allocate_power(sizes, n, design.power or 0.5, m_min=m_min)
        return alloc.allocate_proportional(sizes, n, m_min=m_min)
    except alloc.AllocationError as exc:
        raise SamplingError(
            _("The allocation is impossible: %(reason)s") % {"reason": exc}
        ) from exc


def _reserves(fraction: float, n_h: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    # ceil(f·n_h) capped at N_h − n_h; rounding first so 0.2·15 = 3.0000000000000004 gives 3.
    wanted = np.ceil(np.round(fraction * n_h.astype(np.float64), 9)).astype(np.int64)
    return np.minimum(wanted, sizes - n_h)


def _require_frame(survey: Survey) -> None:
    if not FrameUnit.objects.filter(survey=survey).exists():
        raise SamplingError(
            _("Survey “%(survey)s” has no frame yet: import the frame first.")
            % {"survey": survey.slug}
        )


# --- the draw --------------------------------------------------------------------------------


def drawn_design(survey: Survey) -> SampleDesign | None:
    return SampleDesign.objects.filter(survey=survey, drawn_at__isnull=False).first()


def draw_sample(
    survey: Survey,
    *,
    strata_variables: Sequence[str],
    allocation: str,
    sample_size: int,
    min_per_stratum: int,
    seed: int,
    reserve_fraction: float = 0.0,
    power: float | None = None,
    neyman_variable: str = "",
    assumed_proportion: float | None = None,
    groupings: Mapping[str, Any] | None = None,
    selection: str = SampleDesign.Selection.SRS,
    coordination: str = SampleDesign.Coordination.NONE,
    rotation: float | None = None,
    user: User | None = None,
) -> SampleDesign:
    """Allocate, select (selection.py recipe, frame in business-ID order) and record the draw.

    Same frame, design and seed give the same sample. Everything is written in one
    transaction: the design, its strata and one case per sampled and per reserve unit.
    """
    design = make_design(
        strata_variables=strata_variables,
        allocation=allocation,
        sample_size=sample_size,
        min_per_stratum=min_per_stratum,
        reserve_fraction=reserve_fraction,
        power=power,
        neyman_variable=neyman_variable,
        assumed_proportion=assumed_proportion,
        groupings=groupings,
        selection=selection,
        coordination=coordination,
        rotation=rotation,
    )
    if int(seed) != seed or not 0 <= seed <= MAX_SEED:
        raise SamplingError(_("The seed must be a whole number from 0 to 2^63 − 1."))
    try:
        with transaction.atomic():
            return _draw(survey, design, int(seed), user)
    except IntegrityError as exc:  # a concurrent draw won the one_drawn_design constraint
        raise SamplingError(_("A sample has already been drawn for this survey.")) from exc


def _draw(survey: Survey, design: Design, seed: int, user: User | None) -> SampleDesign:
    # Lock the survey row so two managers drawing at once are serialised, not both refused late.
    Survey.objects.select_for_update().filter(pk=survey.pk).first()
    if drawn_design(survey) is not None:
        raise SamplingError(_("A sample has already been drawn for this survey."))
    _require_frame(survey)
    plan = _plan(design, attribute_keys(survey))
    units = _read_units(survey, plan, design.neyman_variable)
    table = _table_from_units(plan, units)
    sd = None if units.numeric is None else _stratum_sd(units.codes, units.numeric, table)
    overlaps = _overlap_inputs(survey, design, units) if design.coordinated else {}
    shown = _preview(design, table, sd, overlaps)
    points = Points()
    if design.is_prn:
        sample, points = _select_prn(survey, design, units, shown, seed)
    else:
        sample = _select(units.codes, shown, seed)
    record = _record_design(survey, design, seed, len(units.pks), user)
    # The settings the round started from (config.rounds) have served their turn.
    SampleDesign.objects.filter(survey=survey, drawn_at__isnull=True).delete()
    strata = _record_strata(record, shown, points)
    _record_cases(survey, strata, sample, units, _previous_cases(survey))
    return record


def _select(codes: list[str], shown: Preview, seed: int) -> Sample[str]:
    n_h = {row.key: row.sample_size for row in shown.strata}
    reserve_h = {row.key: row.reserve for row in shown.strata}
    try:
        return select_stratified(np.asarray(codes), n_h, seed=seed, reserve_h=reserve_h)
    except SelectionError as exc:
        raise SamplingError(_("The selection is impossible: %(reason)s") % {"reason": exc}) from exc


def _record_design(
    survey: Survey, design: Design, seed: int, frame_size: int, user: User | None
) -> SampleDesign:
    return SampleDesign.objects.create(
        survey=survey,
        strata_variables=list(design.strata_variables),
        groupings=dict(design.groupings),
        allocation=design.allocation,
        sample_size=design.sample_size,
        min_per_stratum=design.min_per_stratum,
        power=design.power,
        neyman_variable=design.neyman_variable,
        assumed_proportion=design.assumed_proportion,
        reserve_fraction=design.reserve_fraction,
        selection=design.selection,
        coordination=design.coordination if design.is_prn else SampleDesign.Coordination.NONE,
        rotation=design.rotation,
        seed=seed,
        numpy_version=np.__version__,
        frame_size=frame_size,
        created_by=_user(user),
        drawn_at=timezone.now(),
    )


def _record_strata(record: SampleDesign, shown: Preview, points: Points) -> dict[str, Stratum]:
    strata = Stratum.objects.bulk_create(
        Stratum(
            design=record,
            key=row.key,
            values=row.values,
            population=row.population,
            allocated=row.sample_size,
            sample_size=row.sample_size,
            reserve_size=row.reserve,
            take_all=row.take_all,
            prn_start=points.starts.get(row.key),
            prn_end=points.ends.get(row.key),
            expected_overlap=row.expected_overlap,
        )
        for row in shown.strata
    )
    return {stratum.key: stratum for stratum in strata}


def _record_cases(
    survey: Survey,
    strata: dict[str, Stratum],
    sample: Sample[str],
    units: _Units,
    previous_cases: Mapping[int, int],
) -> None:
    """Cases numbered stratum by stratum: the sample in frame order, then the reserve in
    order; each linked to its firm's case of the previous round's sample, if any."""
    cases: list[Case] = []
    for key in sorted(strata):
        draw = sample.strata[key]
        positions: list[tuple[int, int | None]] = [(int(p), None) for p in draw.selected]
        positions += [(int(p), rank) for rank, p in enumerate(draw.reserve, start=1)]
        for position, rank in positions:
            before = units.previous[position]
            cases.append(
                Case(
                    survey=survey,
                    stratum=strata[key],
                    frame_unit_id=units.pks[position],
                    business_id=units.business_ids[position],
                    previous_id=None if before is None else previous_cases.get(before),
                    selection_order=len(cases) + 1,
                    is_reserve=rank is not None,
                    reserve_rank=rank,
                )
            )
    Case.objects.bulk_create(cases, batch_size=2000)


def _user(user: User | None) -> Any:
    return user if user is not None and user.is_authenticated else None


# --- rounds: permanent random numbers, coordination and overlap (methodology M) --------------

# Spawn-key prefix of the start points' streams, apart from the draws' own (B5): "STR".
START_STREAM = 0x535452


@dataclass(frozen=True)
class Points:
    """A PRN draw's start point and the number of its sample's last firm, per stratum."""

    starts: dict[str, float] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Overlap:
    """A stratum of both rounds' designs: last round's n_h, and its firms in both frames,
    in last year's only (deaths, moves out) and in this year's only (births, moves in)."""

    previous_size: int
    common: int
    leavers: int
    joiners: int


def previous_design(survey: Survey) -> SampleDesign | None:
    """The drawn design of the survey's previous round, if there is one."""
    if survey.previous_round_id is None:
        return None
    return SampleDesign.objects.filter(
        survey_id=survey.previous_round_id, drawn_at__isnull=False
    ).first()


def _select_prn(
    survey: Survey, design: Design, units: _Units, shown: Preview, seed: int
) -> tuple[Sample[str], Points]:
    """The PRN draw (M2): the first n_h + r_h firms from each start; the first n_h are the
    sample, the rest the reserve in release order (the next firms in the numbers' order)."""
    keys = [row.key for row in shown.strata]
    starts = _starts(survey, design, seed, keys)
    sizes = {row.key: row.sample_size + row.reserve for row in shown.strata}
    try:
        drawn = prn.draw_prn(units.numbers(), np.asarray(units.codes), sizes, starts)
    except SelectionError as exc:
        raise SamplingError(_("The selection is impossible: %(reason)s") % {"reason": exc}) from exc
    strata: dict[str, StratumDraw] = {}
    ends: dict[str, float] = {}
    for row in shown.strata:
        chosen, n = drawn.strata[row.key], row.sample_size
        strata[row.key] = StratumDraw(np.sort(chosen.selected[:n]), chosen.selected[n:])
        ends[row.key] = float(chosen.numbers[n - 1]) if n else chosen.start
    return Sample(seed, strata), Points(starts, ends)


def _starts(survey: Survey, design: Design, seed: int, keys: list[str]) -> dict[str, float]:
    """Start points: moved from last round's (coordination), else 0 in a first round and
    drawn from the seed when the round should be independent of the previous one. A
    stratum that was none of last round's starts at 0 (M2)."""
    before = previous_design(survey)
    if design.coordinated:
        if before is None:
            raise SamplingError(_no_previous_sample())
        moved = prn.next_starts(previous_sample(before), design.rotation_share)
        same = previous_keys(before, design)
        starts = {same[key]: start for key, start in moved.items() if key in same}
        return {key: starts.get(key, 0.0) for key in keys}
    if before is None:
        return dict.fromkeys(keys, 0.0)
    return {key: _random_start(seed, key) for key in keys}


def previous_keys(before: SampleDesign, design: HasStrata) -> dict[str, str]:
    """Last round's stratum keys as this design's keys, when both stratify by the same
    variables and groupings, in whatever order; empty when the strata differ."""
    variables = list(design.strata_variables)
    same = set(before.strata_variables) == set(variables) and (
        _check_groupings(before.groupings or {}) == _check_groupings(design.groupings or {})
    )
    if not same:
        return {}
    return {
        key: KEY_SEPARATOR.join(values[name] for name in variables)
        for key, values in before.strata.values_list("key", "values")
    }


def _random_start(seed: int, key: str) -> float:
    sequence = np.random.SeedSequence(seed, spawn_key=(START_STREAM, *key.encode()))
    return float(np.random.default_rng(sequence).random())


def _no_previous_sample() -> str:
    return _(
        "Coordination needs the previous round's drawn sample; this survey has no previous "
        "round, or its sample is not drawn."
    )


def previous_sample(design: SampleDesign) -> prn.PRNSample[str]:
    """A drawn round's sample as the PRN draw it is: per stratum, its start and its firms'
    numbers in selection order (released reserve included, since it follows the sample)."""
    starts = dict(design.strata.values_list("key", "prn_start"))
    if not design.is_prn or any(start is None for start in starts.values()):
        raise SamplingError(
            _(
                "The previous round's sample was drawn by simple random sampling: a sample "
                "can be coordinated only with one drawn by permanent random numbers. Choose "
                "no coordination; the round after this one can be coordinated with it."
            )
        )
    numbers: dict[str, list[float | None]] = {}
    in_sample = Case.objects.filter(stratum__design=design).in_sample()
    for key, number in in_sample.values_list("stratum__key", "frame_unit__prn"):
        numbers.setdefault(key, []).append(number)
    out: dict[str, prn.PRNStratum] = {}
    for key, start in starts.items():
        a = float(start or 0.0)
        u = np.asarray(numbers.get(key, []), dtype=np.float64)
        order = np.lexsort((u, u <= a)).astype(np.int64)
        out[key] = prn.PRNStratum(a, order, u[order])
    return prn.PRNSample(out)


def _overlap_inputs(survey: Survey, design: Design, units: _Units) -> dict[str, Overlap]:
    """Per stratum of this design that was a stratum of last round's: the inputs of its
    expected overlap (M3). Firms are in both frames when linked (FrameUnit.previous) and in
    the same stratum in both; empty when last round's design had other strata."""
    before = previous_design(survey)
    if before is None:
        raise SamplingError(_no_previous_sample())
    keys = previous_keys(before, design)
    if not keys:
        return {}
    try:
        old = _read_units(before.survey, _plan(design, attribute_keys(before.survey)))
    except SamplingError:
        return {}
    old_code = dict(zip(old.pks, old.codes, strict=True))
    before_n = {keys[key]: n for key, n in before.strata.values_list("key", "sample_size")}
    frame1, frame2 = Counter(old.codes), Counter(units.codes)
    common = Counter(
        code
        for code, unit in zip(units.codes, units.previous, strict=True)
        if unit is not None and old_code.get(unit) == code
    )
    return {
        key: Overlap(before_n[key], common[key], frame1[key] - common[key], count - common[key])
        for key, count in frame2.items()
        if key in before_n
    }


def _expected(
    overlaps: Mapping[str, Overlap], n_h: Mapping[str, int], rotation: float
) -> dict[str, float]:
    expected: dict[str, float] = {}
    for key, inputs in overlaps.items():
        try:
            expected[key] = prn.expected_overlap(
                n1=inputs.previous_size,
                n2=n_h[key],
                common=inputs.common,
                leavers=inputs.leavers,
                joiners=inputs.joiners,
                rotation=rotation,
            )
        except SelectionError:
            continue  # last round's n_h no longer fits its frame: no figure
    return expected


def _previous_cases(survey: Survey) -> dict[int, int]:
    """Last round's sample (released reserve included): frame unit id -> case id."""
    if survey.previous_round_id is None:
        return {}
    cases = Case.objects.filter(survey_id=survey.previous_round_id).in_sample()
    return dict(cases.values_list("frame_unit_id", "pk"))


@dataclass(frozen=True)
class OverlapRow:
    stratum: Stratum
    previous_size: int | None  # last round's n_h, in a stratum of both designs
    realised: int  # firms of this sample in last round's sample in the same stratum
    realised_all: int  # ... in any stratum


@dataclass(frozen=True)
class OverlapTable:
    """A drawn round's overlap with the previous round's sample, by stratum and in total:
    expected (stored at the draw, M3) and realised (cases linked by Case.previous)."""

    rows: list[OverlapRow]

    @property
    def previous_size(self) -> int:
        return sum(row.previous_size or 0 for row in self.rows)

    @property
    def expected(self) -> float | None:
        values = [row.stratum.expected_overlap for row in self.rows]
        known = [value for value in values if value is not None]
        return sum(known) if known else None

    @property
    def sample_size(self) -> int:
        return sum(row.stratum.sample_size for row in self.rows)

    @property
    def realised(self) -> int:
        return sum(row.realised for row in self.rows)

    @property
    def realised_all(self) -> int:
        return sum(row.realised_all for row in self.rows)


def overlap_table(design: SampleDesign) -> OverlapTable:
    """The overlap of a drawn design's sample with the previous round's, by stratum."""
    before = previous_design(design.survey)
    keys = previous_keys(before, design) if before else {}
    sizes: dict[str, int] = {}
    if before is not None:
        sizes = {
            keys[k]: n for k, n in before.strata.values_list("key", "sample_size") if k in keys
        }
    linked = Case.objects.filter(stratum__design=design, previous__isnull=False).in_sample()
    realised: Counter[str] = Counter()
    realised_all: Counter[str] = Counter()
    for key, earlier in linked.values_list("stratum__key", "previous__stratum__key"):
        realised_all[key] += 1
        realised[key] += keys.get(earlier) == key
    return OverlapTable(
        [
            OverlapRow(s, sizes.get(s.key), realised[s.key], realised_all[s.key])
            for s in design.strata.all()
        ]
    )


# --- reserve releases ------------------------------------------------------------------------


def release_reserve(stratum: Stratum, *, count: int, user: User | None) -> list[Case]:
    """Move the next ``count`` reserve units of a stratum into the sample, in release order.

    n_h grows with them, so the base weight N_h/n_h stays right; every release is logged.
    """
    if int(count) != count or count < 1:
        raise SamplingError(_("Release at least one reserve unit."))
    with transaction.atomic():
        locked = Stratum.objects.select_for_update().select_related("design").get(pk=stratum.pk)
        waiting = (
            Case.objects.select_for_update()
            .filter(stratum=locked)
            .reserve()
            .order_by("reserve_rank")[:count]
        )
        cases = list(waiting)
        if len(cases) < count:
            raise SamplingError(
                _("Stratum %(key)s has only %(left)s reserve units left; %(count)s were asked for.")
                % {"key": locked.key, "left": len(cases), "count": count}
            )
        now, by = timezone.now(), _user(user)
        Case.objects.filter(pk__in=[case.pk for case in cases]).update(
            released_at=now, released_by=by
        )
        Stratum.objects.filter(pk=locked.pk).update(sample_size=F("sample_size") + count)
        ReserveRelease.objects.create(
            stratum=locked,
            count=count,
            first_rank=cases[0].reserve_rank or 0,
            last_rank=cases[-1].reserve_rank or 0,
            released_at=now,
            released_by=by,
        )
        # The base weights of the stratum changed.
        request_recompute(locked.design.survey_id, reason=f"reserve released in {locked.key}")
    stratum.refresh_from_db(fields=["sample_size"])
    for case in cases:
        case.released_at, case.released_by = now, by
    return cases
