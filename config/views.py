from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from surveys.models import Survey

from . import health, navigation, overview

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
    found = get_object_or_404(Survey.objects.select_related("current_questionnaire"), slug=survey)
    context = {
        "survey": found,
        "glance": overview.glance(found, request.user),
        "groups": navigation.groups(request.user, found.slug, per_survey=True),
        "tools": navigation.groups(request.user, None, per_survey=False),
    }
    return render(request, "survey_home.html", context)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, checks = health.report()
    return JsonResponse({"healthy": healthy, **checks}, status=200 if healthy else 503)
