"""Helpers for the attestation tests: real tokens from the real services, and ways to take them apart."""

from __future__ import annotations

import base64
import json
from datetime import date

from attestations.policies import StoredFacts
from attestations.services import request_complete, request_create
from verification.vendors.base import Check

# An adult German passport holder, as the dev vendor reports them.
FACTS = StoredFacts(
    date_of_birth=date(1990, 4, 12),
    nationality="DE",
    issuing_country="DE",
    document_type="passport",
    document_expiry=date(2031, 1, 1),
    document_authentic=Check.PASS,
    liveness=Check.PASS,
    face_match=Check.PASS,
)


def issue(handle, *, now, claims=("age_over_18",), nonce="", subject="person-1", facts=FACTS) -> str:
    """A genuine token for `handle` (acme, globex), issued at `now` through the services the journey uses."""
    request, _ = request_create(provider=handle.provider, claims=list(claims), nonce=nonce, now=now)
    token = request_complete(request=request, subject=subject, facts=facts, verified_month="2026-11", now=now)
    assert token is not None
    return token


def check(handle, token, **extra):
    return handle.client.post("/api/v1/attestations/check", {"token": token, **extra}, format="json")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(data) -> str:
    return b64url(json.dumps(data).encode())


def unb64json(part: str):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def split(token: str) -> tuple[dict, dict, str]:
    """(header, payload, signature) of an SD-JWT without disclosures (`<jws>~`)."""
    assert token.endswith("~") and token.count("~") == 1
    header, payload, signature = token[:-1].split(".")
    return unb64json(header), unb64json(payload), signature
