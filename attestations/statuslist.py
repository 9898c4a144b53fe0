"""IETF OAuth Token Status List (draft-ietf-oauth-status-list): one bit per attestation, 1 = revoked.

1. Each attestation gets a random index in a large list (herd privacy: the index says nothing about when it was
   issued or to whom, and a list serves many providers). A list is filled to half its size, then a new one starts,
   so random picks rarely collide; a collision is retried (unique constraint).
2. Bits are packed LSB first: index i is bit (i % 8) of byte (i // 8).
3. The byte array is ZLIB/DEFLATE-compressed (RFC 1950/1951) and base64url-encoded without padding as `lst`.
4. The list is served as a signed JWT (`typ: statuslist+jwt`) whose `sub` is the list's URI, with a `ttl` telling
   verifiers how long they may cache it.
"""

from __future__ import annotations

import base64
import secrets
import threading
import zlib
from collections.abc import Iterable
from datetime import datetime

from cachetools import TTLCache
from django.conf import settings
from django.db import IntegrityError, transaction

from broker import caches

from . import signing
from .models import Attestation, StatusList


def list_uri(status_list_id: int) -> str:
    return f"{settings.PUBLIC_URL}/status-lists/{status_list_id}"


def encode(revoked: Iterable[int], size: int) -> str:
    packed = bytearray(size // 8)
    for idx in revoked:
        packed[idx // 8] |= 1 << (idx % 8)
    return base64.urlsafe_b64encode(zlib.compress(bytes(packed), 9)).rstrip(b"=").decode()


def decode(lst: str) -> bytes:
    return zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))


def bit(packed: bytes, idx: int) -> int:
    return (packed[idx // 8] >> (idx % 8)) & 1


# The check API reads revocations through this per-process cache: a revocation reaches it within
# REVOKED_CACHE_SECONDS (offline verifiers see it within the list's `ttl`, 300 s by default).
REVOKED_CACHE_SECONDS = 2
_revoked_cache: TTLCache = TTLCache(maxsize=256, ttl=REVOKED_CACHE_SECONDS)
_revoked_lock = threading.Lock()


def _forget_revocations() -> None:
    with _revoked_lock:
        _revoked_cache.clear()


caches.register("attestations.revocations", _forget_revocations)


def is_revoked(status_list_id: int, idx: int) -> bool:
    with _revoked_lock:
        revoked = _revoked_cache.get(status_list_id)
    if revoked is None:
        revoked = frozenset(
            Attestation.objects.filter(status_list_id=status_list_id, revoked_at__isnull=False).values_list(
                "status_idx", flat=True
            )
        )
        with _revoked_lock:
            _revoked_cache[status_list_id] = revoked
    return idx in revoked


def forget_revocations(status_list_id: int) -> None:
    """Called by the revoking process so its own answers change at once."""
    with _revoked_lock:
        _revoked_cache.pop(status_list_id, None)


def current_list() -> StatusList:
    size = settings.IDBROKER_STATUS_LIST_SIZE
    newest = StatusList.objects.filter(size=size).order_by("-pk").first()
    if newest is None or Attestation.objects.filter(status_list=newest).count() >= size // 2:
        newest = StatusList.objects.create(size=size)
    return newest


def attestation_create_with_status(**fields) -> Attestation:
    """Create the attestation row on a random free index of the current list."""
    status_list = current_list()
    for _ in range(32):
        try:
            with transaction.atomic():
                return Attestation.objects.create(
                    status_list=status_list, status_idx=secrets.randbelow(status_list.size), **fields
                )
        except IntegrityError:
            continue  # that bit is taken; pick another
    raise RuntimeError("status list is too full")


def status_list_token(status_list: StatusList, *, now: datetime) -> str:
    revoked = Attestation.objects.filter(status_list=status_list, revoked_at__isnull=False).values_list(
        "status_idx", flat=True
    )
    ttl = settings.IDBROKER_STATUS_LIST_TTL_SECONDS
    iat = int(now.timestamp())
    return signing.sign_status_list(
        {
            "sub": list_uri(status_list.pk),
            "iat": iat,
            "exp": iat + 24 * 3600,
            "ttl": ttl,
            "status_list": {"bits": 1, "lst": encode(revoked.iterator(), status_list.size)},
        }
    )
