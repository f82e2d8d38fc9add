from django.urls import path

from .views import downloads, weighting

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
]
