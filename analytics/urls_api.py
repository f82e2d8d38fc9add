from django.urls import path

from . import api

app_name = "api"
SURVEY = "surveys/<slug:survey>/"
urlpatterns = [
    path("surveys/", api.SurveyList.as_view(), name="surveys"),
    path(SURVEY, api.SurveyDetail.as_view(), name="survey"),
    path(SURVEY + "runs/", api.RunList.as_view(), name="runs"),
    path(SURVEY + "runs/latest/", api.LatestRun.as_view(), name="latest_run"),
    path(
        SURVEY + "runs/latest/estimates/",
        api.LatestEstimateList.as_view(),
        name="latest_estimates",
    ),
    path(SURVEY + "runs/<int:number>/", api.RunDetail.as_view(), name="run"),
    path(SURVEY + "runs/<int:number>/estimates/", api.EstimateList.as_view(), name="estimates"),
    path(SURVEY + "fieldwork/", api.Fieldwork.as_view(), name="fieldwork"),
    path("schema/", api.Schema.as_view(), name="schema"),
    path("docs/", api.docs, name="docs"),
]
