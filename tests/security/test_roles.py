"""The README's role table and the groups the platform creates say the same."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from config.roles import (
    ADMIN_PERMISSIONS,
    ADMIN_SITE_PERMISSIONS,
    ADMINISTRATORS,
    FIELDWORK_MANAGERS,
    MANAGER_PERMISSIONS,
)
from tests.factories import ROOT

pytestmark = pytest.mark.django_db
ROW = re.compile(
    r"^\| .*\(`(?P<perm>[a-z_]+\.[a-z_]+)`\) \| (?P<manager>[^|]+) \| (?P<admin>[^|]+) \|$"
)


def readme_roles() -> dict[str, tuple[bool, bool]]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Roles", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        found = ROW.match(line)
        if found:
            said = (found["manager"].strip(), found["admin"].strip())
            rows[found["perm"]] = (said[0] == "yes", said[1] == "yes")
    return rows


def codes(group: str) -> set[str]:
    permissions = Group.objects.get(name=group).permissions.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


def test_the_readme_table_is_what_each_group_carries() -> None:
    table = readme_roles()

    assert {p for p, (manager, _admin) in table.items() if manager} == codes(FIELDWORK_MANAGERS)
    # the Django admin's read permissions are one row of the table, not one row each
    site = set(ADMIN_SITE_PERMISSIONS)
    assert {p for p, (_manager, admin) in table.items() if admin} == codes(ADMINISTRATORS) - site
    assert site <= codes(ADMINISTRATORS) and not site & codes(FIELDWORK_MANAGERS)
    assert "`ADMIN_SITE_PERMISSIONS`" in (ROOT / "README.md").read_text("utf-8")
    assert "analytics.download_identified" in table  # named, and in no group


def test_the_groups_are_exactly_the_roles_even_after_a_change() -> None:
    # given: a manager group that still carries a permission an older version gave it
    from config.roles import _permission, ensure_roles

    Group.objects.get(name=FIELDWORK_MANAGERS).permissions.add(
        _permission("analytics.view_results")
    )

    # when
    ensure_roles()

    # then
    assert codes(FIELDWORK_MANAGERS) == set(MANAGER_PERMISSIONS)
    assert codes(ADMINISTRATORS) == set(ADMIN_PERMISSIONS)
