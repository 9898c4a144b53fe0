"""The one home for attestation signing keys: generate, rotate, publish, sign, verify.

Tokens are SD-JWT VCs without disclosures (SPEC 4): a compact JWS with `typ: dc+sd-jwt`, followed by `~`.
Private keys are stored only sealed (AES-256-GCM under a per-key data key wrapped by the master key); `kid` is the
RFC 7638 JWK thumbprint, so anyone can recompute it from the published key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cachetools import TTLCache
from django.conf import settings
from django.db import transaction
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, OKPKey

from audit.services import audit_record
from broker import caches
from verification import crypto

from .models import Attestation, SigningKey

TOKEN_TYPE = "dc+sd-jwt"
STATUS_LIST_TYPE = "statuslist+jwt"
TREE_HEAD_TYPE = "sth+jwt"
ALGORITHMS = {"ES256": ("EC", "P-256"), "Ed25519": ("OKP", "Ed25519")}
CLOCK_SKEW = timedelta(seconds=60)


class TokenInvalid(Exception):
    """A token failed verification. `reason` is a stable code shown to providers."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _generate(alg: str):
    kty, curve = ALGORITHMS[alg]
    return (ECKey if kty == "EC" else OKPKey).generate_key(curve, private=True)


def signing_key_create(*, alg: str | None = None, now: datetime) -> SigningKey:
    alg = alg or settings.IDBROKER_SIGNING_ALG
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {sorted(ALGORITHMS)}")
    key = _generate(alg)
    kid = key.thumbprint()
    sealed, wrapped = crypto.seal(key.as_pem(private=True), purpose="signing-key", aad=kid.encode())
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    row = SigningKey.objects.create(
        kid=kid, alg=alg, public_jwk=public, private_sealed=sealed, private_wrapped_key=wrapped, created_at=now
    )
    audit_record(event="key.created", kid=kid, now=now)
    return row


@transaction.atomic
def signing_key_rotate(*, alg: str | None = None, now: datetime) -> SigningKey:
    """New key active; the old one retires once the last token it signed has expired (it stays in the JWKS)."""
    for old in SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE):
        last = Attestation.objects.filter(kid=old.kid).order_by("-expires_at").values_list("expires_at", flat=True)
        old.status = SigningKey.Status.RETIRING
        old.retire_after = max([now, *last[:1]])
        old.save(update_fields=["status", "retire_after"])
    new = signing_key_create(alg=alg, now=now)
    audit_record(event="key.rotated", kid=new.kid, now=now)
    return new


def signing_keys_retire_expired(*, now: datetime) -> int:
    """Retire keys whose last attestation has expired, except keys that signed a tree head of the transparency log:
    deletion receipts carry those heads and are kept for good, so their key stays in the JWKS (retiring, never
    signing again). One key per rotation: the JWKS stays small."""
    from audit.models import TreeHead

    receipt_keys = TreeHead.objects.exclude(kid="").values("kid")
    return (
        SigningKey.objects.filter(status=SigningKey.Status.RETIRING, retire_after__lte=now)
        .exclude(kid__in=receipt_keys)
        .update(status=SigningKey.Status.RETIRED)
    )


def jwks() -> dict:
    published = SigningKey.objects.filter(status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.RETIRING])
    return {"keys": [row.public_jwk for row in published.order_by("created_at")]}


@lru_cache(maxsize=16)
def _private_key(kid: str, alg: str, sealed: bytes, wrapped: bytes):
    pem = crypto.unseal(sealed, wrapped, purpose="signing-key", aad=kid.encode())
    return (ECKey if ALGORITHMS[alg][0] == "EC" else OKPKey).import_key(pem)


@lru_cache(maxsize=64)
def _public_key_cached(kid: str, alg: str, jwk_json: str):
    return (ECKey if ALGORITHMS[alg][0] == "EC" else OKPKey).import_key(json.loads(jwk_json))


def _public_key(row: SigningKey):
    return _public_key_cached(row.kid, row.alg, json.dumps(row.public_jwk, sort_keys=True))


_key_cache: TTLCache = TTLCache(maxsize=64, ttl=60)
caches.register("attestations.published_keys", _key_cache.clear)


