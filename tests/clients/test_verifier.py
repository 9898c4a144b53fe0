"""The provider-side verifier (clients/python) against the real broker over HTTP (SPEC 2.4, 4)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from idbroker_verifier import VerificationError, Verifier, urllib_fetch
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from attestations import signing
from attestations.models import Attestation, StatusList
from attestations.services import attestation_revoke
from tests import journey

pytestmark = pytest.mark.django_db(transaction=True)


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict, dict]:
    obj = jws.extract_compact(token.split("~")[0].encode())
    return obj.headers(), json.loads(obj.payload)


def _reason(verifier: Verifier, token: str, **kwargs) -> str:
    with pytest.raises(VerificationError) as caught:
        verifier.verify(token, **kwargs)
    return caught.value.reason


def _revoke(token: str, now) -> None:
    assert attestation_revoke(attestation=Attestation.objects.get(jti=_parts(token)[1]["jti"]), now=now)


# --- a good token ----------------------------------------------------------------------------------------------


def test_a_token_from_the_whole_journey_verifies_with_keys_and_list_fetched_once(acme, signing_key, verifier, fetch):
    _, final = journey.complete(acme, ["age_over_18", "eligible_jurisdiction", "verified_human"], nonce="n-42")
    token = final["attestation"]

    claims = verifier.verify(token, nonce="n-42")

    assert claims["aud"] == "acme" and claims["iss"] == verifier.issuer and claims["nonce"] == "n-42"
    assert claims["age_over_18"] is True and claims["verified_human"] is True
    assert claims["eligible_jurisdiction"] == {"policy": "export-tier1", "version": 1, "eligible": True}
    assert claims == _parts(token)[1]
    assert (fetch.jwks, fetch.lists) == (1, 1)
    verifier.verify(token, nonce="n-42")  # cached keys and list: no more requests
    assert len(fetch.urls) == 2


def test_an_ed25519_token_verifies_unless_the_provider_allows_only_es256(public_url, acme, issue, fetch, now):
    signing.signing_key_rotate(alg="Ed25519", now=now)
    token = issue()
    assert _parts(token)[0]["alg"] == "Ed25519"
    assert Verifier(public_url, "acme", http=fetch).verify(token)["age_over_18"] is True
    assert _reason(Verifier(public_url, "acme", allowed_algs=("ES256",), http=fetch), token) == "unsupported_alg"


def test_the_status_check_can_be_skipped_and_then_no_list_is_fetched(issue, verifier, fetch):
    verifier.verify(issue(), check_status=False)
    assert (fetch.jwks, fetch.lists) == (1, 0)


# --- claims ----------------------------------------------------------------------------------------------------


def test_a_token_for_another_provider_is_rejected(public_url, issue, fetch):
    assert _reason(Verifier(public_url, "globex", http=fetch), issue()) == "wrong_audience"


def test_a_token_from_another_issuer_is_rejected(public_url, issue, fetch):
    elsewhere = Verifier("https://broker.example", "acme", jwks_uri=f"{public_url}/.well-known/jwks.json", http=fetch)
    assert _reason(elsewhere, issue()) == "wrong_issuer"


def test_an_expired_token_is_rejected_once_past_the_leeway(issue, verifier, clock):
    token = issue()
    clock.set(_parts(token)[1]["exp"] + 59)
    verifier.verify(token)  # within the minute of skew
    clock.advance(2)
    assert _reason(verifier, token) == "expired"


def test_an_expired_token_issued_in_the_past_is_rejected_at_real_time(issue, verifier, now):
    assert _reason(verifier, issue(at=now - timedelta(hours=2))) == "expired"


def test_a_token_before_its_nbf_is_not_yet_valid(issue, verifier, clock):
    token = issue()
    clock.set(_parts(token)[1]["nbf"] - 59)
    verifier.verify(token)  # within the minute of skew
    clock.advance(-2)
    assert _reason(verifier, token) == "not_yet_valid"


def test_the_nonce_must_be_the_one_sent(issue, verifier):
    token = issue(nonce="sent-nonce")
    assert verifier.verify(token, nonce="sent-nonce")["nonce"] == "sent-nonce"
    assert _reason(verifier, token, nonce="other-nonce") == "nonce_mismatch"
    assert _reason(verifier, issue(nonce=""), nonce="sent-nonce") == "nonce_mismatch"  # token without a nonce


# --- forgeries -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change", [{"age_over_18": False}, {"exp_days": 30}, {"aud": "acme", "nonce": "nonce-123"}], ids=str
)
def test_a_tampered_payload_fails_the_signature(issue, verifier, change):
    token = issue(["age_over_18"])
    header_b64, payload_b64, signature = token.rstrip("~").split(".")
    payload = dict(_parts(token)[1])
    if "exp_days" in change:
        payload["exp"] += change["exp_days"] * 86400
    else:
        payload.update(change)
    # Same claims, other bytes (key order) still break the signature: it covers the encoding, not the meaning.
    forged_b64 = _b64(payload) if payload != _parts(token)[1] else _b64(dict(reversed(list(payload.items()))))
    assert forged_b64 != payload_b64
    assert _reason(verifier, f"{header_b64}.{forged_b64}.{signature}~") == "bad_signature"


def test_alg_none_is_rejected_before_any_key_is_fetched(issue, verifier, fetch):
    header, payload = _parts(issue())
    unsigned = f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}.~"
    assert _reason(verifier, unsigned) == "unsupported_alg"
    assert fetch.urls == []


def test_hs256_signed_with_the_public_key_as_secret_is_rejected(issue, verifier, signing_key):
    header, payload = _parts(issue())
    # The algorithm-confusion forgery: the issuer's public key (which anyone can fetch) as an HMAC secret.
    secret = OctKey.import_key(json.dumps(signing_key.public_jwk, sort_keys=True).encode())
    forged = jws.serialize_compact({**header, "alg": "HS256"}, json.dumps(payload), secret, algorithms=["HS256"])
    assert _reason(verifier, forged + "~") == "unsupported_alg"
    with pytest.raises(ValueError):
        Verifier(verifier.issuer, "acme", allowed_algs=("ES256", "HS256"))
    with pytest.raises(ValueError):
        Verifier(verifier.issuer, "acme", allowed_algs=("none",))


def test_a_status_list_token_is_not_accepted_as_an_attestation(issue, verifier):
    payload = _parts(issue())[1]
    other_type = signing.sign_status_list(payload)  # the broker's own key, but typ statuslist+jwt
    assert _reason(verifier, other_type + "~") == "wrong_type"


def test_a_token_signed_by_a_foreign_key_is_rejected(issue, verifier, signing_key):
    payload = _parts(issue())[1]
    foreign = ECKey.generate_key("P-256", private=True)

    def sign(kid):
        header = {"alg": "ES256", "typ": "dc+sd-jwt", "kid": kid}
        return jws.serialize_compact(header, json.dumps(payload), foreign, algorithms=["ES256"]) + "~"

    assert _reason(verifier, sign(signing_key.kid)) == "bad_signature"  # our kid, someone else's key
    assert _reason(verifier, sign(foreign.thumbprint())) == "unknown_kid"


def test_a_header_naming_another_algorithm_than_the_keys_is_rejected(issue, verifier, now):
    signing.signing_key_rotate(alg="Ed25519", now=now)
    header, payload = _parts(issue())
    assert header["alg"] == "Ed25519"
    header_b64, payload_b64, signature = issue().rstrip("~").split(".")
    confused = f"{_b64({**header, 'alg': 'ES256'})}.{payload_b64}.{signature}~"
    assert _reason(verifier, confused) == "bad_signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "~",
        "not a token~",
        "a.b.c~",
        "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",  # no `~`
        "x" * 20000 + "~",
    ],
)
def test_malformed_tokens_are_malformed(verifier, token):
    assert _reason(verifier, token) == "malformed"


def test_disclosures_or_a_key_binding_jwt_are_refused(issue, verifier):
    token = issue()
    assert _reason(verifier, token + "WyJzYWx0IiwgImFnZSIsIDE3XQ~") == "malformed"
    assert _reason(verifier, token + "eyJhbGciOiJFUzI1NiJ9.e30.c2ln") == "malformed"


# --- keys ------------------------------------------------------------------------------------------------------


def test_after_rotation_a_new_kid_costs_exactly_one_jwks_refetch_and_old_tokens_still_verify(
    issue, verifier, fetch, now
):
    old = issue()
    verifier.verify(old)
    assert fetch.jwks == 1

    signing.signing_key_rotate(now=now)
    new = issue()
    assert _parts(new)[0]["kid"] != _parts(old)[0]["kid"]

    assert verifier.verify(new)["aud"] == "acme"
    assert fetch.jwks == 2
    assert verifier.verify(old)["aud"] == "acme"  # the retiring key is still published, and cached here
    assert verifier.verify(new)["aud"] == "acme"
    assert fetch.jwks == 2


def test_an_unknown_kid_refetches_once_then_fails_and_refetches_are_rate_limited(issue, verifier, fetch, clock):
    verifier.verify(issue())
    payload = _parts(issue())[1]
    stranger = ECKey.generate_key("P-256", private=True)
    header = {"alg": "ES256", "typ": "dc+sd-jwt", "kid": stranger.thumbprint()}
    forged = jws.serialize_compact(header, json.dumps(payload), stranger, algorithms=["ES256"]) + "~"

    assert _reason(verifier, forged) == "unknown_kid"
    assert fetch.jwks == 2  # the first fetch, then one refetch for the unknown kid
    for _ in range(5):
        assert _reason(verifier, forged) == "unknown_kid"
    assert fetch.jwks == 2  # forged kids do not make us hammer the JWKS
    clock.advance(31)
    assert _reason(verifier, forged) == "unknown_kid"
    assert fetch.jwks == 3


def test_keys_unavailable_when_the_jwks_cannot_be_fetched_and_not_retried_at_once(issue, public_url, fetch, clock):
    token = issue()
    nowhere = Verifier(public_url, "acme", jwks_uri=f"{public_url}/no-such-jwks.json", http=fetch, clock=clock)
    assert _reason(nowhere, token) == "keys_unavailable"
    assert _reason(nowhere, token) == "keys_unavailable"
    assert len(fetch.urls) == 1  # a down broker is not asked again for every token
    clock.advance(6)
    assert _reason(nowhere, token) == "keys_unavailable"
    assert len(fetch.urls) == 2
    local_file = Verifier(public_url, "acme", jwks_uri="file:///etc/hostname")
    assert _reason(local_file, token) == "keys_unavailable"


# --- revocation ------------------------------------------------------------------------------------------------


def test_a_revoked_token_is_reported_revoked_and_its_neighbour_is_not(issue, verifier, now):
    revoked, kept = issue(), issue()
    _revoke(revoked, now)
    assert _reason(verifier, revoked) == "revoked"
    assert verifier.verify(kept)["aud"] == "acme"


def test_the_status_list_is_cached_for_its_ttl_then_fetched_again(issue, verifier, fetch, clock, settings, now):
    settings.IDBROKER_STATUS_LIST_TTL_SECONDS = 120
    first, second = issue(), issue()
    verifier.verify(first)
    assert fetch.lists == 1

    _revoke(second, now)
    clock.advance(119)
    assert verifier.verify(second)["aud"] == "acme"  # the cached list predates the revocation
    assert fetch.lists == 1
    clock.advance(2)
    assert _reason(verifier, second) == "revoked"
    assert fetch.lists == 2
    assert verifier.verify(first)["aud"] == "acme"
    assert fetch.lists == 2


def test_a_genuine_list_served_at_another_lists_uri_is_refused(issue, verifier, public_url, fetch, settings):
    token = issue()
    own_uri = _parts(token)[1]["status"]["status_list"]["uri"]
    other = StatusList.objects.create(size=settings.IDBROKER_STATUS_LIST_SIZE)  # same size: the index fits

    def swapped(url):
        return fetch(f"{public_url}/status-lists/{other.pk}" if url == own_uri else url)

    replaying = Verifier(public_url, "acme", http=swapped)
    assert _reason(replaying, token) == "status_unavailable"
    assert fetch.lists == 1  # it did fetch, and refused what it got


def test_an_attestation_served_as_a_status_list_is_refused(issue, public_url, fetch):
    token = issue()
    own_uri = _parts(token)[1]["status"]["status_list"]["uri"]

    def wrong_body(url):
        return (token.rstrip("~").encode(), {}) if url == own_uri else fetch(url)

    assert _reason(Verifier(public_url, "acme", http=wrong_body), token) == "status_unavailable"


def test_an_unreachable_status_list_fails_closed_even_with_a_stale_copy(issue, public_url, fetch, clock):
    token = issue()
    down = {"now": False}
    failed = []

    def flaky(url):
        if down["now"] and "/status-lists/" in url:
            failed.append(url)
            raise OSError("connection refused")
        return fetch(url)

    verifier = Verifier(public_url, "acme", http=flaky, clock=clock)
    verifier.verify(token)
    down["now"] = True
    clock.advance(301)
    assert _reason(verifier, token) == "status_unavailable"
    assert _reason(verifier, token) == "status_unavailable"
    assert len(failed) == 1  # backs off instead of retrying for every token
    assert verifier.verify(token, check_status=False)["aud"] == "acme"
    down["now"] = False
    clock.advance(6)
    assert verifier.verify(token)["aud"] == "acme"


# --- the default fetch -----------------------------------------------------------------------------------------


def test_the_default_fetch_refuses_anything_but_http(public_url):
    for url in ("file:///etc/hostname", "ftp://example.com/x", "/relative", "data:,hello"):
        with pytest.raises(ValueError):
            urllib_fetch(url)
    body, headers = urllib_fetch(f"{public_url}/.well-known/jwks.json")
    assert json.loads(body)["keys"] == [] and "max-age=300" in headers["cache-control"]


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/jwks.json", "file:///etc/hostname"])
def test_the_default_fetch_refuses_a_redirect_off_http(location):
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(302)
            self.send_header("Location", location)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises((ValueError, OSError), match="only http|not allowed"):
            urllib_fetch(f"http://127.0.0.1:{server.server_port}/jwks.json")
    finally:
        server.shutdown()
        server.server_close()
