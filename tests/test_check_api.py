"""Hostile tokens at POST /api/v1/attestations/check (SPEC 2.4): every forgery is a clear `valid: false`."""

import base64
import hashlib
import hmac
import json
from datetime import date, timedelta

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from attestations.policies import StoredFacts
from attestations.services import request_complete, request_create
from attestations.signing import signing_key_create
from verification.vendors.base import Check

pytestmark = pytest.mark.django_db

FACTS = StoredFacts(date(1990, 4, 12), "DE", "DE", "passport", date(2031, 1, 1), Check.PASS, Check.PASS, Check.PASS)


def issue(provider, now, claims=("age_over_18",), nonce=""):
    request, _ = request_create(provider=provider.provider, claims=list(claims), nonce=nonce, now=now)
    return request_complete(request=request, subject="person-1", facts=FACTS, verified_month="2026-11", now=now)


def check(provider, token, **extra):
    return provider.client.post("/api/v1/attestations/check", {"token": token, **extra}, format="json")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def parts(token):
    header, payload, signature = token.rstrip("~").split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


def test_a_genuine_token_is_valid_with_its_claims(acme, signing_key, now):
    body = check(acme, issue(acme, now)).json()
    assert body["valid"] is True and body["reason"] == "ok"
    assert body["claims"]["age_over_18"] is True and set(body["claims"]) == {"sub", "exp", "age_over_18"}


def test_an_ed25519_token_is_valid_too(acme, db, now):
    signing_key_create(alg="Ed25519", now=now)
    token = issue(acme, now)
    assert parts(token)[0]["alg"] == "Ed25519"
    assert check(acme, token).json()["valid"] is True


def test_a_payload_changed_after_signing_is_a_bad_signature(acme, signing_key, now):
    header, payload, signature = parts(issue(acme, now, claims=("age_over_21",)))
    payload["age_over_21"] = True
    forged = f"{b64(header)}.{b64(payload)}.{signature}~"
    assert check(acme, forged).json() == {"valid": False, "reason": "bad_signature", "claims": {}}


def test_alg_none_is_refused(acme, signing_key, now):
    header, payload, _ = parts(issue(acme, now))
    forged = f"{b64({**header, 'alg': 'none'})}.{b64(payload)}.~"
    assert check(acme, forged).json()["reason"] == "unsupported_alg"


def test_hs256_signed_with_the_public_key_is_refused(acme, signing_key, now):
    header, payload, _ = parts(issue(acme, now))
    # The classic confusion attack: HMAC keyed with the (public) verification key. Built by hand, since
    # well-behaved libraries refuse to do it.
    public_pem = ECKey.import_key(signing_key.public_jwk).as_pem(private=False)
    signing_input = f"{b64({**header, 'alg': 'HS256'})}.{b64(payload)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}~"
    assert check(acme, forged).json()["reason"] == "unsupported_alg"


def test_a_token_from_an_unknown_key_is_refused(acme, signing_key, now):
    header, payload, _ = parts(issue(acme, now))
    stranger = ECKey.generate_key("P-256", private=True)
    forged = jws.serialize_compact({**header, "kid": stranger.thumbprint()}, json.dumps(payload).encode(), stranger)
    assert check(acme, forged + "~").json()["reason"] == "unknown_kid"
    # The same stranger claiming our kid fails the signature instead.
    impostor = jws.serialize_compact(header, json.dumps(payload).encode(), stranger)
    assert check(acme, impostor + "~").json()["reason"] == "bad_signature"


def test_wrong_type_expired_and_not_yet_valid_tokens_are_refused(acme, signing_key, now):
    old = issue(acme, now - timedelta(hours=2))
    assert check(acme, old).json()["reason"] == "expired"
    future = issue(acme, now + timedelta(hours=3))
    assert check(acme, future).json()["reason"] == "not_yet_valid"
    header, payload, _ = parts(issue(acme, now))
    from attestations.signing import _sign

    typed = _sign(payload, "JWT").token + "~"
    assert check(acme, typed).json()["reason"] == "wrong_type"


def test_a_token_for_another_provider_reveals_nothing(acme, globex, signing_key, now):
    token = issue(globex, now)
    assert check(acme, token).json() == {"valid": False, "reason": "wrong_audience", "claims": {}}


def test_a_nonce_mismatch_is_reported(acme, signing_key, now):
    token = issue(acme, now, nonce="expected")
    assert check(acme, token, nonce="other").json()["reason"] == "nonce_mismatch"
    assert check(acme, token, nonce="expected").json()["valid"] is True


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-token", "a.b.c~", "a.b~", "~", "x" * 100 + "~", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA~extra~", "é.é.é~"],
)
def test_garbage_is_malformed_not_a_server_error(acme, signing_key, garbage):
    response = check(acme, garbage)
    if garbage == "":
        assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    else:
        assert response.status_code == 200
        assert response.json()["valid"] is False and response.json()["reason"] in {"malformed", "unsupported_alg"}


def test_disclosures_appended_to_a_genuine_token_make_it_malformed(acme, signing_key, now):
    token = issue(acme, now)
    assert check(acme, token + "WyJzYWx0IiwiYWdlIiwxOF0~").json()["reason"] == "malformed"


def test_an_oversized_token_is_a_problem_details_400(acme, signing_key):
    response = check(acme, "a" * 9000)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json" and response.json()["code"] == "invalid_request"


def test_the_check_api_needs_a_provider_key(client, signing_key):
    response = client.post("/api/v1/attestations/check", {"token": "x~"}, content_type="application/json")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
