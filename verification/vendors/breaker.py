"""One circuit breaker per vendor (pybreaker), shared by every process through Redis when there is one.

Closed: calls go through; IDBROKER_VENDOR_BREAKER_FAILURES transient failures in a row open it. Open: calls fail at
once with `circuit_open` and routing sends new sessions to the next fallback vendor. After
IDBROKER_VENDOR_BREAKER_RESET_SECONDS the next call is a half-open probe: success closes it, failure re-opens it.
Only transient failures count (timeouts, connection errors, 5xx); an answer, even a 4xx, means the vendor is up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pybreaker
from django.conf import settings

from broker import caches

from .base import VendorError

T = TypeVar("T")
_breakers: dict[str, pybreaker.CircuitBreaker] = {}
_lock = threading.Lock()


class TransientFailure(Exception):
    """Raised inside `call` for a failure that should count against the vendor; carries what to tell the caller."""

    def __init__(self, error: VendorError, *, wait: float | None, may_retry: bool):
        super().__init__(error.code)
        self.error, self.wait, self.may_retry = error, wait, may_retry


def _storage(vendor: str) -> pybreaker.CircuitBreakerStorage:
    from broker.ratelimit import _redis  # the shared cache's Redis, when the cache is Redis

    client = _redis()
    if client is None:
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=f"idbroker:breaker:{vendor}")


def get(vendor: str) -> pybreaker.CircuitBreaker:
    with _lock:
        found = _breakers.get(vendor)
        if found is None:
            found = _breakers[vendor] = pybreaker.CircuitBreaker(
                fail_max=settings.IDBROKER_VENDOR_BREAKER_FAILURES,
                reset_timeout=settings.IDBROKER_VENDOR_BREAKER_RESET_SECONDS,
                state_storage=_storage(vendor),
                name=vendor,
                throw_new_error_on_trip=False,
                # 429 is about our pace, not the vendor's health: it never opens the circuit.
                exclude=[lambda exc: isinstance(exc, TransientFailure) and exc.error.code == "http_429"],
            )
        return found


def call(vendor: str, fn: Callable[[], T]) -> T:
    try:
        return get(vendor).call(fn)
    except pybreaker.CircuitBreakerError:
        raise VendorError("circuit_open", retry_after=settings.IDBROKER_VENDOR_BREAKER_RESET_SECONDS) from None


def state(vendor: str) -> str:
    """closed / open / half-open, as every process sees it."""
    return get(vendor).current_state


def available(vendor: str, *, now: datetime | None = None) -> bool:
    """May a new session start at this vendor? Yes unless open with its reset timeout still running (after it, the
    next session is the half-open probe)."""
    breaker = get(vendor)
    if breaker.current_state != pybreaker.STATE_OPEN:
        return True
    opened_at = breaker._state_storage.opened_at  # pybreaker exposes no public accessor for it
    now = now or datetime.now(UTC)
    return opened_at is None or now >= opened_at + timedelta(seconds=breaker.reset_timeout)


def reset_all() -> None:
    """Forget every breaker (tests; an operator after fixing a vendor's credentials)."""
    with _lock:
        for breaker in _breakers.values():
            breaker.close()
        _breakers.clear()


caches.register("vendors.breakers", reset_all)
