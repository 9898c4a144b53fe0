"""Provider authentication for the API: `Authorization: Bearer idb_<lookup>_<secret>`."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from broker import ratelimit

from .models import ApiKey, Provider
from .services import api_key_authenticate


class ProviderPrincipal:
    """What DRF calls `request.user` for API calls: the provider, never a Django user."""

    is_authenticated = True

    def __init__(self, provider: Provider):
        self.provider = provider


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Use `Authorization: Bearer <api key>`.")
        found = api_key_authenticate(raw.strip())
        if found is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or was revoked.")
        provider, key = found
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=5):
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # coarse, so the hot path stays read-only
            key.last_used_at = now  # the (cached) row object too, or every call would write again
        return ProviderPrincipal(provider), provider

    def authenticate_header(self, request):
        return 'Bearer realm="idbroker"'


class IsProvider(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, ProviderPrincipal)


class ProviderRateThrottle(throttling.BaseThrottle):
    """Per-provider limits (SPEC 1): the provider's own `rate_limit`, else IDBROKER_DEFAULT_RATE_LIMIT.

    A fixed-window counter (broker.ratelimit): O(1) per request. DRF's SimpleRateThrottle keeps and re-serialises a
    list of every request time in the window, which grows with the limit and showed up on the check API's hot path.
    """

    parse_rate = throttling.SimpleRateThrottle.parse_rate

    def allow_request(self, request, view):
        if not isinstance(request.user, ProviderPrincipal):
            return True
        provider = request.user.provider
        limit, duration = self.parse_rate(provider.rate_limit or settings.IDBROKER_DEFAULT_RATE_LIMIT)
        allowed, self.retry_after = ratelimit.hit(f"provider:{provider.pk}", limit=limit, window=duration)
        return allowed

    def wait(self):
        return self.retry_after
