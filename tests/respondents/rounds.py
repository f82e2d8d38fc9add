"""Builders for tests of annual rounds: surveys linked as rounds, frames imported from rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from respondents import sampling
from respondents.frame_changes import import_links
from respondents.frame_import import ImportResult, import_frame
from respondents.models import SampleDesign
from surveys.models import Survey
from tests.factories import business_id

HEADER = ["business_id", "name", "ksic", "size_class", "region", "employees", "sales_krw_mn",
          "email", "phone"]  # fmt: skip
SIZE_EMPLOYEES = {"micro": 5, "small": 20, "medium": 100, "midsize": 400}


def firm(
    number: int, *, size: str = "small", region: str = "Gyeonggi", ksic: str = "29199"
) -> list[str]:
    """A frame row; the business ID is made from the number (tests.factories.business_id)."""
    return [business_id(number), f"(주)라운드{number}", ksic, size, region,
            str(SIZE_EMPLOYEES[size]), "1000", "", ""]  # fmt: skip


def csv_bytes(rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode()


def load_frame(survey: Survey, rows: Sequence[Sequence[str]], *, seed: int = 7) -> ImportResult:
    return import_frame(survey, io.BytesIO(csv_bytes(rows)), filename="frame.csv", prn_seed=seed)


def load_links(survey: Survey, rows: Sequence[Sequence[str]]) -> int:
    data = csv_bytes(rows, header=["old_business_id", "new_business_id", "kind"])
    return import_links(survey, io.BytesIO(data), filename="links.csv")


def rounds(year: int = 2024) -> tuple[Survey, Survey]:
    """A survey and its next round (no questionnaire: the frame and sample need none)."""
    first = Survey.objects.create(slug=f"r{year}", title=f"Survey {year}", year=year)
    second = Survey.objects.create(
        slug=f"r{year + 1}", title=f"Survey {year + 1}", year=year + 1, previous_round=first
    )
    return first, second


def draw(survey: Survey, size: int, **options: Any) -> SampleDesign:
    """A PRN draw stratified by size class, proportional, unless told otherwise."""
    parameters: dict[str, Any] = {
        "strata_variables": ["size_class"],
        "allocation": "proportional",
        "sample_size": size,
        "min_per_stratum": 2,
        "seed": 11,
        "selection": SampleDesign.Selection.PRN,
        **options,
    }
    return sampling.draw_sample(survey, **parameters)
