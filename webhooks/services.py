"""Outbound webhooks to providers (SPEC 6), in the Standard Webhooks scheme.

1. An event (a request reached a final status, an attestation was revoked) becomes a `WebhookDelivery` row in the
   caller's transaction, so it commits with the state change or not at all; a delivery task is enqueued on commit.
2. A worker claims the row with a conditional UPDATE (due, still pending, attempt count unchanged), which pushes
   `next_attempt_at` one lease ahead: a second worker finds nothing due, and if the first dies mid-POST the row is
   due again when the lease ends. The POST happens outside any transaction.
3. The outcome is written with the same kind of compare-and-swap: 2xx delivered; 4xx other than 408/429, and
   redirects, failed for good; 5xx, 408, 429, timeouts and connection errors scheduled again with exponential
   backoff and jitter (`BACKOFF`), and dead after `MAX_ATTEMPTS`.
4. Beat (`tasks.deliver_due`, every 15 s) finds due rows with `select_for_update(skip_locked=True)` and enqueues a
   task for each: the waits between attempts live in the database, never in Celery countdowns.
5. `DISABLE_AFTER` deliveries in a row given up on (failed or dead), or one 410 Gone, disable the provider's
   endpoint until an operator re-enables it in admin. Events meanwhile are recorded as failed ("disabled"), unsent.

Payloads carry an event type, the event time and `{"id", "status"}`: never a fact, token or vendor detail (SPEC
3.3). Nothing from a response is kept but its status code.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q

from attestations.models import Provider
from broker.validators import validate_operator_url
from verification.crypto import DecryptionError

from . import egress, signing
from .models import WebhookDelivery, WebhookSecret

log = logging.getLogger(__name__)
D = WebhookDelivery.Status

REQUEST_STATUSES = ("completed", "declined", "canceled", "failed", "expired")
EVENT_TYPES = frozenset({*(f"verification_request.{s}" for s in REQUEST_STATUSES), "attestation.revoked"})

TIMEOUT_SECONDS = 15.0  # Standard Webhooks suggests 15-30 s for the receiver to answer
# The wait after failed attempt n is BACKOFF[n-1] (± JITTER). Attempt 1 is immediate; 8 attempts span ~17 h.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
JITTER = 0.2  # spreads retries so an endpoint recovering from overload is not hit by all of them at once
RETRY_AFTER_CAP = timedelta(hours=1)
DISABLE_AFTER = 5
# A claimed attempt holds the row this long. Longer than the timeout (urllib's applies per socket operation, so
# allow a few); a late outcome after the lease is dropped by the compare-and-swap on `attempts`.
CLAIM_LEASE = timedelta(minutes=2)
# A dispatched row nobody claimed within this time (a lost task message) is dispatched again.
DISPATCH_LEASE = timedelta(minutes=1)
USER_AGENT = "idbroker-webhooks/1"


# --- Recording events --------------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_enqueue(
    *,
    provider: Provider,
    event_type: str,
    object_id: str,
    status: str,
    now: datetime,
    deliver_at: datetime | None = None,
) -> WebhookDelivery | None:
    """Record one event for the provider's endpoint, in the caller's transaction; send it once that commits, or at
    `deliver_at` (then the event's timestamp is that time too, so the body does not tell when it really happened).

    Takes an id and a status word, not a dict, so a fact cannot be handed to a provider by mistake. A no-op when the
    provider has no webhook URL or no signing secret.
    """
    from . import tasks

    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    if not provider.webhook_url or not provider.is_active:
        return None
    secret = WebhookSecret.objects.filter(provider=provider).values("disabled_at").first()
    if secret is None:
        return None
    disabled = secret["disabled_at"] is not None
    when = max(deliver_at or now, now)
    later = when > now  # picked up by the deliver_due beat task once due
    delivery = WebhookDelivery.objects.create(
        provider=provider,
        event_type=event_type,
        payload={"type": event_type, "timestamp": _iso(when), "data": {"id": object_id, "status": status}},
        status=D.FAILED if disabled else D.PENDING,
        last_error="disabled" if disabled else "",
        next_attempt_at=None if disabled else when,
        dispatched_at=None if disabled or later else now,
        created_at=now,
    )
    if not disabled and not later:
        transaction.on_commit(lambda: tasks.deliver.delay(delivery.pk))
    return delivery


def webhook_request_finished(*, request_id: str, status: str, now: datetime, provider: Provider | None = None) -> None:
    """A verification request reached a final status: tell its provider (`verification_request.<status>`)."""
    status = str(status)  # a VerificationRequest.Status member or its value
    provider = provider or Provider.objects.filter(requests__pk=request_id).first()
    if provider is not None:
        webhook_enqueue(
            provider=provider, event_type=f"verification_request.{status}", object_id=request_id, status=status, now=now
        )


def webhook_attestation_revoked(
    *, provider: Provider, jti: str, now: datetime, deliver_at: datetime | None = None
) -> None:
    webhook_enqueue(
        provider=provider,
        event_type="attestation.revoked",
        object_id=jti,
        status="revoked",
        now=now,
        deliver_at=deliver_at,
    )


# --- Delivering --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    error: str  # "" when delivered; otherwise a stable code
    transient: bool = False
    retry_after: timedelta | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure (Standard Webhooks: update the URL instead); urllib then raises HTTPError(3xx)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# Every connection is to a checked address (egress.py: no private, loopback or link-local targets, no proxy).
_opener = egress.build_opener(_NoRedirects)


def _retry_after(value: str | None) -> timedelta | None:
    if value and value.strip().isdigit():  # the HTTP-date form is rare from receivers; ignored
        return min(timedelta(seconds=int(value.strip())), RETRY_AFTER_CAP)
    return None


def _classify(code: int, retry_after: timedelta | None = None) -> AttemptOutcome:
    if 200 <= code < 300:
        return AttemptOutcome(code, "")
    if code in (408, 429) or code >= 500:
        error = {408: "request_timeout", 429: "rate_limited"}.get(code, "server_error")
        return AttemptOutcome(code, error, transient=True, retry_after=retry_after)
    if code == 410:
        return AttemptOutcome(code, "gone")
    if 300 <= code < 400:
        return AttemptOutcome(code, "redirect")
    return AttemptOutcome(code, "client_error")


def _post(url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
    """One POST with a timeout. Only the status code is looked at; the response body is never read."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by _url_problem before we get here
        egress.ascii_url(url),
        data=body,
        method="POST",
        headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return _classify(response.status)
    except urllib.error.HTTPError as exc:
        outcome = _classify(exc.code, _retry_after(exc.headers.get("Retry-After") if exc.headers else None))
        if exc.fp is not None:
            exc.close()
        return outcome
    except urllib.error.URLError as exc:  # raised while connecting
        if isinstance(exc.reason, egress.ForbiddenAddress):
            return AttemptOutcome(None, "forbidden_address")
        error = "timeout" if isinstance(exc.reason, TimeoutError) else "connection_failed"
        return AttemptOutcome(None, error, transient=True)
    except TimeoutError:  # raised while waiting for the answer
        return AttemptOutcome(None, "timeout", transient=True)
    except OSError:  # reset, refused, closed without an answer (http.client.RemoteDisconnected)
        return AttemptOutcome(None, "connection_failed", transient=True)
    except http.client.HTTPException:  # not HTTP
        return AttemptOutcome(None, "protocol_error", transient=True)


def _url_problem(url: str) -> str:
    if not url:
        return "no_endpoint"
    try:
        validate_operator_url(url)  # the admin's rule too; a row stored before that rule existed is caught here
    except ValidationError:
        return "insecure_url"
    return ""


def _body(payload: dict) -> str:
    # The exact bytes that are signed and sent; the same for every attempt.
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def backoff(attempt: int) -> timedelta:
    """The wait after failed attempt `attempt` (1-based), with jitter."""
    base = BACKOFF[min(attempt, len(BACKOFF)) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def webhook_deliver(*, delivery_id: str, now: datetime) -> str:
    """Claim a due delivery, POST it once, record the outcome; returns a status word. Must not run inside a
    transaction: the POST may take TIMEOUT_SECONDS and must not hold locks meanwhile."""
    row = WebhookDelivery.objects.select_related("provider").filter(pk=delivery_id).first()
    if row is None:
        return "not_found"
    if row.status != D.PENDING:
        return "not_pending"
    secret = WebhookSecret.objects.filter(provider_id=row.provider_id).first()
    if secret is None or secret.disabled_at is not None:
        return "disabled"  # stays pending; it goes out if the endpoint is re-enabled
    # 1. Claim: exactly one worker turns a due row into an attempt in flight. A first attempt that was dispatched is
    # due, so a worker whose clock runs behind the one that recorded the event does not leave it waiting for beat;
    # one held back on purpose (`deliver_at`) is not dispatched until beat finds it due.
    due = Q(attempts=0, dispatched_at__isnull=False) | Q(next_attempt_at__lte=now)
    if not WebhookDelivery.objects.filter(due, pk=row.pk, status=D.PENDING, attempts=row.attempts).update(
        attempts=row.attempts + 1, next_attempt_at=now + CLAIM_LEASE, dispatched_at=None, last_attempt_at=now
    ):
        return "not_claimed"
    attempt = row.attempts + 1
    # 2. Configuration problems end the delivery without a request, and do not count towards disabling.
    problem = _url_problem(row.provider.webhook_url)
    body = _body(row.payload)
    if not problem:
        try:
            headers = signing.signature_headers(
                row=secret, client_id=row.provider.client_id, msg_id=row.pk, body=body, now=now
            )
        except DecryptionError:
            problem = "secret_unreadable"
    if problem:
        _finish(row.pk, attempt, D.FAILED, AttemptOutcome(None, problem), now=now)
        return D.FAILED.value
    # 3. Send, outside any transaction. A host resolving to a forbidden address ends the delivery like a
    # configuration problem: nothing was sent, and it is the operator's to fix, not the endpoint's fault.
    outcome = _post(row.provider.webhook_url, body.encode(), headers)
    if outcome.error == "forbidden_address":
        log.warning(
            "webhook refused",
            extra={"event": "webhook.refused", "provider": row.provider.client_id, "code": outcome.error},
        )
        _finish(row.pk, attempt, D.FAILED, outcome, now=now)
        return D.FAILED.value
    log.info(
        "webhook attempt",
        extra={
            "event": "webhook.attempt",
            "provider": row.provider.client_id,
            "status_code": outcome.status_code,
            "code": outcome.error or "delivered",
        },
    )
    # 4. Record.
    if not outcome.error:
        if _finish(row.pk, attempt, D.DELIVERED, outcome, now=now):
            WebhookSecret.objects.filter(provider_id=row.provider_id).exclude(consecutive_failures=0).update(
                consecutive_failures=0
            )
        return D.DELIVERED.value
    if outcome.transient and attempt < MAX_ATTEMPTS:
        wait = backoff(attempt)
        if outcome.retry_after:
            wait = max(wait, outcome.retry_after)
        WebhookDelivery.objects.filter(pk=row.pk, status=D.PENDING, attempts=attempt).update(
            next_attempt_at=now + wait, last_status_code=outcome.status_code, last_error=outcome.error
        )
        return "retry"
    final = D.DEAD if outcome.transient else D.FAILED
    if _finish(row.pk, attempt, final, outcome, now=now):
        _count_failure(provider=row.provider, gone=outcome.error == "gone", now=now)
    return final.value


def _finish(delivery_id: str, attempt: int, status: str, outcome: AttemptOutcome, *, now: datetime) -> bool:
    """Compare-and-swap out of `pending`; False if the claim was lost (a lease ran out and another worker took it)."""
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status=D.PENDING, attempts=attempt).update(
            status=status,
            next_attempt_at=None,
            delivered_at=now if status == D.DELIVERED else None,
            last_status_code=outcome.status_code,
            last_error=outcome.error,
        )
    )


