from django.urls import path

from . import views_frame

app_name = "frame"
urlpatterns = [
    path("manage/<slug:survey>/frame/", views_frame.summary, name="summary"),
    path("manage/<slug:survey>/frame/upload/", views_frame.upload, name="upload"),
    path("manage/<slug:survey>/frame/report/<str:name>/", views_frame.report, name="report"),
]
