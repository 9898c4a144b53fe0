"""The provider-side verifier against the real broker, served by pytest-django's live server.

Nothing of the broker is mocked: tokens are issued by `attestations.services`, keys and status lists come over
HTTP from the live server. The verifier's injectable `http` wraps the real urllib fetch only to count requests,
and its injectable clock moves time forward without waiting.
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from idbroker_verifier import Verifier, urllib_fetch

from attestations.policies import StoredFacts
from attestations.services import request_complete, request_create
from verification.vendors.base import Check

FACTS = StoredFacts(date(1990, 1, 1), "FR", "FR", "passport", date(2031, 1, 1), Check.PASS, Check.PASS, Check.PASS)


class CountingFetch:
    """The default urllib fetch, remembering every URL it was asked for."""

    def __init__(self):
        self.urls: list[str] = []

    def __call__(self, url):
        self.urls.append(url)
        return urllib_fetch(url)

    def count(self, fragment: str) -> int:
        return sum(fragment in url for url in self.urls)

    @property
    def jwks(self) -> int:
        return self.count("/.well-known/jwks.json")

    @property
    def lists(self) -> int:
        return self.count("/status-lists/")


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def set(self, at: float) -> None:
        self.offset = at - time.time()


@pytest.fixture
def fetch():
    return CountingFetch()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def verifier(public_url, acme, fetch, clock):
    return Verifier(public_url, acme.client_id, http=fetch, clock=clock)


@pytest.fixture
def issue(public_url, acme, signing_key, now):
    """Issue a real attestation for acme through the broker's service (the journey's last step)."""

    def issue(claims=("age_over_18",), *, nonce="nonce-123", at=None, provider=None):
        when = at or now
        request, _ = request_create(provider=provider or acme.provider, claims=list(claims), nonce=nonce, now=when)
        return request_complete(request=request, subject="person-1", facts=FACTS, verified_month="2026-11", now=when)

    return issue
