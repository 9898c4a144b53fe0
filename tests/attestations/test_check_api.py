"""POST /api/v1/attestations/check (SPEC 2.4): genuine tokens pass, every forgery is a plain `valid: false`."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from attestations import services, signing
from attestations.models import Attestation, SigningKey
from tests import journey
from tests.attestations.support import FACTS, b64json, b64url, check, issue, split

pytestmark = pytest.mark.django_db

NOT_VALID_KEYS = {"valid", "reason", "claims"}


def refused(response) -> str:
    """The reason of a refusal, after checking it is a refusal that reveals nothing."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == NOT_VALID_KEYS
    assert body["valid"] is False and body["claims"] == {}, body
    return body["reason"]


def refused_because(handle, token) -> str:
    """The check API's answer is the one uniform refusal (`invalid`, SPEC 2.4: no oracle); return the reason the
    signing layer found inside, so each forgery test still pins the step that caught it."""
    assert refused(check(handle, token)) == services.INVALID
    try:
        signing.verify_attestation(token, now=datetime.now(UTC), audience=handle.provider.client_id)
    except signing.TokenInvalid as exc:
        return exc.reason
    pytest.fail("the signing layer accepted a token the check API refused")


def resign(token: str, *, header: dict | None = None, payload: dict | None = None, key=None, alg="ES256") -> str:
    """The token's header and payload, edited, signed with `key` (someone else's key: we never have ours)."""
    original_header, original_payload, _ = split(token)
    body = json.dumps(payload if payload is not None else original_payload).encode()
    return jws.serialize_compact(header or original_header, body, key, algorithms=[alg]) + "~"


# --- Genuine tokens ------------------------------------------------------------------------------------------------


def test_a_genuine_token_is_valid_and_returns_its_predicates_and_subject(acme, signing_key, now):
    token = issue(acme, now=now, claims=["age_over_18", "eligible_jurisdiction", "verified_human"])
    response = check(acme, token)
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True and body["reason"] == "ok"
    claims = body["claims"]
    assert set(claims) == {"sub", "exp", "age_over_18", "eligible_jurisdiction", "verified_human"}
    assert claims["age_over_18"] is True and claims["verified_human"] is True
    assert claims["eligible_jurisdiction"] == {"policy": "export-tier1", "version": 1, "eligible": True}
    _, payload, _ = split(token)
    assert claims["sub"] == payload["sub"] == services.pairwise_sub("person-1", "acme")
    assert claims["exp"] == payload["exp"] == int((now + timedelta(minutes=15)).timestamp())


def test_a_false_predicate_is_stated_as_false_in_a_valid_answer(acme, signing_key, now):
    minor = replace(FACTS, date_of_birth=date(now.year - 17, 1, 1))  # 17 all year long
    body = check(acme, issue(acme, now=now, claims=["age_over_18", "age_over_21"], facts=minor)).json()
    assert body["valid"] is True and body["reason"] == "ok"
    assert set(body["claims"]) == {"sub", "exp", "age_over_18", "age_over_21"}
    assert body["claims"]["age_over_18"] is False and body["claims"]["age_over_21"] is False


@pytest.mark.django_db(transaction=True)  # the journey's tasks run on commit
def test_a_token_from_the_full_journey_is_valid_at_the_check_api(acme, signing_key):
    _, final = journey.complete(acme, ["age_over_18", "document_valid"], nonce="n-journey")
    assert final["status"] == "completed"
    body = check(acme, final["attestation"], nonce="n-journey").json()
    assert body["valid"] is True and body["reason"] == "ok"
    assert body["claims"]["age_over_18"] is True and body["claims"]["document_valid"] is True


def test_a_token_signed_with_an_ed25519_key_verifies_too(acme, db, now):
    key = signing.signing_key_create(alg="Ed25519", now=now)
    token = issue(acme, now=now)
    header, _, _ = split(token)
    assert header == {"alg": "Ed25519", "typ": "dc+sd-jwt", "kid": key.kid}
    body = check(acme, token).json()
    assert body["valid"] is True and body["claims"]["age_over_18"] is True


