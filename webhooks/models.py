"""Outbound webhooks to providers (SPEC 6): a signing secret per provider, and one row per event to deliver.

A delivery is a long wait kept in the database, not in a Celery countdown: `next_attempt_at` says when it is due,
beat finds due rows, and a worker claims one with a conditional UPDATE before it POSTs. Payloads hold an event
type, a random id and a status word: never a fact, a token or a response body (SPEC 3.3).

    pending ──2xx──▶ delivered
       │ ──4xx (not 408/429), 3xx──▶ failed
       └──5xx, 408, 429, timeout, connection error──▶ pending (later) … ──after MAX_ATTEMPTS──▶ dead
"""

from __future__ import annotations

import secrets

from django.db import models


def new_delivery_id() -> str:
    # Also the Standard Webhooks `webhook-id`: it must never contain "." (the signed content is dot-delimited).
    return f"wh_{secrets.token_urlsafe(16)}"


class WebhookSecret(models.Model):
    """A provider's `whsec_…` signing secret, sealed under its own data key (shown once, at creation)."""

    provider = models.OneToOneField("attestations.Provider", on_delete=models.CASCADE, related_name="webhook_secret")
    sealed = models.BinaryField()
    wrapped_key = models.BinaryField()
    # During a rotation the old secret signs too (a second `v1,` signature), so receivers can switch at leisure.
    previous_sealed = models.BinaryField(null=True)
    previous_wrapped_key = models.BinaryField(null=True)
    previous_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    # Deliveries given up on (failed or dead) since the last success; at DISABLE_AFTER the endpoint is disabled.
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"webhook secret of {self.provider_id}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # due at next_attempt_at (or being attempted: then next_attempt_at is the lease end)
        DELIVERED = "delivered"  # the endpoint answered 2xx
        FAILED = "failed"  # refused for good (4xx other than 408/429, a redirect), or never sent (see last_error)
        DEAD = "dead"  # every attempt failed transiently

    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id, editable=False)
    provider = models.ForeignKey("attestations.Provider", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a delivery task was last enqueued for this row; beat enqueues again only if nobody claimed it since.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=32, blank=True, help_text="A stable code, never a response body.")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return self.id
