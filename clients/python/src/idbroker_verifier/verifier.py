"""Offline verification of an idbroker attestation, as a provider does it (idbroker SPEC 2.4 and 4).

An attestation is an SD-JWT VC without disclosures: `<compact JWS>~`. Verification:

1. Split at `~`: exactly one JWS, nothing after the final `~` (no disclosures, no key-binding JWT).
2. Header: `alg` in the allow-list (ES256, Ed25519; never `none`, never HMAC), `typ` = `dc+sd-jwt`, a `kid`, no `crit`.
3. Key by `kid` from `<issuer>/.well-known/jwks.json`, cached for the response's max-age; an unknown `kid` refetches
   the JWKS once (at most once per `refetch_interval`), since it usually means the issuer rotated its key.
4. Signature with that key, whose type and curve must fit `alg` (no algorithm confusion).
5. Claims: `iss` is the issuer, `aud` is you, `nbf` <= now <= `exp` within `leeway`, `nonce` is the one you sent.
6. Revocation (IETF OAuth Token Status List): fetch the list at `status.status_list.uri`, check it is a
   `statuslist+jwt` signed by a key of the same JWKS whose `sub` is that URI, cache it for its `ttl`, read the entry
   at `idx`. Anything but 0 (valid) is reported as `revoked`.

Every failure is a `VerificationError` whose `reason` is one stable word, safe to log and to branch on.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from joserfc.util import urlsafe_b64decode

from . import _http, _statuslist

TOKEN_TYPE = "dc+sd-jwt"
STATUS_LIST_TYPE = "statuslist+jwt"
# alg -> the (kty, crv) of the only key it may be used with. Nothing else is ever accepted: not `none`, not HMAC (a
# public key fed to HS256 as a secret is the classic algorithm-confusion forgery), not RSA.
SUPPORTED_ALGS = {"ES256": ("EC", "P-256"), "Ed25519": ("OKP", "Ed25519")}

REASONS = frozenset(
    {
        "malformed",
        "unsupported_alg",
        "wrong_type",
        "unknown_kid",
        "keys_unavailable",
        "bad_signature",
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "nonce_mismatch",
        "revoked",
        "status_unavailable",
        "not_included",
    }
)

MAX_TOKEN_LENGTH = 16 * 1024
DEFAULT_MAX_AGE = 300  # seconds, when a response says nothing (idbroker sends 300 for both JWKS and lists)
MAX_CACHE_SECONDS = 24 * 3600  # never trust a cached JWKS or list longer than a day, whatever it says
# After a failed fetch, answer "unavailable" for a few seconds without trying again: fetches hold a lock, so a
# down broker would otherwise cost every waiting verification a full timeout.
FAILURE_BACKOFF = 5.0


class VerificationError(Exception):
    """The token must not be accepted. `reason` is one of REASONS; `detail` is for logs and humans."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Key:
    key: ECKey | OKPKey
    kty: str
    crv: str
    alg: str | None  # the JWK's own `alg`, when it names one


@dataclass(frozen=True)
class _StatusList:
    packed: bytes
    bits: int
    fresh_until: float


class _StatusListRegistry(jws.JWSRegistry):
    # joserfc's default 128 kB payload cap suits tokens; a busy list (many revocations spread at random) is larger.
    max_payload_length = 4 * 1024 * 1024


def _import_jwk(jwk: object) -> tuple[str, _Key] | None:
    """A usable public signing key from a JWKS entry, or None to skip it (unknown type, other use, broken)."""
    if not isinstance(jwk, dict):
        return None
    kid, kty, crv = jwk.get("kid"), jwk.get("kty"), jwk.get("crv")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    if (kty, crv) not in SUPPORTED_ALGS.values():
        return None
    # Only the public members: a JWKS that (wrongly) carries `d` must not turn into a private key here.
    public = {name: jwk[name] for name in ("kty", "crv", "x", "y") if name in jwk}
    try:
        key = (ECKey if kty == "EC" else OKPKey).import_key(public)
    except (JoseError, ValueError, TypeError):
        return None
    alg = jwk.get("alg")
    return kid, _Key(key=key, kty=kty, crv=crv, alg=alg if isinstance(alg, str) else None)


