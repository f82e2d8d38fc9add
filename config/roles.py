"""Staff roles: Django groups with the permissions each role needs.

A firm (respondent) has no Django account; it reaches its questionnaire with its link or
access code only. Identified microdata needs `analytics.download_identified`, which no
group carries: it is granted to named people.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission

FIELDWORK_MANAGERS = "Fieldwork managers"
ADMINISTRATORS = "Survey administrators"

MANAGER_PERMISSIONS = [
    "respondents.manage_frame",
    "respondents.manage_fieldwork",
    "respondents.view_contact_details",
    "analytics.view_results",
]
ADMIN_PERMISSIONS = [
    *MANAGER_PERMISSIONS,
    "surveys.load_questionnaire",
    "analytics.download_results",
    "analytics.edit_weighting_spec",
]


def ensure_roles(**_kwargs: Any) -> None:
    for name, codes in (
        (FIELDWORK_MANAGERS, MANAGER_PERMISSIONS),
        (ADMINISTRATORS, ADMIN_PERMISSIONS),
    ):
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.add(*(_permission(code) for code in codes))


def _permission(code: str) -> Permission:
    app_label, codename = code.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)
