"""The redirect flow (SPEC 2.1): OAuth 2.0 authorization-code shaped, with PKCE (RFC 7636).

1. `GET /authorize` validates client and redirect URI first. While either is wrong, the error is shown to the user
   and nobody is redirected anywhere (RFC 6749 §4.1.2.1: never an open redirect). Once both are right, every other
   error goes back to the redirect URI as `error=…&state=…`.
2. The verification itself is the ordinary journey; the request remembers `state` and the PKCE challenge.
3. When the user leaves the result page, a single-use code (≤ 60 s, stored hashed) is minted for a completed request.
4. `POST /api/v1/token` exchanges it once: client, redirect URI and PKCE verifier must match. A second use of the
   same code revokes the attestation it delivered (RFC 6749 §4.1.2: the code may have leaked).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.db import transaction

from audit.services import audit_record
from broker.errors import BrokerError
from verification import crypto

from . import services
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


@dataclass(frozen=True)
class Authorized:
    request: VerificationRequest
    link_url: str


def authorize(*, params: dict, now: datetime) -> Authorized:
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    provider = Provider.objects.filter(client_id=client_id, is_active=True).first() if client_id else None
    if provider is None:
        raise AuthorizeError("invalid_client", "Unknown client_id.", redirect=False)
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
        request, link_url = services.request_create(
            provider=provider, claims=claims, nonce=params.get("nonce", "")[:128], return_url=redirect_uri, now=now
        )
    except services.InvalidClaims as exc:
        raise back("invalid_claims", exc.detail) from None
    VerificationRequest.objects.filter(pk=request.pk).update(state=state, code_challenge=challenge, flow="redirect")
    request.state, request.code_challenge, request.flow = state, challenge, "redirect"
    return Authorized(request=request, link_url=link_url)


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
    # Spend the code with a compare-and-swap: of two concurrent exchanges exactly one wins.
    if not AuthorizationCode.objects.filter(pk=code.pk, used_at__isnull=True).update(used_at=now):
        _revoke_replayed(code, now=now)
        raise fail("invalid_grant", "The code was already used; what it delivered has been revoked.")
    if code.expires_at <= now:
        raise fail("invalid_grant", "The code has expired.")
    if data.get("redirect_uri") != code.redirect_uri:
        raise fail("invalid_grant", "redirect_uri does not match the authorization request.")
    challenge, verifier = code.request.code_challenge, str(data.get("code_verifier", ""))
    if challenge and not (VERIFIER.match(verifier) and pkce_matches(verifier, challenge)):
        raise fail("invalid_grant", "code_verifier does not match the code_challenge.")
    if not challenge and verifier:
        raise fail("invalid_grant", "No code_challenge was sent with the authorization request.")
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
