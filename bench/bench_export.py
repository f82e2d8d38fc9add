"""Time the microdata export (CSV, XLSX, SPSS, Stata) at 20,000 and 163,273 rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/exports_bench .venv/bin/python \
        bench/bench_export.py [--fresh] [--formats csv,xlsx,sav,dta]

Two surveys are built here with bulk_create and reused on the next run unless --fresh is
given: a 20,000-firm sample and the 163,273-firm census of the same synthetic population,
each with realistic dispositions (one event each, in a wave), responses from every
respondent that answer every question their path through the questionnaire asks (free
text and contact details included), and a published estimate run (the real recompute).

Each export runs in a child process of its own, so that its peak memory is its own: the
table shows seconds and the growth of the resident set (peak RSS minus RSS before the
export started), for an identified export with every variable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import common  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/exports_bench"
POPULATION = 163_273
SIZES = {"bench-export-20k": 20_000, "bench-export-census": POPULATION}
FORMATS = ("csv", "xlsx", "sav", "dta")
SEED = 20250428
BUDGET_SECONDS = 30.0
STRATA_VARIABLES = ["size_class", "industry_group", "region_area"]
# Final dispositions: completes, partials, refusals, non-contacts, unknown, ineligible.
FINALS = {"1.1": 0.55, "1.2": 0.05, "2.111": 0.10, "2.21": 0.08, "3.19": 0.15, "4.21": 0.07}


def setup() -> None:
    env = common.production_env()
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", DEFAULT_URL)
    env["STATIC_MANIFEST"] = "0"
    common.setup_django(env)


# --- building the surveys ------------------------------------------------------------------


def build(slug: str, size: int, fresh: bool) -> Any:
    from respondents.models import Case
    from surveys.models import Survey

    survey = Survey.objects.filter(slug=slug).first()
    published = survey is not None and survey.estimate_runs.filter(status="published").exists()
    if survey and published and not fresh and Case.objects.filter(survey=survey).count() == size:
        return survey
    start = time.perf_counter()
    survey = _build(slug, size)
    print(f"built {slug}: {size:,} cases in {time.perf_counter() - start:.0f} s", flush=True)
    return survey


def _delete(slug: str) -> None:
    from django.db import connection

    from respondents.models import Case, DispositionEvent, FrameUnit
    from surveys.models import Response, Survey

    survey = Survey.objects.filter(slug=slug).first()
    if survey is None:
        return
    # Hundreds of thousands of rows and no signals to run: plain SQL deletes.
    with connection.cursor() as cursor:
        for child in (Response, DispositionEvent):
            cursor.execute(
                f"DELETE FROM {child._meta.db_table} WHERE case_id IN "  # noqa: S608
                f"(SELECT id FROM {Case._meta.db_table} WHERE survey_id = %s)",
                [survey.pk],
            )
        for model in (Case, FrameUnit):
            table = model._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE survey_id = %s", [survey.pk])  # noqa: S608
    survey.estimate_runs.all().delete()
    survey.designs.all().delete()
    Survey.objects.filter(pk=survey.pk).update(current_questionnaire=None)
    survey.questionnaires.all().delete()
    survey.delete()


def _build(slug: str, size: int) -> Any:
    from django.db import transaction

    from analytics import pipeline

    _delete(slug)
    rng = np.random.default_rng(SEED)
    units = _population(rng)
    chosen = np.sort(rng.choice(POPULATION, size, replace=False)) if size < POPULATION else None
    with transaction.atomic():
        survey = common.fresh_survey(slug)
        cases = _cases(survey, units, chosen)
        _dispositions_and_answers(rng, survey, cases)
    started = time.perf_counter()
    pipeline.recompute(survey, trigger="bench")
    print(f"  published run in {time.perf_counter() - started:.0f} s", flush=True)
    return survey


def _population(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from respondents import synthetic

    def draw(shares: dict[str, float]) -> np.ndarray:
        p = np.array(list(shares.values()))
        return rng.choice(np.array(list(shares)), POPULATION, p=p / p.sum())

    return {
        "size": draw(synthetic.SIZE_SHARES),
        "division": draw(synthetic.DIVISION_SHARES),
        "region": draw(synthetic.REGION_SHARES),
    }


def _cases(survey: Any, units: dict[str, np.ndarray], chosen: np.ndarray | None) -> list[Any]:
    from django.utils import timezone

    from respondents.classifications import KSIC_DIVISIONS, REGION_AREAS
    from respondents.models import Case, FrameUnit, SampleDesign

    group = np.array([KSIC_DIVISIONS[d] for d in units["division"].tolist()])
    area = np.array([REGION_AREAS[r] for r in units["region"].tolist()])
    keys = np.char.add(np.char.add(units["size"], "/"), np.char.add(np.char.add(group, "/"), area))
    positions = np.arange(POPULATION) if chosen is None else chosen
    design = SampleDesign.objects.create(
        survey=survey,
        strata_variables=STRATA_VARIABLES,
        allocation="proportional",
        sample_size=len(positions),
        seed=SEED,
        frame_size=POPULATION,
        drawn_at=timezone.now(),
    )
    strata = _strata(design, keys, positions)
    frame = FrameUnit.objects.bulk_create(
        (_unit(survey, units, int(p)) for p in positions.tolist()), batch_size=5000
    )
    cases = [
        Case(
            survey=survey,
            stratum=strata[keys[p]],
            frame_unit=unit,
            business_id=unit.business_id,
            selection_order=k + 1,
        )
        for k, (p, unit) in enumerate(zip(positions.tolist(), frame, strict=True))
    ]
    return cases


def _strata(design: Any, keys: np.ndarray, positions: np.ndarray) -> dict[str, Any]:
    from respondents.models import Stratum

    population = dict(zip(*np.unique(keys, return_counts=True), strict=True))
    sampled = dict(zip(*np.unique(keys[positions], return_counts=True), strict=True))
    rows = Stratum.objects.bulk_create(
        Stratum(
            design=design,
            key=str(key),
            values=dict(zip(STRATA_VARIABLES, str(key).split("/"), strict=True)),
            population=int(population[key]),
            allocated=int(n),
            sample_size=int(n),
            take_all=int(n) == int(population[key]),
        )
        for key, n in sampled.items()
    )
    return {row.key: row for row in rows}


def _unit(survey: Any, units: dict[str, np.ndarray], position: int) -> Any:
    from respondents.models import FrameUnit

    text = f"{1_000_000_000 + position:010d}"
    return FrameUnit(
        survey=survey,
        business_id=f"{text[:3]}-{text[3:5]}-{text[5:]}",
        name=f"(주)벤치제조{position}",
        ksic=f"{units['division'][position]}{100 + position % 900}",
        size_class=str(units["size"][position]),
        region=str(units["region"][position]),
        employees=10,
        email=f"firm{position}@example.com",
        phone="031-000-0000",
        source_row=position + 2,
    )


def _dispositions_and_answers(rng: np.random.Generator, survey: Any, cases: list[Any]) -> None:
    from django.utils import timezone

    from respondents.models import Case, DispositionEvent, Wave
    from surveys.models import Response

    now = timezone.now()
    wave = Wave.objects.create(
        survey=survey, name="Invitation", kind="invitation", starts_at=now - _days(30)
    )
    codes = rng.choice(list(FINALS), len(cases), p=list(FINALS.values()))
    for case, code in zip(cases, codes.tolist(), strict=True):
        case.disposition, case.disposition_at = code, now
    Case.objects.bulk_create(cases, batch_size=5000)
    events = (
        DispositionEvent(
            case=c,
            code=c.disposition,
            at=now,
            recorded_at=now,
            wave=wave,
            source="system",
            previous="3.11",
        )
        for c in cases
    )
    DispositionEvent.objects.bulk_create(events, batch_size=10_000)
    version = survey.current_questionnaire
    responses = (
        Response(
            case=case,
            questionnaire=version,
            answers=_answers(rng, k),
            status="submitted",
            mode="web" if k % 10 else "phone",
            submitted_at=now,
            reference=f"SMF-B-{survey.pk}-{k:06d}",
        )
        for k, case in enumerate(cases)
        if case.disposition.startswith("1.")
    )
    Response.objects.bulk_create(responses, batch_size=5000)


def _days(n: int) -> Any:
    import datetime as dt

    return dt.timedelta(days=n)


def _answers(rng: np.random.Generator, k: int) -> dict[str, Any]:
    """Every question the respondent's path asks, answered (text and contact details too)."""
    importance = str(rng.choice(["very_important", "somewhat_important", "neutral"]))
    answers: dict[str, Any] = {
        "employees": int(rng.integers(1, 1000)),
        "sales_krw_mn": round(float(rng.lognormal(7, 1.5)), 1),
        "importance": importance,
        "important_top2": int(importance != "neutral"),
        "implementing": str(rng.choice(["yes", "no"])),
        "sf_adopted": "yes" if rng.random() < 0.85 else "no",
        "mfg_ai": str(rng.choice(["adopted", "planned", "none"])),
        "contact_name": f"홍길동{k}",
        "contact_department": "생산관리팀",
        "contact_position": "과장",
        "contact_phone": f"010-{k % 10000:04d}-{(k * 7) % 10000:04d}",
        "contact_email": f"person{k}@example.com",
    }
    if answers["sf_adopted"] == "yes":
        answers.update(_smart_factory(rng, k))
    return answers


