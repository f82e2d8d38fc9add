"""Checking every submitted response against its version's edit rules, and the review
queue's order: the selective-editing score (methodology L2).

Run after each published estimate version, with its final weights. A failure of a soft rule
whose score is below the specification's threshold passes untouched; the others, and every
failure of a hard rule, wait in the review queue, highest score first. Flags someone has
decided on keep their decision while the values the rule saw stay the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.db import transaction
from django.utils import timezone

from analytics.engine import editing as engine
from surveys.edits import Failure, check_responses, plain_values
from surveys.models import QuestionnaireVersion, Response, Survey

from .imputation import as_number
from .models import EditCheck, EditFlag, EstimateRun

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]
Status = EditFlag.Status
# Flags nobody has decided on: the next check rewrites them.
UNDECIDED = (Status.OPEN, Status.PASSED, Status.CONFIRMED, Status.ERROR)
# Decisions that stand while the rule sees the same values.
DECIDED = (Status.ACCEPTED, Status.CORRECTED, Status.REJECTED, Status.ANSWERED)


@dataclass(frozen=True)
class _Found:
    response: int
    case: int
    failure: Failure
    value: float  # the blamed item's value, NaN if not a number
    confirmed: bool


def check_survey(
    survey: Survey,
    *,
    weights: Mapping[int, float] | None = None,
    threshold: float = 0.001,
    run: EstimateRun | None = None,
) -> EditCheck:
    """Check every submitted response, score the failures with `weights` (final weight by
    case id; without them every failure is reviewed) and bring the flags up to date."""
    found, checked = _failures(survey)
    blamed = {f.failure.flag for f in found if np.isfinite(f.value)}
    numbers = _item_numbers(survey, blamed, weights) if weights else {}
    scores = _scores(found, weights, numbers) if weights else np.full(len(found), np.inf)
    statuses = [_status(f, s, threshold) for f, s in zip(found, scores, strict=True)]
    # A response passes untouched when every failure of it passed the threshold.
    reviewed = {f.response for f, s in zip(found, statuses, strict=True) if s != Status.PASSED}
    passed = {f.response for f in found} - reviewed
    passed_share = _passed_share(found, passed, weights or {}, numbers)
    with transaction.atomic():
        _store(survey, found, scores, statuses)
        return EditCheck.objects.create(
            survey=survey,
            run=run,
            threshold=threshold,
            responses=checked,
            failed=len({f.response for f in found}),
            passed=len(passed),
            passed_share=passed_share,
            errors=sum(1 for f in found if not f.failure.checked),
        )


def _failures(survey: Survey) -> tuple[list[_Found], int]:
    submitted = Response.objects.submitted().filter(case__survey=survey)
    versions = QuestionnaireVersion.objects.filter(pk__in=submitted.values("questionnaire_id"))
    held = {
        pk: (case, confirmations)
        for pk, case, confirmations in submitted.values_list("pk", "case_id", "confirmations")
    }
    found: list[_Found] = []
    for version in versions:
        for pk, failures in check_responses(
            version, submitted.filter(questionnaire=version)
        ).items():
            case, confirmations = held[pk]
            for failure in failures:
                seen = confirmations.get(failure.rule, {}).get("values")
                found.append(
                    _Found(
                        pk,
                        case,
                        failure,
                        as_number(failure.values.get(failure.flag)),
                        confirmed=seen is not None and seen == plain_values(failure.values),
                    )
                )
    return found, len(held)


def _scores(
    found: Sequence[_Found], weights: Mapping[int, float], numbers: Mapping[str, _Numbers]
) -> FloatArray:
    """w·|y − ŷ| / T̂ for a number (ŷ: the item's median among responses that fail no
    rule, T̂ its weighted total over them), w / Σw otherwise: the share of the population
    the firm stands for, which a wrong category moves."""
    if not found:
        return np.zeros(0)
    w = np.array([weights.get(f.case, np.nan) for f in found])
    population = float(sum(weights.values())) or 1.0
    scores = w / population
    failing = np.array(sorted({f.response for f in found}))
    for item, held in numbers.items():
        rows = np.array([f.failure.flag == item and np.isfinite(f.value) for f in found])
        clean = ~np.isin(held.responses, failing)
        if not rows.any() or not clean.any():
            continue
        expected = float(np.median(held.values[clean]))
        total = float(held.weights[clean] @ held.values[clean]) or float("nan")
        y = np.array([f.value for f, r in zip(found, rows, strict=True) if r])
        scores[rows] = engine.local_scores(y, np.full(y.size, expected), w[rows], totals=total)
    return np.where(np.isfinite(w), scores, np.inf)


@dataclass(frozen=True)
class _Numbers:
    """One item's numbers over the weighted submitted responses (as edited)."""

    responses: npt.NDArray[np.int64]
    values: FloatArray
    weights: FloatArray


