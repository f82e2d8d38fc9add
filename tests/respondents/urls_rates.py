"""Test URLconf: the project's URLs with the fieldwork pages added to the "respondents"
namespace, until respondents/urls.py lists them (then its own patterns are used)."""

from django.urls import include, path

from config import urls as project_urls
from respondents.views import rates as views

fieldwork_patterns = [
    path("manage/<slug:survey>/fieldwork/", views.fieldwork, name="fieldwork"),
    path("manage/<slug:survey>/fieldwork/chase/", views.chase, name="chase"),
    path("manage/<slug:survey>/fieldwork/chase.csv", views.chase_csv, name="chase_csv"),
    path("manage/<slug:survey>/fieldwork/rates.csv", views.rates_csv, name="rates_csv"),
]


def _respondents_patterns() -> list:
    for pattern in project_urls.urlpatterns:
        if getattr(pattern, "namespace", None) == "respondents":
            return list(pattern.url_patterns)
    return []


_existing = _respondents_patterns()
_names = {getattr(pattern, "name", None) for pattern in _existing}
urlpatterns = [
    pattern
    for pattern in project_urls.urlpatterns
    if getattr(pattern, "namespace", None) != "respondents"
]
urlpatterns.append(
    path(
        "",
        include(
            ([*_existing, *(p for p in fieldwork_patterns if p.name not in _names)], "respondents")
        ),
    )
)