def test_a_token_verifies_independently_with_jwcrypto_against_the_published_jwks(client, acme, signing_key, now):
    token = issue(acme, now=now, nonce="n-1")
    keys = jwcrypto_jwk.JWKSet.from_json(client.get("/.well-known/jwks.json").content)
    header, _, _ = split(token)
    published = keys.get_key(header["kid"])
    assert published is not None and not published.has_private
    verifier = jwcrypto_jws.JWS()
    verifier.deserialize(token.removesuffix("~"))
    verifier.verify(published, alg="ES256")
    assert verifier.jose_header["typ"] == "dc+sd-jwt"
    payload = json.loads(verifier.payload)
    assert payload["aud"] == "acme" and payload["nonce"] == "n-1" and payload["age_over_18"] is True
    # And the same library refuses the token once a single payload byte changes.
    head, body, signature = token.removesuffix("~").split(".")
    tampered = jwcrypto_jws.JWS()
    tampered.deserialize(f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}")
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature):
        tampered.verify(published, alg="ES256")


# --- Forgeries -----------------------------------------------------------------------------------------------------


def test_a_payload_changed_after_signing_is_a_bad_signature(acme, signing_key, now):
    token = issue(acme, now=now, claims=["age_over_21"], subject="person-1")
    header, payload, signature = split(token)
    for edit in ({"age_over_21": not payload["age_over_21"]}, {"aud": "acme", "exp": payload["exp"] + 86400}):
        forged = f"{b64json(header)}.{b64json({**payload, **edit})}.{signature}~"
        assert refused_because(acme, forged) == "bad_signature"


def test_a_signature_from_another_token_does_not_transfer(acme, signing_key, now):
    first, second = issue(acme, now=now, subject="person-1"), issue(acme, now=now, subject="person-2")
    spliced = f"{first.split('.')[0]}.{first.split('.')[1]}.{second.split('.')[2]}"
    assert refused_because(acme, spliced) == "bad_signature"


def test_alg_none_is_rejected(acme, signing_key, now):
    header, payload, _ = split(issue(acme, now=now))
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64json({**header, 'alg': alg})}.{b64json(payload)}.~"
        assert refused_because(acme, unsigned) == "unsupported_alg"
    headerless = f"{b64json({k: v for k, v in header.items() if k != 'alg'})}.{b64json(payload)}.~"
    assert refused_because(acme, headerless) in {"unsupported_alg", "malformed"}


def test_hs256_keyed_with_the_public_key_is_rejected(acme, signing_key, now):
    header, payload, _ = split(issue(acme, now=now))
    # The key-confusion attack: HMAC with the published verification key as the secret. Built by hand, since
    # well-behaved JOSE libraries refuse to produce it.
    public = ECKey.import_key(signing_key.public_jwk)
    for secret in (public.as_pem(private=False), json.dumps(signing_key.public_jwk).encode()):
        signing_input = f"{b64json({**header, 'alg': 'HS256'})}.{b64json(payload)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert refused_because(acme, f"{signing_input}.{b64url(mac)}~") == "unsupported_alg"


def test_a_key_we_never_published_is_an_unknown_kid(acme, signing_key, now):
    token = issue(acme, now=now)
    header, _, _ = split(token)
    stranger = ECKey.generate_key("P-256", private=True)
    own_kid = resign(token, header={**header, "kid": stranger.thumbprint()}, key=stranger)
    assert refused_because(acme, own_kid) == "unknown_kid"
    no_kid = resign(token, header={k: v for k, v in header.items() if k != "kid"}, key=stranger)
    assert refused_because(acme, no_kid) == "unknown_kid"
    # The stranger claiming our kid gets as far as the signature, and fails there.
    impostor = resign(token, key=stranger)
    assert refused_because(acme, impostor) == "bad_signature"


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # we sign an EdDSA forgery on purpose
def test_a_published_kid_with_another_algorithm_is_an_unknown_kid(acme, signing_key, now):
    ed25519 = signing.signing_key_create(alg="Ed25519", now=now + timedelta(seconds=1))
    token = issue(acme, now=now)  # signed by the newest key, the Ed25519 one
    header, _, _ = split(token)
    assert header["kid"] == ed25519.kid
    stranger = ECKey.generate_key("P-256", private=True)
    swapped = resign(token, header={**header, "alg": "ES256"}, key=stranger)
    assert refused_because(acme, swapped) == "unknown_kid"
    eddsa = resign(token, header={**header, "alg": "EdDSA"}, key=OKPKey.generate_key("Ed25519"), alg="EdDSA")
    assert refused_because(acme, eddsa) == "unsupported_alg"


