"""Celery tasks: thin, idempotent, ids only (STYLE 5). No Celery retries: a failed attempt is rescheduled as a
database row (`next_attempt_at`), and beat hands due rows back to `deliver`."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task
def deliver(delivery_id: str) -> str:
    return services.webhook_deliver(delivery_id=delivery_id, now=timezone.now())


@shared_task
def deliver_due() -> int:
    ids = services.webhooks_claim_due(now=timezone.now())
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)
