from django.contrib import admin

from config.admin import ReadOnlyAdmin

from .models import ApiToken, Download, EstimateRun, ExportJob, WeightingSpec


@admin.register(WeightingSpec)
class WeightingSpecAdmin(ReadOnlyAdmin):
    list_display = ["survey", "version", "created_at", "created_by"]
    list_prefetch = ("survey", "created_by")


@admin.register(EstimateRun)
class EstimateRunAdmin(ReadOnlyAdmin):
    list_display = ["survey", "number", "status", "wave", "data_as_of", "trigger", "finished_at"]
    list_filter = ["status"]
    list_prefetch = ("survey", "wave")
    exclude = ["weights", "spec", "snapshot", "diagnostics", "timings"]


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ["survey", "what", "format", "status", "user", "created_at", "finished_at"]
    list_filter = ["status", "what"]
    list_prefetch = ("survey", "user")


@admin.register(Download)
class DownloadAdmin(ReadOnlyAdmin):
    list_display = ["survey", "what", "format", "identified", "user", "at", "client"]
    list_filter = ["what", "identified"]
    list_prefetch = ("survey", "user")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_prefetch = ("created_by",)
    exclude = ["token_hash"]
