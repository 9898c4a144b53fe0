"""Provider-facing behaviour: providers and keys, verification requests, issuing and checking attestations."""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from cachetools import TTLCache
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from audit.services import audit_record
from broker import caches
from broker.errors import BrokerError, NotFound
from broker.validators import validate_operator_url
from verification import crypto

from . import policies, signing, statuslist
from .checkcounts import check_count_add
from .models import ApiKey, Attestation, JurisdictionPolicy, Provider, VerificationRequest, validate_vendor

API_KEY_PREFIX = "idb"


class InvalidClaims(BrokerError):
    code = "invalid_claims"
    title = "Claims not allowed"


class InvalidReturnUrl(BrokerError):
    code = "invalid_return_url"
    title = "return_url is not registered for this provider"


class LinkInvalid(BrokerError):
    code = "link_invalid"
    status = 404
    title = "This verification link is not valid"


class LinkExpired(BrokerError):
    code = "link_expired"
    status = 410
    title = "This verification link has expired"


# --- Providers and API keys ------------------------------------------------------------------------------------


def _validate_redirect_uri(uri: str) -> str:
    # The same rule as the admin's (broker/validators.py): one validator for every door.
    try:
        return validate_operator_url(uri, what="redirect URI", ascii_host=True)
    except ValidationError as exc:
        raise BrokerError(exc.messages[0], code="invalid_redirect_uri") from None


def _validate_claims(claims: list[str]) -> list[str]:
    unknown = [c for c in claims if not policies.is_supported_claim(c)]
    if unknown or not claims:
        raise InvalidClaims(
            f"unsupported claims: {', '.join(unknown) or '(none given)'}; "
            f"supported: {', '.join(policies.supported_claims())}"
        )
    return list(dict.fromkeys(claims))  # keep order, drop repeats


@transaction.atomic
def provider_create(
    *,
    name: str,
    redirect_uris: list[str],
    claims: list[str],
    policy_slug: str | None = None,
    client_id: str | None = None,
    vendor: str = "",
    now: datetime,
) -> tuple[Provider, str]:
    """Register a provider and its first API key. Returns the provider and the key, shown this once."""
    claims = _validate_claims(claims)
    try:
        validate_vendor(vendor)
    except ValidationError as exc:
        raise BrokerError(exc.messages[0], code="unknown_vendor") from None
    policy = None
    if policy_slug:
        policy = JurisdictionPolicy.objects.filter(slug=policy_slug).first()
        if policy is None:
            raise NotFound(f"no jurisdiction policy {policy_slug!r}")
    if "eligible_jurisdiction" in claims and policy is None:
        raise InvalidClaims("eligible_jurisdiction needs --policy")
    provider = Provider.objects.create(
        name=name,
        redirect_uris=[_validate_redirect_uri(u) for u in redirect_uris],
        allowed_claims=claims,
        policy=policy,
        vendor=vendor,
        created_at=now,
        **({"client_id": client_id} if client_id else {}),
    )
    audit_record(event="provider.created", provider=provider.client_id, now=now)
    return provider, api_key_create(provider=provider, now=now)


def api_key_create(*, provider: Provider, label: str = "", now: datetime) -> str:
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    ApiKey.objects.create(
        provider=provider, lookup=lookup, secret_hash=crypto.keyed_hash("api-key", secret), label=label, created_at=now
    )
    audit_record(event="api_key.created", provider=provider.client_id, now=now)
    return f"{API_KEY_PREFIX}_{lookup}_{secret}"


# Verified keys are remembered briefly per process, so the hot path (the check API) does not pay a database
# round trip per call. The cache is keyed by a hash of the presented key; a revocation takes effect in every
# process within API_KEY_CACHE_SECONDS, and at once in the process that revoked it.
API_KEY_CACHE_SECONDS = 30
_api_key_cache: TTLCache = TTLCache(maxsize=4096, ttl=API_KEY_CACHE_SECONDS)
_api_key_cache_lock = threading.Lock()


def _forget_api_keys() -> None:
    with _api_key_cache_lock:
        _api_key_cache.clear()


caches.register("attestations.api_keys", _forget_api_keys)


