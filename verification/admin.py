"""Operator view of verifications: states and times only. No evidence, no facts, ever (SPEC 3.2)."""

from django.contrib import admin
from django.utils import timezone

from broker.admin import ListActionsOnly

from .models import Evidence, VendorEvent, VerificationSession


class EvidenceInline(admin.TabularInline):
    model = Evidence
    fields = ("id", "kind", "size", "stored_at", "deadline")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(VerificationSession)
class VerificationSessionAdmin(ListActionsOnly, admin.ModelAdmin):
    list_display = ("id", "vendor", "status", "attempts", "created_at", "decided_at", "vendor_deletion")
    list_filter = ("status", "vendor", "vendor_deletion")
    fields = (
        "id",
        "request",
        "vendor",
        "status",
        "attempts",
        "created_at",
        "submitted_at",
        "decided_at",
        "abandon_at",
        "vendor_deletion",
        "vendor_deletion_attempts",
        "vendor_deletion_next_at",
        "vendor_deleted_at",
    )
    readonly_fields = fields
    inlines = [EvidenceInline]
    actions = ["retry_vendor_deletion"]

    @admin.action(description="Ask the vendor again to delete its copy (failed deletions)")
    def retry_vendor_deletion(self, request, queryset):
        """E.g. after Veriff enabled deletion for the integration: the beat poller asks again within minutes."""
        count = queryset.filter(vendor_deletion="failed").update(
            vendor_deletion_attempts=0, vendor_deletion_next_at=timezone.now()
        )
        self.message_user(request, f"{count} deletion(s) queued again.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VendorEvent)
class VendorEventAdmin(ListActionsOnly, admin.ModelAdmin):
    """The inbound webhook ledger: which vendor said what about which vendor object, and what we did. No payload."""

    list_display = ("received_at", "vendor", "event_type", "outcome", "processed_at")
    list_filter = ("vendor", "outcome")
    fields = (
        "vendor",
        "dedupe_key",
        "event_type",
        "vendor_session_id",
        "resource",
        "received_at",
        "processed_at",
        "outcome",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
