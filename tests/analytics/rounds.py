"""Two rounds of a survey in the database, from the R fixture of estimates of change.

tests/analytics/fixtures/r-checks/change_data.csv holds each round's respondents (firm,
stratum, N_h, the item y, the 0/1 item adopted and a size class) and change_strata.csv the
firms of each later stratum in both frames. Here each round becomes a survey with the shipped
questionnaire (y as sales_krw_mn, adopted as sf_adopted), a drawn design of strata A-D, a frame
of N_h firms per stratum in which exactly c_g firms of each later stratum are also in the
earlier frame, a case and a submitted response per respondent (the second round's cases
linked to the first's by Case.previous) and a published estimate version.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone

from analytics import pipeline
from analytics.models import EstimateRun, WeightingSpec
from analytics.spec import WeightingSpec as Spec
from respondents.models import Case, FrameUnit, SampleDesign, Stratum
from surveys.models import Response, Survey
from surveys.xlsform import load_questionnaire
from tests.factories import SHIPPED_FORM, business_id

FOLDER = Path(__file__).resolve().parent / "fixtures" / "r-checks"
SIZE = {"small": "small", "large": "medium"}
YEARS = (2024, 2025)
FILLER = 100_000  # business IDs of frame firms that answered in neither round


@dataclass
class Respondent:
    firm: int
    stratum: str
    population: int
    y: float | None
    adopted: bool
    size: str


@dataclass
class RoundData:
    respondents: dict[int, Respondent]
    population: dict[str, int]
    # frame firm -> stratum (respondents and the firms around them)
    frame: dict[int, str] = field(default_factory=dict)


def read_rounds() -> tuple[RoundData, RoundData]:
    with (FOLDER / "change_data.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in ("1", "2"):
        respondents = {
            int(row["firm"]): Respondent(
                int(row["firm"]),
                row["stratum"],
                int(row["N_h"]),
                None if row["y"] == "NA" else float(row["y"]),
                row["adopted"] == "1",
                SIZE[row["size"]],
            )
            for row in rows
            if row["round"] == r
        }
        population = {x.stratum: x.population for x in respondents.values()}
        out.append(RoundData(respondents, population))
    return out[0], out[1]


def common_by_stratum() -> dict[str, float]:
    with (FOLDER / "change_strata.csv").open(newline="") as fh:
        return {row["stratum"]: float(row["common_population"]) for row in csv.DictReader(fh)}


def build_frames(first: RoundData, second: RoundData, common: dict[str, float]) -> None:
    """Frames of N_h firms per stratum with c_g firms of each later stratum in both: the firms
    answering in both rounds, then firms that answered in one round only (as firms of the
    other round's frame that were not drawn or did not answer), then firms that answered in
    neither round."""
    for data in (first, second):
        data.frame = {f: x.stratum for f, x in data.respondents.items()}
    both = first.respondents.keys() & second.respondents.keys()
    free1 = Counter({h: n - Counter(first.frame.values())[h] for h, n in first.population.items()})
    free2 = Counter(
        {g: n - Counter(second.frame.values())[g] for g, n in second.population.items()}
    )
    filler = iter(range(FILLER, FILLER + 10_000))
    for g in sorted(second.population):
        wanted = int(common[g]) - sum(1 for f in both if second.frame[f] == g)
        only1 = sorted(f for f, h in first.frame.items() if h == g and f not in both)
        only2 = sorted(f for f, h in second.frame.items() if h == g and f not in both)
        for firm in only1:
            if wanted and free2[g]:
                second.frame[firm], free2[g], wanted = g, free2[g] - 1, wanted - 1
        for firm in only2:
            if wanted and free1[g]:
                first.frame[firm], free1[g], wanted = g, free1[g] - 1, wanted - 1
        while wanted:
            assert free1[g] and free2[g], f"stratum {g}: the frames cannot hold c_g"
            firm = next(filler)
            first.frame[firm] = second.frame[firm] = g
            free1[g], free2[g], wanted = free1[g] - 1, free2[g] - 1, wanted - 1
    for data, free in ((first, free1), (second, free2)):
        for h, n in free.items():
            for _k in range(n):
                data.frame[next(filler)] = h


def make_round(
    data: RoundData, year: int, previous: Survey | None, spec: Spec | None = None
) -> tuple[Survey, dict[int, Case]]:
    version = load_questionnaire(
        SHIPPED_FORM.read_bytes(), source_name=SHIPPED_FORM.name, survey_slug=f"change-{year}"
    )
    survey = version.survey
    survey.year, survey.previous_round = year, previous
    survey.title, survey.title_en = f"스마트제조 실태조사 {year}", f"Smart manufacturing {year}"
    survey.save()
    if spec is not None:
        WeightingSpec.objects.create(survey=survey, version=1, spec=spec.to_json())
    design = SampleDesign.objects.create(
        survey=survey,
        strata_variables=["stratum_code"],
        allocation="proportional",
        sample_size=len(data.respondents),
        seed=20250428,
        drawn_at=timezone.now(),
    )
    counts = Counter(x.stratum for x in data.respondents.values())
    strata = {
        h: Stratum.objects.create(
            design=design,
            key=h,
            values={"stratum_code": h},
            population=n,
            allocated=counts[h],
            sample_size=counts[h],
        )
        for h, n in sorted(data.population.items())
    }
    units = FrameUnit.objects.bulk_create(
        FrameUnit(
            survey=survey,
            business_id=business_id(firm),
            name=f"firm {firm}",
            ksic="29199",
            size_class=data.respondents[firm].size if firm in data.respondents else "small",
            region="Gyeonggi",
            employees=10,
            attributes={"stratum_code": h},
            source_row=k + 2,
        )
        for k, (firm, h) in enumerate(sorted(data.frame.items()))
    )
    unit_of = {int(u.business_id.replace("-", "")): u for u in units}
    cases = {}
    for order, firm in enumerate(sorted(data.respondents), start=1):
        answer = data.respondents[firm]
        cases[firm] = Case.objects.create(
            survey=survey,
            stratum=strata[answer.stratum],
            frame_unit=unit_of[firm],
            business_id=unit_of[firm].business_id,
            selection_order=order,
            disposition="1.1",
        )
        Response.objects.create(
            case=cases[firm],
            questionnaire=version,
            answers=answers_of(answer),
            status=Response.Status.SUBMITTED,
            submitted_at=timezone.now(),
            reference=f"CHG-{year}-{firm:05d}",
        )
    return survey, cases


def answers_of(answer: Respondent) -> dict[str, Any]:
    out: dict[str, Any] = {"sf_adopted": "yes" if answer.adopted else "no"}
    if answer.y is not None:
        out["sales_krw_mn"] = answer.y
    return out


@dataclass
class TwoRounds:
    first: Survey
    second: Survey
    first_run: EstimateRun
    second_run: EstimateRun
    first_cases: dict[int, Case]
    second_cases: dict[int, Case]


def build_two_rounds(spec: Spec | None = None, later: Spec | None = None) -> TwoRounds:
    """Both rounds with their published versions (the second's cases linked to the first's),
    weighted by `spec` (the later round by `later` when given)."""
    first, second = read_rounds()
    build_frames(first, second, common_by_stratum())
    survey1, cases1 = make_round(first, YEARS[0], None, spec)
    survey2, cases2 = make_round(second, YEARS[1], survey1, later or spec)
    for firm, case in cases2.items():
        if firm in cases1:
            Case.objects.filter(pk=case.pk).update(previous=cases1[firm])
    run1 = pipeline.recompute(survey1, trigger="test")
    run2 = pipeline.recompute(survey2, trigger="test")
    assert run1 is not None and run2 is not None
    return TwoRounds(survey1, survey2, run1, run2, cases1, cases2)
