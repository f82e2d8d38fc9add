"""Release levels of the microdata, and the disclosure control of the non-identified ones.

The identified file is internal and goes out as the microdata writer makes it. A
scientific-use or public-use file goes through these steps, applied to the rows the writer
already produces (analytics/engine/disclosure.py does the arithmetic), each recorded in the
disclosure-risk report that comes with the file:

1. left out: business ID and personal data (as before), free text and dates (they can name
   the firm; none are reviewed for release);
2. recoded (public use): the finest classification, the region (sido), is left out; the
   region area stays;
3. numeric key variables, the answers a register also holds (employees, sales), are
   microaggregated: groups of at least k firms of the same classification share the
   weighted mean of their values, so every weighted total and mean of the whole file is
   the published one;
4. local suppression: where a combination of key values still occurs fewer than k times,
   or a record's re-identification risk is above the target, the finest classification is
   blanked on the rarest records first, then coarser ones, last the design stratum (with
   its population and sample size and base weight);
5. `unit_id` keyed per release, so two releases cannot be joined; a panel file keeps one key
   per level across releases.

The report gives the key variables, the k-anonymity violations and the individual and
global re-identification risk (sdcMicro's definitions) before and after protection, each
step, how many firms of the frame agree with each released record, and how far the
estimates computed from the file are from the published ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.engine import disclosure
from respondents.models import FrameUnit, frame_variable

from ..models import Estimate
from .microdata import FRAME_VARIABLES, Layout, Missing, Records, Variable
from .options import ExportOptions


@dataclass(frozen=True)
class Policy:
    k: int  # every key combination at least this often
    max_risk: float  # no record's individual re-identification risk above this
    recoded: tuple[str, ...]  # classifications left out at this level


POLICIES = {
    "scientific": Policy(k=3, max_risk=0.2, recoded=()),
    "public": Policy(k=5, max_risk=0.1, recoded=("region",)),
}
# Answers a business register also holds: an intruder could match on them.
NUMERIC_KEYS = ("employees", "sales_krw_mn")
# Finest first: the order in which local suppression blanks classifications.
CLASSIFICATIONS = ("region", "region_area", "industry_group", "size_class")
DESIGN_COLUMNS = ("stratum", "stratum_population", "stratum_sample", "base_weight")
LEFT_OUT_KINDS = ("text",)
TOLERANCE = 1e-9
STEP_LABELS = {
    "left out": gettext_lazy("left out"),
    "recoded": gettext_lazy("recoded"),
    "microaggregation": gettext_lazy("microaggregation"),
    "local suppression": gettext_lazy("local suppression"),
    "unit_id": gettext_lazy("unit ID"),
}


def records_for(options: ExportOptions) -> Records | Release:
    records = Records(options)
    if options.identified:
        return records
    return Release(records, options)


def policy_of(level: str) -> Policy | None:
    return POLICIES.get(level)


def treatment(variable: Variable, level: str, strata_variables: Sequence[str]) -> str:
    """How a variable is released at a level: a line of the codebook."""
    policy = POLICIES[level]
    name = variable.question or variable.name
    if variable.identified_only:
        return "left out (identifying)"
    if variable.kind in LEFT_OUT_KINDS:
        return "left out (free text or date, not reviewed)"
    if name in policy.recoded:
        return "left out (recoded to region_area)"
    if name in NUMERIC_KEYS:
        return f"microaggregated: weighted mean of groups of at least {policy.k} similar firms"
    if name == "unit_id":
        return "keyed per release (stable in a panel file)"
    if name in CLASSIFICATIONS or name in DESIGN_COLUMNS or name in strata_variables:
        return f"blanked where rarer than {policy.k} or riskier than {policy.max_risk}"
    return "as collected"


class Release:
    """Protected rows with the same interface as Records (layout, total, iteration)."""

    def __init__(self, records: Records, options: ExportOptions) -> None:
        self.options = options
        self.policy = POLICIES[options.level]
        source = records.layout
        strata = [s for s in source.strata_variables if s not in FRAME_VARIABLES]
        kept = [i for i, v in enumerate(source.variables) if not self._left_out(v)]
        left_out = [
            v.name
            for i, v in enumerate(source.variables)
            if i not in set(kept) and v.name not in self.policy.recoded
        ]
        rows = [[row[i] for i in kept] for row in records]
        variables = [source.variables[i] for i in kept]
        self.columns = {v.name: j for j, v in enumerate(variables)}
        self.strata_variables = strata
        self.rows = rows
        self.total = len(rows)
        self.report = self._protect(left_out)
        suppressed = set(self.report["suppressed_columns"])
        variables = [
            replace(v, kind="number")
            if v.name in suppressed and v.kind in ("integer", "decimal")
            else v
            for v in variables
        ]
        self.layout = Layout(variables, source.versions, source.strata_variables)

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.rows)

    def _left_out(self, variable: Variable) -> bool:
        return (
            variable.identified_only
            or variable.kind in LEFT_OUT_KINDS
            or (not variable.question and variable.name in self.policy.recoded)
        )

    # --- the key variables -------------------------------------------------------------

    def _categorical(self) -> list[str]:
        names = ["stratum", *self.strata_variables, *CLASSIFICATIONS[::-1]]
        return [n for n in dict.fromkeys(names) if n in self.columns]

    def _numeric(self) -> list[str]:
        return [n for n in NUMERIC_KEYS if n in self.columns]

    def _column(self, name: str) -> list[Any]:
        j = self.columns[name]
        return [row[j] for row in self.rows]

    def _weights(self, name: str) -> np.ndarray:
        return np.asarray([_number(v) for v in self._column(name)], dtype=np.float64)

    def _numbers(self, names: list[str]) -> np.ndarray:
        if not names:
            return np.empty((self.total, 0))
        return np.column_stack([self._weights(name) for name in names])

    # --- protection ----------------------------------------------------------------------

    def _protect(self, left_out: list[str]) -> dict[str, Any]:
        policy, k = self.policy, self.policy.k
        categorical, numeric = self._categorical(), self._numeric()
        codes = np.column_stack(
            [disclosure.encode(self._column(n), self._missing(n)) for n in categorical]
            or [np.zeros(self.total, np.int64)]
        )
        base = np.nan_to_num(self._weights("base_weight"))
        final = np.nan_to_num(self._weights("final_weight"))
        values = self._numbers(numeric)
        steps = self._steps(categorical)
        done = disclosure.protect(
            codes,
            values,
            sampling_weights=base,
            estimation_weights=final,
            cells=self._cells(codes, categorical),
            steps=steps,
            k=k,
            max_risk=policy.max_risk,
        )
        released, groups, lonely, before = done.released, done.groups, done.lonely, done.before
        frame = self._frame(categorical, values, groups, released)
        keys = self._until_not_unique_in_frame(done.keys, frame, steps)
        blanked = done.suppressed | (
            (keys[:, : len(categorical)] < 0) & (done.keys[:, : len(categorical)] >= 0)
        )
        width = len(categorical)
        unique_numbers = ((keys[:, width:] < 0) & (done.keys[:, width:] >= 0)).any(axis=1)
        lonely = _short_groups(groups, lonely | unique_numbers, k)
        blanked |= self._k_as_read(keys, released, base, groups, lonely, steps)
        keys[lonely, width:] = disclosure.MISSING
        after = disclosure.measure(keys, base, k)
        self._apply(numeric, released, categorical, blanked, lonely)
        suppressed = {name: int(blanked[:, j].sum()) for j, name in enumerate(categorical)}
        design_blanked = self._blank_design(categorical, blanked)
        report = {
            "survey": self.options.survey.slug,
            "level": self.options.level,
            "run": self.options.run.number if self.options.run else None,
            "release": self.options.release_key,
            "panel": self.options.panel,
            "generated_at": timezone.now().isoformat(),
            "records": self.total,
            "targets": {"k": k, "max_individual_risk": policy.max_risk},
            "key_variables": {"categorical": categorical, "numeric": numeric},
            "population_frequencies_from": "base_weight",
            "before": before.summary(policy.max_risk),
            "after": after.summary(policy.max_risk),
            "targets_met": after.violations == 0 and after.above(policy.max_risk) == 0,
            "steps": self._steps_report(
                left_out, numeric, groups, suppressed, design_blanked, int(lonely.sum())
            ),
            "suppressed_columns": [n for n, c in suppressed.items() if c]
            + (list(DESIGN_COLUMNS[1:]) if design_blanked else []),
        }
        report["frame_check"] = frame.summary(keys) if frame else {}
        report["estimates"] = compare_estimates(self)
        return report

    def _k_as_read(
        self,
        keys: np.ndarray,
        released: np.ndarray,
        base: np.ndarray,
        groups: np.ndarray,
        lonely: np.ndarray,
        steps: list[list[int]],
    ) -> np.ndarray:
        """k-anonymity of the file as a reader without its missing-value codes sees it (a
        CSV): a blanked number looks like an unanswered one, a category of its own rather
        than the wildcard the risk measures take it for. Classifications are suppressed
        until every key so read occurs k times; where none is left, the numbers go too.
        Updates keys (classifications) and lonely in place; returns the classifications
        blanked here."""
        k, width = self.policy.k, keys.shape[1] - released.shape[1]
        before = keys[:, :width].copy()
        for _round in range(3):
            shown = released.copy()
            shown[lonely] = np.nan
            read = np.column_stack([keys[:, :width], disclosure.numeric_codes(shown)])
            done = disclosure.suppress(read, base, k=k, max_risk=1.0, steps=steps)
            keys[:, :width] = done.keys[:, :width]
            if not done.unresolved:
                break
            fk = disclosure.measure(done.keys, base, k).fk
            lonely |= _short_groups(groups, lonely | ((fk > 0) & (fk < k)), k)
        return (keys[:, :width] < 0) & (before >= 0)

    def _missing(self, name: str) -> np.ndarray:
        return np.asarray(
            [v is None or isinstance(v, Missing) or v == "" for v in self._column(name)]
        )

    def _cells(self, codes: np.ndarray, categorical: list[str]) -> list[np.ndarray]:
        """Microaggregation cells, fine to coarse: the whole key, then the classifications
        alone without the finest ones one by one (size class last), then the whole file."""
        fine = [n for n in CLASSIFICATIONS if n in categorical]
        levels = [list(range(len(categorical)))]
        levels += [[categorical.index(n) for n in fine[dropped:]] for dropped in range(len(fine))]
        cells = [disclosure.encode([tuple(r) for r in codes[:, used].tolist()]) for used in levels]
        cells.append(np.zeros(self.total, dtype=np.int64))
        return cells

    def _steps(self, categorical: list[str]) -> list[list[int]]:
        """Finest classification first; the stratum and its own variables go together last."""
        design = {"stratum", *self.strata_variables}
        steps = [
            [categorical.index(n)] for n in CLASSIFICATIONS if n in categorical and n not in design
        ]
        last = [categorical.index(n) for n in categorical if n in design]
        return [*steps, last] if last else steps

    def _apply(
        self,
        numeric: list[str],
        released: np.ndarray,
        categorical: list[str],
        blanked: np.ndarray,
        lonely: np.ndarray,
    ) -> None:
        for j, name in enumerate(numeric):
            column = self.columns[name]
            for row, value, alone in zip(
                self.rows, released[:, j].tolist(), lonely.tolist(), strict=True
            ):
                if alone and not isinstance(row[column], Missing):
                    row[column] = Missing.SUPPRESSED
                elif not math.isnan(value):
                    row[column] = value
        for j, name in enumerate(categorical):
            column = self.columns[name]
            for index in np.flatnonzero(blanked[:, j]).tolist():
                self.rows[index][column] = Missing.SUPPRESSED

    def _blank_design(self, categorical: list[str], blanked: np.ndarray) -> int:
        """A blanked stratum also blanks what names it: N_h, n_h and the base weight."""
        if "stratum" not in categorical:
            return 0
        rows = np.flatnonzero(blanked[:, categorical.index("stratum")]).tolist()
        for name in DESIGN_COLUMNS[1:]:
            if name in self.columns:
                for index in rows:
                    self.rows[index][self.columns[name]] = Missing.SUPPRESSED
        return len(rows)

    def _steps_report(
        self,
        left_out: list[str],
        numeric: list[str],
        groups: np.ndarray,
        suppressed: dict[str, int],
        design_blanked: int,
        lonely: int,
    ) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = [
            {"step": "left out", "variables": left_out,
             "why": _("identifying, personal data, free text or dates (not reviewed)")},
        ]  # fmt: skip
        if self.policy.recoded:
            steps.append(
                {"step": "recoded", "variables": list(self.policy.recoded),
                 "why": _("finest classification; region_area is kept")}
            )  # fmt: skip
        if numeric:
            sizes = np.bincount(groups[groups >= 0]) if (groups >= 0).any() else np.zeros(0)
            steps.append(
                {
                    "step": "microaggregation",
                    "variables": numeric,
                    "groups": int(sizes.size),
                    "records": int(sizes.sum()),
                    "smallest_group": int(sizes.min()) if sizes.size else 0,
                    "why": _("register values; weighted group means keep every weighted total"),
                }
            )
        if lonely:
            steps.append(
                {"step": "local suppression", "variables": numeric, "records": lonely,
                 "why": _("in a group of fewer than %(k)s, or unique in the frame")
                 % {"k": self.policy.k}}
            )  # fmt: skip
        for name, count in suppressed.items():
            if count:
                steps.append({"step": "local suppression", "variables": [name], "records": count})
        if design_blanked:
            steps.append(
                {"step": "local suppression", "variables": list(DESIGN_COLUMNS[1:]),
                 "records": design_blanked, "why": _("they name the blanked stratum")}
            )  # fmt: skip
        steps.append(
            {"step": "unit_id", "why": _("stable pseudonym (panel file)") if self.options.panel
             else _("keyed per release: two releases cannot be joined")}
        )  # fmt: skip
        for step in steps:
            step["label"] = str(STEP_LABELS[step["step"]])
        return steps

    # --- the frame ----------------------------------------------------------------------

    def _frame(
        self,
        categorical: list[str],
        values: np.ndarray,
        groups: np.ndarray,
        aggregated: np.ndarray,
    ) -> FrameCheck | None:
        names = [n for n in CLASSIFICATIONS if n in self.columns]
        frame = list(
            FrameUnit.objects.filter(survey=self.options.survey)
            .annotate(
                industry_group=frame_variable("industry_group"),
                region_area=frame_variable("region_area"),
            )
            .values_list(
                "size_class", "region", "industry_group", "region_area", "employees", "sales_krw_mn"
            )
        )
        if not names or not frame:
            return None
        columns = _frame_columns(frame)
        released, coded = [], []
        for name in names:
            both = disclosure.encode([*[str(v) for v in self._column(name)], *columns[name]])
            released.append(both[: self.total])
            coded.append(both[self.total :])
        numeric = self._numeric()
        low, high = _group_ranges(values, groups)
        frame_values = np.column_stack(
            [np.asarray(columns[n], dtype=np.float64) for n in numeric]
        ) if numeric else np.empty((len(frame), 0))  # fmt: skip
        design = self.options.survey.designs.filter(drawn_at__isnull=False).first()
        return FrameCheck(
            names=names,
            numeric=numeric,
            categorical=categorical,
            implied=set(design.strata_variables) if design else set(),
            released=np.column_stack(released),
            frame=np.column_stack(coded),
            low=low,
            high=high,
            values=aggregated,
            frame_values=frame_values,
            answered=~np.isnan(values).all(axis=1) if numeric else np.ones(self.total, bool),
            k=self.policy.k,
        )

    def _until_not_unique_in_frame(
        self, keys: np.ndarray, frame: FrameCheck | None, steps: list[list[int]]
    ) -> np.ndarray:
        """The frame is the population: a record that only one firm of it matches loses
        its next classification, until none is unique in the frame; last, its numbers."""
        keys = keys.copy()
        numbers = np.arange(len(self._categorical()), keys.shape[1])
        if frame is None:
            return keys
        for _round in range(len(steps) + 1):
            unique = frame.answered & (frame.matches(keys) == 1)
            if not unique.any():
                break
            if _round == len(steps):
                keys[np.ix_(np.flatnonzero(unique), numbers)] = disclosure.MISSING
            else:
                disclosure.blank_next_step(keys, unique, steps)
        return keys


@dataclass
class FrameCheck:
    """How many firms of the frame agree with each released record on every frame
    classification it shows (or its stratum implies), with register values inside the
    range of its microaggregation group (a value the register lacks rules nothing out)."""

    names: list[str]
    numeric: list[str]
    categorical: list[str]
    implied: set[str]
    released: np.ndarray
    frame: np.ndarray
    low: np.ndarray
    high: np.ndarray
    values: np.ndarray  # as released
    frame_values: np.ndarray
    answered: np.ndarray
    k: int

    def matches(self, keys: np.ndarray) -> np.ndarray:
        """The fewest firms any intruder finds for each record (0 when none): matching on
        the classifications and, for each number, nothing, the range of its group, or the
        released value exactly (a group mean can equal the firm's own value). Every
        combination is tried: a register value that disagrees with the answer would rule
        out the firm itself on one number only."""
        codes = self.released.copy()
        codes[~self._shown(keys)] = disclosure.MISSING
        width = len(self.categorical)
        shown_numbers = keys[:, width:] >= 0 if keys.shape[1] > width else None
        lows, highs = [], []
        for choice in itertools.product(("none", "range", "value"), repeat=len(self.numeric)):
            low, high = self.low.copy(), self.high.copy()
            for j, how in enumerate(choice):
                if how == "none":
                    low[:, j] = high[:, j] = np.nan
                elif how == "value":
                    low[:, j] = high[:, j] = self.values[:, j]
            if shown_numbers is not None:
                low[~shown_numbers] = high[~shown_numbers] = np.nan
            lows.append(low)
            highs.append(high)
        found = disclosure.frame_matches(
            codes, self.frame, np.stack(lows), np.stack(highs), self.frame_values
        )
        positive = np.where(found > 0, found, np.iinfo(np.int64).max)
        fewest = positive.min(axis=0)
        return np.where(fewest == np.iinfo(np.int64).max, 0, fewest)

    def _shown(self, keys: np.ndarray) -> np.ndarray:
        shown = np.ones(self.released.shape, bool)
        cat = self.categorical
        stratum = keys[:, cat.index("stratum")] >= 0 if "stratum" in cat else None
        for j, name in enumerate(self.names):
            if name in cat:
                shown[:, j] = keys[:, cat.index(name)] >= 0
            if stratum is not None and name in self.implied:
                shown[:, j] |= stratum
        return shown

    def summary(self, keys: np.ndarray) -> dict[str, Any]:
        checked = self.matches(keys)[self.answered]
        return {
            "frame_units": int(self.frame.shape[0]),
            "records_checked": int(self.answered.sum()),
            "unique_in_frame": int((checked == 1).sum()),
            "fewer_than_k_in_frame": int((checked < self.k).sum()),
            "min_matches": int(checked.min()) if checked.size else 0,
            "variables": self.names + self.numeric,
        }


def _short_groups(groups: np.ndarray, lonely: np.ndarray, k: int) -> np.ndarray:
    """Blanking some members' numbers leaves the rest of their group fewer than k firms
    sharing a value: those are blanked too, until every value shown is shared by k."""
    lonely = lonely.copy()
    grouped = groups >= 0
    while True:
        shown = grouped & ~lonely
        visible = np.bincount(groups[shown], minlength=int(groups.max(initial=0)) + 1)
        short = shown & (visible[np.maximum(groups, 0)] < k)
        if not short.any():
            return lonely
        lonely |= short


def _frame_columns(frame: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    sizes, regions, groups, areas, employees, sales = zip(*frame, strict=True)
    return {
        "size_class": list(sizes),
        "region": list(regions),
        "industry_group": list(groups),
        "region_area": list(areas),
        "employees": [float(e) for e in employees],
        "sales_krw_mn": [float(s) if s is not None else np.nan for s in sales],
    }


def _group_ranges(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each record's [min, max] of its group's original values (NaN where it has none)."""
    low = np.full(values.shape, np.nan)
    high = np.full(values.shape, np.nan)
    for g in np.unique(groups[groups >= 0]).tolist():
        members = groups == g
        for j in range(values.shape[1]):
            column = values[members, j]
            present = ~np.isnan(column)
            if present.any():
                rows = np.flatnonzero(members)[present]
                low[rows, j], high[rows, j] = column[present].min(), column[present].max()
    return low, high


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


# --- estimates from the released file ------------------------------------------------------


def compare_estimates(release: Release) -> dict[str, Any]:
    """Every published, unsuppressed estimate the file can reproduce (the whole population,
    and domains of variables it still holds), computed from the file with final_weight:
    the largest difference by statistic, for the whole population and for domains."""
    options = release.options
    if options.run is None:
        return {}
    weight = release._weights("final_weight")
    worst: dict[str, dict[str, float]] = {"all": {}, "domains": {}}
    compared = 0
    published = Estimate.objects.filter(run=options.run, suppressed=False).exclude(estimate=None)
    for row in published.values_list(
        "item", "option", "statistic", "domain", "domain_value", "estimate"
    ):
        item, option, statistic, domain, value, estimate = row
        mask = _domain_mask(release, domain, value)
        y = _item_values(release, item, option)
        if mask is None or y is None:
            continue
        computed = estimate_from(y, weight, mask, statistic)
        if computed is None or estimate is None:
            continue
        scope = "all" if domain == "all" else "domains"
        difference = abs(computed - estimate)
        worst[scope][statistic] = max(worst[scope].get(statistic, 0.0), difference)
        compared += 1
    return {
        "compared": compared,
        "max_abs_difference": {
            scope: {s: float(f"{d:.6g}") for s, d in found.items()}
            for scope, found in worst.items()
        },
        "bound": _(
            "Whole population: every proportion equals the published value, and every mean "
            "and total too (answers and final weights are unchanged, microaggregation keeps "
            "weighted totals) unless numbers had to be blanked; the differences stated here "
            "are the largest there are. Domains: at most the differences stated here; firms "
            "whose domain value is blanked drop out of that domain."
        ),
    }


def _domain_mask(release: Release, domain: str, value: str) -> np.ndarray | None:
    if domain == "all":
        return np.ones(release.total, bool)
    if domain not in release.columns:
        return None
    return np.asarray([v == value for v in release._column(domain)], dtype=bool)


def _item_values(release: Release, item: str, option: str) -> np.ndarray | None:
    """The item as numbers (NaN where missing): an option's 0/1, or the answer itself."""
    if f"{item}/{option}" in release.columns:
        return release._weights(f"{item}/{option}")
    if item not in release.columns:
        return None
    cells = release._column(item)
    if option:
        return np.asarray(
            [math.nan if isinstance(v, Missing) or v is None else float(v == option) for v in cells]
        )
    return np.asarray([_number(v) for v in cells])


def estimate_from(
    y: np.ndarray, weight: np.ndarray, mask: np.ndarray, statistic: str
) -> float | None:
    """The published point estimate's formula: Σwy/Σw (proportion, mean) or Σwy (total)
    over the domain's records that have the item."""
    use = mask & ~np.isnan(y) & ~np.isnan(weight)
    if not use.any():
        return None
    total = float((weight[use] * y[use]).sum())
    if statistic == "total":
        return total
    denominator = float(weight[use].sum())
    return total / denominator if denominator > 0 else None
