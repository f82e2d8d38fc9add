from django.urls import path, re_path

from .views import fieldwork, frame, rates, sample

app_name = "respondents"
SURVEY = "manage/<slug:survey>/"
urlpatterns = [
    path(SURVEY + "frame/", frame.summary, name="frame_summary"),
    path(SURVEY + "frame/upload/", frame.upload, name="frame_upload"),
    path(SURVEY + "frame/report/<str:name>/", frame.report, name="frame_report"),
    path(SURVEY + "frame/changes.csv", frame.changes_csv, name="frame_changes"),
    path(SURVEY + "frame/links/", frame.links, name="frame_links"),
    path(SURVEY + "design/", sample.design, name="design"),
    path(SURVEY + "sample/", sample.sample, name="sample"),
    re_path(
        r"^manage/(?P<survey>[-\w]+)/sample/export\.(?P<fmt>csv|xlsx)$",
        sample.sample_export,
        name="sample_export",
    ),
    path(SURVEY + "sample/strata/<int:stratum>/release/", sample.release, name="release"),
    path(SURVEY + "credentials/", sample.credentials, name="credentials"),
    path(SURVEY + "credentials/letters.pdf", sample.letters_pdf, name="letters_pdf"),
    path(SURVEY + "fieldwork/", rates.fieldwork, name="fieldwork"),
    path(SURVEY + "fieldwork/chase/", rates.chase, name="chase"),
    path(SURVEY + "fieldwork/chase.csv", rates.chase_csv, name="chase_csv"),
    path(SURVEY + "fieldwork/rates.csv", rates.rates_csv, name="rates_csv"),
    path(SURVEY + "waves/", fieldwork.waves, name="waves"),
    path(SURVEY + "waves/<int:wave>/send/", fieldwork.send_wave, name="send_wave"),
    path(SURVEY + "waves/<int:wave>/close/", fieldwork.close, name="close_wave"),
    path(SURVEY + "waves/<int:wave>/progress/", fieldwork.wave_progress, name="wave_progress"),
    path(
        SURVEY + "templates/<str:kind>/<str:language>/",
        fieldwork.message_template,
        name="message_template",
    ),
    path(SURVEY + "cases/<int:case>/", fieldwork.case_detail, name="case"),
    path(SURVEY + "imports/", fieldwork.fieldwork_import, name="fieldwork_import"),
    re_path(
        r"^manage/(?P<survey>[-\w]+)/imports/templates/"
        r"(?P<kind>frame|dispositions|responses)\.(?P<fmt>csv|xlsx)$",
        fieldwork.import_template,
        name="import_template",
    ),
]
