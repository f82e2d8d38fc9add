from django.urls import path

from . import api
from .views import change, results

app_name = "results"
SURVEY = "manage/<slug:survey>/"
urlpatterns = [
    path(SURVEY + "results/", results.headline, name="headline"),
    path(SURVEY + "results/<str:item>/", results.detail, name="detail"),
    path(SURVEY + "change/", change.change, name="change"),
    path(SURVEY + "trend/<str:item>/", change.trend, name="trend"),
    path("manage/api-tokens/", api.api_tokens, name="api_tokens"),
    path("manage/api-tokens/<int:token>/revoke/", api.revoke_api_token, name="api_token_revoke"),
]
