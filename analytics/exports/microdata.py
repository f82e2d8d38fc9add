"""Microdata: one row per sampled firm, as a table or as an SPSS or Stata file."""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import re
import shutil
import tempfile
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.engine import aapor
from respondents.classifications import VALUE_LABELS
from respondents.models import Case, DispositionEvent, SampleDesign, Stratum, frame_variable
from surveys.models import Response, Survey
from surveys.questionnaire import Form, Question, pick

from ..models import EstimateRun, ImputedValue
from ..pipeline import StoredReplicates, run_replicates
from . import labels as fitting
from . import replicates
from .labels import DTA, SAV, Limits
from .options import ExportOptions
from .tables import PROGRESS_EVERY, Progress, Table
from .versions import Version, survey_versions, union_questions


class Missing(enum.Enum):
    """Why an answer cell is empty; codes in SPSS, extended missing values in Stata."""

    NOT_ASKED = 1  # not relevant for the case, or not in its questionnaire version
    NOT_ANSWERED = 2  # relevant but blank, or the case did not respond
    REFUSED = 3  # the case refused (AAPOR 2.11x)
    SUPPRESSED = 4  # blanked by disclosure control (release.py)

    def code(self, kind: str) -> int:
        return NUMBER_MISSING_BASE - self.value if kind == "number" else -self.value

    @property
    def tag(self) -> str:
        return "abcd"[self.value - 1]

    def text(self, language: str) -> str:
        return MISSING_TEXTS[self][0 if language == "ko" else 1]


# Quantities may legitimately be -1..-3 (a change, a loss): their codes sit far below.
NUMBER_MISSING_BASE = -99_999_990
# Labels of data, not of the interface: both languages are always written (codebook).
MISSING_TEXTS = {
    Missing.NOT_ASKED: ("비해당(질문하지 않음)", "not asked"),
    Missing.NOT_ANSWERED: ("무응답", "not answered"),
    Missing.REFUSED: ("응답 거부", "refused"),
    Missing.SUPPRESSED: ("공개 보호를 위해 비공개", "suppressed for disclosure control"),
}
DUMMY_TEXTS = {1: ("선택", "selected"), 0: ("선택 안 함", "not selected")}
DESIGN_VARIABLES: dict[str, tuple[str, str, str]] = {
    "unit_id": ("string", "사업체 가명 ID", "Pseudonymous unit ID"),
    "business_id": ("string", "사업자등록번호", "Business registration number"),
    "stratum": ("string", "층", "Stratum"),
    "stratum_population": ("integer", "층 모집단 크기(N_h)", "Stratum population (N_h)"),
    "stratum_sample": ("integer", "층 표본 크기(n_h)", "Stratum sample size (n_h)"),
    "base_weight": ("decimal", "설계 가중치", "Design (base) weight"),
    "final_weight": ("decimal", "최종 가중치(비응답자 0)", "Final weight (0 if not a respondent)"),
    "disposition": ("string", "AAPOR 최종 처리 코드", "AAPOR disposition code"),
    "wave": ("string", "현재 처리 코드가 기록된 조사 차수", "Wave of the current disposition"),
    "mode": ("string", "응답 방식", "Response mode"),
    "size_class": ("string", "기업 규모", "Size class"),
    "region": ("string", "지역(시도)", "Region (sido)"),
    "industry_group": ("string", "업종 그룹", "Industry group"),
    "region_area": ("string", "권역", "Region area"),
}
FRAME_VARIABLES = ("size_class", "region", "industry_group", "region_area")
ANSWER_KINDS = {
    "select_one": "code",
    "select_multiple": "dummy",
    "integer": "number",
    "decimal": "number",
    "calculate": "number",
    "text": "text",
    "date": "text",
}
NUMERIC_KINDS = ("code", "dummy", "number")
# Questions editing and imputation may change (methodology L7): each gets its status and,
# when it is one column, the firm's answer as given beside the value used.
EDITABLE_TYPES = ("select_one", "select_multiple", "integer", "decimal")
STATUS_CODES = {"reported": 0, "edited": 1, "imputed": 2}
STATUS_LABELS: dict[str, Mapping[str, str]] = {
    "reported": {"ko": "응답 그대로", "en": "as reported"},
    "edited": {"ko": "검토 후 수정 또는 기각", "en": "edited (corrected or rejected)"},
    "imputed": {"ko": "대체(귀속)값", "en": "imputed"},
}
# Names SPSS or Stata refuse as variable names.
RESERVED_NAMES = {
    "all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to", "with",
    "byte", "double", "float", "if", "in", "int", "long", "using", "strl", "_n", "_all",
    "_b", "_coef", "_cons", "_pi", "_pred", "_rc", "_skip",
}  # fmt: skip