def _smart_factory(rng: np.random.Generator, k: int) -> dict[str, Any]:
    tech = [t for t in ("erp", "mes", "scm", "plm", "controller", "iot_sensor", "robot", "other")]
    chosen = [t for t in tech if rng.random() < 0.5] or ["other"]
    out: dict[str, Any] = {
        "sf_level": str(rng.choice(["basic", "intermediate1", "intermediate2", "advanced"])),
        "sf_scope": str(rng.choice(["partial", "full"])),
        "sf_tech": chosen,
        "data_collect": "yes" if rng.random() < 0.7 else "no",
        "main_area": str(rng.choice(["production_mgmt", "finance", "other"])),
        "need_advance": str(rng.choice(["yes", "no"])),
        "invest_own": "yes" if rng.random() < 0.6 else "no",
    }
    if "other" in chosen:
        out["sf_tech_other"] = f"자체 개발 공정 모니터링 시스템 {k}"
    if out["data_collect"] == "yes":
        out["data_analyze"] = str(rng.choice(["yes", "no"]))
    if out["main_area"] == "other":
        out["main_area_other"] = f"=품질 관리 {k}" if k % 100 == 0 else f"품질 관리 {k}"
    if out["invest_own"] == "yes":
        out["invest_amount"] = round(float(rng.lognormal(5, 1)), 1)
    return out


