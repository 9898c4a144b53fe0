"""Operator view of outbound webhooks: what was sent to whom and how it went. Never a secret or a response body;
payloads hold ids and status words only."""

from django.contrib import admin, messages
from django.utils import timezone

from broker.admin import ListActionsOnly

from . import services
from .models import WebhookDelivery, WebhookSecret


@admin.register(WebhookSecret)
class WebhookSecretAdmin(ListActionsOnly, admin.ModelAdmin):
    list_display = (
        "provider",
        "created_at",
        "previous_until",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
    )
    list_filter = ("disabled_reason",)
    fields = list_display
    readonly_fields = list_display
    actions = ["enable"]

    def has_add_permission(self, request):
        return False  # `manage.py create_webhook_secret` creates it and shows it once

    @admin.action(description="Re-enable webhooks for the selected providers")
    def enable(self, request, queryset):
        now = timezone.now()
        count = sum(services.webhook_endpoint_enable(provider_id=s.provider_id, now=now) for s in queryset)
        self.message_user(request, f"Re-enabled {count}.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ListActionsOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "event_type",
        "provider",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type", "provider")
    fields = (*list_display, "last_attempt_at", "payload")
    readonly_fields = fields
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry the selected deliveries now")
    def retry_now(self, request, queryset):
        now = timezone.now()
        count = sum(services.webhook_retry_now(delivery_id=pk, now=now) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Queued {count} for another attempt.", messages.SUCCESS)
