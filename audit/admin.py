from django.contrib import admin

from broker.admin import ReadOnlyAdmin

from .models import AuditEvent, IntegrityCheck, TreeHead


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: nobody edits or deletes audit rows through any interface."""

    list_display = ("seq", "event", "at", "refs")
    list_filter = ("event",)


@admin.register(TreeHead)
class TreeHeadAdmin(ReadOnlyAdmin):
    """Read-only, like the entries it signs: a published tree head is never edited or withdrawn."""

    list_display = ("tree_size", "root_hash", "at")


@admin.register(IntegrityCheck)
class IntegrityCheckAdmin(ReadOnlyAdmin):
    """Every full verification of the log (hourly by beat, or asked for on the auditor dashboard)."""

    list_display = ("at", "ok", "entries", "tree_heads_checked", "first_bad_seq", "bad_tree_size")
    list_filter = ("ok",)