@dataclass(frozen=True)
class Variable:
    """One microdata column."""

    name: str  # as in CSV and XLSX (the XLSForm name; `question/choice` for options)
    kind: str  # string, integer, decimal (design); code, dummy, number, text (answers)
    label: Mapping[str, str]
    qtype: str = ""  # the XLSForm type of an answer column
    question: str = ""
    choice: str = ""  # the option of a select_multiple column
    codes: Mapping[str, int] = field(default_factory=dict)  # select_one: choice -> code
    choice_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    universe: str = ""  # the `relevant` condition as written (page and question)
    versions: tuple[str, ...] = ()
    identified_only: bool = False
    stat_name: str = ""  # the name in SPSS and Stata files
    question_label: Mapping[str, str] = field(default_factory=dict)  # of an option column
    option_label: Mapping[str, str] = field(default_factory=dict)
    role: str = ""  # "raw": the firm's own answer; "flag": reported, edited or imputed

    def text(self, language: str) -> str:
        return pick(self.label, language) or self.name

    def stat_label(self, language: str, limits: Limits) -> str:
        """The label in an SPSS or Stata file: an option column keeps its option's name
        whole and shortens the question's text first."""
        if not self.choice:
            return fitting.fit(self.text(language), limits.variable_label, limits)
        question = pick(self.question_label, language) or self.question
        option = pick(self.option_label, language) or self.choice
        return fitting.fit_pair(question, option, ": ", limits.variable_label, limits)


@dataclass
class Layout:
    variables: list[Variable]
    versions: list[Version]
    strata_variables: list[str]

    @property
    def answers(self) -> list[Variable]:
        return [v for v in self.variables if v.question]


def microdata_layout(survey: Survey, *, identified: bool) -> Layout:
    versions = survey_versions(survey)
    design = SampleDesign.objects.filter(survey=survey, drawn_at__isnull=False).first()
    strata_variables = list(design.strata_variables) if design else []
    variables = _design_variables(strata_variables, identified)
    for question in union_questions(survey).values():
        if question.type in ANSWER_KINDS and (identified or not question.pii):
            variables.extend(_answer_variables(question, versions))
    named = with_stat_names(variables)
    return Layout(named, versions, strata_variables)


def _design_variables(strata_variables: list[str], identified: bool) -> list[Variable]:
    names = ["unit_id", *(["business_id"] if identified else [])]
    names += ["stratum", "stratum_population", "stratum_sample", "base_weight", "final_weight"]
    names += ["disposition", "wave", "mode", *dict.fromkeys([*strata_variables, *FRAME_VARIABLES])]
    out = []
    for name in dict.fromkeys(names):
        kind, ko, en = DESIGN_VARIABLES.get(name, ("string", f"층화 변수 {name}", name))
        out.append(
            Variable(name, kind, {"ko": ko, "en": en}, identified_only=name == "business_id")
        )
    return out


