from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from surveys.models import Survey


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("surveys:login")
    return render(request, "home.html", {"surveys": Survey.objects.all()})
