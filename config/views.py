from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from surveys.models import Survey

from . import health


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("surveys:login")
    return render(request, "home.html", {"surveys": Survey.objects.all()})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, checks = health.report()
    return JsonResponse({"healthy": healthy, **checks}, status=200 if healthy else 503)