def _answer_variables(question: Question, versions: list[Version]) -> list[Variable]:
    present = [v for v in versions if question.name in v.form.questions]
    common: dict[str, Any] = {
        "qtype": question.type,
        "question": question.name,
        "universe": _universe(question, present[0].form),
        "identified_only": question.pii,
    }
    labels = _union_choices(question.name, present)
    if question.type == "select_multiple":
        dummies = [
            _dummy(question, choice, text, present, common) for choice, text in labels.items()
        ]
        return [*dummies, _status_variable(question, common)]
    codes = choice_codes(list(labels)) if question.type == "select_one" else {}
    kind = ANSWER_KINDS[question.type]
    label = question.label or {"en": question.name}
    versions_text = tuple(v.label for v in present)
    main = Variable(question.name, kind, label, codes=codes, choice_labels=labels,
                    versions=versions_text, **common)  # fmt: skip
    if question.type not in EDITABLE_TYPES:
        return [main]
    raw_label = {lang: f"{text} ({RAW_SUFFIX[lang]})" for lang, text in _both(label).items()}
    return [main, replace(main, name=f"{question.name}_raw", label=raw_label, role="raw"),
            _status_variable(question, common)]  # fmt: skip


RAW_SUFFIX = {"ko": "응답 원값", "en": "as reported"}


def _both(label: Mapping[str, str]) -> dict[str, str]:
    return {lang: pick(label, lang) for lang in ("ko", "en")}


def _status_variable(question: Question, common: dict[str, Any]) -> Variable:
    label = question.label or {"en": question.name}
    texts = {"ko": "처리 상태", "en": "edit status"}
    return Variable(
        f"{question.name}_status",
        "code",
        {lang: f"{text}: {texts[lang]}" for lang, text in _both(label).items()},
        codes=STATUS_CODES,
        choice_labels=STATUS_LABELS,
        role="flag",
        **common,
    )


def _dummy(
    question: Question,
    choice: str,
    text: Mapping[str, str],
    present: list[Version],
    common: dict[str, Any],
) -> Variable:
    offered = tuple(
        v.label for v in present if choice in v.form.questions[question.name].choice_names
    )
    languages = set(question.label) | set(text)
    label = {
        lang: f"{pick(question.label, lang) or question.name}: {pick(text, lang) or choice}"
        for lang in languages
    }
    return Variable(
        f"{question.name}/{choice}",
        "dummy",
        label,
        choice=choice,
        versions=offered,
        question_label=question.label or {"en": question.name},
        option_label=text,
        **common,
    )


def _union_choices(name: str, versions: list[Version]) -> dict[str, Mapping[str, str]]:
    labels: dict[str, Mapping[str, str]] = {}
    for version in versions:
        for choice in version.form.questions[name].choices:
            labels.setdefault(choice.name, choice.label)
    return labels


def choice_codes(names: list[str]) -> dict[str, int]:
    """The XLSForm's own codes when every choice name is a small whole number, else 1..k."""
    if names and all(re.fullmatch(r"\d{1,4}", name) for name in names):
        codes = {name: int(name) for name in names}
        if len(set(codes.values())) == len(codes):
            return codes
    return {name: k for k, name in enumerate(names, start=1)}


def _universe(question: Question, form: Form) -> str:
    page = form.page_by_name.get(question.page)
    parts = [p for p in ((page.relevant if page else ""), question.relevant) if p]
    if len(parts) == 2:
        return f"({parts[0]}) and ({parts[1]})"
    return parts[0] if parts else ""


def with_stat_names(variables: list[Variable]) -> list[Variable]:
    """SPSS and Stata names: letters, digits and _, at most 28 characters, unique ignoring
    case, the same in both formats. An option column of a select_multiple question is
    `question__option` (two underscores), so it never meets the question that asks to
    specify "other" (`sf_tech/other` is `sf_tech__other`, beside `sf_tech_other`). Names
    already valid are kept first; a clash left over gets `_2`, `_3`, ..."""
    wanted = [_stat_base(v.name, v.question if v.choice else "", v.choice) for v in variables]
    names: list[str | None] = []
    used: set[str] = set()
    for variable, base in zip(variables, wanted, strict=True):
        valid = base == variable.name and base.lower() not in used
        names.append(base if valid else None)
        used |= {base.lower()} if valid else set()
    for index, base in enumerate(wanted):
        name, k = base, 1
        while names[index] is None and name.lower() in used:
            k += 1
            name = f"{base[:24]}_{k}"
        if names[index] is None:
            names[index] = name
            used.add(name.lower())
    return [replace(v, stat_name=str(n)) for v, n in zip(variables, names, strict=True)]


