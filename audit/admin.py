from django.contrib import admin

from broker.admin import ReadOnlyAdmin

from .models import AdminSignIn, AuditEvent, IntegrityCheck, TreeHead


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: nobody edits or deletes audit rows through any interface. Auditors read full entries here (with
    each entry's salt, the opening of its public commitment); the public sees only commitments."""

    list_display = ("seq", "event", "at", "refs")
    list_filter = ("event",)


@admin.register(TreeHead)
class TreeHeadAdmin(ReadOnlyAdmin):
    """Read-only, like the entries it signs: a published tree head is never edited or withdrawn."""

    list_display = ("tree_size", "leaf_format", "root_hash", "at")


@admin.register(AdminSignIn)
class AdminSignInAdmin(ReadOnlyAdmin):
    """Admin sign-in attempts, for auditors: not audit entries, so never in the public transparency log."""

    list_display = ("at", "outcome", "user_id")
    list_filter = ("outcome",)


@admin.register(IntegrityCheck)
class IntegrityCheckAdmin(ReadOnlyAdmin):
    """Every full verification of the log (hourly by beat, or asked for on the auditor dashboard)."""

    list_display = ("at", "ok", "entries", "tree_heads_checked", "first_bad_seq", "bad_tree_size")
    list_filter = ("ok",)
