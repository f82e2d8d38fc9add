"""Answers that walk the shipped questionnaire, and a helper to post a page."""

from __future__ import annotations

from typing import Any

from django.test import Client

from surveys.models import Response

ADOPTER: dict[str, dict[str, Any]] = {
    "profile": {"employees": "45", "sales_krw_mn": "12500.5"},
    "awareness": {"importance": "very_important", "implementing": "yes"},
    "adoption": {"sf_adopted": "yes"},
    "sf_status": {"sf_level": "basic", "sf_scope": "partial", "sf_tech": ["erp", "mes"]},
    "sf_data": {"data_collect": "yes", "data_analyze": "no", "main_area": "production_mgmt"},
    "sf_future": {"need_advance": "yes", "invest_own": "yes", "invest_amount": "300"},
    "ai": {"mfg_ai": "planned"},
    "contact": {
        "contact_name": "김민수",
        "contact_department": "생산관리팀",
        "contact_position": "과장",
        "contact_phone": "031-123-4567",
        "contact_email": "minsu.kim@example.co.kr",
    },
}
NON_ADOPTER: dict[str, dict[str, Any]] = {
    "profile": {"employees": "8", "sales_krw_mn": "900"},
    "awareness": {"importance": "neutral", "implementing": "no"},
    "adoption": {"sf_adopted": "no"},
    "ai": {"mfg_ai": "none"},
    "contact": {
        "contact_name": "Lee Ji-eun",
        "contact_phone": "02-555-0101",
        "contact_email": "jieun@example.com",
    },
}


def post_page(
    client: Client,
    page: str,
    data: dict[str, Any],
    *,
    action: str = "next",
    revision: int | None = None,
    editor: str = "tab-1",
) -> Any:
    if revision is None:
        revision = Response.objects.values_list("revision", flat=True).order_by("-pk").first() or 0
    payload = {**data, "revision": str(revision), "editor": editor, "action": action}
    return client.post(f"/q/p/{page}/", payload)


def answer_all(client: Client, answers: dict[str, dict[str, Any]]) -> None:
    client.get("/q/")
    for page, data in answers.items():
        result = post_page(client, page, data)
        assert result.status_code == 302, (page, result.content.decode()[-2000:])
