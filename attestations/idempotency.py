"""`Idempotency-Key` for provider POSTs (IETF draft-ietf-httpapi-idempotency-key-header).

1. No header: the request runs as usual.
2. First use of a key: a placeholder row is inserted (unique per provider and key), the request runs, and its
   response is stored sealed (a created request's response holds the user's link, a bearer secret).
3. Same key, same body: the stored response is replayed. Same key, other body: 422. Still running: 409.
Records are deleted after 24 hours by the sweeper.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import wraps

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from broker.errors import BrokerError
from verification import crypto

from .models import IdempotencyRecord

RETENTION = timedelta(hours=24)


class IdempotencyConflict(BrokerError):
    status = 409
    code = "idempotency_in_progress"
    title = "A request with this Idempotency-Key is still being processed"


class IdempotencyMismatch(BrokerError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used with a different request"


def _aad(record: IdempotencyRecord) -> bytes:
    return f"{record.provider_id}/{record.key}".encode()


def idempotent(view_method):
    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 255:
            raise BrokerError("Idempotency-Key is at most 255 characters.", code="invalid_request")
        provider = request.user.provider
        fingerprint = hashlib.sha256(request.method.encode() + request.path.encode() + request.body).hexdigest()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    provider=provider, key=key, fingerprint=fingerprint, created_at=timezone.now()
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.get(provider=provider, key=key)
            if existing.fingerprint != fingerprint:
                raise IdempotencyMismatch() from None
            if existing.status_code is None:
                raise IdempotencyConflict() from None
            body = json.loads(
                crypto.unseal(existing.sealed, existing.wrapped_key, purpose="idempotency", aad=_aad(existing))
            )
            replay = Response(body, status=existing.status_code)
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception:
            record.delete()  # failed requests may be retried with the same key
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        sealed, wrapped = crypto.seal(json.dumps(response.data).encode(), purpose="idempotency", aad=_aad(record))
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=response.status_code, sealed=sealed, wrapped_key=wrapped
        )
        return response

    return wrapper


def idempotency_purge(*, now: datetime) -> int:
    return IdempotencyRecord.objects.filter(created_at__lte=now - RETENTION).delete()[0]
