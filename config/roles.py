"""Staff roles: Django groups with the permissions each role needs.

Fieldwork managers run the frame, the sample and the fieldwork (response rates included);
survey administrators also read the estimates and the weighting specification, download,
issue API tokens and load questionnaires. The estimates stay with the administrators until
they are published: pre-release access to official statistics is limited to those who
produce them, and those who chase firms should not see the figures their chasing moves.

Both review the edit flags (`analytics.review_edits`): editing works on one firm's answers
at a time and asks firms about them, as fieldwork does, and its pages show each failure's
score and the share of the estimates that unreviewed failures carry, never an estimate.

A firm (respondent) has no Django account; it reaches its questionnaire with its link or
access code only. Identified microdata needs `analytics.download_identified`, which no
group carries: it is granted to named people. The Django admin needs a staff user
(`is_staff`) as well as the role: administrators who should use it are made staff.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission

FIELDWORK_MANAGERS = "Fieldwork managers"
ADMINISTRATORS = "Survey administrators"

MANAGER_PERMISSIONS = [
    "respondents.manage_frame",
    "respondents.manage_fieldwork",
    "respondents.view_contact_details",
    "analytics.review_edits",
]
# The Django admin (for administrators who are also staff users): every record to read,
# and the surveys' titles and targets to edit (config/admin.py decides what is read-only).
ADMIN_SITE_PERMISSIONS = [
    "surveys.change_survey",
    *(
        f"{app}.view_{model}"
        for app, models in (
            ("surveys", ("survey", "questionnaireversion", "response")),
            (
                "respondents",
                (
                    "frameunit", "sampledesign", "stratum", "reserverelease", "case",
                    "dispositionevent", "contactattempt", "wave", "message", "messagetemplate",
                ),
            ),
            ("analytics", ("weightingspec", "estimaterun", "exportjob", "download", "apitoken")),
        )
        for model in models
    ),
]  # fmt: skip
ADMIN_PERMISSIONS = [
    *MANAGER_PERMISSIONS,
    "analytics.view_results",
    "surveys.load_questionnaire",
    "analytics.download_results",
    "analytics.edit_weighting_spec",
    *ADMIN_SITE_PERMISSIONS,
]


def ensure_roles(**_kwargs: Any) -> None:
    for name, codes in (
        (FIELDWORK_MANAGERS, MANAGER_PERMISSIONS),
        (ADMINISTRATORS, ADMIN_PERMISSIONS),
    ):
        group, _created = Group.objects.get_or_create(name=name)
        # set, not add: a permission taken from a role is taken from existing groups too
        group.permissions.set([_permission(code) for code in codes])


def _permission(code: str) -> Permission:
    app_label, codename = code.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)
