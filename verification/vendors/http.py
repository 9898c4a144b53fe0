"""The one way adapters talk HTTP (STYLE 6): timeouts, bounded retries with backoff and jitter, idempotency keys,
the vendor's rate-limit hints honoured, a circuit breaker per vendor, and errors mapped to `VendorError`.

1. Every request has a connect and a read timeout (IDBROKER_VENDOR_TIMEOUT_SECONDS).
2. Transient failures (connection errors, timeouts, 429, 5xx) are retried IDBROKER_VENDOR_RETRIES times, waiting
   `base * min(16, 2**attempt)` scaled by full jitter (base: IDBROKER_VENDOR_BACKOFF_SECONDS), or the vendor's
   `Retry-After` / `RateLimit-Reset` when it gives one (up to `MAX_INLINE_WAIT`; longer waits go back to the caller
   as `VendorError.retry_after`, so a Celery retry or a database row waits instead of a worker).
3. A POST is retried only when it carries an idempotency key, or when the vendor refused it before doing anything
   (connect error, 429): a write must never run twice (vendors.md: Onfido documents no idempotency keys).
4. Other 4xx are permanent (`http_<status>`): retrying a bad request cannot help.
5. Outcomes feed the vendor's circuit breaker (`verification.vendors.breaker`): timeouts, connection errors and 5xx
   count; answers (even 4xx) and 429 (our own pace, not the vendor's health) do not. Routing reads the breaker to
   pick a fallback vendor for new sessions.
Bodies are never logged: they carry personal data (results) or evidence (uploads).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from functools import partial

import httpx
from django.conf import settings

from . import breaker
from .base import VendorError

log = logging.getLogger(__name__)

MAX_INLINE_WAIT = 5.0
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def hinted_wait(response: httpx.Response) -> float | None:
    """Seconds the vendor asked us to wait: `Retry-After` (RFC 9110, seconds form) or `RateLimit-Reset` (Persona)."""
    for header in ("retry-after", "ratelimit-reset", "x-ratelimit-reset"):
        value = response.headers.get(header, "").strip()
        if value.replace(".", "", 1).isdigit():
            return float(value)
    return None


def json_object(response: httpx.Response) -> dict:
    """The body as a JSON object. Anything else (a proxy's HTML error page, a truncated body) is a transient
    `malformed_response`, never a crash: the task retries, and a vendor that keeps answering nonsense fails the
    session through the retry limit."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise VendorError("malformed_response")
    return body


class VendorHttp:
    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: Callable[[httpx.Request], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}
        self.auth = auth  # signs a request in place (Veriff's X-HMAC-SIGNATURE), after the body is final
        self.sleep = sleep
        timeout = settings.IDBROKER_VENDOR_TIMEOUT_SECONDS
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self.retries = settings.IDBROKER_VENDOR_RETRIES
        self.backoff = settings.IDBROKER_VENDOR_BACKOFF_SECONDS

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object | None = None,
        data: dict | list | None = None,
        files: dict | None = None,
        params: dict | list | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
    ) -> httpx.Response:
        """Send one logical request; return the response once its status is in `ok`, else raise VendorError."""
        all_headers = {**self.headers, **(headers or {})}
        if idempotency_key:
            all_headers["Idempotency-Key"] = idempotency_key
        retry_writes = method in ("GET", "HEAD", "DELETE", "PUT") or bool(idempotency_key)
        attempt = 0
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                request = client.build_request(
                    method, self.base_url + path, json=json, data=data, files=files, params=params, headers=all_headers
                )
                if self.auth:
                    self.auth(request)
                try:
                    response = breaker.call(self.vendor, partial(self._send, client, request, retry_writes, ok))
                except breaker.TransientFailure as failure:
                    log.info(
                        "vendor call failed",
                        extra={"vendor": self.vendor, "code": failure.error.code, "attempt": str(attempt)},
                    )
                    wait = failure.wait
                    if (
                        not failure.may_retry
                        or attempt >= self.retries
                        or (wait is not None and wait > MAX_INLINE_WAIT)
                    ):
                        raise failure.error from None
                    attempt += 1
                    self.sleep(wait if wait is not None else random.uniform(0, self.backoff * min(16, 2**attempt)))
                    continue
                if response.status_code not in ok:  # an answer: the vendor is up, our request was wrong
                    raise VendorError(f"http_{response.status_code}", permanent=True)
                return response

    @staticmethod
    def _send(client: httpx.Client, request: httpx.Request, retry_writes: bool, ok: tuple[int, ...]) -> httpx.Response:
        """One attempt, inside the breaker: transient failures raise TransientFailure (counted), answers return."""
        try:
            response = client.send(request)
        except httpx.ConnectError:
            raise breaker.TransientFailure(VendorError("unreachable"), wait=None, may_retry=True) from None
        except httpx.TimeoutException:
            raise breaker.TransientFailure(VendorError("timeout"), wait=None, may_retry=retry_writes) from None
        except httpx.HTTPError:
            raise breaker.TransientFailure(VendorError("transport_error"), wait=None, may_retry=retry_writes) from None
        status = response.status_code
        if status in ok or status not in TRANSIENT_STATUSES:
            return response
        wait = hinted_wait(response)
        raise breaker.TransientFailure(
            VendorError(f"http_{status}", retry_after=wait), wait=wait, may_retry=retry_writes or status == 429
        )
