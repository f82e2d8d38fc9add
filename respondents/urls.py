from django.urls import path, re_path

from .views import fieldwork, frame, sample

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
    path(SURVEY + "waves/", fieldwork.waves, name="waves"),
    path(SURVEY + "waves/<int:wave>/send/", fieldwork.send_wave, name="send_wave"),
    path(SURVEY + "waves/<int:wave>/close/", fieldwork.close, name="close_wave"),
    path(
        SURVEY + "templates/<str:kind>/<str:language>/",
        fieldwork.message_template,
        name="message_template",
    ),
    path(SURVEY + "cases/<int:case>/", fieldwork.case_detail, name="case"),
    path(SURVEY + "imports/", fieldwork.fieldwork_import, name="fieldwork_import"),
]
