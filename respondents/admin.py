from django.contrib import admin

from config.admin import ReadOnlyAdmin

from .models import (
    Case,
    ContactAttempt,
    DispositionEvent,
    FrameUnit,
    Message,
    MessageTemplate,
    ReserveRelease,
    SampleDesign,
    Stratum,
    Wave,
)


@admin.register(FrameUnit)
class FrameUnitAdmin(ReadOnlyAdmin):
    list_display = ["business_id", "name", "ksic", "size_class", "region", "employees"]
    list_filter = ["size_class", "region"]
    search_fields = ["business_id", "name"]


@admin.register(SampleDesign)
class SampleDesignAdmin(ReadOnlyAdmin):
    list_display = ["survey", "allocation", "sample_size", "seed", "drawn_at"]
    list_prefetch = ("survey",)


@admin.register(Stratum)
class StratumAdmin(ReadOnlyAdmin):
    list_display = ["key", "population", "allocated", "sample_size", "reserve_size"]
    search_fields = ["key"]


@admin.register(ReserveRelease)
class ReserveReleaseAdmin(ReadOnlyAdmin):
    list_display = ["stratum", "count", "released_at", "released_by"]
    list_prefetch = ("stratum", "released_by")


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    """Dispositions change through Case.record_disposition (the case page, imports), which
    writes the history; never here."""

    list_display = ["business_id", "disposition", "disposition_at", "is_reserve", "stratum"]
    list_filter = ["is_reserve"]
    list_prefetch = ("stratum",)
    search_fields = ["business_id"]
    exclude = ["token_hash", "code_hash"]


@admin.register(DispositionEvent)
class DispositionEventAdmin(ReadOnlyAdmin):
    list_display = ["case", "code", "at", "source", "by", "applied", "override"]
    list_filter = ["source", "applied"]
    list_prefetch = ("case", "by")
    search_fields = ["case__business_id"]


@admin.register(ContactAttempt)
class ContactAttemptAdmin(ReadOnlyAdmin):
    list_display = ["case", "channel", "outcome", "at", "wave", "staff"]
    list_filter = ["channel", "outcome"]
    list_prefetch = ("case", "wave", "staff")
    search_fields = ["case__business_id"]


@admin.register(Wave)
class WaveAdmin(ReadOnlyAdmin):
    list_display = ["name", "survey", "kind", "starts_at", "ends_at", "closed_at"]
    list_prefetch = ("survey",)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["case", "wave", "kind", "status", "sent_at", "attempts"]
    list_filter = ["status", "kind"]
    list_prefetch = ("case", "wave")
    search_fields = ["case__business_id"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ReadOnlyAdmin):
    list_display = ["survey", "kind", "language", "subject", "updated_at", "updated_by"]
    list_prefetch = ("survey", "updated_by")