def _item_numbers(
    survey: Survey, items: set[str], weights: Mapping[int, float]
) -> dict[str, _Numbers]:
    """The blamed items' numbers, read once for the scores and the passed shares."""
    collected: dict[str, list[tuple[int, float, float]]] = {item: [] for item in items}
    if items:
        rows = Response.objects.submitted().filter(case__survey=survey)
        for pk, case_id, answers, edited in rows.values_list("pk", "case_id", "answers", "edited"):
            weight = weights.get(case_id)
            if weight is None:
                continue
            values = {**answers, **edited}
            for item in items:
                number = as_number(values.get(item))
                if np.isfinite(number):
                    collected[item].append((pk, number, weight))
    out = {}
    for item, triples in collected.items():
        array = np.asarray(triples, dtype=np.float64).reshape(-1, 3)
        out[item] = _Numbers(array[:, 0].astype(np.int64), array[:, 1], array[:, 2])
    return out


def _status(found: _Found, score: float, threshold: float) -> str:
    if not found.failure.checked:
        return Status.ERROR
    if found.failure.severity == "hard":
        return Status.OPEN
    if score < threshold:
        return Status.PASSED
    return Status.CONFIRMED if found.confirmed else Status.OPEN


def _passed_share(
    found: Sequence[_Found],
    passed: set[int],
    weights: Mapping[int, float],
    numbers: Mapping[str, _Numbers],
) -> dict[str, float]:
    """Per blamed number: the share of its weighted total that the responses passed
    untouched carry (their failures on it were below the threshold)."""
    share: dict[str, float] = {}
    for item in sorted(numbers):
        carried = sum(
            weights.get(f.case, 0.0) * f.value
            for f in found
            if f.response in passed and f.failure.flag == item and np.isfinite(f.value)
        )
        held = numbers[item]
        total = float(held.weights @ held.values)
        share[item] = carried / total if total else 0.0
    return share


def _store(
    survey: Survey, found: Sequence[_Found], scores: FloatArray, statuses: Sequence[str]
) -> None:
    now = timezone.now()
    existing = {
        (flag.response_id, flag.rule): flag
        # The flags' rows only: the join's response rows stay free for the firms' saves.
        for flag in EditFlag.objects.select_for_update(of=("self",)).filter(
            response__case__survey=survey
        )
    }
    create: list[EditFlag] = []
    update: list[EditFlag] = []
    seen: set[tuple[int, str]] = set()
    for f, score, status in zip(found, scores.tolist(), statuses, strict=True):
        key = (f.response, f.failure.rule)
        seen.add(key)
        values = plain_values(f.failure.values)
        fields = {
            "severity": f.failure.severity,
            "item": f.failure.flag,
            "message": f.failure.message,
            "score": score if np.isfinite(score) else None,
            "checked_at": now,
        }
        flag = existing.get(key)
        if flag is None:
            create.append(
                EditFlag(
                    response_id=f.response,
                    rule=f.failure.rule,
                    values=values,
                    status=status,
                    **fields,
                )
            )
            continue
        if flag.status in UNDECIDED or (flag.status in DECIDED and flag.values != values):
            flag.status = status
            flag.resolved_at = flag.resolved_by = None  # type: ignore[assignment]
        flag.values = values
        for name, value in fields.items():
            setattr(flag, name, value)
        update.append(flag)
    EditFlag.objects.bulk_create(create, batch_size=1000)
    EditFlag.objects.bulk_update(
        update,
        [
            "severity",
            "item",
            "message",
            "score",
            "checked_at",
            "values",
            "status",
            "resolved_at",
            "resolved_by",
        ],
        batch_size=1000,
    )
    gone = [
        flag.pk for key, flag in existing.items() if key not in seen and flag.status in UNDECIDED
    ]
    EditFlag.objects.filter(pk__in=gone).delete()