def _published_key(kid: str, alg: str) -> SigningKey | None:
    """Published (active or retiring) key by kid, remembered for a minute per process. A key retired meanwhile
    keeps verifying here for at most that minute; retirement waits for its last token to expire anyway."""
    row = _key_cache.get((kid, alg))
    if row is None:
        row = SigningKey.objects.filter(kid=kid, alg=alg).exclude(status=SigningKey.Status.RETIRED).first()
        if row is not None:
            _key_cache[(kid, alg)] = row
    return row


@dataclass(frozen=True)
class Signed:
    token: str
    kid: str


def _sign(payload: dict, typ: str) -> Signed:
    row = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).order_by("-created_at").first()
    if row is None:
        raise RuntimeError("no active signing key: run `manage.py create_signing_key`")
    key = _private_key(row.kid, row.alg, bytes(row.private_sealed), bytes(row.private_wrapped_key))
    header = {"alg": row.alg, "typ": typ, "kid": row.kid}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return Signed(token=jws.serialize_compact(header, body, key, algorithms=[row.alg]), kid=row.kid)


def sign_attestation(payload: dict) -> Signed:
    signed = _sign(payload, TOKEN_TYPE)
    # SD-JWT compact form: issuer-signed JWT, then `~`-separated disclosures (none here), then a final `~`.
    return Signed(token=signed.token + "~", kid=signed.kid)


def sign_status_list(payload: dict) -> str:
    """A Status List Token (IETF OAuth Token Status List): a JWT with `typ: statuslist+jwt`."""
    return _sign(payload, STATUS_LIST_TYPE).token


def sign_tree_head(payload: dict) -> Signed:
    """A signed tree head of the audit transparency log (audit/transparency.py): a JWT with `typ: sth+jwt`."""
    return _sign(payload, TREE_HEAD_TYPE)


def _split(token: str) -> str:
    if not isinstance(token, str) or len(token) > 8192:
        raise TokenInvalid("malformed")
    parts = token.split("~")
    if len(parts) != 2 or parts[1] != "":
        raise TokenInvalid("malformed")  # we never issue disclosures or key-binding JWTs
    return parts[0]


def _verified_payload(compact: str, *, typ: str, key_for) -> dict:
    """Steps shared by every token we verify: header, `alg` allow-list, `typ`, key by `kid` (from `key_for`), the
    signature, a JSON-object payload. Raises TokenInvalid with a stable reason."""
    try:
        header = jws.extract_compact(compact.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise TokenInvalid("malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHMS:  # a list or object `alg` is unhashable: no 500
        raise TokenInvalid("unsupported_alg")
    if header.get("typ") != typ:
        raise TokenInvalid("wrong_type")
    row = key_for(kid, alg) if isinstance(kid, str) else None
    if row is None:
        raise TokenInvalid("unknown_kid")
    try:
        payload = json.loads(jws.deserialize_compact(compact, _public_key(row), algorithms=[alg]).payload)
    except BadSignatureError:
        raise TokenInvalid("bad_signature") from None
    except (JoseError, ValueError, TypeError):
        raise TokenInvalid("malformed") from None
    if not isinstance(payload, dict):
        raise TokenInvalid("malformed")
    return payload


def verify_tree_head(token: str) -> dict:
    """Verify a signed tree head we issued, against any key we ever held (a head outlives key rotation); return
    its payload. Raises TokenInvalid."""
    if not isinstance(token, str):
        raise TokenInvalid("malformed")
    return _verified_payload(
        token, typ=TREE_HEAD_TYPE, key_for=lambda kid, alg: SigningKey.objects.filter(kid=kid, alg=alg).first()
    )


def verify_attestation(token: str, *, now: datetime, audience: str | None = None) -> dict:
    """Verify signature, type, audience (when given) and lifetime against our own published keys; return the
    payload.

    The audience is checked before the lifetime, so that whoever is not the audience learns nothing about the token
    (not even that it expired). Nonce and revocation are the caller's checks.
    """
    payload = _verified_payload(_split(token), typ=TOKEN_TYPE, key_for=_published_key)
    if payload.get("iss") != settings.PUBLIC_URL:
        raise TokenInvalid("wrong_issuer")
    if audience is not None and payload.get("aud") != audience:
        raise TokenInvalid("wrong_audience")
    ts = now.timestamp()
    exp, nbf = payload.get("exp"), payload.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise TokenInvalid("malformed")
    if ts > exp + CLOCK_SKEW.total_seconds():
        raise TokenInvalid("expired")
    if ts < nbf - CLOCK_SKEW.total_seconds():
        raise TokenInvalid("not_yet_valid")
    return payload