def test_a_broker_signed_jwt_of_another_type_is_rejected(client, acme, signing_key, now):
    token = issue(acme, now=now)
    _, payload, _ = split(token)
    status_uri = payload["status"]["status_list"]["uri"]
    # A status list token is signed by the same key and is public: it must not pass as an attestation.
    status_token = client.get(status_uri.removeprefix("http://testserver")).content.decode()
    assert jws.extract_compact(status_token.encode()).headers()["typ"] == "statuslist+jwt"
    assert refused_because(acme, status_token + "~") == "wrong_type"
    # Nor does an attestation payload signed under the status-list type.
    assert refused_because(acme, signing.sign_status_list(payload) + "~") == "wrong_type"


def test_an_expired_token_is_rejected(acme, signing_key, now):
    token = issue(acme, now=now - timedelta(hours=2))  # 15-minute lifetime, long gone
    assert refused(check(acme, token)) == "expired"


def test_a_token_that_is_not_yet_valid_is_rejected(acme, signing_key, now):
    token = issue(acme, now=now + timedelta(hours=3))  # nbf is the issue hour, two hours ahead at least
    assert refused(check(acme, token)) == "not_yet_valid"


def test_expiry_and_not_before_allow_one_minute_of_clock_skew_and_no_more(acme, signing_key, now):
    token = issue(acme, now=now)
    _, payload, _ = split(token)
    exp, nbf = payload["exp"], payload["nbf"]

    def reason_at(ts):
        at = datetime.fromtimestamp(ts, tz=UTC)
        return services.attestation_check(provider=acme.provider, token=token, now=at).reason

    assert reason_at(exp + 60) == "ok"
    assert reason_at(exp + 61) == "expired"
    assert reason_at(nbf - 60) == "ok"
    assert reason_at(nbf - 61) == "not_yet_valid"


def test_a_token_addressed_to_globex_tells_acme_nothing(acme, globex, signing_key, now):
    token = issue(globex, now=now)
    assert check(acme, token).json() == {"valid": False, "reason": "invalid", "claims": {}}
    assert check(globex, token).json()["valid"] is True


def test_globex_tokens_live_revoked_or_expired_get_acme_the_same_answer_as_a_forgery_or_garbage(
    acme, globex, signing_key, now
):
    genuine = issue(globex, now=now, subject="person-1")
    revoked = issue(globex, now=now, subject="person-2")
    assert services.attestation_revoke(attestation=Attestation.objects.get(jti=split(revoked)[1]["jti"]), now=now)
    expired = issue(globex, now=now - timedelta(hours=2), subject="person-3")
    # Forged: acme's own audience and a fresh lifetime, signed by a stranger under our kid.
    _, payload, _ = split(issue(acme, now=now, subject="person-4"))
    forged = resign(genuine, payload={**payload, "jti": "forged"}, key=ECKey.generate_key("P-256", private=True))
    garbage = "not-a-token~"
    # Globex itself is told the truth about its own tokens...
    assert [check(globex, t).json()["reason"] for t in (genuine, revoked, expired)] == ["ok", "revoked", "expired"]
    # ...acme, which was never given them, is told exactly what it is told about a forgery or garbage.
    answers = []
    for token in (genuine, revoked, expired, forged, garbage):
        response = check(acme, token)
        answers.append((response.status_code, sorted(response.headers.items()), response.content))
    assert all(answer == answers[0] for answer in answers), answers
    assert json.loads(answers[0][2]) == {"valid": False, "reason": "invalid", "claims": {}}


def test_the_audience_is_judged_only_after_the_signature_so_a_stranger_pays_the_same_verification(
    acme, globex, signing_key, now
):
    token = issue(globex, now=now)
    head, body, signature = token.removesuffix("~").split(".")
    broken = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}~"
    for candidate, reason in ((token, "wrong_audience"), (broken, "bad_signature")):
        with pytest.raises(signing.TokenInvalid) as caught:
            signing.verify_attestation(candidate, now=now, audience="acme")
        assert caught.value.reason == reason
    # And the audience comes before the lifetime: an expired token of globex's is not "expired" to acme.
    old = issue(globex, now=now - timedelta(hours=2), subject="person-2")
    with pytest.raises(signing.TokenInvalid) as caught:
        signing.verify_attestation(old, now=now, audience="acme")
    assert caught.value.reason == "wrong_audience"


