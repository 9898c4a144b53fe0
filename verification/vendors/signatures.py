"""Webhook signature headers, parsed and checked in one place for every adapter (SPEC 5).

A signature header is the first thing an outsider controls at `POST /webhooks/vendors/<vendor>`, before anything is
authenticated. So every parse here is bounded (header length, number of parts and sets, timestamp digits) and can
only end in a `WebhookRejected` with a stable code, never in an exception that becomes a 500:

- `malformed_signature`: the header is missing, too long, not printable ASCII, or not the vendor's scheme;
- `bad_signature`: well-formed, but no configured secret produced it;
- `stale_timestamp`: authentic, but signed outside the tolerance window (only said once the signature matched, so
  a forger learns nothing about the window).

Headers arrive Latin-1 decoded: "²" passes `str.isdigit()` but not `int()`, and `hmac.compare_digest` refuses
non-ASCII `str`; both are ruled out before any parsing. Every comparison runs for every (secret, candidate) pair
with no early exit, so timing does not tell which secret or candidate matched. Several secrets are accepted at once
while one is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .base import WebhookRejected

# Real headers are short: Stripe's `t`, two `v1` and a `v0` are about 220 characters; Persona's two sets while
# rotating about 170. The bounds leave room for rotation and cost an outsider nothing more than a refusal.
MAX_HEADER_CHARS = 1024
MAX_PARTS = 8  # key=value items in one set
MAX_SETS = 4  # space-separated sets (Persona while rotating)
TIMESTAMP = re.compile(r"[0-9]{1,12}")  # a Unix time has 10 digits until the year 2286
HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
PRINTABLE = re.compile(r"[\t\x20-\x7e]*")
DEFAULT_TOLERANCE_SECONDS = 300  # Stripe's SDKs' default (vendors.md 3), used for Persona and dev alike


def malformed() -> WebhookRejected:
    return WebhookRejected("malformed_signature")


def header(headers: dict[str, str], name: str) -> str:
    """The named header (lower-case name), "" when absent; malformed when too long or not printable ASCII."""
    value = headers.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS or not PRINTABLE.fullmatch(value):
        raise malformed()
    return value


def equal(a: str, b: str) -> bool:
    """Constant-time equality of two strings, compared as UTF-8 bytes (a `str` holding non-ASCII would make
    `compare_digest` raise a TypeError)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def secrets_list(configured: str | Iterable[str] | None) -> list[str]:
    """Configured webhook secrets: a list, or a comma-separated string; empty entries dropped."""
    if isinstance(configured, str):
        configured = configured.split(",")
    return [s.strip() for s in configured or () if s and s.strip()]


# --- `t=<unix>,v1=<hex>`: HMAC-SHA256 over "<t>.<raw body>" (Stripe, Persona, the dev vendor) ---------------------


@dataclass(frozen=True)
class SignedSet:
    timestamp: str  # the digits as sent: the signed message uses them verbatim
    signatures: tuple[str, ...]


def timestamped_sets(value: str, *, scheme: str = "v1", several: bool = False) -> list[SignedSet]:
    """Parse `t=<unix>,v1=<sig>[,v1=<sig>…]`, or with `several`, such sets separated by spaces (Persona sends one
    per secret while rotating). Keys other than `t` and `scheme` (Stripe's legacy `v0`, the `s=` some Persona
    implementations send, vendors.md pain point 11) are ignored. One set must have exactly one `t` of at most 12
    digits and at least one signature; among several, sets that do not are skipped, and none left is malformed."""
    chunks = value.split() if several else [value]
    if not value or len(chunks) > MAX_SETS:
        raise malformed()
    sets = []
    for chunk in chunks:
        items = chunk.split(",")
        if len(items) > MAX_PARTS:
            raise malformed()
        pairs = [(k.strip(), v.strip()) for k, sep, v in (item.partition("=") for item in items) if sep]
        timestamps = [v for k, v in pairs if k == "t"]
        signatures = tuple(v for k, v in pairs if k == scheme and v)
        if len(timestamps) == 1 and TIMESTAMP.fullmatch(timestamps[0]) and signatures:
            sets.append(SignedSet(timestamps[0], signatures))
        elif not several:
            raise malformed()
    if not sets:
        raise malformed()
    return sets


def verify_timestamped(
    value: str,
    *,
    body: bytes,
    secrets: list[str],
    now: datetime,
    several: bool = False,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """1. Parse (bounded). 2. Compare every candidate with the HMAC under every secret. 3. Only then the window,
    on the freshest set that matched."""
    sets = timestamped_sets(value, several=several)
    matched = [
        int(signed.timestamp)
        for signed in sets
        for secret in secrets
        for expected in [hmac_sha256_hex(secret, signed.timestamp.encode() + b"." + body)]
        for candidate in signed.signatures
        if equal(expected, candidate)
    ]
    if not matched:
        raise WebhookRejected("bad_signature")
    if min(abs(now.timestamp() - t) for t in matched) > tolerance_seconds:
        raise WebhookRejected("stale_timestamp")


# --- A bare hex HMAC-SHA256 of the raw body (Onfido `X-SHA2-Signature`, Veriff `X-HMAC-SIGNATURE`) --------------


def hex_sha256(value: str) -> str:
    """A hex SHA-256 digest (any case, surrounding space allowed), lower-cased; malformed otherwise."""
    digest = value.strip().lower()
    if not HEX_SHA256.fullmatch(digest):
        raise malformed()
    return digest


def body_hmac_matches(signature: str, *, body: bytes, secrets: list[str]) -> bool:
    """Whether `signature` (from `hex_sha256`) is the HMAC of the body under any secret; every secret is tried."""
    return any([equal(hmac_sha256_hex(secret, body), signature) for secret in secrets])
