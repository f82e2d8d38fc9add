"""The weighting specification: what the recompute does, as survey settings.

Stored as JSON with every WeightingSpec version; parsed and checked here so that a bad spec
is refused when it is saved, not when the worker runs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine.quality import Thresholds
from surveys.expressions import ExpressionError, parse

CALIBRATION_METHODS = ("none", "poststratify", "raking", "linear", "logit")
CI_METHODS = ("logit", "korn_graubard", "wald")
LONELY_PSU = ("adjust", "remove", "certainty", "average", "fail")
CLASS_VARIABLES = ("size_class", "region", "region_area", "industry_group", "ksic_division")
VARIANCE_METHODS = ("taylor", "jackknife", "bootstrap")
# Methodology E7 and the defaults: 100 random groups, 500 Rao-Wu replicates.
DEFAULT_REPLICATES = {"jackknife": 100, "bootstrap": 500}
MAX_REPLICATES = 2000
# External control totals: margins may differ by rounding only.
MARGIN_TOTALS_RTOL = 1e-6
VARIANCE_LABELS = {
    "taylor": gettext_lazy("Taylor linearisation"),
    "jackknife": gettext_lazy("Delete-a-group jackknife"),
    "bootstrap": gettext_lazy("Rao–Wu rescaled bootstrap"),
}

# What people read instead of the codes above.
VARIABLE_LABELS = {
    "size_class": gettext_lazy("size class"),
    "region": gettext_lazy("region (province)"),
    "region_area": gettext_lazy("region area"),
    "industry_group": gettext_lazy("industry group"),
    "ksic_division": gettext_lazy("KSIC division"),
}
CALIBRATION_LABELS = {
    "none": gettext_lazy("none"),
    "poststratify": gettext_lazy("post-stratification"),
    "raking": gettext_lazy("raking"),
    "linear": gettext_lazy("linear calibration (GREG)"),
    "logit": gettext_lazy("bounded logit calibration"),
}
CI_LABELS = {
    "logit": gettext_lazy("logit (as R svyciprop)"),
    "korn_graubard": gettext_lazy("Korn–Graubard (Clopper–Pearson)"),
    "wald": gettext_lazy("Wald"),
}
LONELY_PSU_LABELS = {
    "adjust": gettext_lazy("centre the lone unit at zero, as survey 4.1.1 (R: adjust)"),
    "remove": gettext_lazy("add nothing to the variance (R: remove)"),
    "certainty": gettext_lazy("treat as a certainty unit (R: certainty)"),
    "average": gettext_lazy("the average of the other strata (R: average)"),
    "fail": gettext_lazy("refuse to estimate (R: fail)"),
}


def variables_text(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(str(VARIABLE_LABELS.get(name, name)) for name in names)


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class WeightingSpec:
    # Weighting classes: the strata, or a list of frame variables whose combination is a class.
    weighting_classes: str | tuple[str, ...] = "stratum"
    # Parents to collapse a class into, finest first; empty means the design's strata
    # variables with the last one dropped at each level (a × b × c → a × b → a → all).
    collapse_hierarchy: tuple[tuple[str, ...], ...] = ()
    # Methodology D3: collapse below 10 respondents or above a factor of 3.
    min_respondents: int = 10
    max_adjustment: float | None = 3.0
    partials_are_respondents: bool = True
    calibration: str = "none"
    margins: tuple[str, ...] = ()
    calibration_bounds: tuple[float, float] = (0.3, 3.0)
    # Below 1 a fraction of the sum of weights (R rake()'s meaning).
    raking_epsilon: float = 1e-10
    raking_maxit: int = 100
    # External eligible-population totals {variable: {level: N}}; empty = estimated from the
    # whole sample (sum of d1 over known-eligible cases of each level, methodology D4).
    margin_totals: dict[str, dict[str, float]] = field(default_factory=dict)
    trim_lower: float | None = None
    trim_upper: float | None = None
    trim_rounds: int = 10
    lonely_psu: str = "adjust"
    ci_method: str = "logit"
    variance: str = "taylor"
    replicates: int | None = None  # None: DEFAULT_REPLICATES of the method
    replicate_seed: int = 20250428
    domain_variables: tuple[str, ...] = ()
    domain_questions: tuple[str, ...] = ("sf_adopted",)
    suppression: Thresholds = field(default_factory=Thresholds)
    # Selective editing (methodology L1): a soft rule's failure scoring below this share of
    # the item's estimated total passes untouched; hard rules are always reviewed.
    editing_threshold: float = 0.001
    # Imputation (methodology L4–L6), one line per item in form order: "item method
    # [variables…]", e.g. "sales_krw_mn ratio frame.employees", "sf_tech nearest
    # frame.employees", "sf_level random", "implementing derived if(${sf_adopted} = 'yes',
    # 'yes', '')".
    imputation: tuple[str, ...] = ()
    imputation_classes: tuple[str, ...] = ("size_class", "industry_group")
    imputation_seed: int = 20250428

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        classes = (
            _("classes: strata")
            if self.weighting_classes == "stratum"
            else _("classes: %(v)s")
            % {"v": " × ".join(str(VARIABLE_LABELS.get(v, v)) for v in self.weighting_classes)}
        )
        parts = [classes, _("collapse below %(n)s respondents") % {"n": self.min_respondents}]
        if self.max_adjustment:
            parts.append(_("or factor above %(a)s") % {"a": f"{self.max_adjustment:g}"})
        if self.calibration != "none":
            parts.append(
                _("%(method)s to %(margins)s")
                % {
                    "method": CALIBRATION_LABELS.get(self.calibration, self.calibration),
                    "margins": variables_text(self.margins),
                }
            )
        if self.calibration != "none":
            parts.append(
                _("controls from an uploaded file")
                if self.margin_totals
                else _("controls estimated from the whole sample")
            )
        if self.trim_upper or self.trim_lower:
            bounds = f"[{self.trim_lower or 0:g}, {self.trim_upper or '∞'}]"
            parts.append(_("weights trimmed to %(b)s") % {"b": bounds})
        if self.variance != "taylor":
            parts.append(
                _("%(method)s variance, %(r)s replicates")
                % {"method": VARIANCE_LABELS[self.variance], "r": self.replicate_count}
            )
        return "; ".join(parts)

    @property
    def replicate_count(self) -> int:
        if self.variance == "taylor":
            return 0
        return self.replicates or DEFAULT_REPLICATES[self.variance]


def parse_spec(data: Mapping[str, Any] | None) -> WeightingSpec:
    """A checked WeightingSpec from stored JSON; unknown keys and bad values are refused."""
    data = dict(data or {})
    known = {f.name for f in fields(WeightingSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(_("unknown settings: %(names)s") % {"names": ", ".join(unknown)})
    suppression = Thresholds(**_checked_suppression(data.pop("suppression", {})))
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _tupled(value) if isinstance(value, list) else value
    if isinstance(values.get("calibration_bounds"), tuple):
        values["calibration_bounds"] = tuple(float(b) for b in values["calibration_bounds"])
    if "margin_totals" in values:
        values["margin_totals"] = _checked_margin_totals(values["margin_totals"])
    if "collapse_hierarchy" in values:
        values["collapse_hierarchy"] = tuple(
            _tupled(level) for level in values["collapse_hierarchy"]
        )
    spec = WeightingSpec(suppression=suppression, **values)
    _check(spec)
    return spec


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _checked_suppression(data: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(Thresholds)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            _("unknown suppression settings: %(names)s") % {"names": ", ".join(unknown)}
        )
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SpecError(_("suppression %(name)s must be a number ≥ 0") % {"name": name})
    return dict(data)


def _check(spec: WeightingSpec) -> None:
    if spec.calibration not in CALIBRATION_METHODS:
        raise SpecError(
            _("calibration must be one of %(names)s") % {"names": ", ".join(CALIBRATION_METHODS)}
        )
    if spec.calibration != "none" and not spec.margins:
        raise SpecError(_("calibration needs at least one margin (a frame variable)"))
    for variable in (*spec.margins, *_class_variables(spec), *spec.domain_variables):
        if variable not in CLASS_VARIABLES:
            raise SpecError(
                _("“%(variable)s” is not a frame variable; use one of %(names)s")
                % {"variable": variable, "names": ", ".join(CLASS_VARIABLES)}
            )
    if spec.ci_method not in CI_METHODS:
        raise SpecError(_("ci_method must be one of %(names)s") % {"names": ", ".join(CI_METHODS)})
    if spec.lonely_psu not in LONELY_PSU:
        raise SpecError(_("lonely_psu must be one of %(names)s") % {"names": ", ".join(LONELY_PSU)})
    if spec.min_respondents < 1:
        raise SpecError(_("min_respondents must be at least 1"))
    if spec.max_adjustment is not None and spec.max_adjustment <= 1:
        raise SpecError(_("max_adjustment must be above 1"))
    low, high = spec.calibration_bounds
    if not 0 <= low < 1 < high:
        raise SpecError(_("calibration bounds must satisfy 0 ≤ lower < 1 < upper"))
    bounded = spec.trim_lower is not None and spec.trim_upper is not None
    if bounded and spec.trim_lower >= spec.trim_upper:  # type: ignore[operator]
        raise SpecError(_("the lower trimming bound must be below the upper one"))
    if not 0.5 < spec.suppression.level < 1:
        raise SpecError(_("the confidence level must be between 0.5 and 1"))
    if not 1 <= spec.trim_rounds <= 100:
        raise SpecError(_("trim_rounds must be between 1 and 100"))
    if spec.raking_epsilon <= 0 or spec.raking_maxit < 1:
        raise SpecError(_("raking needs epsilon > 0 and at least one sweep"))
    _check_variance(spec)
    _check_margins_cover(spec)
    _check_editing(spec)


def _check_editing(spec: WeightingSpec) -> None:
    if not 0 <= spec.editing_threshold < 1:
        raise SpecError(_("the editing threshold must be at least 0 and below 1"))
    for variable in spec.imputation_classes:
        if variable not in CLASS_VARIABLES:
            raise SpecError(
                _("“%(variable)s” is not a frame variable; use one of %(names)s")
                % {"variable": variable, "names": ", ".join(CLASS_VARIABLES)}
            )
    if isinstance(spec.imputation_seed, bool) or not isinstance(spec.imputation_seed, int):
        raise SpecError(_("imputation_seed must be a whole number"))
    seen: set[str] = set()
    for line in spec.imputation:
        rule = imputation_rule(line)
        if rule.item in seen:
            raise SpecError(_("%(item)s is imputed twice") % {"item": rule.item})
        seen.add(rule.item)


IMPUTATION_METHODS = ("derived", "ratio", "nearest", "random")


@dataclass(frozen=True)
class ImputationRule:
    item: str
    method: str
    variables: tuple[str, ...] = ()  # ratio: the auxiliary; nearest: the matching variables
    expression: str = ""  # derived


def imputation_rule(line: str) -> ImputationRule:
    """One imputation line, checked: "item method [variables…]" or "item derived <expr>"."""
    parts = str(line).split(None, 2)
    if len(parts) < 2 or parts[1] not in IMPUTATION_METHODS:
        raise SpecError(
            _("“%(line)s”: write the item, then one of %(methods)s")
            % {"line": line, "methods": ", ".join(IMPUTATION_METHODS)}
        )
    item, method = parts[0], parts[1]
    rest = parts[2] if len(parts) == 3 else ""
    if method == "derived":
        if not rest.strip():
            raise SpecError(_("“%(line)s”: a derived value needs its expression") % {"line": line})
        try:
            parse(rest)
        except ExpressionError as exc:
            raise SpecError(f"“{line}”: {exc}") from None
        return ImputationRule(item, method, expression=rest.strip())
    variables = tuple(rest.replace(",", " ").split())
    if method == "ratio" and len(variables) != 1:
        raise SpecError(
            _("“%(line)s”: ratio imputation needs one auxiliary variable") % {"line": line}
        )
    if method == "nearest" and not variables:
        raise SpecError(
            _("“%(line)s”: nearest-neighbour imputation needs matching variables") % {"line": line}
        )
    if method == "random" and variables:
        raise SpecError(_("“%(line)s”: random donors take no variables") % {"line": line})
    return ImputationRule(item, method, variables)


def _check_variance(spec: WeightingSpec) -> None:
    if spec.variance not in VARIANCE_METHODS:
        raise SpecError(
            _("variance must be one of %(names)s") % {"names": ", ".join(VARIANCE_METHODS)}
        )
    if spec.replicates is not None and not 2 <= spec.replicates <= MAX_REPLICATES:
        raise SpecError(_("replicates must be between 2 and %(n)s") % {"n": MAX_REPLICATES})
    if isinstance(spec.replicate_seed, bool) or not isinstance(spec.replicate_seed, int):
        raise SpecError(_("replicate_seed must be a whole number"))


def _check_margins_cover(spec: WeightingSpec) -> None:
    if not spec.margin_totals:
        return
    wanted = {calibration_key(spec)} if spec.calibration == "poststratify" else set(spec.margins)
    if spec.calibration == "none" or set(spec.margin_totals) != wanted:
        raise SpecError(
            _("The control totals must give exactly the calibration variables (%(v)s), not %(f)s.")
            % {"v": ", ".join(sorted(wanted)) or "—", "f": ", ".join(sorted(spec.margin_totals))}
        )


def calibration_key(spec: WeightingSpec) -> str:
    """The variable name of the calibration cells: the margin, or margins joined by '/'."""
    return "/".join(spec.margins)


def _checked_margin_totals(data: Any) -> dict[str, dict[str, float]]:
    """Positive finite totals per level; every variable's levels sum to the same total."""
    if not isinstance(data, Mapping):
        raise SpecError("margin_totals must map variables to {level: N}")
    out: dict[str, dict[str, float]] = {}
    for variable, levels in data.items():
        if not isinstance(levels, Mapping) or not levels:
            raise SpecError(f"margin_totals: {variable} needs at least one level")
        out[str(variable)] = {}
        for level, value in levels.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"margin_totals: {variable}={level} must be a number")
            if not math.isfinite(value) or value <= 0:
                raise SpecError(f"margin_totals: {variable}={level} must be positive")
            out[str(variable)][str(level)] = float(value)
    sums = {v: math.fsum(levels.values()) for v, levels in out.items()}
    first = next(iter(sums.values()), 0.0)
    if any(abs(total - first) > MARGIN_TOTALS_RTOL * first for total in sums.values()):
        shown = ", ".join(f"{v} {total:,.6f}" for v, total in sums.items())
        raise SpecError(
            _(
                "The margins disagree on the eligible population (%(sums)s): each variable's "
                "levels must add up to the same total (to 1e-6)."
            )
            % {"sums": shown}
        )
    return out