# --- timing --------------------------------------------------------------------------------


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(slug: str, fmt: str, out: Path) -> None:
    """One export in this process: prints seconds, rows and memory as JSON."""
    from analytics import exports
    from surveys.models import Survey

    survey = Survey.objects.get(slug=slug)
    options = exports.make_options(survey, "microdata", fmt, identified=True)
    before = rss_kib("VmRSS")
    started = time.perf_counter()
    with out.open("wb") as target:
        rows = exports.export(options, target)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "rows": rows,
        "columns": len(exports.microdata_layout(survey, identified=True).variables),
        "rss_before_mib": before / 1024,
        "growth_mib": (rss_kib("VmHWM") - before) / 1024,
        "bytes": out.stat().st_size,
    }
    print(json.dumps(result))


def run_child(slug: str, fmt: str) -> dict[str, Any]:
    out = Path(tempfile.gettempdir()) / f"{slug}.{fmt}"
    command = [sys.executable, __file__, "--child", slug, fmt, str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    out.unlink(missing_ok=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(results: list[tuple[str, str, dict[str, Any]]]) -> None:
    print(
        f"\n{'rows':>8} {'format':<6} {'cols':>5} {'seconds':>8} {'MiB growth':>11} {'file MiB':>9}"
    )
    for _slug, fmt, r in results:
        flag = "" if r["rows"] < POPULATION or r["seconds"] < BUDGET_SECONDS else "  over budget"
        print(
            f"{r['rows']:>8,} {fmt:<6} {r['columns']:>5} {r['seconds']:>8.1f} "
            f"{r['growth_mib']:>11.1f} {r['bytes'] / 2**20:>9.1f}{flag}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true", help="rebuild the surveys")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument(
        "--child", nargs=3, metavar=("SLUG", "FORMAT", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    setup()
    if args.child:
        slug, fmt, out = args.child
        child(slug, fmt, Path(out))
        return
    for slug, size in SIZES.items():
        build(slug, size, args.fresh)
    results = []
    for slug in SIZES:
        for fmt in args.formats.split(","):
            results.append((slug, fmt, run_child(slug, fmt)))
            print(f"  {slug} {fmt}: {results[-1][2]['seconds']:.1f} s", flush=True)
    report(results)


if __name__ == "__main__":
    main()
