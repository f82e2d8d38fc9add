from django.urls import path, re_path

from .views import downloads, editing, weighting

app_name = "analytics"
SURVEY = "manage/<slug:survey>/"
JOB = SURVEY + "downloads/jobs/<int:job>/"
urlpatterns = [
    path(SURVEY + "weighting/", weighting.weighting, name="weighting"),
    path(SURVEY + "downloads/", downloads.downloads, name="downloads"),
    path(JOB, downloads.export_job, name="export_job"),
    path(JOB + "status/", downloads.export_job_status, name="export_job_status"),
    path(JOB + "file/", downloads.export_job_file, name="export_job_file"),
    path(JOB + "disclosure/", downloads.export_job_report, name="export_job_report"),
    path(SURVEY + "editing/", editing.queue, name="editing"),
    path(SURVEY + "editing/cases/<int:case>/", editing.review_case, name="edit_review"),
    re_path(
        r"^manage/(?P<survey>[-\w]+)/editing/edits\.(?P<fmt>csv|xlsx)$",
        editing.edits_export,
        name="edits_export",
    ),
]