def _count_failure(*, provider: Provider, gone: bool, now: datetime) -> None:
    rows = WebhookSecret.objects.filter(provider=provider)
    rows.update(consecutive_failures=F("consecutive_failures") + 1)
    # 410 Gone: the receiver asked us to stop (Standard Webhooks, "Delivery success and failure").
    to_disable = rows.filter(disabled_at__isnull=True)
    if not gone:
        to_disable = to_disable.filter(consecutive_failures__gte=DISABLE_AFTER)
    if to_disable.update(disabled_at=now, disabled_reason="gone" if gone else "failures"):
        log.warning(
            "webhooks disabled",
            extra={"event": "webhook.disabled", "provider": provider.client_id, "code": "gone" if gone else "failures"},
        )


def webhooks_claim_due(*, now: datetime, batch: int = 100) -> list[str]:
    """Deliveries due for an attempt that no task is on its way for: mark them dispatched and return their ids for
    the caller to enqueue. Concurrent dispatchers skip each other's rows (PostgreSQL; SQLite runs one at a time)."""
    disabled = WebhookSecret.objects.filter(disabled_at__isnull=False).values("provider_id")
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=D.PENDING, next_attempt_at__lte=now)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=now - DISPATCH_LEASE))
            .exclude(provider_id__in=disabled)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:batch]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids


