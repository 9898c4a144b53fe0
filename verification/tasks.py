"""Celery tasks: thin, idempotent, ids only (STYLE 5). Each one claims its row through a service, then returns a
status word. Transient vendor errors retry with exponential backoff; permanent ones end the session cleanly."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from attestations.idempotency import idempotency_purge
from attestations.signing import signing_keys_retire_expired
from webhooks.services import webhook_deliveries_purge

from . import services
from .vendors.base import VendorError

RETRY_BACKOFF = dict(
    autoretry_for=(VendorError,), retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=6
)


@shared_task(**RETRY_BACKOFF)
def submit_session(session_id: str) -> str:
    return services.session_process(session_id=session_id, now=timezone.now())


@shared_task(**RETRY_BACKOFF)
def fetch_result(session_id: str) -> str:
    return services.result_fetch(session_id=session_id, now=timezone.now())


@shared_task(**RETRY_BACKOFF)
def delete_vendor_copy(session_id: str) -> str:
    return services.vendor_copy_delete(session_id=session_id, now=timezone.now())


@shared_task(**RETRY_BACKOFF)
def process_vendor_event(event_id: int) -> str:
    return services.vendor_event_process(event_id=event_id, now=timezone.now())


@shared_task
def poll_vendor_deletions() -> int:
    due = services.vendor_deletions_due(now=timezone.now())
    for session_id in due:
        delete_vendor_copy.delay(session_id)
    return len(due)


@shared_task
def purge_expired() -> dict:
    now = timezone.now()
    counts = services.purge_expired(now=now)
    counts["keys_retired"] = signing_keys_retire_expired(now=now)
    counts["idempotency_records"] = idempotency_purge(now=now)
    counts["webhook_deliveries"] = webhook_deliveries_purge(now=now)
    return counts


@shared_task
def poll_pending() -> int:
    now = timezone.now()
    for session_id in services.submitted_stuck(now=now):
        submit_session.delay(session_id)
    due = services.poll_due(now=now)
    for session_id in due:
        fetch_result.delay(session_id)
    return len(due)