def api_key_authenticate(raw: str) -> tuple[Provider, ApiKey] | None:
    prefix, _, rest = raw.partition("_")
    lookup, _, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not lookup or not secret:
        return None
    presented = crypto.keyed_hash("api-key", secret)
    with _api_key_cache_lock:
        cached = _api_key_cache.get((lookup, presented))
    if cached is not None:
        return cached
    key = ApiKey.objects.select_related("provider").filter(lookup=lookup, revoked_at__isnull=True).first()
    expected = key.secret_hash if key else "0" * 64
    # Compare even when the row is missing, so timing does not tell which lookup ids exist.
    matches = crypto.constant_time_equal(presented, expected)
    if key is None or not matches or not key.provider.is_active:
        return None
    with _api_key_cache_lock:
        _api_key_cache[(lookup, presented)] = (key.provider, key)
    return key.provider, key


def api_key_revoke(*, key: ApiKey, now: datetime) -> None:
    with _api_key_cache_lock:
        for cache_key in [k for k in _api_key_cache if k[0] == key.lookup]:
            del _api_key_cache[cache_key]
    if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
        audit_record(event="api_key.revoked", provider=key.provider.client_id, now=now)


# --- Verification requests -------------------------------------------------------------------------------------


def request_validate(*, provider: Provider, claims: list[str], return_url: str = "") -> list[str]:
    """The claims a request may ask for, cleaned; raises InvalidClaims or InvalidReturnUrl."""
    claims = _validate_claims(claims)
    not_allowed = [c for c in claims if c not in provider.allowed_claims]
    if not_allowed:
        raise InvalidClaims(f"this provider may not ask for: {', '.join(not_allowed)}")
    if "eligible_jurisdiction" in claims and provider.policy is None:
        raise InvalidClaims("no jurisdiction policy is assigned to this provider")
    if return_url and return_url not in provider.redirect_uris:
        raise InvalidReturnUrl()
    return claims


def request_create(
    *,
    provider: Provider,
    claims: list[str],
    nonce: str = "",
    return_url: str = "",
    now: datetime,
    link: str | None = None,
    expires_at: datetime | None = None,
    redirect: dict | None = None,
) -> tuple[VerificationRequest, str]:
    """Create a request; return it and the user-facing URL (which holds the only copy of the link secret).

    The redirect flow passes the `link` it already gave the browser, the ticket's own `expires_at`, and `redirect`
    (`state`, `code_challenge`): its request is made when that link is first opened (attestations/oauth.py)."""
    claims = request_validate(provider=provider, claims=claims, return_url=return_url)
    link = link or secrets.token_urlsafe(32)
    request = VerificationRequest.objects.create(
        provider=provider,
        claims=claims,
        nonce=nonce,
        return_url=return_url or (provider.redirect_uris or [""])[0],
        link_hash=crypto.token_hash(link),
        created_at=now,
        expires_at=expires_at or now + settings.IDBROKER_REQUEST_TTL,
        **({"flow": "redirect", **redirect} if redirect is not None else {}),
    )
    audit_record(event="request.created", request=request.id, provider=provider.client_id, now=now)
    return request, f"{settings.PUBLIC_URL}/verify/{link}"


def request_by_link(link: str, *, now: datetime) -> VerificationRequest:
    """The request behind a verification link. A redirect-flow link names no row until its first opening, which
    makes the request (oauth.request_from_ticket): an /authorize nobody followed leaves nothing behind."""
    from .oauth import request_from_ticket

    request = VerificationRequest.objects.select_related("provider").filter(link_hash=crypto.token_hash(link)).first()
    if request is None:
        request = request_from_ticket(link, now=now)  # raises LinkInvalid or LinkExpired
    if request.expires_at <= now and request.status == VerificationRequest.Status.PENDING:
        raise LinkExpired()
    return request


@transaction.atomic  # a final status and its provider webhook (webhooks app) commit together
def request_transition(*, request_id: str, to: str, now: datetime, allowed_from=None) -> bool:
    """Compare-and-swap the request status; a zero row count means someone else got there first (a no-op)."""
    from webhooks.services import webhook_request_finished

    allowed_from = allowed_from or [VerificationRequest.Status.PENDING, VerificationRequest.Status.PROCESSING]
    updates = {"status": to}
    if to in VerificationRequest.TERMINAL:
        updates["completed_at"] = now
    changed = bool(VerificationRequest.objects.filter(pk=request_id, status__in=allowed_from).update(**updates))
    if changed and to in VerificationRequest.TERMINAL:
        webhook_request_finished(request_id=request_id, status=to, now=now)
    return changed


