"""Answers that walk the shipped questionnaire, and a helper to post a page."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from django.test import Client

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
    shown: dict[str, Any] | None = None,
    autosave: bool = False,
) -> Any:
    """Post a page as a browser does; `shown` is what the page showed for each field (a
    client that leaves it out is taken to have seen what is stored)."""
    payload = {**data, "action": action}
    if shown is not None:
        payload["shown"] = json.dumps(shown)
    path = f"/q/p/{page}/autosave/" if autosave else f"/q/p/{page}/"
    return client.post(path, payload)


def shown_on(client: Client, page: str) -> dict[str, Any]:
    """What the page shows now, as its form would send it back."""
    html = client.get(f"/q/p/{page}/").content.decode()
    found = re.search(r'name="shown" value="([^"]*)"', html)
    assert found, html[-2000:]
    return dict(json.loads(unescape(found.group(1))))


def answer_all(client: Client, answers: dict[str, dict[str, Any]]) -> None:
    client.get("/q/")
    for page, data in answers.items():
        result = post_page(client, page, data)
        assert result.status_code == 302, (page, result.content.decode()[-2000:])
