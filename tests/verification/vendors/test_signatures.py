"""One bounded parser for every vendor's webhook signature headers (verification/vendors/signatures.py).

The headers are read before anything is authenticated, so whatever an outsider puts in them must end in a
`WebhookRejected` with a stable code (a 401 at the endpoint), never in another exception (a 500) or in work that
grows with the header's size.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from verification.vendors import signatures
from verification.vendors.base import REGISTRY, WebhookRejected, get_vendor
from verification.vendors.dev import DevVendor

VENDOR_DIR = Path(signatures.__file__).parent
# Every header each adapter reads from an unauthenticated request.
SIGNATURE_HEADERS = {
    "dev": ["dev-signature"],
    "persona": ["persona-signature"],
    "stripe_identity": ["stripe-signature"],
    "onfido": ["x-sha2-signature"],
    "veriff": ["x-auth-client", "x-hmac-signature"],
}
HEX = "0" * 64
NOW = datetime.now(UTC)
BODY = b'{"id": "evt_1", "session": "dev_x", "type": "decision"}'

HOSTILE = {
    "over-long timestamp": "t=" + "9" * 5000 + ",v1=" + HEX,
    "13-digit timestamp": "t=" + "9" * 13 + ",v1=" + HEX,
    "negative timestamp": "t=-1700000000,v1=" + HEX,
    "exponent timestamp": "t=1.7e9,v1=" + HEX,
    "Latin-1 digit": "t=\u00b2,v1=" + HEX,
    "non-ASCII signature": "t=1700000000,v1=" + "\u00e9" * 64,
    "NUL": "t=1700000000\x00,v1=" + HEX,
    "control characters": "\x1b[2J\x07" + HEX,
    "1 MB of text": "v1=" + "a" * 1_000_000,
    "100,000 commas": "," * 100_000,
    "10,000 parts": ",".join(["v1=" + HEX] * 10_000),
    "1,000 sets": " ".join(["t=1700000000,v1=" + HEX] * 1_000),
    "only equals signs": "=" * 5000,
    "65 hex digits": "f" * 65,
    "not hex": "g" * 64,
}


@pytest.fixture(autouse=True)
def every_vendor_configured(settings):
    settings.IDBROKER_VENDORS = {
        **settings.IDBROKER_VENDORS,
        "persona": {"api_key": "persona_key", "webhook_secrets": ["wbhsec_a", "wbhsec_b"]},
        "stripe_identity": {"api_key": "sk_test_x", "webhook_secrets": ["whsec_a", "whsec_b"]},
        "onfido": {"api_key": "api_sandbox.x", "webhook_secrets": ["token_a", "token_b"]},
        "veriff": {"api_key": "veriff-key", "webhook_secrets": ["shared_a", "shared_b"]},
    }


def _verify(vendor: str, headers: dict[str, str], body: bytes = BODY):
    return get_vendor(vendor).verify_webhook(headers=headers, body=body, now=NOW)


def _rejected(vendor: str, headers: dict[str, str]) -> str:
    started = time.perf_counter()
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, headers)
    assert time.perf_counter() - started < 2, "parsing cost grew with the header"  # it is microseconds
    return rejected.value.code


def test_every_adapter_parses_signatures_through_the_one_shared_module():
    """No adapter keeps its own copy: the HMAC comparisons and header parsing live in signatures.py only."""
    assert set(SIGNATURE_HEADERS) == set(REGISTRY)
    for name, path in REGISTRY.items():
        module = VENDOR_DIR / (path.split(".")[2] + ".py")
        source = module.read_text()
        assert "from .signatures import" in source, name
        assert "compare_digest" not in source, name
        # `headers` is the inbound webhook's (a vendor response's would be `response.headers`).
        assert not re.search(r"(?<![.\w])headers\.get\(", source), f"{name} reads a header around the parser"


@pytest.mark.parametrize("vendor", sorted(SIGNATURE_HEADERS))
@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_signature_header_is_malformed_for_every_vendor(vendor, hostile):
    for name in SIGNATURE_HEADERS[vendor]:
        headers = {h: ("veriff-key" if h == "x-auth-client" else HEX) for h in SIGNATURE_HEADERS[vendor]}
        headers[name] = HOSTILE[hostile]
        assert _rejected(vendor, headers) in ("malformed_signature", "bad_signature"), (name, hostile)


@pytest.mark.parametrize("vendor", sorted(SIGNATURE_HEADERS))
def test_random_header_text_never_escapes_as_another_exception(vendor):
    """A deterministic fuzz (fixed seed): printable, control and Latin-1 characters, separators, long digit runs."""
    rng = random.Random(f"signatures-{vendor}")
    alphabet = "t=v1,0123456789abcdef \t\x00\x7f\u00b2\u00e9\u00ff-.;:"
    for _ in range(300):
        pieces = [rng.choice(alphabet) * rng.choice([1, 1, 2, 70, 3000]) for _ in range(rng.randint(0, 12))]
        headers = {name: "".join(pieces) for name in SIGNATURE_HEADERS[vendor]}
        assert _rejected(vendor, headers) in ("malformed_signature", "bad_signature")


def test_the_dev_vendor_refuses_an_over_long_timestamp_with_a_401_not_a_500(client):
    """The review's finding: `t=` with 5,000 digits passed isdigit() and int() raised (a 500)."""
    response = client.post(
        "/webhooks/vendors/dev",
        data=BODY,
        content_type="application/json",
        headers={"Dev-Signature": HOSTILE["over-long timestamp"]},
    )
    assert response.status_code == 401 and response.json() == {"code": "malformed_signature"}


def test_a_signature_from_any_configured_secret_is_accepted_and_the_window_is_checked(settings):
    first, second = signatures.secrets_list(settings.IDBROKER_DEV_VENDOR_WEBHOOK_SECRET)
    now = int(NOW.timestamp())
    for secret in (first, second):
        event = _verify("dev", {"dev-signature": DevVendor.sign(BODY, secret=secret, timestamp=now)})
        assert event.dedupe_key == "evt_1"
    with pytest.raises(WebhookRejected) as stale:
        _verify("dev", {"dev-signature": DevVendor.sign(BODY, secret=first, timestamp=now - 301)})
    assert stale.value.code == "stale_timestamp"


def test_persona_rotation_sets_are_bounded_but_a_valid_set_among_junk_counts():
    now = int(NOW.timestamp())
    valid = f"t={now},v1=" + signatures.hmac_sha256_hex("wbhsec_b", f"{now}.".encode() + BODY)
    with pytest.raises(WebhookRejected) as rejected:  # the body is not Persona's shape: authentic, then malformed
        _verify("persona", {"persona-signature": f"s=junk {valid}"})
    assert rejected.value.code == "malformed_body"
    assert _rejected("persona", {"persona-signature": " ".join([valid] * (signatures.MAX_SETS + 1))}) == (
        "malformed_signature"
    )


def test_the_bounds_are_generous_for_real_headers():
    stripe_like = f"t=1700000000,v1={HEX},v1={HEX},v0={HEX}"
    persona_like = f"t=1700000000,v1={HEX} t=1700000000,v1={HEX}"
    assert len(signatures.timestamped_sets(stripe_like)[0].signatures) == 2
    assert len(signatures.timestamped_sets(persona_like, several=True)) == 2
    assert signatures.header({"h": stripe_like}, "h") == stripe_like


def test_constant_time_equality_never_raises_on_non_ascii():
    assert signatures.equal("\u00e9", "\u00e9") and not signatures.equal("\u00e9", "?")
    assert not signatures.equal("abc", "abd")
