from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.healthz, name="health"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("surveys.urls")),
    path("", include("respondents.urls")),
    path("", include("analytics.urls")),
    path("", include("analytics.urls_results")),
    path("api/v1/", include("analytics.urls_api")),
    path("manage/<slug:survey>/next-round/", views.next_round, name="next_round"),
    # After every other manage/… pattern: a survey's slug is any one path segment.
    path("manage/<slug:survey>/", views.survey_home, name="survey_home"),
]
