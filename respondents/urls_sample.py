from django.urls import path, re_path

from .views import sample as views

app_name = "sample"
urlpatterns = [
    path("manage/<slug:survey>/design/", views.design, name="design"),
    path("manage/<slug:survey>/sample/", views.sample, name="sample"),
    re_path(
        r"^manage/(?P<survey>[-\w]+)/sample/export\.(?P<fmt>csv|xlsx)$",
        views.sample_export,
        name="export",
    ),
    path(
        "manage/<slug:survey>/sample/strata/<int:stratum>/release/",
        views.release,
        name="release",
    ),
    path("manage/<slug:survey>/credentials/", views.credentials, name="credentials"),
]
