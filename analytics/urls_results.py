from django.urls import path

from . import api
from .views import results

app_name = "results"
SURVEY = "manage/<slug:survey>/"
urlpatterns = [
    path(SURVEY + "results/", results.headline, name="headline"),
    path(SURVEY + "results/<str:item>/", results.detail, name="detail"),
    path("manage/api-tokens/", api.api_tokens, name="api_tokens"),
    path("manage/api-tokens/<int:token>/revoke/", api.revoke_api_token, name="api_token_revoke"),
]
