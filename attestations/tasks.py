"""Celery beat tasks of the attestations app: thin, ids only (STYLE 5)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .checkcounts import check_counts_flush


@shared_task
def flush_check_counts() -> int:
    """Beat, every minute: per-provider hourly check counters from Redis into the database (SPEC 2.4)."""
    return check_counts_flush(now=timezone.now())
