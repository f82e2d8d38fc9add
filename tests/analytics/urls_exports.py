"""Test URLconf: the project's URLs plus the downloads pages, until config/urls.py includes
analytics.urls (then the project's own patterns are used)."""

from django.urls import include, path

from config import urls as project_urls

_included = any(
    getattr(pattern, "namespace", None) == "analytics" for pattern in project_urls.urlpatterns
)
urlpatterns = list(project_urls.urlpatterns)
if not _included:
    urlpatterns.append(path("", include("analytics.urls")))
