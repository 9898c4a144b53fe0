"""The one place that opens a webhook signing secret and signs with it: Standard Webhooks, symmetric scheme (`v1`,
HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`), through the `standardwebhooks` library so a receiver
using any Standard Webhooks verifier agrees with us byte for byte.

Secrets are `whsec_` + base64 of 32 random bytes (the scheme asks for 24 to 64), sealed at rest with
`verification.crypto.seal` (purpose "webhook-secret", the provider's client_id as associated data, so a sealed
secret copied to another provider's row does not open).
"""

from __future__ import annotations

import base64
import math
import secrets
from datetime import UTC, datetime, timedelta

from django.db import transaction
from standardwebhooks import Webhook

from attestations.models import Provider
from verification import crypto

from .models import WebhookSecret

PURPOSE = "webhook-secret"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# After a rotation the old secret keeps signing (a second signature in the header) for this long.
ROTATION_OVERLAP = timedelta(hours=24)


def _open(sealed, wrapped_key, client_id: str) -> str:
    return crypto.unseal(sealed, wrapped_key, purpose=PURPOSE, aad=client_id.encode()).decode()


@transaction.atomic
def webhook_secret_create(*, provider: Provider, now: datetime) -> str:
    """Create (or rotate) the provider's signing secret. Returns it: the only time it is ever shown."""
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    sealed, wrapped = crypto.seal(secret.encode(), purpose=PURPOSE, aad=provider.client_id.encode())
    current = WebhookSecret.objects.select_for_update().filter(provider=provider).first()
    if current is None:
        WebhookSecret.objects.create(provider=provider, sealed=sealed, wrapped_key=wrapped, created_at=now)
    else:
        WebhookSecret.objects.filter(pk=current.pk).update(
            sealed=sealed,
            wrapped_key=wrapped,
            previous_sealed=current.sealed,
            previous_wrapped_key=current.wrapped_key,
            previous_until=now + ROTATION_OVERLAP,
            created_at=now,
        )
    return secret


def _signing_secrets(row: WebhookSecret, client_id: str, now: datetime) -> list[str]:
    found = [_open(row.sealed, row.wrapped_key, client_id)]
    if row.previous_sealed and row.previous_until and row.previous_until > now:
        found.append(_open(row.previous_sealed, row.previous_wrapped_key, client_id))
    return found


def signature_headers(*, row: WebhookSecret, client_id: str, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt. The timestamp is the attempt's, not the event's."""
    # `Webhook.sign` *replaces* the tzinfo with UTC instead of converting, so it must be handed a UTC time.
    at = now.astimezone(UTC)
    keys = _signing_secrets(row, client_id, now)
    signatures = [Webhook(key).sign(msg_id=msg_id, timestamp=at, data=body) for key in keys]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
