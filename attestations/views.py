"""Public, unauthenticated endpoints: keys and issuer metadata (SPEC 4, 6)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from broker.ratelimit import per_client

from . import oauth, policies, signing, statuslist
from .models import StatusList
from .services import vct

# One person starts a verification now and then; a client address asking more often is a script. Behind NAT many
# people share an address, hence well above one person's need. Per provider, see oauth.authorize.
AUTHORIZE_PER_CLIENT_PER_MINUTE = 30


@require_GET
def jwks(request):
    response = JsonResponse(signing.jwks())
    # Short enough that a rotation reaches verifiers quickly; verifiers refetch on an unknown kid anyway.
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def issuer_metadata(request):
    base = settings.PUBLIC_URL
    response = JsonResponse(
        {
            "issuer": base,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "credential_type": vct(),
            "token_type": signing.TOKEN_TYPE,
            "signing_alg_values_supported": sorted(signing.ALGORITHMS),
            "claims_supported": policies.supported_claims(),
            "verification_requests_endpoint": f"{base}/api/v1/verification-requests",
            "check_endpoint": f"{base}/api/v1/attestations/check",
            "status_list_endpoint": f"{base}/status-lists/{{id}}",
        }
    )
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
def status_list(request, list_id: int):
    found = StatusList.objects.filter(pk=list_id).first()
    if found is None:
        return JsonResponse({"code": "not_found"}, status=404)
    response = HttpResponse(
        statuslist.status_list_token(found, now=timezone.now()), content_type="application/statuslist+jwt"
    )
    response["Cache-Control"] = f"public, max-age={settings.IDBROKER_STATUS_LIST_TTL_SECONDS}"
    return response


@require_GET
def health(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        ok = True
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        ok = False
    return JsonResponse({"status": "ok" if ok else "degraded", "database": ok}, status=200 if ok else 503)


@require_GET
@per_client("authorize", limit=AUTHORIZE_PER_CLIENT_PER_MINUTE, window=60)
def authorize(request):
    """SPEC 2.1 redirect flow entry point. Invalid client or redirect URI: shown here, never redirected."""
    try:
        authorized = oauth.authorize(params=request.GET.dict(), now=timezone.now())
    except oauth.AuthorizeRateLimited as exc:
        response = render(
            request,
            "verification/error.html",
            {
                "title": "Too many sign-in attempts",
                "message": "This service is sending many people here right now. Please wait a moment and try again.",
            },
            status=429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    except oauth.AuthorizeError as exc:
        if exc.redirect:
            return HttpResponseRedirect(exc.location)
        return render(
            request,
            "verification/error.html",
            {
                "title": "This sign-in link is not valid",
                "message": "The service that sent you here made a mistake in its request "
                f"({exc.error}: {exc.description}). Go back to it and try again.",
            },
            status=400,
        )
    return HttpResponseRedirect(authorized.link_url)