def _stat_base(name: str, question: str = "", choice: str = "") -> str:
    if choice:
        option = _ascii_name(choice)[: STAT_NAME_LENGTH - 10]
        head = _ascii_name(question)[: STAT_NAME_LENGTH - len(option) - 2]
        base = f"{head}__{option}"
    else:
        base = _ascii_name(name)
    base = (base if base[:1].isalpha() else f"v{base}")[:STAT_NAME_LENGTH]
    return base + "_" if base.lower() in RESERVED_NAMES else base


def _ascii_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


STAT_NAME_LENGTH = 28


# --- the rows -----------------------------------------------------------------------------


def unit_id(case_id: int, release: str = "") -> str:
    """A pseudonym of a case, useless without SECRET_KEY: keyed by the release (a random
    key per released file), so that two releases cannot be joined; without a key, the
    stable one of panel files and of the internal identified file."""
    key = settings.SECRET_KEY.encode()
    stem = f"release:{release}:{case_id}" if release else f"unit:{case_id}"
    return hmac.new(key, stem.encode(), hashlib.sha256).hexdigest()[:16]


def link_key(case_id: int) -> str:
    """The pseudonym of a firm across the rounds of a series (panel files), from its first
    case in the series: stable across rounds and downloads, useless without SECRET_KEY, and
    unlike any unit_id, so that it joins no microdata file."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"firm:{case_id}".encode(), hashlib.sha256).hexdigest()[:16]


class _Relevance:
    """Which questions applied to a respondent, per version; the answers that skip logic
    reads are few, so results are cached by their values."""

    def __init__(self, version: Version) -> None:
        self.form = version.form
        self.keys = sorted(_relevance_inputs(version.form))
        self.choices = {n: set(q.choice_names) for n, q in self.form.questions.items()}
        self.cache: dict[tuple[Any, ...], set[str]] = {}

    def relevant(self, answers: Mapping[str, Any]) -> set[str]:
        key = tuple(_hashable(answers.get(name)) for name in self.keys)
        found = self.cache.get(key)
        if found is None:
            if len(self.cache) > 50_000:
                self.cache.clear()
            found = self.cache[key] = self.form.evaluate(answers)[1]
        return found


def _relevance_inputs(form: Form) -> set[str]:
    """Names read by page and question conditions, and by the calculations they read."""
    names: set[str] = set()
    for page in form.pages:
        if page.relevant_expr is not None:
            names |= page.relevant_expr.references
        for question in page.questions:
            if question.relevant_expr is not None:
                names |= question.relevant_expr.references
    pending = list(names)
    while pending:
        calculated = form.questions.get(pending.pop())
        if calculated is not None and calculated.calculation_expr is not None:
            new = calculated.calculation_expr.references - names
            names |= new
            pending.extend(new)
    return names


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass
class CaseRow:
    pk: int
    business_id: str
    stratum_id: int
    disposition: str
    size_class: str
    region: str
    ksic: str
    version_id: int | None
    answers: Mapping[str, Any] | None
    edited: Mapping[str, Any] | None
    mode: str
    wave: str | None
    industry_group: str
    region_area: str


CASE_FIELDS = (
    "pk", "business_id", "stratum_id", "disposition", "frame_unit__size_class",
    "frame_unit__region", "frame_unit__ksic", "response__questionnaire_id", "response__answers",
    "response__edited", "response__mode", "wave_name", "industry_group", "region_area",
)  # fmt: skip


def case_rows(survey: Survey) -> Iterator[CaseRow]:
    current = DispositionEvent.objects.filter(case=OuterRef("pk"), applied=True).order_by(
        "-at", "-pk"
    )
    rows = (
        Case.objects.in_sample()
        .filter(survey=survey)
        .annotate(
            wave_name=Subquery(current.values("wave__name")[:1]),
            industry_group=frame_variable("industry_group", "frame_unit__"),
            region_area=frame_variable("region_area", "frame_unit__"),
        )
        .order_by("pk")
        .values_list(*CASE_FIELDS)
    )
    for values in rows.iterator(chunk_size=2000):
        yield CaseRow(*values)


class RunWeights:
    def __init__(self, run: EstimateRun) -> None:
        blob = EstimateRun.objects.filter(pk=run.pk).values_list("weights", flat=True).get()
        if blob:
            data = np.load(io.BytesIO(bytes(blob)))
            order = np.argsort(data["case_ids"])
            self.ids = data["case_ids"][order]
            self.base, self.final = data["base"][order], data["final"][order]
        else:
            self.ids = np.zeros(0, np.int64)
            self.base = self.final = np.zeros(0)

    def of(self, case_id: int, fallback: float) -> tuple[float, float]:
        """(base, final); a case that joined the sample after the run weighs 0 in it."""
        k = int(np.searchsorted(self.ids, case_id))
        if k < self.ids.size and self.ids[k] == case_id:
            return float(self.base[k]), float(self.final[k])
        return fallback, 0.0


class Records:
    """The microdata rows: design values, then answers or a Missing reason per column."""

    def __init__(self, options: ExportOptions) -> None:
        assert options.run is not None
        self.layout = microdata_layout(options.survey, identified=options.identified)
        self.identified = options.identified
        self.release = options.release_key
        self.weights = RunWeights(options.run)
        self.strata = {
            s.pk: s for s in SampleDesign.objects.get(survey=options.survey, drawn_at__isnull=False)
            .strata.all()
        }  # fmt: skip
        self.answers = AnswerCells(options.run, self.layout.versions)
        self.total = Case.objects.in_sample().filter(survey=options.survey).count()
        self.survey = options.survey
        self.replicates = run_replicates(options.run)
        self.layout.variables += replicate_variables(self.replicates)

    def __iter__(self) -> Iterator[list[Any]]:
        answers = self.layout.answers
        for row in case_rows(self.survey):
            values = self._design(row) + self.answers.of(row, answers)
            yield values + replicates.replicate_values(self.replicates, row.pk)

    def _design(self, row: CaseRow) -> list[Any]:
        stratum = self.strata[row.stratum_id]
        fallback = stratum.population / stratum.sample_size if stratum.sample_size else 0.0
        base, final = self.weights.of(row.pk, fallback)
        derived = {
            "size_class": row.size_class,
            "region": row.region,
            "industry_group": row.industry_group,
            "region_area": row.region_area,
        }
        pseudonym = unit_id(row.pk, self.release)
        values: list[Any] = [pseudonym, *([row.business_id] if self.identified else [])]
        values += [stratum.key, stratum.population, stratum.sample_size, base, final]
        values += [row.disposition, row.wave or "", row.mode or ""]
        extra = dict.fromkeys([*self.layout.strata_variables, *FRAME_VARIABLES])
        values += [stratum.values.get(name, derived.get(name, "")) for name in extra]
        return values


class AnswerCells:
    """Each case's answer cells as a version used them: the values as edited and as the
    version imputed them, or the reason a cell is empty."""

    def __init__(self, run: EstimateRun, versions: list[Version]) -> None:
        self.relevance = {v.pk: _Relevance(v) for v in versions}
        self.imputed: dict[int, dict[str, Any]] = {}
        found = ImputedValue.objects.filter(run=run).values_list(
            "response__case_id", "item", "value"
        )
        for case_id, item, value in found:
            self.imputed.setdefault(case_id, {})[item] = value

    def of(self, row: CaseRow, variables: list[Variable]) -> list[Any]:
        if row.answers is None or aapor.category_of(row.disposition) not in ("I", "P"):
            refused = row.disposition.startswith("2.11")
            return [Missing.REFUSED if refused else Missing.NOT_ANSWERED] * len(variables)
        relevance = self.relevance[row.version_id] if row.version_id else None
        if relevance is None:
            return [Missing.NOT_ANSWERED] * len(variables)
        edited = row.edited or {}
        imputed = self.imputed.get(row.pk, {})
        final = {**row.answers, **edited, **imputed}
        relevant = relevance.relevant(final)
        out = []
        for variable in variables:
            if variable.role == "flag":
                out.append(_status(variable.question, relevant, row.answers, edited, imputed))
            elif variable.role == "raw":
                out.append(_cell(variable, row.answers, relevant, relevance.choices))
            else:
                out.append(_cell(variable, final, relevant, relevance.choices))
        return out


def _status(
    name: str,
    relevant: set[str],
    answers: Mapping[str, Any],
    edited: Mapping[str, Any],
    imputed: Mapping[str, Any],
) -> Any:
    if name not in relevant:
        return Missing.NOT_ASKED
    if name in imputed:
        return "imputed"
    if name in edited and edited[name] != answers.get(name):
        return "edited"
    return "reported"


def _cell(
    variable: Variable,
    answers: Mapping[str, Any],
    relevant: set[str],
    choices: Mapping[str, set[str]],
) -> Any:
    name = variable.question
    offered = choices.get(name)
    if offered is None or (variable.choice and variable.choice not in offered):
        return Missing.NOT_ASKED
    value = answers.get(name)
    if value is None or value == "" or value == []:
        return Missing.NOT_ANSWERED if name in relevant else Missing.NOT_ASKED
    if variable.kind == "dummy":
        return int(variable.choice in value) if isinstance(value, list) else Missing.NOT_ANSWERED
    if variable.kind == "text":
        return str(value)
    return value


def microdata_table(options: ExportOptions, records: Any = None) -> Table:
    records = records if records is not None else Records(options)
    variables = records.layout.variables
    rows: Iterator[list[Any]] = (plain_row(row) for row in records)
    if options.labelled:
        strata = {s.key: s.label for s in _strata(options.survey)}
        rows = labelled_rows(rows, variables, options.language, strata)
    widths = [12] * len(variables)
    return Table([v.name for v in variables], rows, records.total, sheet=_("data"), widths=widths)


def _strata(survey: Survey) -> list[Stratum]:
    return list(Stratum.objects.filter(design__survey=survey).select_related("design"))


def labelled_rows(
    rows: Iterator[list[Any]], variables: list[Variable], language: str, strata: dict[str, str]
) -> Iterator[list[Any]]:
    """CSV and XLSX for people: strata, choices, classifications, dispositions and modes by
    their labels in the export's language (option columns stay 0/1; the header names them)."""
    maps = {k: m for k, v in enumerate(variables) if (m := _label_map(v, language))}
    maps |= {k: strata for k, v in enumerate(variables) if v.name == "stratum"}
    for row in rows:
        for k, labels in maps.items():
            value = row[k]
            if value is not None:
                row[k] = labels.get(str(value), value)
        yield row


