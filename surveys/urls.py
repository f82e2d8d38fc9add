from django.urls import path

from . import views

app_name = "surveys"
urlpatterns = [
    path("r/<str:token>/", views.link, name="link"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("q/", views.welcome, name="welcome"),
    path("q/p/<slug:name>/", views.page, name="page"),
    path("q/p/<slug:name>/autosave/", views.autosave, name="autosave"),
    path("q/review/", views.review, name="review"),
    path("q/receipt/", views.receipt, name="receipt"),
    path("manage/questionnaires/upload/", views.upload_questionnaire, name="upload_questionnaire"),
]
