"""Yardsticks the check API is compared with in `make bench` (mounted only for benches).

- `BareApi`: a bare DRF JSON endpoint, as issue 3 asks.
- `AuthenticatedApi`: the same endpoint behind what every provider endpoint needs (API-key authentication, the
  provider permission and the per-provider rate limit shared across workers), so the bench also shows what the
  check itself (signature, status bit, hourly counter) costs on top of the gate every API call passes.
"""

from rest_framework.response import Response
from rest_framework.views import APIView


class BareApi(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def post(self, request):
        return Response({"valid": True, "reason": "ok", "claims": {}})


class AuthenticatedApi(APIView):
    """The project's default authentication, permission and throttle classes (settings.REST_FRAMEWORK)."""

    def post(self, request):
        return Response({"valid": True, "reason": "ok", "claims": {}})