def _is_number(value: object) -> bool:
    # Python's json accepts NaN and Infinity; an `exp` of NaN would compare as never expired.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_object(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("malformed", "payload is not JSON") from None
    if not isinstance(value, dict):
        raise VerificationError("malformed", "payload is not a JSON object")
    return value


class Verifier:
    """Verifies idbroker attestations for one provider. Keep one per process: it caches keys and status lists.

    `issuer` is the broker's public URL (the tokens' `iss`), `audience` your `client_id`. `http` is a callable
    `(url) -> (body, headers)` (default: urllib, http(s) only, 5 s timeout); `clock` returns Unix seconds.
    Thread-safe.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        allowed_algs: Iterable[str] = ("ES256", "Ed25519"),
        http: _http.Fetch | None = None,
        clock: Callable[[], float] | None = None,
        leeway: float = 60,
        jwks_uri: str | None = None,
        refetch_interval: float = 30,
    ):
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer is required")
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience is required")
        algs = tuple(allowed_algs)
        unsupported = [alg for alg in algs if alg not in SUPPORTED_ALGS]
        if unsupported or not algs:
            raise ValueError(f"allowed_algs must be drawn from {sorted(SUPPORTED_ALGS)}, not {unsupported or algs}")
        self.issuer = issuer
        self.audience = audience
        self.allowed_algs = algs
        self.leeway = float(leeway)
        self.jwks_uri = jwks_uri or f"{issuer.rstrip('/')}/.well-known/jwks.json"
        self.refetch_interval = float(refetch_interval)
        self._http = http or _http.urllib_fetch
        self._clock = clock or time.time
        # Header and size rules for tokens and (larger) status lists; the allowed algorithms' implementations.
        self._token_registry = jws.JWSRegistry(algorithms=list(algs))
        self._list_registry = _StatusListRegistry(algorithms=list(algs))
        self._algorithms = {alg: self._token_registry.get_alg(alg) for alg in algs}
        # Keys by (iss, kid), so one cache could serve several issuers; this verifier only ever asks for its own.
        self._keys: dict[tuple[str, str], _Key] = {}
        self._keys_fetched_at: float | None = None
        self._keys_fresh_until = 0.0
        self._keys_retry_at = 0.0
        self._last_unknown_kid_refetch: float | None = None
        self._keys_lock = threading.Lock()
        self._lists: dict[str, _StatusList] = {}
        self._lists_retry_at: dict[str, float] = {}
        self._lists_lock = threading.Lock()

    # --- the token ---------------------------------------------------------------------------------------------

    def verify(self, token: str, *, nonce: str | None = None, check_status: bool = True) -> dict:
        """Return the verified payload, or raise VerificationError. Pass the `nonce` you sent with the request."""
        now = self._clock()
        # 1. One JWS, then `~`, then nothing: idbroker issues no disclosures and no key-binding JWT.
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise VerificationError("malformed", "not a token")
        jwt_part, sep, rest = token.strip().partition("~")
        if not sep or rest:
            raise VerificationError("malformed", "expected one JWS followed by a single '~'")
        # 2-4. Header, key, signature.
        obj = self._verified_jws(jwt_part, TOKEN_TYPE, now, self._token_registry)
        payload = _json_object(obj.payload)
        # 5. Claims.
        if payload.get("iss") != self.issuer:
            raise VerificationError("wrong_issuer")
        aud = payload.get("aud")
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise VerificationError("wrong_audience")
        exp, nbf = payload.get("exp"), payload.get("nbf")
        if not _is_number(exp) or (nbf is not None and not _is_number(nbf)):
            raise VerificationError("malformed", "exp is required; exp and nbf are numbers")
        if now > exp + self.leeway:
            raise VerificationError("expired")
        if nbf is not None and now < nbf - self.leeway:
            raise VerificationError("not_yet_valid")
        if nonce is not None:
            got = payload.get("nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
                raise VerificationError("nonce_mismatch")
        # 6. Revocation.
        if check_status:
            self._check_status(payload, now)
        return payload

    def _verified_jws(self, compact: str, typ: str, now: float, registry: jws.JWSRegistry):
        try:
            obj = jws.extract_compact(compact.encode("ascii"), registry=registry)
            header = obj.headers()
            registry.check_header(header)
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise VerificationError("malformed", "not a compact JWS") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise VerificationError("unsupported_alg", f"alg {alg!r} is not allowed")
        if header.get("typ") != typ:
            raise VerificationError("wrong_type", f"typ must be {typ}")
        if "crit" in header or "b64" in header:
            raise VerificationError("malformed", "critical header extensions are not understood")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise VerificationError("unknown_kid", "no kid in the header")
        entry = self._key(kid, now)
        # The key must fit the algorithm the header names, and the JWK's own `alg` if it states one.
        if (entry.kty, entry.crv) != SUPPORTED_ALGS[alg] or entry.alg not in (None, alg):
            raise VerificationError("bad_signature", f"key {kid} is not an {alg} key")
        # RFC 7515 5.2 step 8, straight to the algorithm: the header was validated above, and going through
        # jws.validate_compact would check it a second time on every token.
        signing_input, _, signature = compact.rpartition(".")
        try:
            valid = self._algorithms[alg].verify(
                signing_input.encode("ascii"), urlsafe_b64decode(signature.encode("ascii")), entry.key
            )
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise VerificationError("bad_signature")
        return obj

    # --- keys --------------------------------------------------------------------------------------------------

    def _key(self, kid: str, now: float) -> _Key:
        with self._keys_lock:
            fetched_now = False
            if self._keys_fetched_at is None or now >= self._keys_fresh_until:
                if not self._keys and now < self._keys_retry_at:
                    raise VerificationError("keys_unavailable", f"{self.jwks_uri}: failed moments ago")
                self._refresh_keys(now, keep_stale=bool(self._keys))
                fetched_now = True
            entry = self._keys.get((self.issuer, kid))
            # An unknown kid usually means a rotation we have not seen yet: refetch once. Rate-limited, because
            # anyone can make up a kid and we must not fetch the JWKS for every forged token.
            if entry is None and not fetched_now:
                last = self._last_unknown_kid_refetch
                if last is None or now - last >= self.refetch_interval:
                    self._last_unknown_kid_refetch = now
                    self._refresh_keys(now, keep_stale=False)
                    entry = self._keys.get((self.issuer, kid))
            if entry is None:
                raise VerificationError("unknown_kid", f"kid {kid} is not in {self.jwks_uri}")
            return entry

    def _refresh_keys(self, now: float, *, keep_stale: bool) -> None:
        """Replace this issuer's keys with the published set (a key dropped from the JWKS stops verifying)."""
        try:
            body, headers = self._http(self.jwks_uri)
            document = json.loads(body)
            published = document["keys"]
            if not isinstance(published, list):
                raise TypeError("keys is not a list")
        except Exception as exc:  # noqa: BLE001 - any fetch or parse failure has the same meaning here
            if keep_stale:
                # Keep verifying with the keys we have; try again after the refetch interval, not on every token.
                self._keys_fresh_until = now + self.refetch_interval
                return
            self._keys_retry_at = now + FAILURE_BACKOFF
            raise VerificationError("keys_unavailable", f"{self.jwks_uri}: {type(exc).__name__}") from None
        keys = dict(filter(None, (_import_jwk(jwk) for jwk in published)))
        self._keys = {(self.issuer, kid): entry for kid, entry in keys.items()}
        self._keys_fetched_at = now
        max_age = _http.max_age(headers)
        lifetime = DEFAULT_MAX_AGE if max_age is None else max_age
        # Not below the refetch interval: `no-cache` must not turn into one JWKS request per token.
        self._keys_fresh_until = now + min(max(lifetime, self.refetch_interval), MAX_CACHE_SECONDS)

    # --- revocation --------------------------------------------------------------------------------------------

    def _check_status(self, payload: dict, now: float) -> None:
        status = payload.get("status")
        reference = status.get("status_list") if isinstance(status, dict) else None
        idx = reference.get("idx") if isinstance(reference, dict) else None
        uri = reference.get("uri") if isinstance(reference, dict) else None
        # idbroker puts a status reference in every token; one without is not ours to accept.
        if not (isinstance(idx, int) and not isinstance(idx, bool) and idx >= 0 and isinstance(uri, str) and uri):
            raise VerificationError("malformed", "no status.status_list {idx, uri}")
        status_list = self._status_list(uri, now)
        try:
            value = _statuslist.status_at(status_list.packed, idx, status_list.bits)
        except _statuslist.StatusListError as exc:
            raise VerificationError("status_unavailable", str(exc)) from None
        if value != 0:
            raise VerificationError("revoked")

    def _status_list(self, uri: str, now: float) -> _StatusList:
        with self._lists_lock:
            cached = self._lists.get(uri)
            if cached is not None and now < cached.fresh_until:
                return cached
            # Fail closed: a list past its ttl is never used, or blocking the fetch would hide a revocation.
            if now < self._lists_retry_at.get(uri, 0.0):
                raise VerificationError("status_unavailable", f"{uri}: failed moments ago")
            # Fetched under the lock: concurrent verifications wait for one request instead of each making one.
            try:
                try:
                    body, _headers = self._http(uri)
                except Exception as exc:  # noqa: BLE001 - network, HTTP status, scheme: all mean "cannot tell"
                    raise VerificationError("status_unavailable", f"{uri}: {type(exc).__name__}") from None
                fresh = self._read_status_list(uri, body, now)
            except VerificationError:
                self._lists_retry_at[uri] = now + FAILURE_BACKOFF
                raise
            self._lists = {u: s for u, s in self._lists.items() if now < s.fresh_until}
            self._lists_retry_at = {u: t for u, t in self._lists_retry_at.items() if now < t}
            self._lists[uri] = fresh
            return fresh

    def _read_status_list(self, uri: str, body: bytes, now: float) -> _StatusList:
        try:
            compact = body.decode("ascii").strip()
            obj = self._verified_jws(compact, STATUS_LIST_TYPE, now, self._list_registry)
        except UnicodeDecodeError:
            raise VerificationError("status_unavailable", "the status list is not a JWT") from None
        except VerificationError as exc:
            raise VerificationError("status_unavailable", f"status list: {exc}") from None
        try:
            payload = _json_object(obj.payload)
        except VerificationError:
            raise VerificationError("status_unavailable", "status list payload is not a JSON object") from None
        # The list must say it is the list we asked for, or a genuine list for other tokens could be replayed here.
        if payload.get("sub") != uri:
            raise VerificationError("status_unavailable", "status list sub does not match its URI")
        if "iss" in payload and payload["iss"] != self.issuer:
            raise VerificationError("status_unavailable", "status list from another issuer")
        exp, ttl = payload.get("exp"), payload.get("ttl")
        if exp is not None and (not _is_number(exp) or now > exp + self.leeway):
            raise VerificationError("status_unavailable", "status list expired")
        content = payload.get("status_list")
        bits = content.get("bits") if isinstance(content, dict) else None
        if bits not in _statuslist.ALLOWED_BITS or isinstance(bits, bool):
            raise VerificationError("status_unavailable", f"status list bits {bits!r}")
        try:
            packed = _statuslist.decompress(content.get("lst"))
        except _statuslist.StatusListError as exc:
            raise VerificationError("status_unavailable", str(exc)) from None
        # Cache for `ttl` (draft-ietf-oauth-status-list, "ttl" claim), never past the list's own `exp`.
        lifetime = ttl if _is_number(ttl) and ttl > 0 else DEFAULT_MAX_AGE
        fresh_until = now + min(lifetime, MAX_CACHE_SECONDS)
        if exp is not None:
            fresh_until = min(fresh_until, exp)
        return _StatusList(packed=packed, bits=bits, fresh_until=fresh_until)