# --- Operator actions ----------------------------------------------------------------------------------------------


def webhook_retry_now(*, delivery_id: str, now: datetime) -> bool:
    """Attempt again now: a failed or dead delivery gets one more attempt, a waiting one skips its wait. A pending
    row attempted within the claim lease is left alone: that attempt may still be in flight."""
    from . import tasks

    retryable = Q(status__in=(D.FAILED, D.DEAD)) | (
        Q(status=D.PENDING) & (Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=now - CLAIM_LEASE))
    )
    if WebhookDelivery.objects.filter(retryable, pk=delivery_id).update(
        status=D.PENDING, next_attempt_at=now, dispatched_at=now, delivered_at=None
    ):
        transaction.on_commit(lambda: tasks.deliver.delay(delivery_id))
        return True
    return False


def webhook_endpoint_enable(*, provider_id: int, now: datetime) -> bool:
    """Re-enable a disabled endpoint. Deliveries still pending resume with beat; failed ones can be retried."""
    return bool(
        WebhookSecret.objects.filter(provider_id=provider_id, disabled_at__isnull=False).update(
            disabled_at=None, disabled_reason="", consecutive_failures=0
        )
    )


DELIVERY_RETENTION = timedelta(days=30)


def webhook_deliveries_purge(*, now: datetime) -> int:
    """Finished deliveries are kept 30 days for the admin's view, then deleted (they hold ids and statuses only)."""
    finished = [WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DEAD]
    return WebhookDelivery.objects.filter(status__in=finished, created_at__lte=now - DELIVERY_RETENTION).delete()[0]
