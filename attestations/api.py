"""Provider REST API, version 1 (SPEC 6). One APIView per operation, with its own input/output serializers."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.errors import NotFound

from . import oauth, services
from .authentication import ProviderPrincipal
from .idempotency import idempotent
from .models import VerificationRequest

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe POST: the same key and body replay the first response for 24 h.",
)


def _principal(request):
    return request.user.provider


class RequestOutput(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    claims = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    attestation = serializers.CharField(allow_null=True, help_text="The signed SD-JWT VC, once status is completed.")

    class Meta:
        ref_name = "VerificationRequest"


def _request_out(obj: VerificationRequest) -> dict:
    return RequestOutput(
        {
            "id": obj.id,
            "status": obj.status,
            "claims": obj.claims,
            "created_at": obj.created_at,
            "expires_at": obj.expires_at,
            "completed_at": obj.completed_at,
            "attestation": obj.token or None,
        }
    ).data


class VerificationRequestCreateApi(APIView):
    class Input(serializers.Serializer):
        claims = serializers.ListField(child=serializers.CharField(max_length=40), min_length=1, max_length=10)
        nonce = serializers.CharField(max_length=128, required=False, default="")
        return_url = serializers.URLField(max_length=500, required=False, default="")

        class Meta:
            ref_name = "VerificationRequestCreate"

    class Output(serializers.Serializer):
        id = serializers.CharField()
        url = serializers.URLField(help_text="Send the user here. It works once, until expires_at.")
        status = serializers.CharField()
        expires_at = serializers.DateTimeField()

        class Meta:
            ref_name = "VerificationRequestCreated"

    @extend_schema(
        request=Input,
        responses={201: Output},
        operation_id="verification_requests_create",
        parameters=[IDEMPOTENCY_HEADER],
    )
    @idempotent
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        created, url = services.request_create(provider=_principal(request), now=timezone.now(), **data.validated_data)
        out = self.Output({"id": created.id, "url": url, "status": created.status, "expires_at": created.expires_at})
        return Response(out.data, status=status.HTTP_201_CREATED)


class VerificationRequestDetailApi(APIView):
    @extend_schema(responses={200: RequestOutput}, operation_id="verification_requests_retrieve")
    def get(self, request, request_id: str):
        found = VerificationRequest.objects.filter(pk=request_id, provider=_principal(request)).first()
        if found is None:  # another provider's request is indistinguishable from a missing one
            raise NotFound("No such verification request.")
        return Response(_request_out(found))


class AttestationCheckApi(APIView):
    class Input(serializers.Serializer):
        token = serializers.CharField(max_length=8192, trim_whitespace=True)
        nonce = serializers.CharField(max_length=128, required=False)

        class Meta:
            ref_name = "AttestationCheck"

    class Output(serializers.Serializer):
        valid = serializers.BooleanField()
        reason = serializers.CharField(
            help_text="ok; invalid (anything but a genuine token addressed to you, another provider's included); "
            "and for your own tokens only: expired, not_yet_valid, nonce_mismatch, revoked."
        )
        claims = serializers.DictField()

        class Meta:
            ref_name = "AttestationCheckResult"

    @extend_schema(request=Input, responses={200: Output}, operation_id="attestations_check")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.attestation_check(provider=_principal(request), now=timezone.now(), **data.validated_data)
        return Response({"valid": result.valid, "reason": result.reason, "claims": result.claims})


class TokenApi(APIView):
    """POST /api/v1/token: exchange a redirect-flow code for the attestation (RFC 6749 §4.1.3, RFC 7636 §4.5).

    Confidential clients authenticate with their API key; public clients send `client_id` and must use PKCE.
    """

    permission_classes = [AllowAny]
    parser_classes = [FormParser, JSONParser]

    class Input(serializers.Serializer):
        grant_type = serializers.CharField(max_length=40)
        code = serializers.CharField(max_length=200)
        redirect_uri = serializers.CharField(max_length=500)
        client_id = serializers.CharField(max_length=64, required=False)
        code_verifier = serializers.CharField(max_length=128, required=False)

        class Meta:
            ref_name = "TokenRequest"

    class Output(serializers.Serializer):
        attestation = serializers.CharField()
        token_type = serializers.CharField()
        expires_in = serializers.IntegerField()
        verification_request = serializers.CharField()

        class Meta:
            ref_name = "TokenResponse"

    @extend_schema(request=Input, responses={200: Output}, operation_id="token", auth=[{"ProviderApiKey": []}, {}])
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        principal = request.user if isinstance(request.user, ProviderPrincipal) else None
        result = oauth.token_exchange(
            authenticated=principal.provider if principal else None, data=data.validated_data, now=timezone.now()
        )
        response = Response(self.Output(result).data)
        response["Cache-Control"] = "no-store"  # RFC 6749 §5.1
        return response


class AttestationRevokeApi(APIView):
    """POST /api/v1/attestations/revoke: a provider revokes an attestation it received (e.g. the account closed)."""

    class Input(serializers.Serializer):
        jti = serializers.CharField(max_length=64)

        class Meta:
            ref_name = "AttestationRevoke"

    class Output(serializers.Serializer):
        revoked = serializers.BooleanField(help_text="false if it was already revoked")

        class Meta:
            ref_name = "AttestationRevoked"

    @extend_schema(request=Input, responses={200: Output}, operation_id="attestations_revoke")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        revoked = services.attestation_revoke_by_provider(
            provider=_principal(request), jti=data.validated_data["jti"], now=timezone.now()
        )
        return Response({"revoked": revoked})
