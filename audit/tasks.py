"""Audit writes taken off a hot request path (the check API).

`audit_defer` pushes the entry (event name, random ids, time: nothing else) onto a Redis list in one round trip;
`drain_deferred` (Celery beat, every few seconds) moves batches into the hash-chained log. Without Redis (the
embedded default) the entry is written at once. Entries are moved with LMOVE onto a processing list first, so a
worker that dies mid-batch leaves them to be picked up again rather than lost.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from .services import audit_record

PENDING = "idbroker:audit:pending"
PROCESSING = "idbroker:audit:processing"
DRAIN_LOCK = "idbroker:audit:drain-lock"
DEFERRABLE = frozenset({"attestation.checked"})


@lru_cache(maxsize=1)
def _redis():
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url)


def audit_defer(*, event: str, now: datetime, **refs: str) -> None:
    if event not in DEFERRABLE:
        raise ValueError(f"{event} must be written synchronously")
    client = _redis()
    if client is None:
        audit_record(event=event, now=now, **refs)
        return
    client.lpush(PENDING, json.dumps({"event": event, "at": now.isoformat(), "refs": refs}))


@shared_task
def drain_deferred(batch: int = 1000) -> int:
    client = _redis()
    if client is None:
        return 0
    # One drain at a time: two overlapping runs would both read the PROCESSING tail and record it twice.
    if not client.set(DRAIN_LOCK, "1", nx=True, ex=300):
        return 0
    try:
        return _drain(client, batch)
    finally:
        client.delete(DRAIN_LOCK)


def _drain(client, batch: int) -> int:
    moved = 0
    while True:
        # Anything left in PROCESSING by a crashed drain goes first.
        raw = client.lindex(PROCESSING, -1) or client.lmove(PENDING, PROCESSING, "RIGHT", "LEFT")
        if raw is None:
            return moved
        entry = json.loads(raw)
        with transaction.atomic():
            audit_record(
                event=entry["event"], now=parse_datetime(entry["at"]), **{k: str(v) for k, v in entry["refs"].items()}
            )
        client.rpop(PROCESSING)
        moved += 1
        if moved >= batch:
            return moved


@shared_task
def publish_tree_head() -> int:
    """Beat: sign a tree head when the log has grown (SPEC 3.6). Returns the tree size covered."""
    from django.utils import timezone

    from .transparency import tree_head_publish

    head = tree_head_publish(now=timezone.now())
    return head.tree_size if head else 0


@shared_task
def verify_log() -> bool:
    """Beat, hourly: recompute the chain and every tree head; record the result; log an error when it fails, so
    tampering raises an alert without anyone having to look (the dashboard shows the latest result)."""
    from django.utils import timezone

    from .services import log_integrity_check

    return log_integrity_check(now=timezone.now()).ok