def return_url_for(request: VerificationRequest, *, error: str | None = None) -> str:
    if not request.return_url:
        return ""
    params = {"verification_request": request.id}
    if error:
        params["error"] = error
    sep = "&" if urlsplit(request.return_url).query else "?"
    return f"{request.return_url}{sep}{urlencode(params)}"


# --- Attestations ----------------------------------------------------------------------------------------------


def vct() -> str:
    """The credential type (SD-JWT VC `vct`)."""
    return settings.IDBROKER_VCT or f"{settings.PUBLIC_URL}/vct/attestation/v1"


def holder_of(subject: str) -> str:
    return crypto.keyed_hash("holder", subject)


def pairwise_sub(subject: str, client_id: str) -> str:
    """SPEC 3.4: a keyed hash of (user, provider). Two providers cannot join their records through `sub`."""
    digest = bytes.fromhex(crypto.keyed_hash("pairwise-sub", subject, client_id))
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _ttl(provider: Provider) -> timedelta:
    if provider.attestation_ttl_seconds:
        return min(timedelta(seconds=provider.attestation_ttl_seconds), settings.IDBROKER_ATTESTATION_MAX_TTL)
    return settings.IDBROKER_ATTESTATION_TTL


@transaction.atomic
def request_complete(
    *, request: VerificationRequest, subject: str, facts: policies.StoredFacts, verified_month: str, now: datetime
) -> str | None:
    """Answer the request from the facts: sign exactly the requested predicates. Returns the token, or None if
    the request was already finished (compare-and-swap lost)."""
    from webhooks.services import webhook_request_finished

    locked = (
        VerificationRequest.objects.select_for_update(of=("self",))
        .select_related("provider__policy")
        .get(pk=request.pk)
    )
    if locked.status in VerificationRequest.TERMINAL:
        return None
    provider = locked.provider
    values = policies.evaluate(locked.claims, facts, policy=provider.policy, today=now.date())
    issued = now.replace(minute=0, second=0, microsecond=0)  # SPEC 4: iat rounded to the hour
    expires = now + _ttl(provider)
    jti = secrets.token_urlsafe(16)
    payload = {
        "iss": settings.PUBLIC_URL,
        "vct": vct(),
        "sub": pairwise_sub(subject, provider.client_id),
        "aud": provider.client_id,
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": jti,
        "assurance": {"evidence": "document+selfie", "verified": verified_month},
        **values,
    }
    if locked.nonce:
        payload["nonce"] = locked.nonce
    # The row comes first: its random status-list index goes into the token (SPEC 4 `status`).
    row = statuslist.attestation_create_with_status(
        jti=jti,
        provider=provider,
        request=locked,
        claim_names=list(values),
        kid="",
        issued_at=now,
        expires_at=expires,
        holder=holder_of(subject),
    )
    payload["status"] = {"status_list": {"idx": row.status_idx, "uri": statuslist.list_uri(row.status_list_id)}}
    signed = signing.sign_attestation(payload)
    Attestation.objects.filter(pk=row.pk).update(kid=signed.kid)
    locked.token = signed.token
    locked.status = VerificationRequest.Status.COMPLETED
    locked.completed_at = now
    locked.save(update_fields=["token", "status", "completed_at"])
    audit_record(event="attestation.issued", request=locked.id, provider=provider.client_id, jti=jti, now=now)
    webhook_request_finished(request_id=locked.id, status=locked.status, provider=provider, now=now)
    return signed.token


@dataclass(frozen=True)
class CheckResult:
    valid: bool
    reason: str
    claims: dict = field(default_factory=dict)


_REGISTERED = ("iss", "vct", "sub", "aud", "iat", "nbf", "exp", "jti", "nonce", "assurance", "status", "cnf")

# What a check may say about a token. Every reason but `invalid` is given only for a genuine token addressed to the
# caller; anything else (garbage, a forgery, or another provider's token, live, expired or revoked) is `invalid`,
# so the check API is no oracle for tokens the caller was not given (SPEC 2.4). The detailed reason stays inside.
INVALID = "invalid"
OWN_TOKEN_REASONS = frozenset({"expired", "not_yet_valid"})