def _label_map(variable: Variable, language: str) -> dict[str, str]:
    if variable.kind == "code":
        return {name: pick(text, language) or name for name, text in variable.choice_labels.items()}
    if variable.name == "disposition":
        return {code: _(d.label) for code, d in aapor.DISPOSITION_CODES.items()}
    if variable.name == "mode":
        return {str(value): str(label) for value, label in Response.Mode.choices}
    return {str(k): str(v) for k, v in VALUE_LABELS.get(variable.name, {}).items()}


def plain_row(row: list[Any]) -> list[Any]:
    """CSV and XLSX: empty cells for every missing reason (the codes are in SPSS/Stata)."""
    return [None if value.__class__ is Missing else value for value in row]


# --- SPSS and Stata -----------------------------------------------------------------------


class _Column:
    """One variable's values, compact: codes and 0/1 as small integers, numbers as float64."""

    def __init__(self, variable: Variable) -> None:
        self.variable = variable
        kind = variable.kind
        self.values: Any = [] if kind in ("string", "text") else array(TYPECODES.get(kind, "d"))
        self.strings: dict[int, str] = {}  # a calculation that gave text
        self.repeated: dict[str, str] | None = {}
        self.data: Any = None

    def add(self, value: Any) -> None:
        kind = self.variable.kind
        if isinstance(value, Missing):
            self.values.append("" if kind in ("string", "text") else value.code(kind))
        elif kind == "code":
            # A stored name that is no longer a choice has no code: it counts as blank.
            code = self.variable.codes.get(value)
            self.values.append(code if code is not None else Missing.NOT_ANSWERED.code(kind))
        elif kind in ("string", "text"):
            self.values.append(self._shared(str(value)))
        elif kind in ("dummy", "integer"):
            self.values.append(int(value))
        else:
            self._add_number(value)

    def _shared(self, text: str) -> str:
        """One object for each repeated value (codes, regions): 50 bytes a row saved."""
        if self.repeated is None:
            return text
        shared = self.repeated.setdefault(text, text)
        if len(self.repeated) > 1000:
            self.repeated = None  # unique values (IDs, free text): sharing saves nothing
        return shared

    def _add_number(self, value: Any) -> None:
        try:
            self.values.append(float(value))
        except (TypeError, ValueError):
            self.strings[len(self.values)] = str(value)
            self.values.append(Missing.NOT_ANSWERED.code("number"))

    def finish(self) -> None:
        if isinstance(self.values, list):
            self.data = self.values
            return
        self.data = np.frombuffer(self.values, dtype=self.values.typecode)
        if self.strings:
            # Some results of a calculation were text: the whole column becomes text.
            missing = {m.code("number") for m in Missing}
            texts = ["" if v in missing else f"{v:g}" for v in self.data.tolist()]
            for index, text in self.strings.items():
                texts[index] = text
            self.data = texts

    @property
    def coded(self) -> bool:
        """Numeric with missing-value codes (answers), not text."""
        return self.variable.kind in NUMERIC_KINDS and not isinstance(self.data, list)


