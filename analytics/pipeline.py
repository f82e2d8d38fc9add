"""Recompute a survey's estimates: snapshot, weights, estimates, atomic publication.

Everything is recomputed from scratch from the current dispositions and answers (sec. G).
A run becomes visible only when all its estimates are written (one transaction flips it
to published); a run that fails or is killed publishes nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from django.conf import settings
from django.contrib.postgres.aggregates import JSONBAgg
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Max, Model, OuterRef, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.engine import aapor, estimation, quality, replication, weighting
from config.celery import send_task
from respondents.models import Case, SampleDesign, Wave, frame_variable
from surveys.models import Response, Survey, get_form
from surveys.questionnaire import Form, Question

from . import editing, imputation, review
from .locks import survey_lock
from .models import Estimate, EstimateRun, ImputedValue, RecomputeRequest, WeightingSpec
from .recompute import PUBLISH_OFFICIAL, RECOMPUTE_SURVEY, request_recompute
from .spec import WeightingSpec as Spec
from .spec import calibration_key, collapse_levels, parse_spec

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
ENGINE_FILES = (
    "engine/weighting.py",
    "engine/estimation.py",
    "engine/quality.py",
    "pipeline.py",
    "spec.py",
    "engine/replication.py",
)
ESTIMATED_TYPES = ("select_one", "select_multiple", "integer", "decimal", "calculate")
OVERALL = ("all", "all")


def code_version() -> str:
    """A fingerprint of the estimation code, recorded with every run."""
    digest = hashlib.sha256()
    for name in ENGINE_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return f"{np.__version__}-{digest.hexdigest()[:16]}"


# --- the survey's current spec -----------------------------------------------------------


def current_spec(survey: Survey) -> tuple[Spec, int]:
    stored = WeightingSpec.objects.filter(survey=survey).order_by("-version").first()
    if stored is None:
        return Spec(), 0
    return parse_spec(stored.spec), stored.version


def save_spec(survey: Survey, spec: Spec, *, user: Any = None) -> int:
    """Store the spec as the survey's next version and mark the estimates stale."""
    with transaction.atomic():
        # Two administrators saving at once: the second waits and takes the next number.
        Survey.objects.select_for_update().filter(pk=survey.pk).first()
        _current, version = current_spec(survey)
        WeightingSpec.objects.create(
            survey=survey,
            version=version + 1,
            spec=spec.to_json(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        request_recompute(survey.pk, reason="weighting spec changed")
    return version + 1


# --- the snapshot ------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Every in-sample case with its design variables and status, and the respondents'
    answers as one column per estimated item (NaN where not asked or not answered)."""

    case_ids: npt.NDArray[np.int64]
    strata: npt.NDArray[np.str_]
    population: FloatArray  # N_h of each case's stratum
    categories: npt.NDArray[np.str_]  # I, P, R, NC, O, U, NE
    variables: dict[str, npt.NDArray[np.str_]]
    strata_variables: list[str]
    items: list[Item]
    y: FloatArray  # respondents (in case order) x items
    choices: dict[str, npt.NDArray[np.object_]]  # single-choice answers, for domains
    versions: set[int]
    read_at: Any = None
    # Respondents x items: the value was imputed (methodology L7), and what each imputed.
    imputed: npt.NDArray[np.bool_] | None = None
    imputations: list[imputation.Record] = dataclasses.field(default_factory=list)

    @property
    def respondent(self) -> npt.NDArray[np.bool_]:
        return np.isin(self.categories, ["I", "P"])

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        arrays = [self.case_ids, self.strata, self.population, self.categories, self.y]
        if self.imputed is not None:
            arrays.append(self.imputed)
        for array in arrays:
            # The array's own buffer: tobytes() would copy a census's matrix (~80 MB).
            digest.update(np.ascontiguousarray(array).data.cast("B"))
        digest.update(json.dumps([dataclasses.astuple(i) for i in self.items]).encode())
        return digest.hexdigest()


def load_snapshot(survey: Survey, *, answers: bool = True, spec: Spec | None = None) -> Snapshot:
    """The sample as arrays; with `answers`, the respondents' answers as edited, and, with a
    `spec` that asks for it, imputed."""
    design = SampleDesign.objects.filter(survey=survey, drawn_at__isnull=False).first()
    if design is None:
        raise weighting.WeightingError("the survey has no drawn sample yet")
    read_at = timezone.now()
    query = (
        Case.objects.in_sample()
        .filter(survey=survey)
        .annotate(
            industry_group=frame_variable("industry_group", "frame_unit__"),
            region_area=frame_variable("region_area", "frame_unit__"),
        )
        .order_by("pk")
        .values_list(
            "pk",
            "stratum_id",
            "disposition",
            "frame_unit__size_class",
            "frame_unit__region",
            "frame_unit__ksic",
            "industry_group",
            "region_area",
        )
    )
    ids, stratum_ids, codes, sizes, regions, ksics, groups, areas = _columns(query, 8)
    if not ids:
        raise weighting.WeightingError("the sample has no cases")
    strata = {
        pk: (key, population, values)
        for pk, key, population, values in design.strata.values_list(
            "pk", "key", "population", "values"
        )
    }
    # Per stratum, then spread to the cases: a census has 163,273 cases and few strata.
    stratum_pks, stratum_of = np.unique(
        np.asarray(stratum_ids, dtype=np.int64), return_inverse=True
    )
    held = [strata[pk] for pk in stratum_pks.tolist()]
    keys = np.asarray([key for key, _population, _values in held])[stratum_of]
    population = np.asarray([p for _key, p, _values in held], dtype=np.float64)[stratum_of]
    strata_variables = list(design.strata_variables)
    variables = _frame_variables(
        [values for _key, _population, values in held],
        stratum_of,
        {"size_class": sizes, "region": regions, "ksic": ksics},
        {"industry_group": groups, "region_area": areas},
        strata_variables,
    )
    code_of, dispositions = _distinct(codes)
    categories = np.array([aapor.category_of(code) for code in dispositions])[code_of]
    case_ids = np.asarray(ids, dtype=np.int64)
    # The row lists (a census's 163,273 x 6 Python objects) go before the answers come.
    del ids, stratum_ids, codes, sizes, regions, ksics, groups, areas
    respondent_ids = case_ids[np.isin(categories, ["I", "P"])]
    versions = _versions(survey, respondent_ids) if answers else set()
    forms = [get_form(v) for v in sorted(versions | _current(survey))] if answers else []
    questions = estimated_questions(forms)
    raw = _answer_columns(survey, respondent_ids, list(questions)) if answers else {}
    filled = imputation.Result()
    if answers and spec is not None and spec.imputation:
        respondent = np.isin(categories, ["I", "P"])
        classes = {name: values[respondent] for name, values in variables.items()}
        filled = imputation.impute(respondent_ids, raw, classes, spec)
    items, y, choices = item_columns(questions, raw, int(respondent_ids.size))
    imputed = np.zeros(y.shape, bool)
    for j, item in enumerate(items):
        if item.question in filled.imputed:
            imputed[:, j] = filled.imputed[item.question]
    return Snapshot(
        case_ids=case_ids,
        strata=keys,
        population=population,
        categories=categories,
        variables=variables,
        strata_variables=strata_variables,
        items=items,
        y=y,
        choices=choices,
        versions=versions,
        read_at=read_at,
        imputed=imputed,
        imputations=filled.records,
    )


def _columns(query: Any, width: int) -> list[Sequence[Any]]:
    """The rows of a values_list as columns, read with one plain cursor (Django's iterator
    costs seconds on a census's 163,273 rows)."""
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


def _frame_variables(
    values: Sequence[Mapping[str, str]],
    stratum_of: npt.NDArray[np.intp],
    columns: Mapping[str, Sequence[str]],
    derived: Mapping[str, Sequence[str]],
    strata_variables: list[str],
) -> dict[str, npt.NDArray[np.str_]]:
    """Domain and class variables: the design's own values for strata variables (values:
    one mapping per stratum, stratum_of: each case's), else the frame's columns and the
    derived variables as the database gave them (respondents.models.frame_variable)."""
    out = {name: _spread(column) for name, column in {**columns, **derived}.items()}
    out["ksic_division"] = _spread(columns["ksic"], lambda ksic: ksic[:2])
    del out["ksic"]
    for name in strata_variables:
        out[name] = np.asarray([v[name] for v in values])[stratum_of]
    return out


def _spread(column: Sequence[str], of: Callable[[str], str] | None = None) -> npt.NDArray[np.str_]:
    # Each distinct value is made (and mapped) once, then spread to the cases by its code.
    codes, levels = _distinct(column)
    return np.asarray(levels if of is None else [of(level) for level in levels])[codes]


def _distinct(column: Sequence[Any]) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Each value's code and the distinct values, in order of first appearance."""
    distinct = list(dict.fromkeys(column))
    code = {v: k for k, v in enumerate(distinct)}
    return np.fromiter(map(code.__getitem__, column), np.intp, len(column)), distinct


def _versions(survey: Survey, case_ids: npt.NDArray[np.int64]) -> set[int]:
    """Questionnaire versions the respondents answered."""
    found = Response.objects.filter(case__survey=survey).order_by()
    if connection.vendor == "postgresql":
        # One row per version with its cases, rather than a row per response.
        grouped = found.values_list("questionnaire_id").annotate(
            cases=Cast(JSONBAgg("case_id"), TextField())
        )
        return {
            version
            for version, cases in grouped
            if np.isin(np.asarray(orjson.loads(cases), dtype=np.int64), case_ids).any()
        }
    versions, cases = (
        np.asarray(c, dtype=np.int64)
        for c in _columns(found.values_list("questionnaire_id", "case_id"), 2)
    )
    return set(np.unique(versions[np.isin(cases, case_ids)]).tolist())


def _answer_columns(
    survey: Survey, case_ids: npt.NDArray[np.int64], names: Sequence[str]
) -> dict[str, npt.NDArray[np.object_]]:
    """Each question's answers in the order of case_ids (None where absent).

    PostgreSQL takes each question's answers out of the JSON and sends one JSON array per
    question (the aggregates see the rows in one order, that of the case ids' array), which
    orjson parses at once: no answer dict per response is built in Python. Repeated text
    (choice names) is kept as one object per distinct value."""
    n = int(case_ids.size)
    columns = {name: np.full(n, None, dtype=object) for name in names}
    if not names or not n:
        return columns
    if connection.vendor != "postgresql":
        return _answer_rows(survey, case_ids, columns)
    quote = connection.ops.quote_name
    response, case = Response._meta, Case._meta
    # The answers as edited: editing's values over the firm's (methodology L7).
    answers = f"(r.{_column(Response, 'answers')} || r.{_column(Response, 'edited')})"
    case_id = f"r.{_column(Response, 'case')}"
    selected = ", ".join(
        [f"json_agg({case_id})::text"] + [f"json_agg({answers} -> %s)::text"] * len(names)
    )
    # Identifiers from the models, quoted; the question names are parameters.
    sql = (
        f"SELECT {selected} FROM {quote(response.db_table)} r"  # noqa: S608
        f" JOIN {quote(case.db_table)} c ON c.{_column(Case, 'id')} = {case_id}"
        f" WHERE c.{_column(Case, 'survey')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*names, survey.pk])
        texts = list(cursor.fetchone())
    if texts[0] is None:
        return columns
    ids = np.asarray(orjson.loads(texts[0]), dtype=np.int64)
    at = np.minimum(np.searchsorted(case_ids, ids), n - 1)
    wanted = case_ids[at] == ids
    at = at[wanted]
    shared: dict[str, str] = {}
    for j, name in enumerate(names, start=1):
        values = orjson.loads(texts[j])
        texts[j] = None
        column = np.fromiter(
            (shared.setdefault(v, v) if type(v) is str else v for v in values),
            dtype=object,
            count=len(values),
        )
        columns[name][at] = column[wanted]
    return columns


def _column(model: type[Model], field: str) -> str:
    """A concrete field's column, quoted for raw SQL."""
    column = getattr(model._meta.get_field(field), "column", None)
    assert isinstance(column, str), field
    return connection.ops.quote_name(column)


def _answer_rows(
    survey: Survey, case_ids: npt.NDArray[np.int64], columns: dict[str, npt.NDArray[np.object_]]
) -> dict[str, npt.NDArray[np.object_]]:
    """_answer_columns() without PostgreSQL's JSON functions: response by response."""
    position = {int(case): k for k, case in enumerate(case_ids.tolist())}
    query = Response.objects.filter(case__survey=survey).values_list(
        "case_id", Cast("answers", TextField()), Cast("edited", TextField())
    )
    shared: dict[str, str] = {}
    for case_id, text, edited in query.iterator(chunk_size=10000):
        k = position.get(case_id)
        if k is None:
            continue
        values = {**orjson.loads(text), **orjson.loads(edited)}
        for name in values.keys() & columns.keys():
            value = values[name]
            columns[name][k] = shared.setdefault(value, value) if type(value) is str else value
    return columns


# --- weights -------------------------------------------------------------------------------


@dataclass
class Weights:
    final: FloatArray  # one per case; 0 outside the respondent set
    respondent: npt.NDArray[np.bool_]
    projection: Any
    diagnostics: dict[str, Any]
    replicates: Replicates | None = None


@dataclass(frozen=True)
class Replicates:
    """Respondents' replicate weights (respondents x R) and how R combines them."""

    weights: FloatArray
    method: str
    type: str
    scale: float
    rscales: FloatArray
    mse: bool
    seed: int

    def design(self, final: FloatArray) -> replication.ReplicateDesign:
        return replication.ReplicateDesign(final, self.weights, self.scale, self.rscales, self.mse)


# Replicate weights are held in memory and stored with the run: refuse what would not fit.
MAX_REPLICATE_CELLS = 30_000_000


def compute_weights(snapshot: Snapshot, spec: Spec) -> Weights:
    """Sec. D: base weights, unknown eligibility, nonresponse (with collapsing), calibration,
    trimming; with replicate variance, the same steps again on every replicate."""
    base = weighting.design_weights(snapshot.strata, snapshot.population)
    categories = snapshot.categories
    if not spec.partials_are_respondents:
        categories = np.where(categories == "P", "R", categories)
    masks = weighting.status_masks(categories)
    hierarchy, names = _class_hierarchy(snapshot, spec)
    # D2 needs a unit of known status in each class, D3 enough respondents: each step
    # collapses along the same hierarchy for its own reason, and both logs are kept.
    everyone = np.ones(base.shape, dtype=bool)
    known_classes = weighting.collapse_classes(
        hierarchy, base, everyone, masks.known, r_min=1, names=names
    )
    d1 = weighting.adjust_unknown(base, masks.known, known_classes.classes)
    # A census's class labels run to ~30 MB an array: keep their codes and logs only.
    known_log, unknown_classes = known_classes.log, estimation.factorize(known_classes.classes)
    del known_classes
    collapsed = weighting.collapse_classes(
        hierarchy,
        d1,
        masks.eligible,
        masks.respondent,
        r_min=spec.min_respondents,
        a_max=spec.max_adjustment,
        names=names,
    )
    del hierarchy
    for step in collapsed.log:
        log.info(
            "weighting class %s collapsed into %s (%s: %s respondents, factor %.3g)",
            step.source,
            step.target,
            step.reason,
            step.respondents,
            step.factor,
        )
    adjusted = weighting.adjust_nonresponse(d1, masks.eligible, masks.respondent, collapsed.classes)
    collapse_log, classes = collapsed.log, estimation.factorize(collapsed.classes)
    del collapsed
    plan = _plan(snapshot, spec, masks, unknown_classes, classes)
    result = plan.apply(base[:, None])
    final = result.weights[:, 0]
    steps = [spec.calibration] if spec.calibration != "none" else []
    if result.trim_rounds:
        steps.append("trim")
    diagnostics = _diagnostics(snapshot, base, final, masks, collapse_log, adjusted, steps)
    diagnostics["collapsed_for_eligibility"] = [
        {"from": step.source, "into": step.target, "reason": step.reason} for step in known_log
    ]
    diagnostics["controls"] = _controls_record(spec, plan, result, final)
    if result.trim_rounds:
        diagnostics["trim_rounds"] = result.trim_rounds
    replicates = _replicates(snapshot, spec, plan, base, masks.respondent)
    if replicates is not None:
        diagnostics["variance"] = {
            "method": replicates.method,
            "replicates": int(replicates.weights.shape[1]),
            "seed": replicates.seed,
        }
    return Weights(final, masks.respondent, result.projection, diagnostics, replicates)


def _plan(
    snapshot: Snapshot,
    spec: Spec,
    masks: weighting.StatusMasks,
    unknown_classes: tuple[npt.NDArray[np.intp], npt.NDArray[np.generic]],
    classes: tuple[npt.NDArray[np.intp], npt.NDArray[np.generic]],
) -> weighting.WeightingPlan:
    return weighting.WeightingPlan(
        known=masks.known,
        eligible=masks.eligible,
        respondent=masks.respondent,
        unknown_classes=unknown_classes,
        classes=classes,
        calibration=spec.calibration,
        margins=tuple(_margins(snapshot, spec, masks)),
        bounds=spec.calibration_bounds,
        epsilon=spec.raking_epsilon,
        maxit=spec.raking_maxit,
        trim_lower=spec.trim_lower,
        trim_upper=spec.trim_upper,
        trim_rounds=spec.trim_rounds,
    )


def _margins(
    snapshot: Snapshot, spec: Spec, masks: weighting.StatusMasks
) -> list[weighting.Margin]:
    """Calibration variables with their controls' source (D4): the whole sample's eligible
    population of each level, or the external totals of the spec, scaled to one total."""
    if spec.calibration == "none":
        return []
    if spec.calibration == "poststratify":
        variables = {calibration_key(spec): _joined(snapshot, spec.margins)}
    else:
        variables = {v: snapshot.variables[v].astype(str) for v in spec.margins}
    check_margin_totals(spec, {name: set(values.tolist()) for name, values in variables.items()})
    out = []
    common = _common_total(spec.margin_totals)
    for name, values in variables.items():
        given = spec.margin_totals.get(name)
        if given is None:
            levels = np.unique(values[masks.eligible])
            fixed = None
        else:
            levels = np.array(sorted(given))
            raw = np.array([given[level] for level in levels])
            fixed = raw * (common / raw.sum())
        lookup = {level: k for k, level in enumerate(levels.tolist())}
        codes = np.fromiter((lookup.get(v, -1) for v in values.tolist()), np.intp, values.size)
        out.append(weighting.Margin(name, levels, codes, fixed))
    return out


def _common_total(totals: Mapping[str, Mapping[str, float]]) -> float:
    sums = [sum(levels.values()) for levels in totals.values()]
    return float(np.mean(sums)) if sums else 0.0


def check_margin_totals(spec: Spec, sample_levels: Mapping[str, set[str]]) -> None:
    """External totals may name only levels the sample has (else the file is wrong)."""
    for variable, levels in spec.margin_totals.items():
        missing = sorted(set(levels) - sample_levels.get(variable, set()))
        if missing:
            raise weighting.WeightingError(
                _("The control totals name %(variable)s = %(levels)s, which no sampled firm has.")
                % {"variable": variable, "levels": ", ".join(missing[:5])}
            )


def sample_levels(survey: Survey, spec: Spec) -> dict[str, set[str]]:
    """The levels of the calibration variables among the survey's sampled firms."""
    snapshot = load_snapshot(survey, answers=False)
    if spec.calibration == "poststratify":
        return {calibration_key(spec): set(_joined(snapshot, spec.margins).tolist())}
    return {v: set(snapshot.variables[v].astype(str).tolist()) for v in spec.margins}


def _controls_record(
    spec: Spec, plan: weighting.WeightingPlan, result: weighting.PlanResult, final: FloatArray
) -> dict[str, Any]:
    """The controls the run calibrated to, and what the final weights reach."""
    rows = []
    for margin, control in zip(plan.margins, result.controls, strict=True):
        achieved = np.bincount(
            margin.codes[plan.respondent],
            weights=final[plan.respondent],
            minlength=margin.levels.size,
        )
        for k, level in enumerate(margin.levels.tolist()):
            rows.append(
                {
                    "variable": margin.name,
                    "level": level,
                    "control": float(control[k, 0]),
                    "weighted": float(achieved[k]),
                }
            )
    source = "none" if spec.calibration == "none" else ("file" if spec.margin_totals else "sample")
    return {"source": source, "method": spec.calibration, "margins": rows}


def _replicates(
    snapshot: Snapshot,
    spec: Spec,
    plan: weighting.WeightingPlan,
    base: FloatArray,
    respondent: npt.NDArray[np.bool_],
) -> Replicates | None:
    if spec.variance == "taylor":
        return None
    count = spec.replicate_count
    if int(respondent.sum()) * count > MAX_REPLICATE_CELLS:
        raise weighting.WeightingError(
            _(
                "%(r)s replicates for %(n)s respondents are too many to keep; use Taylor "
                "linearisation or fewer replicates."
            )
            % {"r": count, "n": int(respondent.sum())}
        )
    make = replication.delete_a_group if spec.variance == "jackknife" else replication.rao_wu
    factors = make(snapshot.strata, snapshot.population, count, spec.replicate_seed)
    # Each replicate runs the whole weighting again (D2-D5), in blocks to bound memory.
    blocks = []
    for start in range(0, count, REPLICATE_BLOCK):
        block = factors.factors[:, start : start + REPLICATE_BLOCK]
        try:
            weights = plan.apply(base[:, None] * block).weights
        except weighting.WeightingError as exc:
            raise weighting.WeightingError(
                _("Replicate weighting failed: %(error)s") % {"error": exc}
            ) from None
        blocks.append(weights[respondent])
    return Replicates(
        weights=np.ascontiguousarray(np.hstack(blocks)),
        method=spec.variance,
        type=factors.type,
        scale=factors.scale,
        rscales=factors.rscales,
        mse=factors.mse,
        seed=spec.replicate_seed,
    )


REPLICATE_BLOCK = 100


def _class_hierarchy(
    snapshot: Snapshot, spec: Spec
) -> tuple[list[npt.NDArray[np.str_]], list[str]]:
    if spec.weighting_classes == "stratum":
        finest, name = snapshot.strata, "stratum"
    else:
        finest, name = (
            _joined(snapshot, tuple(spec.weighting_classes)),
            "×".join(spec.weighting_classes),
        )
    levels, names = [finest], [name]
    for parent in collapse_levels(spec, snapshot.strata_variables):
        levels.append(_joined(snapshot, parent))
        names.append("×".join(parent) or "all")
    return levels, names


def _joined(snapshot: Snapshot, variables: Sequence[str]) -> npt.NDArray[np.str_]:
    if not variables:
        return np.full(snapshot.case_ids.shape, "all")
    columns = [snapshot.variables[v] for v in variables]
    out = columns[0].astype(object)
    for column in columns[1:]:
        out = out + "/" + column.astype(object)
    return out.astype(str)


def _diagnostics(
    snapshot: Snapshot,
    base: FloatArray,
    final: FloatArray,
    masks: Any,
    collapse_log: Sequence[weighting.CollapseStep],
    adjusted: Any,
    steps: list[str],
) -> dict[str, Any]:
    """Sec. D6: Kish deff, extreme weights, factors per class, Σw per stratum vs N^E_h."""
    respondent = masks.respondent
    if not respondent.any():
        return {"respondents": 0, "calibration": steps}
    diag = weighting.weight_diagnostics(final[respondent], snapshot.strata[respondent])
    return {
        "respondents": diag.n,
        "sum_weights": diag.total,
        "estimated_eligible_population": float(adjusted.eligible_total.sum()),
        "kish_deff": diag.kish_deff,
        "min_weight": diag.minimum,
        "max_weight": diag.maximum,
        "max_min_ratio": _number(diag.max_min_ratio),
        "weight_cv": _number(diag.cv),
        "calibration": steps,
        "base_weight_total": float(base.sum()),
        "stratum_weight_totals": diag.class_totals,
        "classes": [
            {
                "class": str(label),
                "respondents": int(r),
                "factor": _number(f),
                "eligible_total": _number(e),
            }
            for label, r, f, e in zip(
                adjusted.classes,
                adjusted.respondents,
                adjusted.factors,
                adjusted.eligible_total,
                strict=True,
            )
        ],
        "collapsed": [
            {
                "level": step.level,
                "from": step.source,
                "into": step.target,
                "reason": step.reason,
                "respondents": int(step.respondents),
                "factor": _number(step.factor),
            }
            for step in collapse_log
        ],
    }


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


# --- estimates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One estimated column: a question, an option, and how it is summarised."""

    question: str
    option: str
    statistics: tuple[str, ...]  # ("proportion",) or ("mean", "total")
    exclusive: bool = False  # an option of a single-choice question: the options add to 1


def estimated_questions(forms: Sequence[Form]) -> dict[str, Question]:
    """Every estimated question of these questionnaire versions (no personal data or text)."""
    questions: dict[str, Question] = {}
    for form in forms:
        for name, question in form.questions.items():
            if question.type in ESTIMATED_TYPES and not question.pii:
                questions.setdefault(name, question)
    return questions


def item_matrix(
    forms: Sequence[Form], answers: Sequence[Mapping[str, Any]]
) -> tuple[list[Item], FloatArray, dict[str, npt.NDArray[np.object_]]]:
    """item_columns() of answer dicts."""
    questions = estimated_questions(forms)
    raw = {}
    for name in questions:
        raw[name] = np.empty(len(answers), dtype=object)
        raw[name][:] = [a.get(name) for a in answers]
    return item_columns(questions, raw, len(answers))


def item_columns(
    questions: Mapping[str, Question], raw: Mapping[str, npt.NDArray[np.object_]], n: int
) -> tuple[list[Item], FloatArray, dict[str, npt.NDArray[np.object_]]]:
    """The estimated columns of every questionnaire version, built column by column.

    Each option of a single-choice question is a 0/1 column over those who answered it
    (shares sum to 100 %); each option of a multiple-choice question is its own 0/1 column
    over those who answered the question; numbers give a mean and a total; personal data
    and free text are never estimated.
    """
    items: list[Item] = []
    choices: dict[str, npt.NDArray[np.object_]] = {}
    # Filled in place: a census's columns and a stacked copy of them would be twice the
    # matrix at once (~80 MB each). Calculations with text are dropped, hence at most.
    width = sum(
        len(q.choice_names) if q.type in ("select_one", "select_multiple") else 1
        for q in questions.values()
    )
    y = np.empty((n, width))
    j = 0
    for name, question in questions.items():
        values = raw.get(name)
        if values is None:
            values = np.full(n, None, dtype=object)
        if question.type == "select_one":
            choices[name] = values
            options = question.choice_names
            code = {option: k for k, option in enumerate(options)}
            # -1: not answered; len(options): an answer that is no longer an option
            codes = np.fromiter(
                (-1 if v is None else code.get(v, len(options)) for v in values.tolist()),
                np.intp,
                n,
            )
            for k, option in enumerate(options):
                items.append(Item(name, option, ("proportion",), exclusive=True))
                y[:, j] = np.where(codes >= 0, (codes == k).astype(np.float64), np.nan)
                j += 1
        elif question.type == "select_multiple":
            options = question.choice_names
            chosen = _chosen(values, options)
            answered = np.fromiter((bool(v) for v in values.tolist()), bool, n)
            for k, option in enumerate(options):
                items.append(Item(name, option, ("proportion",)))
                y[:, j] = np.where(answered, chosen[:, k], np.nan)
                j += 1
        else:
            listed = values.tolist()
            numbers = np.fromiter((_float(v) for v in listed), np.float64, n)
            if question.type == "calculate" and any(isinstance(v, str) for v in listed):
                continue
            seen = numbers[~np.isnan(numbers)]
            binary = question.type == "calculate" and bool(np.isin(seen, (0.0, 1.0)).all())
            items.append(Item(name, "", ("proportion",) if binary else ("mean", "total")))
            y[:, j] = numbers
            j += 1
    if j < width:
        y = np.ascontiguousarray(y[:, :j])
    return items, y, choices


def _chosen(raw: npt.NDArray[np.object_], options: Sequence[str]) -> FloatArray:
    """0/1 per option of a multiple-choice answer (one pass over the chosen options)."""
    index = {option: k for k, option in enumerate(options)}
    out = np.zeros((len(raw), len(options)))
    for row, value in enumerate(raw.tolist()):
        if value and isinstance(value, list):
            for option in value:
                k = index.get(option)
                if k is not None:
                    out[row, k] = 1.0
    return out


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return np.nan
    return float(value)


def domain_variables(snapshot: Snapshot, spec: Spec) -> list[str]:
    chosen = spec.domain_variables or (
        *snapshot.strata_variables,
        "size_class",
        "industry_group",
        "region_area",
        "region",
    )
    return [v for v in dict.fromkeys(chosen) if v in snapshot.variables]


def estimate_all(snapshot: Snapshot, weights: Weights, spec: Spec) -> list[Estimate]:
    respondent = weights.respondent
    # The answers are the snapshot's respondents' (I and P); partials may weigh as
    # nonrespondents (spec.partials_are_respondents), and then their rows drop out here.
    kept = respondent[snapshot.respondent]
    items, y = snapshot.items, snapshot.y[kept]
    if not items or not respondent.any():
        return []
    final = weights.final[respondent]
    design = estimation.Design(
        final,
        strata=snapshot.strata[respondent],
        fpc=snapshot.population[respondent],
        lonely_psu=spec.lonely_psu,  # type: ignore[arg-type]
        calibration=weights.projection,
    )
    replicated = weights.replicates.design(final) if weights.replicates is not None else None
    proportion = np.array(["proportion" in item.statistics for item in items])
    numeric = ~proportion
    numeric_items = [item for item, n in zip(items, numeric, strict=True) if n]
    rows: list[Estimate] = []
    imputed = snapshot.imputed[kept] if snapshot.imputed is not None else np.zeros(y.shape, bool)
    for domain, value, mask in _domains(snapshot, spec, respondent, kept):
        of_units, of_values = imputed_shares(y, final, imputed, mask)
        means = estimation.estimate_mean(design, y, mask)
        if replicated is not None:
            _mean, mean_var, _total, total_var = replicated.estimate(y, mask)
            means = _with_replicates(means, mean_var, replicated.df)
        shares = quality.top_share(y, final, mask, columns=numeric)
        rows.extend(_rows(items, means, spec, domain, value, proportion, "mean", shares, of_units))
        if numeric_items:
            ys = y[:, numeric]
            totals = estimation.estimate_total(design, ys, mask)
            if replicated is not None:
                totals = _with_replicates(totals, total_var[numeric], replicated.df)
            no_props = np.zeros(len(numeric_items), bool)
            top = shares[numeric]
            rows.extend(
                _rows(
                    numeric_items,
                    totals,
                    spec,
                    domain,
                    value,
                    no_props,
                    "total",
                    top,
                    of_values[numeric],
                )
            )
    _suppress_complements(rows, {(i.question, i.option) for i in items if i.exclusive})
    return rows


def imputed_shares(
    y: FloatArray,
    weights: FloatArray,
    imputed: npt.NDArray[np.bool_],
    mask: npt.NDArray[np.bool_] | None,
) -> tuple[FloatArray, FloatArray]:
    """Per item, the share of the domain's estimate that imputed values carry (methodology
    L7): of the weighted units with a value (means and proportions: an imputed "no" moves a
    share as much as an imputed "yes") and of the weighted values (totals)."""
    w = weights if mask is None else np.where(mask, weights, 0.0)
    present = ~np.isnan(y)
    values = np.where(present, y, 0.0)
    units = w @ present
    wy = w @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        of_units = np.where(units > 0, (w @ (present & imputed)) / units, np.nan)
        of_values = np.where(wy != 0, (w @ (values * imputed)) / wy, np.nan)
    return of_units, of_values


def _with_replicates(
    est: estimation.Estimates, variance: FloatArray, replicate_df: int
) -> estimation.Estimates:
    """The Taylor estimates with the replicate variance and df instead (methodology E7)."""
    df = np.full(est.df.shape, replicate_df, dtype=np.intp)
    return dataclasses.replace(
        est, variance=np.where(est.n > 0, variance, np.nan), df=np.where(est.n > 0, df, est.df)
    )


def _suppress_complements(rows: list[Estimate], exclusive: set[tuple[str, str]]) -> None:
    """No suppressed value may be derivable from published ones (sec. F4)."""
    option_sets: dict[tuple[str, ...], list[int]] = {}
    partitions: dict[tuple[str, ...], list[int]] = {}
    totals: dict[tuple[str, ...], int] = {}
    for index, row in enumerate(rows):
        if row.n == 0:
            continue  # a cell without respondents hides nothing and needs no protection
        if (row.item, row.option) in exclusive:
            key = (row.item, row.statistic, row.domain, row.domain_value)
            option_sets.setdefault(key, []).append(index)
        cell = (row.item, row.option, row.statistic)
        if row.domain == "all":
            totals[cell] = index
        else:
            partitions.setdefault((*cell, row.domain), []).append(index)
    groups: list[tuple[npt.NDArray[np.intp], int | None]] = [
        (np.asarray(cells), None) for cells in option_sets.values()
    ]
    groups += [(np.asarray(cells), totals.get(key[:3])) for key, cells in partitions.items()]
    before = np.array([row.suppressed for row in rows])
    sizes = np.array([row.population or 0.0 for row in rows])
    after = quality.complementary(before, sizes, groups)
    for position in np.flatnonzero(after & ~before).tolist():
        row = rows[position]
        row.suppressed = True
        row.flag = (f"{row.flag}+" if row.flag != "OK" else "") + quality.COMPLEMENTARY


def _domains(
    snapshot: Snapshot,
    spec: Spec,
    respondent: npt.NDArray[np.bool_],
    kept: npt.NDArray[np.bool_],
) -> Iterator[tuple[str, str, npt.NDArray[np.bool_] | None]]:
    yield ("all", "all", None)
    for variable in domain_variables(snapshot, spec):
        codes, levels = estimation.factorize(snapshot.variables[variable][respondent])
        for k, value in enumerate(levels.tolist()):
            yield (variable, value, codes == k)
    for name in spec.domain_questions:
        answers = snapshot.choices.get(name)
        if answers is None:
            continue
        answers = answers[kept]
        options = [item.option for item in snapshot.items if item.question == name]
        for option in options:
            yield (name, option, answers == option)


def _rows(
    items: Sequence[Item],
    est: estimation.Estimates,
    spec: Spec,
    domain: str,
    value: str,
    proportion: npt.NDArray[np.bool_],
    kind: str,
    shares: FloatArray,
    imputed: FloatArray,
) -> list[Estimate]:
    thresholds = spec.suppression
    level = thresholds.level
    # A proportion of 0 or 1 up to rounding is 0 or 1, with the Korn-Graubard interval (E5).
    extreme = proportion & estimation.is_extreme(est.estimate)
    est = dataclasses.replace(
        est,
        estimate=np.where(extreme, np.round(est.estimate), est.estimate),
        variance=np.where(extreme, 0.0, est.variance),
    )
    ci_prop = est.ci({"korn_graubard": "beta"}.get(spec.ci_method, spec.ci_method), level)  # type: ignore[arg-type]
    ci_beta = est.ci("beta", level)
    ci_wald = est.ci("wald", level)
    # Dominance applies to amounts (means and totals of numbers), not to shares.
    top = None if proportion.all() else np.where(proportion, np.nan, shares)
    checked = quality.assess(est, proportion, top_share=top, thresholds=thresholds)
    deff, cv = est.deff, est.cv
    grades = np.where(extreme, "", quality.grade(cv))
    out = []
    for j, item in enumerate(items):
        statistic = "proportion" if proportion[j] else kind
        low, high = (ci_beta if extreme[j] else ci_prop) if proportion[j] else ci_wald
        estimate = est.estimate[j]
        population = est.population[j] * estimate if proportion[j] else est.population[j]
        out.append(
            Estimate(
                item=item.question,
                option=item.option,
                statistic=statistic,
                domain=domain,
                domain_value=value,
                estimate=_finite(estimate),
                se=_finite(est.se[j]),
                ci_low=_finite(low[j]),
                ci_high=_finite(high[j]),
                cv=_finite(cv[j]),
                deff=_finite(deff[j]),
                n=int(est.n[j]),
                population=_finite(population),
                df=int(est.df[j]),
                flag=str(checked.reasons[j])[:200] or str(checked.flag[j]),
                suppressed=bool(checked.suppressed[j]),
                grade=str(grades[j]),
                imputed_share=_finite(imputed[j]),
            )
        )
    return out


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


# --- runs ----------------------------------------------------------------------------------


def recompute(
    survey: Survey,
    *,
    trigger: str,
    spec: Spec | None = None,
    force: bool = False,
    wave: Wave | None = None,
) -> EstimateRun | None:
    """Compute and publish a new estimate version, unless nothing changed since the last
    published one (runs are idempotent). Returns the run now current.

    The run is labelled with `wave` (the wave it closes), else the wave open when the data
    were read."""
    stored_spec, spec_version = current_spec(survey)
    spec = spec or stored_spec
    started = time.perf_counter()
    snapshot = load_snapshot(survey, spec=spec)
    if not snapshot.respondent.any():
        # Nothing to estimate before the first answers: no version, and no error.
        return EstimateRun.objects.latest_published(survey)
    key = _run_key(snapshot, spec)
    latest = EstimateRun.objects.latest_published(survey)
    if latest is not None and latest.snapshot_key == key and not force:
        return latest
    wave = wave or Wave.objects.open_at(survey.pk, snapshot.read_at)
    run = _start_run(survey, trigger, key, spec, spec_version, snapshot, wave)
    timings = {"load": time.perf_counter() - started}
    try:
        rows = _compute(snapshot, spec, survey, timings)
        _publish(run, rows, timings, snapshot.imputations)
    except Exception as exc:
        EstimateRun.objects.filter(pk=run.pk).update(
            status=EstimateRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    published = EstimateRun.objects.get(pk=run.pk)
    check_edits(survey, published, spec)
    return published


def check_edits(survey: Survey, run: EstimateRun | None, spec: Spec) -> None:
    """The edit rules over every submitted response, scored with the run's final weights
    (methodology L1). A failure here is logged, never the run's: the estimates stand."""
    try:
        # A firm's answer to a query is a decision, which the check keeps while it holds.
        review.sync_answered_queries(survey.pk)
        weights = (
            {case: final for case, (_base, final) in run_weights(run).items()} if run else None
        )
        editing.check_survey(survey, weights=weights, threshold=spec.editing_threshold, run=run)
    except Exception:
        log.exception("the edit check of survey %s failed", survey.slug)


def _current(survey: Survey) -> set[int]:
    return {survey.current_questionnaire_id} if survey.current_questionnaire_id else set()


def _run_key(snapshot: Snapshot, spec: Spec) -> str:
    digest = hashlib.sha256(snapshot.key.encode())
    digest.update(json.dumps(spec.to_json(), sort_keys=True, default=str).encode())
    digest.update(code_version().encode())
    return digest.hexdigest()


def _start_run(
    survey: Survey,
    trigger: str,
    key: str,
    spec: Spec,
    spec_version: int,
    snapshot: Snapshot,
    wave: Wave | None,
) -> EstimateRun:
    counts = {c: int((snapshot.categories == c).sum()) for c in aapor.CATEGORIES}
    rates = aapor.outcome_rates(counts)
    for _attempt in range(3):
        number = EstimateRun.objects.filter(survey=survey).aggregate(m=Max("number"))["m"] or 0
        try:
            with transaction.atomic():
                return EstimateRun.objects.create(
                    survey=survey,
                    number=number + 1,
                    trigger=trigger[:32],
                    snapshot_key=key,
                    snapshot={
                        "cases": int(snapshot.case_ids.size),
                        "categories": counts,
                        "respondents": counts["I"] + counts["P"],
                        "rr3": _number(rates["RR3"]),
                        "rr4": _number(rates["RR4"]),
                        "questionnaire_versions": sorted(snapshot.versions),
                    },
                    spec=spec.to_json(),
                    spec_version=spec_version,
                    code_version=code_version(),
                    wave=wave,
                    data_as_of=snapshot.read_at,
                )
        except IntegrityError:
            continue
    raise RuntimeError("could not number the estimate run")


def _compute(
    snapshot: Snapshot, spec: Spec, survey: Survey, timings: dict[str, float]
) -> list[Estimate]:
    started = time.perf_counter()
    weights = compute_weights(snapshot, spec)
    timings["weighting"] = time.perf_counter() - started
    started = time.perf_counter()
    rows = estimate_all(snapshot, weights, spec)
    timings["estimation"] = time.perf_counter() - started
    timings["diagnostics"] = weights.diagnostics  # type: ignore[assignment]
    timings["weights"] = _weights_blob(snapshot, weights)  # type: ignore[assignment]
    timings["replicates"] = _replicates_blob(snapshot, weights)  # type: ignore[assignment]
    return rows


def _weights_blob(snapshot: Snapshot, weights: Weights) -> bytes:
    buffer = io.BytesIO()
    base = weighting.design_weights(snapshot.strata, snapshot.population)
    np.savez_compressed(buffer, case_ids=snapshot.case_ids, base=base, final=weights.final)
    return buffer.getvalue()


def _replicates_blob(snapshot: Snapshot, weights: Weights) -> bytes:
    rep = weights.replicates
    if rep is None:
        return b""
    buffer = io.BytesIO()
    # Uncompressed: float64 weights barely compress and zlib would cost seconds.
    np.savez(
        buffer,
        case_ids=snapshot.case_ids[weights.respondent],
        weights=rep.weights,
        rscales=rep.rscales,
        rule=np.array([rep.method, rep.type]),
        scale=np.array([rep.scale]),
        mse=np.array([rep.mse]),
        seed=np.array([rep.seed]),
    )
    return buffer.getvalue()


@dataclass(frozen=True)
class StoredReplicates:
    """A run's replicate weights by case id, and R's rule to combine them."""

    case_ids: npt.NDArray[np.int64]  # sorted
    weights: FloatArray  # len(case_ids) x R
    method: str
    type: str
    scale: float
    rscales: FloatArray
    mse: bool
    seed: int

    @property
    def count(self) -> int:
        return int(self.weights.shape[1])

    def of(self, case_id: int) -> FloatArray | None:
        k = int(np.searchsorted(self.case_ids, case_id))
        if k < self.case_ids.size and self.case_ids[k] == case_id:
            return self.weights[k]
        return None


def run_replicates(run: EstimateRun) -> StoredReplicates | None:
    """The replicate weights of a run with replicate variance (None for Taylor)."""
    blob = EstimateRun.objects.filter(pk=run.pk).values_list("replicate_weights", flat=True)
    data = bytes(blob.get() or b"")
    if not data:
        return None
    stored = np.load(io.BytesIO(data))
    order = np.argsort(stored["case_ids"])
    method, kind = (str(v) for v in stored["rule"])
    return StoredReplicates(
        case_ids=stored["case_ids"][order],
        weights=stored["weights"][order],
        method=method,
        type=kind,
        scale=float(stored["scale"][0]),
        rscales=stored["rscales"],
        mse=bool(stored["mse"][0]),
        seed=int(stored["seed"][0]),
    )


def run_weights(run: EstimateRun) -> dict[int, tuple[float, float]]:
    """Case id -> (base weight, final weight) of a published run."""
    if not run.weights:
        return {}
    data = np.load(io.BytesIO(bytes(run.weights)))
    return {
        int(case): (float(b), float(f))
        for case, b, f in zip(data["case_ids"], data["base"], data["final"], strict=True)
    }


def _publish(
    run: EstimateRun,
    rows: list[Estimate],
    timings: dict[str, Any],
    imputations: Sequence[imputation.Record] = (),
) -> None:
    diagnostics = timings.pop("diagnostics")
    weights = timings.pop("weights")
    replicates = timings.pop("replicates")
    started = time.perf_counter()
    with transaction.atomic():
        _write_estimates(run, rows)
        _write_imputations(run, imputations)
        timings["write"] = time.perf_counter() - started
        EstimateRun.objects.filter(pk=run.pk, status=EstimateRun.Status.RUNNING).update(
            status=EstimateRun.Status.PUBLISHED,
            finished_at=timezone.now(),
            diagnostics=diagnostics,
            timings={k: round(v, 4) for k, v in timings.items()},
            weights=weights,
            replicate_weights=replicates,
        )


def _write_imputations(run: EstimateRun, records: Sequence[imputation.Record]) -> None:
    if not records:
        return
    cases = {r.case_id for r in records} | {r.donor_case for r in records if r.donor_case}
    response_of = dict(Response.objects.filter(case_id__in=cases).values_list("case_id", "pk"))
    ImputedValue.objects.bulk_create(
        [
            ImputedValue(
                run=run,
                response_id=response_of[r.case_id],
                item=r.item,
                value=r.value,
                method=r.method,
                donor_id=response_of.get(r.donor_case) if r.donor_case else None,
                imputation_class=r.imputation_class,
                reason=r.reason,
            )
            for r in records
        ],
        batch_size=2000,
    )


def _write_estimates(run: EstimateRun, rows: list[Estimate]) -> None:
    """The run's estimates, by COPY on PostgreSQL (bulk_create builds and sends every row
    as SQL parameters: a tenth of a second per few thousand rows)."""
    if connection.vendor != "postgresql":
        for row in rows:
            row.run = run
        Estimate.objects.bulk_create(rows, batch_size=2000)
        return
    fields = [f for f in Estimate._meta.concrete_fields if not f.primary_key]
    names = [f.attname for f in fields if f.attname != "run_id"]
    columns = ", ".join(_column(Estimate, f.name) for f in fields)
    # An empty field is NULL (a missing estimate), except in text columns, where it is "".
    text = ", ".join(
        _column(Estimate, f.name)
        for f in fields
        if f.get_internal_type() in ("CharField", "TextField")
    )
    sql = (
        f"COPY {connection.ops.quote_name(Estimate._meta.db_table)} ({columns}) FROM STDIN"
        f" WITH (FORMAT csv, FORCE_NOT_NULL ({text}))"
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    at_run = [f.attname for f in fields].index("run_id")
    for row in rows:
        values = [getattr(row, name) for name in names]
        values.insert(at_run, run.pk)
        writer.writerow(values)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        if hasattr(raw, "copy_expert"):  # psycopg2
            buffer.seek(0)
            raw.copy_expert(sql, buffer)
        else:  # psycopg 3
            with raw.copy(sql) as copy:
                copy.write(buffer.getvalue())


# --- scheduling ----------------------------------------------------------------------------


def run_pending(survey_id: int) -> str:
    """Recompute while changes are pending; at most one run per survey at a time.

    Bursts coalesce: a task that arrives during a run finds the lock taken and leaves (the
    running loop sees its request), and runs are at least RECOMPUTE_MIN_INTERVAL apart.
    """
    with survey_lock(survey_id) as locked:
        if not locked:
            return "busy"
        for _round in range(10):
            marker = RecomputeRequest.objects.filter(survey_id=survey_id).aggregate(m=Max("pk"))[
                "m"
            ]
            if marker is None:
                return "done"
            wait = _wait_before_next_run(survey_id)
            if wait > 0:
                _enqueue_later(survey_id, wait)
                return "deferred"
            survey = Survey.objects.get(pk=survey_id)
            recompute(survey, trigger="worker")
            RecomputeRequest.objects.filter(survey_id=survey_id, pk__lte=marker).delete()
    return "done"


def _wait_before_next_run(survey_id: int) -> float:
    interval = settings.RECOMPUTE_MIN_INTERVAL_SECONDS
    last = EstimateRun.objects.filter(survey_id=survey_id).aggregate(m=Max("started_at"))["m"]
    if not interval or last is None:
        return 0.0
    return max(0.0, interval - (timezone.now() - last).total_seconds())


def _enqueue_later(survey_id: int, seconds: float) -> None:
    send_task(RECOMPUTE_SURVEY, survey_id, countdown=seconds)


def sweep() -> dict[str, int]:
    """Schedule surveys whose changes wait without a task (the queue was down, a worker died)
    and mark runs that a dead worker left running as failed."""
    stale = timezone.now() - dt.timedelta(seconds=settings.RECOMPUTE_STALE_SECONDS)
    abandoned = EstimateRun.objects.filter(
        status=EstimateRun.Status.RUNNING, started_at__lt=stale
    ).update(
        status=EstimateRun.Status.FAILED,
        error="abandoned: the worker stopped mid-run",
        finished_at=timezone.now(),
    )
    waiting = list(RecomputeRequest.objects.values_list("survey_id", flat=True).distinct())
    scheduled = sum(send_task(RECOMPUTE_SURVEY, survey_id) for survey_id in waiting)
    official = sum(send_task(PUBLISH_OFFICIAL, pk) for pk in unofficial_closed_waves())
    return {"abandoned": abandoned, "scheduled": scheduled, "official": official}


def close_wave(wave: Wave, *, user: Any = None) -> EstimateRun | None:
    """Close the wave and publish its official version at once (commands, the demo)."""
    wave.close(user=user)
    return publish_official(wave.pk)


def publish_official(wave_id: int) -> EstimateRun | None:
    """The closed wave's official version: a version computed now and labelled with the
    wave, new even when nothing changed, so that each closed wave has one of its own. Once:
    a wave that has it keeps it. Under the survey's lock, like every recompute: while
    another run holds it, nothing is done now; the closed wave without its version is the
    request, which the next sweep sends again."""
    wave = Wave.objects.select_related("survey").get(pk=wave_id)
    if wave.closed_at is None or wave.official_run_id is not None:
        return wave.official_run
    with survey_lock(wave.survey_id) as locked:
        if not locked:
            return None
        wave.refresh_from_db()
        if wave.official_run_id is None:
            trigger = f"wave closed: {wave.name}"[:32]
            run = recompute(wave.survey, trigger=trigger, force=True, wave=wave)
            Wave.objects.filter(pk=wave.pk, official_run__isnull=True).update(official_run=run)
            wave.refresh_from_db()
    return wave.official_run


def unofficial_closed_waves() -> list[int]:
    """Waves closed in the last day that still wait for their official version (and have
    respondents to compute it from)."""
    since = timezone.now() - dt.timedelta(days=1)
    waves = Wave.objects.filter(closed_at__gte=since, official_run__isnull=True)
    answered = Case.objects.filter(survey_id=OuterRef("survey_id"), disposition__startswith="1.")
    return list(waves.filter(Exists(answered)).values_list("pk", flat=True))