def attestation_check(*, provider: Provider, token: str, now: datetime, nonce: str | None = None) -> CheckResult:
    """SPEC 2.4 online check. A provider learns nothing about tokens addressed to someone else.

    1. Count the check for (provider, hour): the only trace a check leaves (attestations/checkcounts.py). Never
       which token, jti or subject was checked, nor when.
    2. Signature, issuer, then audience, then lifetime (signing.verify_attestation): another provider's token runs
       through the same signature check as a forgery with our kid, and is refused with the same answer.
    3. Nonce, then the status-list bit, for the caller's own tokens only.
    """
    check_count_add(provider=provider, now=now)
    try:
        payload = signing.verify_attestation(token, now=now, audience=provider.client_id)
    except signing.TokenInvalid as exc:
        return CheckResult(False, exc.reason if exc.reason in OWN_TOKEN_REASONS else INVALID)
    if nonce is not None and payload.get("nonce") != nonce:
        return CheckResult(False, "nonce_mismatch")
    reference = (payload.get("status") or {}).get("status_list") or {}
    uri, idx = reference.get("uri", ""), reference.get("idx")
    prefix = f"{settings.PUBLIC_URL}/status-lists/"
    if not (isinstance(idx, int) and isinstance(uri, str) and uri.startswith(prefix) and uri[len(prefix) :].isdigit()):
        return CheckResult(False, INVALID)  # every token we sign carries a status reference
    if statuslist.is_revoked(int(uri[len(prefix) :]), idx):
        return CheckResult(False, "revoked")
    claims = {k: v for k, v in payload.items() if k not in _REGISTERED}
    return CheckResult(True, "ok", {"sub": payload["sub"], "exp": payload["exp"], **claims})


@transaction.atomic  # the revocation and its provider webhook (webhooks app) commit together
def attestation_revoke(*, attestation: Attestation, now: datetime, by_person: bool = False) -> bool:
    """Revoke one attestation: its status bit, the check API at once, the provider's webhook.

    `by_person`: the person revoked it (one share, or "delete everything", which revokes every share at the same
    instant). Each provider's `attestation.revoked` notice then leaves at its own random time within
    IDBROKER_REVOCATION_NOTICE_JITTER, carrying that time: otherwise providers comparing notices to the second could
    tell that their users are one person."""
    from webhooks.services import webhook_attestation_revoked

    if Attestation.objects.filter(pk=attestation.pk, revoked_at__isnull=True).update(revoked_at=now):
        if attestation.status_list_id:
            statuslist.forget_revocations(attestation.status_list_id)
        audit_record(event="attestation.revoked", provider=attestation.provider.client_id, jti=attestation.jti, now=now)
        jitter = settings.IDBROKER_REVOCATION_NOTICE_JITTER.total_seconds() if by_person else 0
        webhook_attestation_revoked(
            provider=attestation.provider,
            jti=attestation.jti,
            now=now,
            deliver_at=now + timedelta(seconds=secrets.SystemRandom().uniform(0, jitter)) if jitter else None,
        )
        return True
    return False


def attestations_revoke_for_policy(*, policy: JurisdictionPolicy, now: datetime) -> int:
    """A policy's rules changed: every live attestation that answered `eligible_jurisdiction` under it is revoked
    (its answer may no longer hold). Providers ask again and get an answer under the new version."""
    live = Attestation.objects.filter(provider__policy=policy, revoked_at__isnull=True, expires_at__gt=now)
    # claim_names is a short JSON list; filtering it in Python works the same on SQLite and PostgreSQL.
    rows = [a for a in live.select_related("provider").iterator() if "eligible_jurisdiction" in a.claim_names]
    return sum(attestation_revoke(attestation=a, now=now) for a in rows)


@transaction.atomic
def policy_update(
    *, policy: JurisdictionPolicy, mode: str, applies_to: str, countries: list[str], now: datetime
) -> int:
    """Change a jurisdiction policy's rule: a new version, and a bulk revocation of answers under the old one.
    Returns how many attestations were revoked."""
    countries = sorted({c.strip().upper() for c in countries if c.strip()})
    if (policy.mode, policy.applies_to, sorted(policy.countries)) == (mode, applies_to, countries):
        return 0
    JurisdictionPolicy.objects.filter(pk=policy.pk).update(
        mode=mode, applies_to=applies_to, countries=countries, version=F("version") + 1, updated_at=now
    )
    policy.refresh_from_db()
    audit_record(event="policy.changed", policy=f"{policy.slug}@{policy.version}", now=now)
    return attestations_revoke_for_policy(policy=policy, now=now)


def attestation_revoke_by_provider(*, provider: Provider, jti: str, now: datetime) -> bool:
    attestation = Attestation.objects.filter(jti=jti, provider=provider).select_related("provider").first()
    if attestation is None:
        raise NotFound("No such attestation.")
    return attestation_revoke(attestation=attestation, now=now)
