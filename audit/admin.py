from django.contrib import admin

from broker.admin import ReadOnlyAdmin

from .models import AuditEvent, TreeHead


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: nobody edits or deletes audit rows through any interface."""

    list_display = ("seq", "event", "at", "refs")
    list_filter = ("event",)


@admin.register(TreeHead)
class TreeHeadAdmin(ReadOnlyAdmin):
    """Read-only, like the entries it signs: a published tree head is never edited or withdrawn."""

    list_display = ("tree_size", "root_hash", "at")
