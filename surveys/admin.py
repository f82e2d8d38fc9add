from django.contrib import admin

from config.admin import ReadOnlyAdmin

from .models import QuestionnaireVersion, Response, Survey


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["slug", "title", "title_en", "target_responses", "created_at"]
    fields = ["slug", "title", "title_en", "target_responses", "current_questionnaire"]
    readonly_fields = ["slug", "current_questionnaire"]

    def has_add_permission(self, request: object) -> bool:
        return False  # a survey is created by loading its questionnaire

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(QuestionnaireVersion)
class QuestionnaireVersionAdmin(ReadOnlyAdmin):
    list_display = ["survey", "version", "title", "loaded_at", "loaded_by"]
    list_prefetch = ("survey", "loaded_by")
    exclude = ["source", "definition"]


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
    """A firm's answers: read here, changed only through the questionnaire or keyed entry,
    which keep the revision and the disposition history."""

    list_display = ["case", "status", "mode", "submitted_at", "reference", "keyed_by"]
    list_filter = ["status", "mode"]
    list_prefetch = ("case", "keyed_by")
    search_fields = ["case__business_id", "reference"]
    exclude = ["drafts"]
