"""The codebook: every microdata variable with its labels, codes and universe."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import IO, Any

from django.utils import timezone
from django.utils.translation import gettext as _

from surveys import expressions
from surveys.questionnaire import Question, pick

from ..spec import WeightingSpec, imputation_rule, parse_spec
from . import replicates
from .microdata import DUMMY_TEXTS, Missing, Variable, microdata_layout
from .options import LANGUAGES, ExportOptions
from .release import treatment
from .tables import Table
from .versions import union_questions

CODEBOOK_COLUMNS = (
    "variable", "sav_dta_name", "label_ko", "label_en", "type", "choices", "universe",
    "universe_expression", "missing_codes", "versions", "identified_only", "scientific_use",
    "public_use", "editing",
)  # fmt: skip


def codebook_entries(options: ExportOptions) -> Iterator[dict[str, Any]]:
    yield from _layout_entries(options)
    yield from replicates.codebook_rows(options.run)


def _layout_entries(options: ExportOptions) -> Iterator[dict[str, Any]]:
    layout = microdata_layout(options.survey, identified=True)
    questions = union_questions(options.survey)
    notes = _editing_notes(editing_section(options), options.language)
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
            "editing": notes.get(variable.question, "") if not variable.role else "",
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
    widths = (24, 20, 40, 40, 12, 50, 50, 40, 40, 16, 10, 40, 40, 60)
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
        entry["release"]["scientific"], entry["release"]["public"], entry["editing"],
    ]  # fmt: skip


def write_codebook_json(options: ExportOptions, out: IO[bytes]) -> int:
    entries = list(codebook_entries(options))
    document = {
        "survey": options.survey.slug,
        "title": options.survey.title_in(options.language),
        "language": options.language,
        "generated_at": timezone.now().isoformat(),
        "weighting": replicates.weighting_section(options.run),
        "editing": editing_section(options),
        "variables": entries,
    }
    out.write(json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"))
    return len(entries)


def editing_section(options: ExportOptions) -> dict[str, Any]:
    """The edit rules of the current questionnaire and the imputation of the version the
    codebook describes (methodology L): what was checked, and how values were filled."""
    version = options.survey.current_questionnaire
    rules = list(version.edit_rules.order_by("order")) if version else []
    statistics = list(version.edit_statistics.order_by("order")) if version else []
    spec = parse_spec(options.run.spec) if options.run is not None else WeightingSpec()
    return {
        "threshold": spec.editing_threshold,
        "rules": [
            {
                "name": rule.name,
                "type": rule.severity,
                "rule": rule.rule,
                "relevant": rule.relevant,
                "items": list(rule.items),
                "flag": rule.flag,
                "message": dict(rule.message),
            }
            for rule in rules
        ],
        "statistics": [
            {"name": s.name, "expression": s.expression, "by": s.by, "percentile": s.percentile}
            for s in statistics
        ],
        "imputation": [
            {
                "item": rule.item,
                "method": rule.method,
                "variables": list(rule.variables),
                "expression": rule.expression,
            }
            for rule in (imputation_rule(line) for line in spec.imputation)
        ],
        "imputation_classes": list(spec.imputation_classes),
        "imputation_seed": spec.imputation_seed,
    }


def _editing_notes(section: Mapping[str, Any], language: str) -> dict[str, str]:
    """Per question: the rules about it and how it is imputed, in one line."""
    notes: dict[str, list[str]] = {}
    for rule in section["rules"]:
        text = f"{rule['name']} ({rule['type']}): {pick(rule['message'], language)}"
        for item in rule["items"]:
            notes.setdefault(item, []).append(text)
    classes = " × ".join(section["imputation_classes"])
    for entry in section["imputation"]:
        how = entry["expression"] or " ".join(entry["variables"])
        notes.setdefault(entry["item"], []).append(
            _("imputed: %(method)s %(how)s, classes %(classes)s")
            % {"method": entry["method"], "how": how, "classes": classes}
        )
    return {item: "; ".join(texts) for item, texts in notes.items()}
