"""Edit rules checked on 5,000 responses: 30 rules (the shipped questionnaire's 9, repeated
under other names) over the synthetic frame of 163,273 firms, its sales-per-employee
percentiles by industry group computed afresh for the run.

    make bench-edits

Target (issue 15): check_responses() on 5,000 responses and 30 rules under 2 s, queries and
statistics included. Also timed: its parts, and check_page() on one page (the firm's save,
statistics kept by the process). The survey is built once and reused (--fresh rebuilds it).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

SLUG = "bench_edits"
RESPONSES = 5_000
RULES = 30
RUNS = 5
BUDGET_S = 2.0
MESSAGES = ("message::Korean (ko)", "message::English (en)")


def build() -> Any:
    """The frame, a sample of 5,000, every case answered as the demo's firms answer."""
    import numpy as np
    from django.utils import timezone

    from config import simulation
    from respondents.models import Case
    from surveys.models import Response

    survey = common.drawn_survey(SLUG, RESPONSES, seed=15)
    rng = np.random.default_rng(15)
    cases = list(Case.objects.filter(survey=survey).select_related("frame_unit"))
    now = timezone.now()
    Response.objects.bulk_create(
        [
            Response(
                case=case,
                questionnaire_id=survey.current_questionnaire_id,
                answers=simulation.answers_for(case, rng),
                status="submitted",
                submitted_at=now,
                reference=f"E-{case.pk}",
            )
            for case in cases
        ],
        batch_size=5000,
    )
    return survey


def thirty_rules(version: Any) -> None:
    """The shipped rules repeated under other names up to 30, loaded as a CSV file."""
    import csv
    import io

    from surveys.edit_sheets import replace_edit_rules

    # The first nine are the shipped ones, on every run: they keep their names.
    shipped = list(version.edit_rules.order_by("order")[:9])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "type", "rule", "relevant", "flag", *MESSAGES])
    for k in range(RULES):
        rule = shipped[k % len(shipped)]
        name = rule.name if k < len(shipped) else f"{rule.name}_{k}"
        row = [name, rule.severity, rule.rule, rule.relevant, rule.flag]
        writer.writerow([*row, rule.message["ko"], rule.message["en"]])
    replace_edit_rules(version, out.getvalue().encode(), "bench_rules.csv")


def timed(function: Callable[[], Any], runs: int = RUNS) -> tuple[float, Any]:
    times, result = [], None
    for _run in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    common.setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys import edits
    from surveys.models import QuestionnaireVersion, Response, Survey

    survey = Survey.objects.filter(slug=SLUG).first()
    answered = Response.objects.filter(case__survey__slug=SLUG).count()
    if "--fresh" in sys.argv or survey is None or answered != RESPONSES:
        survey = build()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    version = QuestionnaireVersion.objects.get(pk=survey.questionnaire_id)
    thirty_rules(version)
    rules = edits.rules_of(version.pk)
    responses = version.responses.all()
    print(f"{len(rules)} rules, {responses.count():,} responses, frame of 163,273 firms")

    with CaptureQueriesContext(connection) as captured:
        edits.check_responses(version)
    queries = len(captured)
    total, failures = timed(lambda: edits.check_responses(version))
    verdict = "within" if total < BUDGET_S else "OVER"
    print(
        f"check_responses: {total:.2f} s (median of {RUNS}), {queries} queries; "
        f"{verdict} the {BUDGET_S:.0f} s budget"
    )

    rows_s, rows = timed(lambda: edits._rows(version, None))
    units = edits.FrameUnit.objects.filter(pk__in={unit for _pk, _a, unit in rows})
    contexts_s, contexts = timed(lambda: edits._contexts(version.pk, rules, units, cached=False))
    scopes = [{**answers, **contexts.get(unit, {})} for _pk, answers, unit in rows]
    check_s, _checked = timed(lambda: [edits._check(rules, scope) for scope in scopes])
    print(
        f"  parts: answers {rows_s:.2f} s, frame values and statistics {contexts_s:.2f} s, "
        f"{len(rows) * len(rules):,} evaluations {check_s:.2f} s "
        f"({check_s / (len(rows) * len(rules)) * 1e6:.1f} µs each)"
    )

    response = responses.earliest("pk")
    edits.check_page(response, "profile", response.answers)  # the process keeps statistics
    page_s, _page = timed(lambda: edits.check_page(response, "profile", response.answers), 50)
    print(f"check_page (profile, statistics kept): {page_s * 1000:.1f} ms")

    flagged = Counter(f.rule for found in failures.values() for f in found)
    print("responses failing each shipped rule (the demo's answers):")
    for rule in rules[:9]:
        print(f"  {rule.name:<28} {rule.severity:<5} {flagged[rule.name]:>6,}")
    if total >= BUDGET_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
