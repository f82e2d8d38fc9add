"""The codebook: every microdata variable with its labels, codes and universe."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import IO, Any

from django.utils import timezone
from django.utils.translation import gettext as _

from surveys import expressions
from surveys.questionnaire import Question

from . import replicates
from .microdata import DUMMY_TEXTS, Missing, Variable, microdata_layout
from .options import LANGUAGES, ExportOptions
from .release import treatment
from .tables import Table
from .versions import union_questions

CODEBOOK_COLUMNS = (
    "variable", "sav_dta_name", "label_ko", "label_en", "type", "choices", "universe",
    "universe_expression", "missing_codes", "versions", "identified_only", "scientific_use",
    "public_use",
)  # fmt: skip


def codebook_entries(options: ExportOptions) -> Iterator[dict[str, Any]]:
    yield from _layout_entries(options)
    yield from replicates.codebook_rows(options.run)


def _layout_entries(options: ExportOptions) -> Iterator[dict[str, Any]]:
    layout = microdata_layout(options.survey, identified=True)
    questions = union_questions(options.survey)
    for variable in layout.variables:
        yield {
            "variable": variable.name,
            "sav_dta_name": variable.stat_name,
            "label": {lang: variable.text(lang) for lang in LANGUAGES},
            "type": variable.qtype or variable.kind,
            "choices": _choices(variable),
            "universe": {
                "text": _universe_text(variable, questions, options.language),
                "expression": variable.universe,
            },
            "missing": _missing(variable, options.language),
            "versions": list(variable.versions),
            "identified_only": variable.identified_only,
            "release": {
                level: treatment(variable, level, layout.strata_variables)
                for level in ("scientific", "public")
            },
        }


def _choices(variable: Variable) -> list[dict[str, Any]]:
    if variable.kind == "dummy":
        return [
            {"code": k, "name": str(k), "label": {"ko": ko, "en": en}}
            for k, (ko, en) in DUMMY_TEXTS.items()
        ]
    return [
        {"code": variable.codes.get(name), "name": name, "label": dict(label)}
        for name, label in variable.choice_labels.items()
    ]


def _universe_text(variable: Variable, questions: Mapping[str, Question], language: str) -> str:
    if not variable.question:
        return _("every sampled firm")
    if not variable.universe:
        return _("every respondent")

    def label_of(name: str) -> str:
        question = questions.get(name)
        return question.text(language) if question else ""

    def choice_of(name: str, value: str) -> str:
        question = questions.get(name)
        return question.choice_text(value, language) if question else ""

    return expressions.describe(variable.universe, label_of, choice_of, language)


def _missing(variable: Variable, language: str) -> list[dict[str, Any]]:
    if not variable.question:
        return []
    if variable.kind == "text":
        return [{"code": "", "tag": "", "label": _("empty text (any reason)")}]
    return [
        {"code": m.code(variable.kind), "tag": f".{m.tag}", "label": m.text(language)}
        for m in Missing
    ]


def codebook_table(options: ExportOptions) -> Table:
    rows = [_codebook_row(entry) for entry in codebook_entries(options)]
    widths = (24, 20, 40, 40, 12, 50, 50, 40, 40, 16, 10, 40, 40)
    return Table(CODEBOOK_COLUMNS, rows, len(rows), sheet=_("codebook"), widths=widths)


def _codebook_row(entry: Mapping[str, Any]) -> list[Any]:
    choices = "; ".join(
        f"{c['code']}: {c['name']} = {c['label'].get('ko', '')} / {c['label'].get('en', '')}"
        for c in entry["choices"]
    )
    missing = "; ".join(f"{m['code']} ({m['tag']}) = {m['label']}" for m in entry["missing"])
    return [
        entry["variable"], entry["sav_dta_name"], entry["label"]["ko"], entry["label"]["en"],
        entry["type"], choices, entry["universe"]["text"], entry["universe"]["expression"],
        missing, ", ".join(entry["versions"]), int(entry["identified_only"]),
        entry["release"]["scientific"], entry["release"]["public"],
    ]  # fmt: skip


def write_codebook_json(options: ExportOptions, out: IO[bytes]) -> int:
    entries = list(codebook_entries(options))
    document = {
        "survey": options.survey.slug,
        "title": options.survey.title_in(options.language),
        "language": options.language,
        "generated_at": timezone.now().isoformat(),
        "weighting": replicates.weighting_section(options.run),
        "variables": entries,
    }
    out.write(json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"))
    return len(entries)
