"""The Django admin: a read-only window on the records, for administrators.

Everything that has a history or an audit trail (answers, dispositions, contacts, emails,
estimate versions, downloads) is read-only here for everyone, superusers included: it
changes only through the platform's own pages and commands, which keep that history. What
may be edited here has no other page: a survey's titles and target.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

admin.site.site_header = _("Smart Manufacturing Survey: administration")
admin.site.site_title = _("Survey administration")
admin.site.index_title = _("Records (read-only, except the surveys' titles and targets)")


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Viewable with the model's view permission; never added, changed or deleted here."""

    # Tables of hundreds of thousands of rows: newest first by primary key (an index, not a
    # sort), related rows fetched for the shown page only (a join lets SQLite start from the
    # other table and sort it all), and no second count of the whole table.
    ordering = ("-pk",)
    list_select_related = ()  # not False: that joins every foreign key
    list_prefetch: tuple[str, ...] = ()
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related(*self.list_prefetch)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
