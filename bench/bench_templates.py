# ruff: noqa: E501 (the two templates are markup, kept on their lines to compare them)
"""Why two template engines: the firm's question page rendered by Jinja2 and by Django
templates, the same markup from the same data (20 questions: labels, hints, 5 options each,
translated strings, autoescaping), in-process. Prints ms per render and the ratio.
Run with `make bench-templates`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.template import engines  # noqa: E402
from django.utils import translation  # noqa: E402

RENDERS = 2000

JINJA = """{% for f in fields %}<fieldset class="question" id="q-{{ f.name }}">
<legend>{{ f.label }}{% if f.required %} <span aria-hidden="true">*</span><span class="visually-hidden"> ({{ _("required") }})</span>{% endif %}</legend>
{% if f.hint %}<div class="form-text" id="{{ f.name }}-hint">{{ f.hint }}</div>{% endif %}
{% for value, label, checked in f.choices %}<div class="form-check"><input class="form-check-input" type="radio" name="{{ f.name }}" id="{{ f.name }}-{{ value }}" value="{{ value }}"{% if checked %} checked{% endif %}>
<label class="form-check-label" for="{{ f.name }}-{{ value }}">{{ label }}</label></div>
{% endfor %}</fieldset>
{% endfor %}"""

DJANGO = """{% load i18n %}{% for f in fields %}<fieldset class="question" id="q-{{ f.name }}">
<legend>{{ f.label }}{% if f.required %} <span aria-hidden="true">*</span><span class="visually-hidden"> ({% translate "required" %})</span>{% endif %}</legend>
{% if f.hint %}<div class="form-text" id="{{ f.name }}-hint">{{ f.hint }}</div>{% endif %}
{% for choice in f.choices %}<div class="form-check"><input class="form-check-input" type="radio" name="{{ f.name }}" id="{{ f.name }}-{{ choice.0 }}" value="{{ choice.0 }}"{% if choice.2 %} checked{% endif %}>
<label class="form-check-label" for="{{ f.name }}-{{ choice.0 }}">{{ choice.1 }}</label></div>
{% endfor %}</fieldset>
{% endfor %}"""


def fields() -> list[dict[str, Any]]:
    return [
        {
            "name": f"q{i}",
            "label": f"귀사의 스마트공장 도입 수준은 어느 정도입니까? <{i}>",
            "hint": "해당하는 것 하나를 골라 주십시오 & 확인해 주십시오.",
            "required": i % 2 == 0,
            "choices": [(f"c{j}", f"선택지 {j}", j == 2) for j in range(5)],
        }
        for i in range(20)
    ]


def per_render(template: Any, context: dict[str, Any]) -> float:
    assert template.render(context)
    start = time.perf_counter()
    for _ in range(RENDERS):
        template.render(context)
    return (time.perf_counter() - start) / RENDERS * 1000


def main() -> None:
    context = {"fields": fields()}
    with translation.override("ko"):
        jinja = engines["jinja2"].from_string(JINJA)
        dj = engines["django"].from_string(DJANGO)
        same = " ".join(jinja.render(context).split()) == " ".join(dj.render(context).split())
        jinja_ms, django_ms = per_render(jinja, context), per_render(dj, context)
    print(f"20-question page, {RENDERS} renders each, same markup: {same}")
    print(f"Jinja2            {jinja_ms:7.3f} ms per render")
    print(f"Django templates  {django_ms:7.3f} ms per render")
    print(f"Django / Jinja2   {django_ms / jinja_ms:7.1f} x")


if __name__ == "__main__":
    main()
