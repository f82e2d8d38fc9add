from django.urls import path, re_path

from .views import frame, sample

app_name = "respondents"
SURVEY = "manage/<slug:survey>/"
urlpatterns = [
    path(SURVEY + "frame/", frame.summary, name="frame_summary"),
    path(SURVEY + "frame/upload/", frame.upload, name="frame_upload"),
    path(SURVEY + "frame/report/<str:name>/", frame.report, name="frame_report"),
    path(SURVEY + "design/", sample.design, name="design"),
    path(SURVEY + "sample/", sample.sample, name="sample"),
    re_path(
        r"^manage/(?P<survey>[-\w]+)/sample/export\.(?P<fmt>csv|xlsx)$",
        sample.sample_export,
        name="sample_export",
    ),
    path(SURVEY + "sample/strata/<int:stratum>/release/", sample.release, name="release"),
    path(SURVEY + "credentials/", sample.credentials, name="credentials"),
]
