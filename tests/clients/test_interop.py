"""SPEC 4: "any standard verifier can read it". Attestations issued by the broker verify with independent
implementations: the OpenWallet Foundation SD-JWT reference library (`sd-jwt`, on jwcrypto) and PyJWT (on
`cryptography`), with keys fetched from the live broker's JWKS. Neither shares code with the broker or with
clients/python (which use joserfc)."""

from __future__ import annotations

import base64
import json
import urllib.request
import zlib
from datetime import timedelta

import jwt
import pytest
from idbroker_verifier import VerificationError, Verifier
from jwcrypto.common import JWException
from jwcrypto.jwk import JWKSet
from jwt.algorithms import OKPAlgorithm
from sd_jwt.verifier import SDJWTVerifier

from attestations import signing
from attestations.models import Attestation
from attestations.services import attestation_revoke

pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the live server's http URL
        return response.read()


def _jwks(public_url: str) -> dict:
    return json.loads(_get(f"{public_url}/.well-known/jwks.json"))


def _sd_jwt_verify(token: str, public_url: str) -> dict:
    """The reference library's verifier; it asks us for the issuer's key given the unverified `iss` and header."""
    keys = JWKSet.from_json(json.dumps(_jwks(public_url)))

    def issuer_key(iss, header):
        assert iss == public_url, "only the broker's own keys"
        assert header["typ"] == "dc+sd-jwt"
        return keys.get_key(header["kid"])

    return SDJWTVerifier(token, issuer_key).get_verified_payload()


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_the_sd_jwt_reference_library_reads_what_our_verifier_reads(public_url, issue, now, alg):
    if alg != "ES256":
        signing.signing_key_rotate(alg=alg, now=now)
    token = issue(["age_over_18", "eligible_jurisdiction"], nonce="n-1")
    assert jwt.get_unverified_header(token[:-1])["alg"] == alg

    payload = _sd_jwt_verify(token, public_url)

    assert payload == Verifier(public_url, "acme").verify(token, nonce="n-1")
    assert payload["age_over_18"] is True and payload["eligible_jurisdiction"]["eligible"] is True


def test_the_sd_jwt_reference_library_rejects_a_tampered_token(public_url, issue):
    header, _, signature = issue().rstrip("~").split(".")
    body = base64.urlsafe_b64encode(json.dumps({"iss": public_url, "age_over_18": True}).encode()).rstrip(b"=")
    with pytest.raises(JWException):
        _sd_jwt_verify(f"{header}.{body.decode()}.{signature}~", public_url)


def test_the_sd_jwt_reference_library_skips_exp_so_providers_must_check_it(public_url, issue, now):
    # sd-jwt 0.10.4 `_verify_sd_jwt`: "TODO: Check exp/nbf/iat". An expired token passes its signature check; the
    # documented steps (and our verifier, and PyJWT) reject it.
    token = issue(at=now - timedelta(hours=2))
    payload = _sd_jwt_verify(token, public_url)
    assert payload["exp"] < now.timestamp()
    with pytest.raises(VerificationError, match="expired"):
        Verifier(public_url, "acme").verify(token)


def _pyjwt_decode(token: str, public_url: str, audience: str = "acme", **options) -> dict:
    jwt_part = token.removesuffix("~")
    assert "~" not in jwt_part
    header = jwt.get_unverified_header(jwt_part)
    assert header["typ"] == "dc+sd-jwt"
    key = jwt.PyJWKClient(f"{public_url}/.well-known/jwks.json").get_signing_key_from_jwt(jwt_part)
    return jwt.decode(
        jwt_part,
        key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=public_url,
        leeway=60,
        options={"require": ["iss", "aud", "exp", "nbf", "iat"], **options},
    )


def test_pyjwt_verifies_the_part_before_the_tilde_as_a_jwt(public_url, issue):
    token = issue(["age_over_18", "verified_human"], nonce="n-2")
    claims = _pyjwt_decode(token, public_url)
    assert claims == Verifier(public_url, "acme").verify(token, nonce="n-2")
    assert claims["nonce"] == "n-2" and claims["verified_human"] is True


def test_pyjwt_rejects_what_our_verifier_rejects(public_url, issue, now):
    with pytest.raises(jwt.InvalidAudienceError):
        _pyjwt_decode(issue(), public_url, audience="globex")
    with pytest.raises(jwt.ExpiredSignatureError):
        _pyjwt_decode(issue(at=now - timedelta(hours=2)), public_url)
    header, payload, signature = issue().rstrip("~").split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        _pyjwt_decode(f"{header}.{payload}.{signature[:-4]}AAAA~", public_url)


def test_pyjwt_verifies_ed25519_once_the_fully_specified_alg_is_registered(public_url, issue, now):
    # RFC 9864 names the algorithm "Ed25519"; PyJWT 2.x only knows the older polymorphic "EdDSA", so a provider
    # on PyJWT registers the name (same OKP verification underneath). ES256 is the baseline that needs nothing.
    signing.signing_key_rotate(alg="Ed25519", now=now)
    token = issue()
    jwt_part = token.removesuffix("~")
    kid = jwt.get_unverified_header(jwt_part)["kid"]
    jwk = next(k for k in _jwks(public_url)["keys"] if k["kid"] == kid)
    verifier = jwt.PyJWS(algorithms=[])
    verifier.register_algorithm("Ed25519", OKPAlgorithm())
    payload = json.loads(verifier.decode(jwt_part, jwt.PyJWK(jwk, algorithm="EdDSA").key, algorithms=["Ed25519"]))
    assert payload == Verifier(public_url, "acme").verify(token)


def _unverified(token: str) -> dict:
    return jwt.decode(token.removesuffix("~"), options={"verify_signature": False})


def test_pyjwt_and_the_stdlib_read_the_same_revocation_bit_as_our_verifier(public_url, issue, now):
    revoked, kept = issue(), issue()
    attestation_revoke(attestation=Attestation.objects.get(jti=_unverified(revoked)["jti"]), now=now)
    reference = _unverified(revoked)["status"]["status_list"]

    status_jwt = _get(reference["uri"]).decode()
    assert jwt.get_unverified_header(status_jwt)["typ"] == "statuslist+jwt"
    key = jwt.PyJWKClient(f"{public_url}/.well-known/jwks.json").get_signing_key_from_jwt(status_jwt)
    body = jwt.decode(status_jwt, key.key, algorithms=["ES256"], options={"require": ["sub", "iat", "exp"]})
    assert body["sub"] == reference["uri"] and body["status_list"]["bits"] == 1
    lst = body["status_list"]["lst"]
    packed = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))

    def bit(token):
        idx = _unverified(token)["status"]["status_list"]["idx"]
        return (packed[idx // 8] >> (idx % 8)) & 1

    assert (bit(revoked), bit(kept)) == (1, 0)
    ours = Verifier(public_url, "acme")
    with pytest.raises(VerificationError, match="revoked"):
        ours.verify(revoked)
    assert ours.verify(kept)["aud"] == "acme"
