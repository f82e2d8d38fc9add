"""Content checks on the shipped smart manufacturing XLSForm (pyxform only, no Django)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pyxform.xls2json import parse_file_to_json
from pyxform.xls2xform import convert

XLSX = (
    Path(__file__).resolve().parents[2] / "surveys" / "questionnaires" / "smart_manufacturing.xlsx"
)
LANGS = ("Korean (ko)", "English (en)")
ADOPTER_RELEVANT = "${sf_adopted} = 'yes'"

# page -> [(name, XLSForm type)], in questionnaire order.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "profile": [
        ("note_profile", "note"),
        ("employees", "integer"),
        ("sales_krw_mn", "decimal"),
    ],
    "awareness": [
        ("note_awareness", "note"),
        ("importance", "select_one importance5"),
        ("important_top2", "calculate"),
        ("implementing", "select_one yesno"),
    ],
    "adoption": [("sf_adopted", "select_one yesno")],
    "sf_status": [
        ("sf_level", "select_one sf_level"),
        ("sf_scope", "select_one sf_scope"),
        ("sf_tech", "select_multiple sf_tech"),
        ("sf_tech_other", "text"),
    ],
    "sf_data": [
        ("data_collect", "select_one yesno"),
        ("data_analyze", "select_one yesno"),
        ("main_area", "select_one main_area"),
        ("main_area_other", "text"),
    ],
    "sf_future": [
        ("need_advance", "select_one yesno"),
        ("invest_own", "select_one yesno"),
        ("invest_amount", "decimal"),
    ],
    "ai": [("mfg_ai", "select_one mfg_ai")],
    "contact": [
        ("note_contact", "note"),
        ("contact_name", "text"),
        ("contact_department", "text"),
        ("contact_position", "text"),
        ("contact_phone", "text"),
        ("contact_email", "text"),
    ],
}

EXPECTED_CHOICES = {
    "importance5": [
        "very_important",
        "somewhat_important",
        "neutral",
        "not_very_important",
        "not_at_all_important",
    ],
    "yesno": ["yes", "no"],
    "sf_level": ["basic", "intermediate1", "intermediate2", "advanced"],
    "sf_scope": ["partial", "full"],
    "sf_tech": ["erp", "mes", "scm", "plm", "controller", "iot_sensor", "robot", "other"],
    "main_area": [
        "production_mgmt",
        "planning_strategy",
        "finance",
        "tech_innovation",
        "hr",
        "other",
    ],
    "mfg_ai": ["adopted", "planned", "none"],
}

ADOPTER_PAGES = {"sf_status", "sf_data", "sf_future"}
CORE = {"importance", "sf_adopted", "sf_level", "mfg_ai"}
ALLOWED_TYPES = {
    "begin_group",
    "end_group",
    "note",
    "integer",
    "decimal",
    "text",
    "calculate",
    "select_one",
    "select_multiple",
}


@cache
def parsed() -> dict[str, Any]:
    return parse_file_to_json(str(XLSX))


@cache
def survey_rows() -> list[dict[str, Any]]:
    wb = load_workbook(XLSX, read_only=True)
    rows = list(wb["survey"].iter_rows(values_only=True))
    header = [h for h in rows[0] if h]
    out = [dict(zip(header, r, strict=False)) for r in rows[1:]]
    return [r for r in out if r.get("type")]


def pages() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in parsed()["children"] if c["name"] != "meta"}


def questions() -> dict[str, dict[str, Any]]:
    return {q["name"]: q for page in pages().values() for q in page["children"]}


def test_converts_without_warnings() -> None:
    result = convert(str(XLSX))
    assert result.warnings == []
    assert "<h:body>" in result.xform


def test_settings() -> None:
    d = parsed()
    assert d["id_string"] == "smart_manufacturing"
    assert d["version"] == "2024.1"
    assert d["title"] == "2024 스마트제조혁신 실태조사"
    assert d["default_language"] == "Korean (ko)"


def test_pages_and_question_types_as_specified() -> None:
    actual: dict[str, list[tuple[str, str]]] = {}
    page = None
    for r in survey_rows():
        t = str(r["type"]).strip()
        assert t.split()[0] in ALLOWED_TYPES, t
        if t == "begin_group":
            assert page is None, f"nested group in {page}"
            page = r["name"]
            actual[page] = []
        elif t == "end_group":
            page = None
        else:
            assert page is not None, f"{r['name']} is outside any group"
            actual[page].append((r["name"], t))
    assert page is None
    assert actual == EXPECTED


def test_every_page_is_a_top_level_group_with_both_labels() -> None:
    assert list(pages()) == list(EXPECTED)
    for name, page in pages().items():
        assert page["type"] == "group"
        assert all(c["type"] != "group" for c in page["children"]), name
        for lang in LANGS:
            assert page["label"].get(lang, "").strip(), (name, lang)


@pytest.mark.parametrize("name", [n for qs in EXPECTED.values() for n, _ in qs])
def test_every_question_has_both_labels(name: str) -> None:
    label = questions()[name]["label"]
    assert isinstance(label, dict)
    for lang in LANGS:
        assert label.get(lang, "").strip(), (name, lang)


def test_choice_lists_and_labels() -> None:
    choices = parsed()["choices"]
    assert {k: [c["name"] for c in v] for k, v in choices.items()} == EXPECTED_CHOICES
    for list_name, items in choices.items():
        for c in items:
            for lang in LANGS:
                assert c["label"].get(lang, "").strip(), (list_name, c["name"], lang)


def test_messages_in_both_languages() -> None:
    for name, q in questions().items():
        bind = q.get("bind", {})
        for key in ("constraint", "required"):
            if bind.get(key) and bind[key] != "no":
                msg = bind.get(f"jr:{key}Msg")
                assert isinstance(msg, dict), (name, key)
                for lang in LANGS:
                    assert msg.get(lang, "").strip(), (name, key, lang)


def test_adopter_pages_only_for_adopters() -> None:
    for name, page in pages().items():
        relevant = page.get("bind", {}).get("relevant")
        if name in ADOPTER_PAGES:
            assert relevant == ADOPTER_RELEVANT, name
        else:
            assert relevant is None, name


def test_required_and_skip_logic() -> None:
    q = questions()
    optional = {"invest_amount", "contact_department", "contact_position"}
    for name, item in q.items():
        if item["type"] in ("note", "calculate"):
            continue
        required = item.get("bind", {}).get("required") == "yes"
        assert required is (name not in optional), name
    assert q["sf_tech_other"]["bind"]["relevant"] == "selected(${sf_tech}, 'other')"
    assert q["main_area_other"]["bind"]["relevant"] == "${main_area} = 'other'"
    assert q["data_analyze"]["bind"]["relevant"] == "${data_collect} = 'yes'"
    assert q["invest_amount"]["bind"]["relevant"] == "${invest_own} = 'yes'"
    assert q["important_top2"]["bind"]["calculate"] == (
        "if(${importance} = 'very_important' or ${importance} = 'somewhat_important', 1, 0)"
    )
    assert q["importance"]["control"]["appearance"] == "likert"


def test_constraints() -> None:
    q = questions()
    expected = {
        "employees": ". >= 1 and . <= 10000",
        "sales_krw_mn": ". >= 0 and . <= 100000000",
        "sf_tech": "count-selected(.) >= 1",
        "invest_amount": ". > 0 and . <= 1000000",
        "contact_phone": "regex(., '^[0-9+() -]{7,20}$')",
        "contact_email": r"regex(., '^[^@ ]+@[^@ ]+\.[^@ ]+$')",
    }
    actual = {n: i["bind"]["constraint"] for n, i in q.items() if "constraint" in i.get("bind", {})}
    assert actual == expected


def test_core_and_pii_flags() -> None:
    q = questions()
    core = {n for n, i in q.items() if i.get("instance", {}).get("core") == "yes"}
    pii = {n for n, i in q.items() if i.get("instance", {}).get("pii") == "yes"}
    assert core == CORE
    assert pii == {n for n, _ in EXPECTED["contact"] if n != "note_contact"}


def test_every_number_states_its_unit_in_both_languages() -> None:
    units = {n: i["unit"] for n, i in questions().items() if "unit" in i}
    assert units == {
        "employees": {"Korean (ko)": "명", "English (en)": "persons"},
        "sales_krw_mn": {"Korean (ko)": "백만 원", "English (en)": "KRW million"},
        "invest_amount": {"Korean (ko)": "백만 원", "English (en)": "KRW million"},
    }
    numbers = {n for n, i in questions().items() if i["type"] in ("integer", "decimal")}
    assert numbers == set(units)
