"""The panel of two rounds: one row per sampled firm and round, with that round's weights and a
key that links a firm's rows across rounds (issue 16).

Each round's rows carry what its published estimates used (stratum, N_h, final weights), and
the later round's rows c_g, the firms of their stratum in both frames, so that R reproduces a
published change from the file (methodology M6, M8). The link key is the firm's pseudonym in
the series (`link_key` of its first case); the unit_id is keyed per file as in released
microdata, so the file joins no other release. Business IDs, personal data, free text and
dates are left out; the answers are the estimated items of both rounds' questionnaires, as
each round's version used them (edited and imputed values). The file is not
disclosure-controlled (F7): it is for analysts inside the statistical office.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from django.utils.translation import gettext as _

from respondents.models import Case, SampleDesign, Stratum
from surveys.models import Survey

from .. import change
from ..models import EstimateRun
from .microdata import (
    AnswerCells,
    Layout,
    Missing,
    RunWeights,
    Variable,
    case_rows,
    choice_codes,
    labelled_rows,
    link_key,
    microdata_layout,
    plain_row,
    unit_id,
    with_stat_names,
)
from .options import ExportOptions
from .tables import Table

# The answers a panel carries: choices, options of a multiple choice and numbers.
ANSWER_KINDS = ("code", "dummy", "number")
BOTH = {"1": {"ko": "두 회차 모두 표본", "en": "sampled in both rounds"},
        "0": {"ko": "한 회차만 표본", "en": "sampled in one round only"}}  # fmt: skip
DESIGN: list[Variable] = [
    Variable("link_key", "string", {"ko": "사업체 연결 키(회차 공통 가명)",
                                    "en": "Firm link key (pseudonym across rounds)"}),
    Variable("round", "integer", {"ko": "조사 회차(기준 연도)", "en": "Round (reference year)"}),
    Variable("unit_id", "string", {"ko": "사업체 가명 ID(이 파일)",
                                   "en": "Pseudonymous unit ID (this file)"}),
    Variable("stratum", "string", {"ko": "층", "en": "Stratum"}),
    Variable("stratum_population", "integer", {"ko": "층 모집단 크기(N_h)",
                                               "en": "Stratum population (N_h)"}),
    Variable("stratum_common", "number", {"ko": "두 회차 표본추출틀 모두에 있는 층의 기업 수(c_g)",
                                          "en": "Firms of the stratum in both frames (c_g)"}),
    Variable("base_weight", "decimal", {"ko": "설계 가중치", "en": "Design (base) weight"}),
    Variable("final_weight", "decimal", {"ko": "최종 가중치(비응답자 0)",
                                         "en": "Final weight (0 if not a respondent)"}),
    Variable("in_both_rounds", "code", {"ko": "두 회차 모두 표본 여부",
                                        "en": "Sampled in both rounds"},
             codes={"0": 0, "1": 1}, choice_labels=BOTH),
    Variable("disposition", "string", {"ko": "AAPOR 최종 처리 코드",
                                       "en": "AAPOR disposition code"}),
]  # fmt: skip


def panel_layout(rounds: tuple[Survey, Survey]) -> Layout:
    """The design columns, then every estimated answer column of either round (the earlier
    round's first), a choice keeping one code in both."""
    merged: dict[str, Variable] = {}
    versions = []
    for survey in rounds:
        layout = microdata_layout(survey, identified=False)
        versions += layout.versions
        for variable in layout.answers:
            if variable.kind in ANSWER_KINDS and not variable.role:
                merged[variable.name] = _merged(merged.get(variable.name), variable)
    return Layout(with_stat_names([*DESIGN, *merged.values()]), versions, [])


def _merged(known: Variable | None, variable: Variable) -> Variable:
    if known is None:
        return variable
    labels = {**variable.choice_labels, **known.choice_labels}
    codes = choice_codes(list(labels)) if known.kind == "code" else {}
    versions = tuple(dict.fromkeys([*known.versions, *variable.versions]))
    return replace(known, choice_labels=labels, codes=codes, versions=versions)


class PanelRecords:
    """The panel's rows: the earlier round's firms, then the later round's."""

    def __init__(self, options: ExportOptions) -> None:
        assert options.run is not None and options.previous_run is not None
        self.runs: tuple[EstimateRun, EstimateRun] = (options.previous_run, options.run)
        self.rounds = (options.previous_run.survey, options.survey)
        self.layout = panel_layout(self.rounds)
        self.release = options.release_key
        chain = change.round_chain(options.survey)
        self.first = change.first_cases(chain[: chain.index(options.survey) + 1])
        links = change.linked_cases(*self.rounds)
        self.common = change.common_population(*self.rounds, links)
        in_sample = [
            set(Case.objects.in_sample().filter(survey=s).values_list("pk", flat=True))
            for s in self.rounds
        ]
        pairs = [(a, b) for b, a in links.items() if a in in_sample[0] and b in in_sample[1]]
        self.both = {a for a, _b in pairs} | {b for _a, b in pairs}
        self.total = sum(len(cases) for cases in in_sample)

    def __iter__(self) -> Iterator[list[Any]]:
        answers = self.layout.variables[len(DESIGN) :]
        for survey, run in zip(self.rounds, self.runs, strict=True):
            weights = RunWeights(run)
            cells = AnswerCells(run, microdata_layout(survey, identified=False).versions)
            strata = {s.pk: s for s in _strata(survey)}
            year = survey.year or self.rounds.index(survey) + 1
            later = survey == self.rounds[1]
            for row in case_rows(survey):
                stratum = strata[row.stratum_id]
                fallback = stratum.population / stratum.sample_size if stratum.sample_size else 0
                base, final = weights.of(row.pk, fallback)
                design = [
                    link_key(self.first.get(row.pk, row.pk)),
                    year,
                    unit_id(row.pk, self.release),
                    stratum.key,
                    stratum.population,
                    self.common.get(stratum.key, 0.0) if later else Missing.NOT_ASKED,
                    base,
                    final,
                    "1" if row.pk in self.both else "0",
                    row.disposition,
                ]
                yield design + cells.of(row, answers)


def _strata(survey: Survey) -> list[Stratum]:
    design = SampleDesign.objects.get(survey=survey, drawn_at__isnull=False)
    return list(design.strata.all())


def panel_table(options: ExportOptions, records: PanelRecords) -> Table:
    variables = records.layout.variables
    rows: Iterator[list[Any]] = (plain_row(row) for row in records)
    if options.labelled:
        strata = {s.key: s.label for survey in records.rounds for s in _labelled(survey)}
        rows = labelled_rows(rows, variables, options.language, strata)
    widths = [12] * len(variables)
    return Table([v.name for v in variables], rows, records.total, sheet=_("panel"), widths=widths)


def _labelled(survey: Survey) -> list[Stratum]:
    return list(Stratum.objects.filter(design__survey=survey).select_related("design"))
