from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from analytics.models import WeightingSpec
from respondents.models import MessageTemplate
from surveys.models import EditRule, Survey

from . import health, navigation, overview, rounds
from .forms import NextRoundForm

# Anyone holding one of these works on a survey and gets its overview.
SURVEY_PERMISSIONS = navigation.FUNCTIONS[0].permissions


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("surveys:login")
    works_on_surveys = any(request.user.has_perm(p) for p in SURVEY_PERMISSIONS)
    surveys = Survey.objects.select_related("current_questionnaire") if works_on_surveys else []
    context = {
        "glances": [overview.glance(survey, request.user) for survey in surveys],
        "tools": navigation.groups(request.user, None, per_survey=False),
        "works_on_surveys": works_on_surveys,
    }
    return render(request, "home.html", context)


@login_required
def survey_home(request: HttpRequest, survey: str) -> HttpResponse:
    if not any(request.user.has_perm(p) for p in SURVEY_PERMISSIONS):
        raise PermissionDenied
    found = get_object_or_404(
        Survey.objects.select_related("current_questionnaire", "previous_round"), slug=survey
    )
    context = {
        "survey": found,
        "next_rounds": list(found.next_rounds.all()),
        "glance": overview.glance(found, request.user),
        "groups": navigation.groups(request.user, found.slug, per_survey=True),
        "tools": navigation.groups(request.user, None, per_survey=False),
    }
    return render(request, "survey_home.html", context)


@login_required
def next_round(request: HttpRequest, survey: str) -> HttpResponse:
    """Start the next round of a survey (config.rounds.start_next_round)."""
    if not request.user.has_perms(navigation.NEXT_ROUND):
        raise PermissionDenied
    previous = get_object_or_404(Survey, slug=survey)
    form = NextRoundForm(request.POST or None, previous=previous)
    if request.method == "POST" and form.is_valid():
        new = rounds.start_next_round(previous, **form.cleaned_data, user=request.user)
        messages.success(
            request,
            _("The round %(title)s has started. Next: load this year's frame.")
            % {"title": new.title},
        )
        return redirect("survey_home", survey=new.slug)
    context = {
        "survey": previous,
        "form": form,
        "next_rounds": list(previous.next_rounds.all()),
        "version": previous.current_questionnaire,
        "rules": EditRule.objects.filter(questionnaire=previous.current_questionnaire).count(),
        "spec": WeightingSpec.objects.filter(survey=previous).order_by("-version").first(),
        "templates": MessageTemplate.objects.filter(survey=previous).count(),
        "design": rounds.design_to_copy(previous),
    }
    return render(request, "next_round.html", context)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, checks = health.report()
    return JsonResponse({"healthy": healthy, **checks}, status=200 if healthy else 503)
