from django.urls import path

from . import edit_views, views

app_name = "surveys"
KEYED = "manage/<slug:survey>/cases/<int:case_id>/key/<str:mode>/"
urlpatterns = [
    path("r/<str:token>/", views.link, name="link"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("q/", views.welcome, name="welcome"),
    path("q/p/<slug:name>/", views.page, name="page"),
    path("q/p/<slug:name>/autosave/", views.autosave, name="autosave"),
    path("q/review/", views.review, name="review"),
    path("q/receipt/", views.receipt, name="receipt"),
    # A query about submitted answers: its link alone opens it, without signing in.
    path("check/<str:token>/", views.edit_query, name="edit_query"),
    path("manage/questionnaires/upload/", views.upload_questionnaire, name="upload_questionnaire"),
    path(
        "manage/questionnaires/upload/<int:upload>/",
        views.questionnaire_upload,
        name="questionnaire_upload",
    ),
    path("manage/<slug:survey>/edits/", edit_views.edit_rules, name="edit_rules"),
    path(
        "manage/<slug:survey>/edits/<str:version>/",
        edit_views.edit_rules,
        name="edit_rules_version",
    ),
    # Staff keying in answers received by phone, fax or paper, through the same pages.
    path(KEYED, views.keyed_welcome, name="keyed_welcome"),
    path(KEYED + "p/<slug:name>/", views.keyed_page, name="keyed_page"),
    path(KEYED + "p/<slug:name>/autosave/", views.keyed_autosave, name="keyed_autosave"),
    path(KEYED + "review/", views.keyed_review, name="keyed_review"),
    path(KEYED + "receipt/", views.keyed_receipt, name="keyed_receipt"),
]