TYPECODES = {"code": "h", "dummy": "b", "integer": "q"}


def write_statistical(
    options: ExportOptions, out: IO[bytes], progress: Progress, records: Any = None
) -> int:
    """Microdata as an SPSS .sav or Stata .dta file, with labels and missing-value codes."""
    records = records if records is not None else Records(options)
    columns = [_Column(v) for v in records.layout.variables]
    count = 0
    for count, row in enumerate(records, start=1):
        for column, value in zip(columns, row, strict=True):
            column.add(value)
        if count % PROGRESS_EVERY == 0:
            progress(0.9 * count / max(records.total, 1))
    for column in columns:
        column.finish()
    write = _write_sav if options.format == "sav" else _write_dta
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"export.{options.format}"
        write(columns, path, options)
        with path.open("rb") as source:
            shutil.copyfileobj(source, out, 2**20)
    progress(1.0)
    return count


def _frame(columns: list[_Column], stata: bool) -> Any:
    import pandas as pd

    data = {}
    for column in columns:
        values = column.data
        if stata and column.coded:
            values = _tagged(values, column.variable.kind)
        data[column.variable.stat_name] = values
    return pd.DataFrame(data, copy=False)


def _tagged(values: Any, kind: str) -> Any:
    """Stata: missing codes become the extended missing values .a, .b and .c."""
    out = values.astype(np.float64 if kind == "number" else np.int64).astype(object)
    for reason in Missing:
        out[values == reason.code(kind)] = reason.tag
    return out


