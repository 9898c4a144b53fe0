from django.contrib import admin

from broker.admin import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: nobody edits or deletes audit rows through any interface."""

    list_display = ("seq", "event", "at", "refs")
    list_filter = ("event",)