def parse_margins_csv(content: bytes | str) -> dict[str, dict[str, float]]:
    """A margins file: columns variable, level, N (UTF-8 or CP949, comma-separated)."""
    text = _decoded(content) if isinstance(content, bytes) else content
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if header[:3] != ["variable", "level", "N"]:
        raise SpecError(_("The margins file needs the columns variable, level, N (in this order)."))
    totals: dict[str, dict[str, float]] = {}
    for line, row in enumerate(reader, start=2):
        variable = (row.get("variable") or "").strip()
        level = (row.get("level") or "").strip()
        try:
            value = float((row.get("N") or "").replace(",", "").strip())
        except ValueError:
            raise SpecError(_("Line %(line)s: N must be a number.") % {"line": line}) from None
        if not variable or not level:
            raise SpecError(_("Line %(line)s: variable and level are required.") % {"line": line})
        if level in totals.get(variable, {}):
            raise SpecError(
                _("Line %(line)s: %(v)s=%(l)s appears twice.")
                % {"line": line, "v": variable, "l": level}
            )
        totals.setdefault(variable, {})[level] = value
    if not totals:
        raise SpecError(_("The margins file has no rows."))
    return _checked_margin_totals(totals)


def _decoded(content: bytes) -> str:
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SpecError(_("The margins file must be UTF-8 or CP949 text."))


def collapse_levels(spec: WeightingSpec, strata_variables: list[str]) -> list[tuple[str, ...]]:
    """The parents of a weighting class, finest first, ending with the whole population."""
    if spec.collapse_hierarchy:
        return [*spec.collapse_hierarchy, ()]
    return [tuple(strata_variables[:k]) for k in range(len(strata_variables) - 1, -1, -1)]


def _class_variables(spec: WeightingSpec) -> tuple[str, ...]:
    classes = () if spec.weighting_classes == "stratum" else tuple(spec.weighting_classes)
    return classes + tuple(v for level in spec.collapse_hierarchy for v in level)