def _labels(columns: list[_Column], language: str, limits: Limits) -> dict[str, dict[Any, str]]:
    stata = limits is DTA
    out: dict[str, dict[Any, str]] = {}
    for column in columns:
        if column.coded:
            labels = _value_labels(column.variable, language)
            for reason in Missing:
                key = reason.tag if stata else reason.code(column.variable.kind)
                labels[key] = reason.text(language)
            out[column.variable.stat_name] = fitting.fit_distinct(
                labels, limits.value_label, limits, str
            )
    return out


def _value_labels(variable: Variable, language: str) -> dict[Any, str]:
    if variable.kind == "code":
        return {
            code: pick(variable.choice_labels.get(name), language) or name
            for name, code in variable.codes.items()
        }
    if variable.kind == "dummy":
        return {k: texts[0 if language == "ko" else 1] for k, texts in DUMMY_TEXTS.items()}
    return {}


def _column_labels(columns: list[_Column], language: str, limits: Limits) -> list[str | None]:
    """Every label within the format's limit; labels that shortening made equal get the
    option's (or variable's) name."""
    labels = [c.variable.stat_label(language, limits) for c in columns]
    seen: set[str] = set()
    for index, column in enumerate(columns):
        if labels[index] in seen:
            tag = f"[{column.variable.choice or column.variable.name}]"
            labels[index] = fitting.fit_pair(labels[index], tag, " ", limits.variable_label, limits)
        seen.add(labels[index])
    return list(labels)


