"""Offline verification as a provider would do it: keys from the broker's JWKS, nothing else asked of it.

Steps (SPEC 2.4): 1. split the SD-JWT (`<jws>~`, no disclosures); 2. read the header, require `typ: dc+sd-jwt` and an
allowed `alg`; 3. find the key by `kid` in the JWKS; 4. verify the signature; 5. check `iss`, `aud`, `exp`/`nbf`
and `nonce`.
"""

from __future__ import annotations

import json
import time
import urllib.request

from joserfc import jws
from joserfc.jwk import KeySet

ALLOWED_ALGS = ["ES256", "Ed25519"]


class VerificationFailed(Exception):
    pass


def fetch_json(url: str, *, headers: dict | None = None, data: bytes | None = None, timeout: float = 5.0) -> dict:
    if not url.startswith(("https://", "http://")):
        raise ValueError("only http(s) URLs")
    req = urllib.request.Request(url, data=data, headers={"Accept": "application/json", **(headers or {})})  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        return json.loads(response.read())


def verify(
    token: str, *, issuer: str, audience: str, jwks: dict, nonce: str | None = None, now: float | None = None
) -> dict:
    jwt_part, sep, rest = token.partition("~")
    if not sep or rest:
        raise VerificationFailed("not an SD-JWT without disclosures")
    header = jws.extract_compact(jwt_part.encode()).headers()
    if header.get("typ") != "dc+sd-jwt" or header.get("alg") not in ALLOWED_ALGS:
        raise VerificationFailed("wrong typ or alg")
    keys = KeySet.import_key_set(jwks)
    payload = json.loads(jws.deserialize_compact(jwt_part, keys, algorithms=ALLOWED_ALGS).payload)
    now = time.time() if now is None else now
    if payload.get("iss") != issuer:
        raise VerificationFailed("wrong issuer")
    if payload.get("aud") != audience:
        raise VerificationFailed("wrong audience")
    if not payload.get("nbf", 0) - 60 <= now <= payload["exp"] + 60:
        raise VerificationFailed("expired or not yet valid")
    if nonce is not None and payload.get("nonce") != nonce:
        raise VerificationFailed("nonce mismatch")
    return payload
