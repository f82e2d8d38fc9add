"""Every staff function, once: the header's survey menu and the home pages' link lists are
built from this table, each link shown only to users who hold one of its permissions (the
roles themselves are groups of permissions, decided in config/roles.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

FRAME = "respondents.manage_frame"
FIELDWORK = "respondents.manage_fieldwork"
RESULTS = "analytics.view_results"
DOWNLOADS = "analytics.download_results"
REVIEW = "analytics.review_edits"
QUESTIONNAIRES = "surveys.load_questionnaire"
STAFF_SITE = "is_staff"  # the Django admin's own gate, not a permission
# Starting a round copies its questionnaire and sets up its frame: both permissions.
NEXT_ROUND = (QUESTIONNAIRES, FRAME)


@dataclass(frozen=True)
class Function:
    url_name: str
    label: str | Promise
    description: str | Promise
    permissions: tuple[str, ...]  # any one of them is enough
    group: str | Promise
    per_survey: bool = True
    in_menu: bool = True
    # Other pages (by view name) that belong to this menu entry.
    also: tuple[str, ...] = ()
    needs_all: bool = False  # every one of the permissions, not any one

    def allowed(self, user: Any) -> bool:
        if STAFF_SITE in self.permissions and user.is_staff:
            return True
        if self.needs_all:
            return bool(user.has_perms(self.permissions))
        return any(user.has_perm(p) for p in self.permissions if p != STAFF_SITE)

    def url(self, survey_slug: str | None = None) -> str:
        if self.per_survey:
            return reverse(self.url_name, kwargs={"survey": survey_slug})
        return reverse(self.url_name)


SAMPLE = _("Frame and sample")
FIELD = _("Fieldwork")
ANALYSIS = _("Results and data")
ADMINISTRATION = _("Administration")

FUNCTIONS: tuple[Function, ...] = (
    Function(
        "survey_home",
        _("Overview"),
        _("The survey at a glance."),
        (FRAME, FIELDWORK, RESULTS, DOWNLOADS, REVIEW),
        SAMPLE,
        in_menu=True,
    ),
    Function(
        "respondents:frame_summary",
        _("Frame"),
        _("The firms of the sampling frame by size, region and industry; load the frame."),
        (FRAME,),
        SAMPLE,
        also=(
            "respondents:frame_upload",
            "respondents:frame_report",
            "respondents:frame_changes",
            "respondents:frame_links",
        ),
    ),
    Function(
        "respondents:design",
        _("Sample design"),
        _("Strata, allocation and the draw, recorded with its seed."),
        (FRAME,),
        SAMPLE,
    ),
    Function(
        "respondents:sample",
        _("Sample"),
        _("The drawn firms, their strata and the reserve."),
        (FRAME, FIELDWORK),
        SAMPLE,
    ),
    Function(
        "respondents:credentials",
        _("Letters"),
        _("Personal links and access codes; letters as CSV for mail merge or as print-ready PDF."),
        (FRAME,),
        SAMPLE,
    ),
    Function(
        "respondents:fieldwork",
        _("Fieldwork"),
        _("Response rates by stratum, size, region, industry and wave; completes per day."),
        (FIELDWORK,),
        FIELD,
    ),
    Function(
        "respondents:chase",
        _("Chase list"),
        _("The firms to call first: strata furthest below their target, fewest contacts."),
        (FIELDWORK,),
        FIELD,
        also=("respondents:case",),
    ),
    Function(
        "respondents:waves",
        _("Waves and emails"),
        _("Invitation and reminder waves, their emails and the email templates."),
        (FIELDWORK,),
        FIELD,
        also=("respondents:message_template",),
    ),
    Function(
        "respondents:fieldwork_import",
        _("Imports"),
        _("Dispositions from the call centre and answers keyed from paper, with templates."),
        (FIELDWORK,),
        FIELD,
    ),
    Function(
        "analytics:editing",
        _("Editing"),
        _("Answers that fail the edit rules, those that move estimates most first; every edit."),
        (REVIEW,),
        ANALYSIS,
        also=("analytics:edit_review",),
    ),
    Function(
        "results:headline",
        _("Results"),
        _("Weighted estimates with confidence intervals, by domain and across versions."),
        (RESULTS,),
        ANALYSIS,
        also=("results:detail", "results:change", "results:trend"),
    ),
    Function(
        "results:change",
        _("Change between rounds"),
        _(
            "Each estimate against the previous round: the change, its standard error and "
            "interval; every round's figure as a trend."
        ),
        (RESULTS,),
        ANALYSIS,
        # Reached from the results pages: the menu has no room for another entry.
        in_menu=False,
    ),
    Function(
        "analytics:weighting",
        _("Weighting"),
        _("Weighting classes, calibration and the publication rules."),
        (RESULTS,),
        ANALYSIS,
    ),
    Function(
        "analytics:downloads",
        _("Downloads"),
        _("Estimate tables, microdata (CSV, Excel, SPSS, Stata), codebook, fieldwork files."),
        (DOWNLOADS,),
        ANALYSIS,
        also=("analytics:export_job",),
    ),
    Function(
        "surveys:edit_rules",
        _("Edit rules"),
        _("The questionnaire's checks of answers against each other and the frame; load them."),
        (QUESTIONNAIRES,),
        ADMINISTRATION,
        in_menu=False,
        also=("surveys:edit_rules_version",),
    ),
    Function(
        "next_round",
        _("Start the next round"),
        _("Next year's survey from this one: questionnaire, weighting, emails and design."),
        NEXT_ROUND,
        ADMINISTRATION,
        in_menu=False,
        needs_all=True,
    ),
    Function(
        "surveys:upload_questionnaire",
        _("Load a questionnaire"),
        _("Upload an XLSForm as a new survey or a new version."),
        (QUESTIONNAIRES,),
        ADMINISTRATION,
        per_survey=False,
        in_menu=False,
    ),
    Function(
        "results:api_tokens",
        _("API tokens"),
        _("Tokens that let other systems read the published estimates."),
        (DOWNLOADS,),
        ADMINISTRATION,
        per_survey=False,
        in_menu=False,
    ),
    Function(
        "api:docs",
        _("API documentation"),
        _("The read-only results API: endpoints, parameters and response fields."),
        (RESULTS, DOWNLOADS),
        ADMINISTRATION,
        per_survey=False,
        in_menu=False,
    ),
    Function(
        "admin:index",
        _("Django admin"),
        _("Users, groups and permissions, and every stored record."),
        (STAFF_SITE,),
        ADMINISTRATION,
        per_survey=False,
        in_menu=False,
    ),
)


@dataclass(frozen=True)
class Link:
    label: str
    description: str
    url: str
    current: bool


@dataclass(frozen=True)
class Group:
    title: str
    links: list[Link]


def menu(user: Any, survey_slug: str, view_name: str) -> list[Link]:
    """The survey's menu in the header: the functions this user may open."""
    return [
        _link(f, survey_slug, view_name)
        for f in FUNCTIONS
        if f.per_survey and f.in_menu and f.allowed(user)
    ]


def groups(user: Any, survey_slug: str | None, *, per_survey: bool) -> list[Group]:
    """The functions this user may open, grouped, for a home page."""
    chosen = [f for f in FUNCTIONS if f.per_survey == per_survey and f.allowed(user)]
    chosen = [f for f in chosen if f.url_name != "survey_home"]
    titles: list[Any] = list(dict.fromkeys(f.group for f in chosen))
    return [
        Group(str(title), [_link(f, survey_slug, "") for f in chosen if f.group == title])
        for title in titles
    ]


def _link(function: Function, survey_slug: str | None, view_name: str) -> Link:
    current = view_name in (function.url_name, *function.also)
    return Link(str(function.label), str(function.description), function.url(survey_slug), current)