def _file_label(options: ExportOptions, limits: Limits) -> str:
    run = options.run
    title = options.survey.title_in(options.language)
    if run is None:
        return fitting.fit(title, limits.file_label, limits)
    return fitting.fit_pair(title, f"(run {run.number})", " ", limits.file_label, limits)


def _write_sav(columns: list[_Column], path: Path, options: ExportOptions) -> None:
    import pyreadstat

    # SPSS takes at most three discrete missing values, or one range: the codes are adjacent.
    missing: dict[str, list[Any]] = {
        c.variable.stat_name: [_code_range(c.variable.kind)] for c in columns if c.coded
    }
    nominal = ("code", "dummy", "string", "text")
    measure = {
        c.variable.stat_name: "nominal" if c.variable.kind in nominal else "scale" for c in columns
    }
    pyreadstat.write_sav(
        _frame(columns, stata=False),
        str(path),
        file_label=_file_label(options, SAV),
        column_labels=_column_labels(columns, options.language, SAV),
        variable_value_labels=_labels(columns, options.language, SAV),
        missing_ranges=missing,
        variable_measure=measure,
        note=fitting.note_lines(_note(options), SAV),
    )


def _code_range(kind: str) -> dict[str, int]:
    codes = [m.code(kind) for m in Missing]
    return {"lo": min(codes), "hi": max(codes)}


def _write_dta(columns: list[_Column], path: Path, options: ExportOptions) -> None:
    import pyreadstat

    missing = {c.variable.stat_name: [m.tag for m in Missing] for c in columns if c.coded}
    pyreadstat.write_dta(
        _frame(columns, stata=True),
        str(path),
        file_label=_file_label(options, DTA),
        column_labels=_column_labels(columns, options.language, DTA),
        variable_value_labels=_labels(columns, options.language, DTA),
        missing_user_values=missing,
    )


def _note(options: ExportOptions) -> str:
    run = options.run
    assert run is not None
    as_of = timezone.localtime(run.data_as_of) if run.data_as_of else None
    when = f", data as of {as_of:%Y-%m-%d %H:%M:%S %z}" if as_of else ""
    return f"{options.survey.slug}: estimate run {run.number}{when}"


def replicate_variables(stored: StoredReplicates | None) -> list[Variable]:
    """The replicate-weight columns rw_1 ... rw_R of a run with replicate variance."""
    if stored is None:
        return []
    return [
        Variable(name, "decimal", label, stat_name=name)
        for name, label in replicates.replicate_labels(stored)
    ]
