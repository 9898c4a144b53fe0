"""The redirect flow (SPEC 2.1): OAuth 2.0 authorization-code shaped, with PKCE (RFC 7636).

1. `GET /authorize` validates client and redirect URI first. While either is wrong, the error is shown to the user
   and nobody is redirected anywhere (RFC 6749 §4.1.2.1: never an open redirect). Once both are right, every other
   error goes back to the redirect URI as `error=…&state=…`. It is rate-limited per client address and per provider,
   and stores nothing: the browser is sent to a link that carries the validated request (a ticket, below).
2. The first opening of that link makes the request (which remembers `state` and the PKCE challenge); the
   verification itself is the ordinary journey.
3. When the user leaves the result page, a single-use code (≤ 60 s, stored hashed) is minted for a completed request.
4. `POST /api/v1/token` exchanges it once: client, redirect URI and PKCE verifier must match, and are checked before
   the code is spent, so a failed attempt leaves the code to its client. A second *correct* use of a code already
   redeemed revokes the attestation it delivered (RFC 6749 §4.1.2: the code leaked with what binds it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from audit.services import audit_record
from broker import ratelimit
from broker.errors import BrokerError
from verification import crypto

from . import services
from .authentication import ProviderRateThrottle
from .models import Attestation, AuthorizationCode, Provider, VerificationRequest

CODE_TTL = timedelta(seconds=60)
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(SHA-256), no padding


class AuthorizeError(Exception):
    """`redirect` False: show to the user. True: send back to the (validated) redirect URI."""

    def __init__(self, error: str, description: str, *, redirect: bool, redirect_uri: str = "", state: str = ""):
        super().__init__(description)
        self.error, self.description, self.redirect = error, description, redirect
        self.redirect_uri, self.state = redirect_uri, state

    @property
    def location(self) -> str:
        return with_params(
            self.redirect_uri, {"error": self.error, "error_description": self.description, "state": self.state}
        )


class TokenError(BrokerError):
    """RFC 6749 §5.2 errors, rendered as problem details that also carry `error` for OAuth client libraries."""

    status = 400
    title = "Token request refused"


def with_params(uri: str, params: dict) -> str:
    clean = {k: v for k, v in params.items() if v}
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(clean)}"


class AuthorizeRateLimited(Exception):
    """Too many /authorize calls for one provider: 429 with Retry-After (seconds)."""

    def __init__(self, retry_after: int):
        super().__init__("rate limited")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Authorized:
    link_url: str


def authorize(*, params: dict, now: datetime) -> Authorized:
    """Validate an authorization request and return the verification link to send the browser to.

    Nothing is stored here: the link is a ticket (below) that carries the request, and the request row, its audit
    entry and any webhook exist only once someone opens it. Anonymous calls that are never followed leave nothing
    permanent behind; the calls themselves are rate-limited per client address (views) and per provider (here).
    """
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    provider = Provider.objects.filter(client_id=client_id, is_active=True).first() if client_id else None
    if provider is None:
        raise AuthorizeError("invalid_client", "Unknown client_id.", redirect=False)
    # The provider's own limit (SPEC 1), in a bucket of its own: anonymous callers cannot spend its API budget.
    limit, window = ProviderRateThrottle().parse_rate(provider.rate_limit or settings.IDBROKER_DEFAULT_RATE_LIMIT)
    allowed, retry_after = ratelimit.hit(f"authorize:{provider.pk}", limit=limit, window=window)
    if not allowed:
        raise AuthorizeRateLimited(retry_after)
    if not redirect_uri or redirect_uri not in provider.redirect_uris:
        raise AuthorizeError("invalid_redirect_uri", "This redirect_uri is not registered.", redirect=False)
    state = params.get("state", "")[:500]

    def back(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect=True, redirect_uri=redirect_uri, state=state)

    if params.get("response_type") != "code":
        raise back("unsupported_response_type", "response_type must be code.")
    challenge, method = params.get("code_challenge", ""), params.get("code_challenge_method", "")
    if challenge or method:
        if method != "S256":
            raise back("invalid_request", "code_challenge_method must be S256.")
        if not CHALLENGE.match(challenge):
            raise back("invalid_request", "code_challenge must be base64url(SHA-256(verifier)).")
    elif provider.client_type == Provider.ClientType.PUBLIC:
        raise back("invalid_request", "PKCE (S256) is required for public clients.")
    claims = params.get("claims", "").replace("+", " ").split()
    if not claims:
        raise back("invalid_request", "claims is required.")
    try:
        claims = services.request_validate(provider=provider, claims=claims, return_url=redirect_uri)
    except services.InvalidClaims as exc:
        raise back("invalid_claims", exc.detail) from None
    ticket = {
        "c": provider.client_id,
        "q": claims,
        "n": params.get("nonce", "")[:128],
        "r": redirect_uri,
        "s": state,
        "p": challenge,
        "e": int((now + settings.IDBROKER_REQUEST_TTL).timestamp()),
        "k": secrets.token_urlsafe(16),  # two identical calls are two requests
    }
    link = _ticket_seal(ticket)
    if len(link) > MAX_TICKET_LENGTH:  # a link the broker would refuse to open: say so now, to the provider
        raise back("invalid_request", "state, nonce and redirect_uri together are too long.")
    return Authorized(link_url=f"{settings.PUBLIC_URL}/verify/{link}")


# A redirect-flow link is a ticket: base64url(HMAC-SHA256 ‖ JSON of the validated request), keyed with the broker's
# hash key. It holds nothing the browser did not send to /authorize itself, and only characters of the link
# alphabet, so logs mask it like any verification link (broker/logging.py). Its first opening makes the request row
# with `link_hash` = hash of the ticket, so a second opening finds that row (and is refused elsewhere than in the
# first browser), and two racing first openings make one row (unique `link_hash`).
_TICKET_MAC = 32
# The longest ticket /verify/ opens (and so /authorize hands out): with UTF-8 JSON that is a 500-character state
# and a 128-character nonce of any script, beside a redirect URI of ordinary length.
MAX_TICKET_LENGTH = 4096


def _ticket_seal(ticket: dict) -> str:
    # UTF-8, not \u escapes: a non-ASCII state would otherwise grow sixfold (twelvefold outside the BMP).
    body = json.dumps(ticket, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    mac = bytes.fromhex(crypto.keyed_hash("authorize-ticket", body))
    return base64.urlsafe_b64encode(mac + body).rstrip(b"=").decode()


def _ticket_open(link: str) -> dict | None:
    if len(link) > MAX_TICKET_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(link + "=" * (-len(link) % 4))
    except (ValueError, binascii.Error):
        return None
    mac, body = raw[:_TICKET_MAC], raw[_TICKET_MAC:]
    if not body or not secrets.compare_digest(mac, bytes.fromhex(crypto.keyed_hash("authorize-ticket", body))):
        return None
    try:
        ticket = json.loads(body)
    except ValueError:
        return None
    return ticket if isinstance(ticket, dict) else None


def request_from_ticket(link: str, *, now: datetime) -> VerificationRequest:
    """Make the request a redirect-flow link stands for, at its first opening (services.request_by_link).
    Raises LinkInvalid (not a ticket, or the provider changed so the request no longer holds) or LinkExpired."""
    ticket = _ticket_open(link)
    if ticket is None:
        raise services.LinkInvalid()
    expires_at = datetime.fromtimestamp(ticket["e"], tz=UTC)
    if expires_at <= now:
        raise services.LinkExpired()
    provider = Provider.objects.filter(client_id=ticket["c"], is_active=True).first()
    if provider is None:
        raise services.LinkInvalid()
    try:
        with transaction.atomic():
            request, _ = services.request_create(
                provider=provider,
                claims=ticket["q"],
                nonce=ticket["n"],
                return_url=ticket["r"],
                now=now,
                link=link,
                expires_at=expires_at,
                redirect={"state": ticket["s"], "code_challenge": ticket["p"]},
            )
    except (services.InvalidClaims, services.InvalidReturnUrl):
        raise services.LinkInvalid() from None
    except IntegrityError:  # opened twice at once: the other opening made the row
        request = VerificationRequest.objects.get(link_hash=crypto.token_hash(link))
    return VerificationRequest.objects.select_related("provider").get(pk=request.pk)


def return_location(*, request: VerificationRequest, now: datetime) -> str:
    """Where "Continue to <provider>" goes. Redirect flow: a fresh code, or an OAuth error, with `state`."""
    if request.flow != "redirect":
        return services.return_url_for(request, error=_error_for(request))
    error = _error_for(request)
    if error:
        return with_params(request.return_url, {"error": error, "state": request.state})
    code = secrets.token_urlsafe(32)
    with transaction.atomic():
        AuthorizationCode.objects.filter(request=request, used_at__isnull=True).delete()  # a reload mints anew
        if AuthorizationCode.objects.filter(request=request).exists():
            return with_params(request.return_url, {"error": "access_denied", "state": request.state})
        AuthorizationCode.objects.create(
            code_hash=crypto.keyed_hash("auth-code", code),
            request=request,
            redirect_uri=request.return_url,
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    return with_params(request.return_url, {"code": code, "state": request.state})


def _error_for(request: VerificationRequest) -> str | None:
    S = VerificationRequest.Status
    return {
        S.COMPLETED: None,
        S.CANCELED: "access_denied",
        S.EXPIRED: "expired",
        S.FAILED: "temporarily_unavailable",
    }.get(request.status, "verification_declined")


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return secrets.compare_digest(digest, challenge)


def token_exchange(*, authenticated: Provider | None, data: dict, now: datetime) -> dict:
    """Exchange a code for the attestation. `authenticated` is the provider behind the API key, if any."""

    def fail(error: str, description: str) -> TokenError:
        exc = TokenError(description, code=error)
        exc.oauth_error = error
        return exc

    if data.get("grant_type") != "authorization_code":
        raise fail("unsupported_grant_type", "grant_type must be authorization_code.")
    client_id = data.get("client_id") or (authenticated.client_id if authenticated else "")
    provider = authenticated or Provider.objects.filter(client_id=client_id, is_active=True).first()
    if provider is None or provider.client_id != client_id:
        raise fail("invalid_client", "Authenticate with your API key, or send client_id for a public client.")
    if authenticated is None and provider.client_type != Provider.ClientType.PUBLIC:
        raise fail("invalid_client", "Confidential clients authenticate with their API key.")
    code_hash = crypto.keyed_hash("auth-code", str(data.get("code", "")))
    code = AuthorizationCode.objects.select_related("request__provider").filter(code_hash=code_hash).first()
    if code is None or code.request.provider_id != provider.pk:
        raise fail("invalid_grant", "The code is not valid for this client.")
    # 1. Everything the code is bound to, before the code is touched: whoever holds an intercepted code but not the
    #    client's key, redirect URI and PKCE verifier must not be able to spend it (or get it revoked).
    if data.get("redirect_uri") != code.redirect_uri:
        raise fail("invalid_grant", "redirect_uri does not match the authorization request.")
    challenge, verifier = code.request.code_challenge, str(data.get("code_verifier", ""))
    if challenge and not (VERIFIER.match(verifier) and pkce_matches(verifier, challenge)):
        raise fail("invalid_grant", "code_verifier does not match the code_challenge.")
    if not challenge and verifier:
        raise fail("invalid_grant", "No code_challenge was sent with the authorization request.")
    # 2. A correct exchange of a code already redeemed is a true replay (RFC 6749 §4.1.2): the code leaked together
    #    with what binds it, so what it delivered is revoked.
    if code.used_at is not None:
        _revoke_replayed(code, now=now)
        raise fail("invalid_grant", "The code was already used; what it delivered has been revoked.")
    if code.expires_at <= now:
        raise fail("invalid_grant", "The code has expired.")
    # 3. Spend it with a compare-and-swap: of two concurrent correct exchanges exactly one wins; the other is a replay.
    if not AuthorizationCode.objects.filter(pk=code.pk, used_at__isnull=True).update(used_at=now):
        _revoke_replayed(code, now=now)
        raise fail("invalid_grant", "The code was already used; what it delivered has been revoked.")
    audit_record(event="attestation.shared", request=code.request_id, provider=provider.client_id, now=now)
    attestation = Attestation.objects.filter(request=code.request).order_by("-issued_at").first()
    return {
        "attestation": code.request.token,
        "token_type": "dc+sd-jwt",
        "expires_in": max(0, int((attestation.expires_at - now).total_seconds())) if attestation else 0,
        "verification_request": code.request_id,
    }


def _revoke_replayed(code: AuthorizationCode, *, now: datetime) -> None:
    for attestation in Attestation.objects.filter(request=code.request, revoked_at__isnull=True).select_related(
        "provider"
    ):
        services.attestation_revoke(attestation=attestation, now=now)
