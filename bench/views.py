"""A bare DRF endpoint, the yardstick the check API is compared with in `make bench` (mounted only for benches)."""

from rest_framework.response import Response
from rest_framework.views import APIView


class BareApi(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def post(self, request):
        return Response({"valid": True, "reason": "ok", "claims": {}})