@pytest.mark.parametrize(
    "garbage",
    [
        "not-a-token",
        "~",
        "~~",
        "a.b.c~",
        "a.b~",
        "a.b.c.d.e~",
        "....~",
        "x" * 500 + "~",
        "é.é.é~",
        "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",  # a JWS without the SD-JWT `~`
        "eyJhbGciOiJFUzI1NiJ9.e30.AAAA~",
        "null~",
        "e30.e30.e30~",
    ],
)
def test_garbage_is_malformed_not_a_server_error(acme, signing_key, garbage):
    assert refused_because(acme, garbage) in {"malformed", "unsupported_alg", "wrong_type"}


@pytest.mark.parametrize(
    "header",
    [
        [],
        "dc+sd-jwt",
        {"alg": ["ES256"], "typ": "dc+sd-jwt", "kid": "k"},
        {"alg": {"ES256": 1}, "typ": "dc+sd-jwt", "kid": "k"},
        {"alg": "ES256", "typ": ["dc+sd-jwt"], "kid": "k"},
        {"alg": "ES256", "typ": "dc+sd-jwt", "kid": ["k"]},
        {"alg": "ES256", "typ": "dc+sd-jwt", "kid": {"k": 1}},
    ],
)
def test_a_header_of_the_wrong_shape_is_refused_not_a_server_error(acme, signing_key, header):
    token = f"{b64json(header)}.{b64json({'aud': 'acme'})}.{b64url(b'x' * 64)}~"
    assert refused_because(acme, token) in {"malformed", "unsupported_alg", "wrong_type", "unknown_kid"}


def test_a_huge_token_is_a_problem_details_400(acme, signing_key, now):
    genuine = issue(acme, now=now)
    for huge in ("a" * 8193, genuine + "x" * (8193 - len(genuine))):
        response = check(acme, huge)
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "invalid_request" and "token" in body["errors"]
    # The service refuses the same on its own, whatever reaches it.
    assert services.attestation_check(provider=acme.provider, token="a" * 8193, now=now).reason == "invalid"


@pytest.mark.parametrize("tail", ["xyz~", "WyJzYWx0IiwiYWdlIiwxOF0~", "~", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"])
def test_disclosures_or_key_binding_appended_to_a_genuine_token_make_it_malformed(acme, signing_key, now, tail):
    token = issue(acme, now=now)
    assert refused_because(acme, token + tail) == "malformed"
    assert refused_because(acme, token.removesuffix("~")) == "malformed"  # and the `~` is required


def test_a_revoked_token_is_reported_revoked(acme, signing_key, now):
    token = issue(acme, now=now)
    _, payload, _ = split(token)
    assert Attestation.objects.filter(jti=payload["jti"]).update(revoked_at=now) == 1
    assert refused(check(acme, token)) == "revoked"


def test_a_revocation_takes_effect_at_once_even_after_a_check(acme, signing_key, now):
    token = issue(acme, now=now)
    other = issue(acme, now=now, subject="person-2")
    assert check(acme, token).json()["valid"] is True  # the status list is now cached as "nothing revoked"
    _, payload, _ = split(token)
    assert services.attestation_revoke(attestation=Attestation.objects.get(jti=payload["jti"]), now=now)
    assert refused(check(acme, token)) == "revoked"
    assert check(acme, other).json()["valid"] is True  # its neighbour in the same list is untouched


def test_a_nonce_mismatch_is_reported_when_a_nonce_is_sent(acme, signing_key, now):
    token = issue(acme, now=now, nonce="expected-nonce")
    assert refused(check(acme, token, nonce="other-nonce")) == "nonce_mismatch"
    assert check(acme, token, nonce="expected-nonce").json()["valid"] is True
    assert check(acme, token).json()["valid"] is True  # no nonce sent: not checked
    without = issue(acme, now=now, subject="person-2")
    assert refused(check(acme, without, nonce="expected-nonce")) == "nonce_mismatch"


def test_a_retired_key_no_longer_verifies(acme, signing_key, now):
    token = issue(acme, now=now)
    signing.signing_key_rotate(now=now)
    assert SigningKey.objects.filter(kid=signing_key.kid).update(status=SigningKey.Status.RETIRED) == 1
    assert refused_because(acme, token) == "unknown_kid"
