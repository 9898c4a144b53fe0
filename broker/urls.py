from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from attestations import api as attestation_api
from attestations import views as attestation_views
from audit import views as audit_views
from broker.csp import csp_override
from verification import views as verification_views

api_v1 = [
    path(
        "verification-requests",
        attestation_api.VerificationRequestCreateApi.as_view(),
        name="api-verification-requests",
    ),
    path(
        "verification-requests/<str:request_id>",
        attestation_api.VerificationRequestDetailApi.as_view(),
        name="api-verification-request",
    ),
    path("token", attestation_api.TokenApi.as_view(), name="api-token"),
    path("attestations/revoke", attestation_api.AttestationRevokeApi.as_view(), name="api-attestations-revoke"),
    path("attestations/check", attestation_api.AttestationCheckApi.as_view(), name="api-attestations-check"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path(
        "api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="api-schema"
    ),
    path(
        "api/docs/",
        # The split view serves Swagger UI's start-up script as a file (`?script`), so no inline script is needed;
        # Swagger UI styles with inline style attributes, hence its own style-src (broker/csp.py).
        csp_override(style_src=["'self'", "'unsafe-inline'"])(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[], permission_classes=[])
        ),
        name="api-docs",
    ),
    path(".well-known/jwks.json", attestation_views.jwks, name="jwks"),
    path(".well-known/jwt-vc-issuer", attestation_views.issuer_metadata, name="jwt-vc-issuer"),
    path(".well-known/attestation-issuer", attestation_views.issuer_metadata, name="attestation-issuer"),
    path("status-lists/<int:list_id>", attestation_views.status_list, name="status-list"),
    path("healthz", attestation_views.health, name="health"),
    path("authorize", attestation_views.authorize, name="authorize"),
    path("verify/continue", verification_views.continue_to_provider, name="verify-continue"),
    path("verify/handoff", verification_views.handoff, name="verify-handoff"),
    path("verify/phone/<str:token>", verification_views.phone, name="verify-phone"),
    path("verify/on-phone/document", verification_views.phone_document, name="verify-phone-document"),
    path("verify/on-phone/selfie", verification_views.phone_selfie, name="verify-phone-selfie"),
    path("verify/on-phone/done", verification_views.phone_done, name="verify-phone-done"),
    path("verify/", verification_views.resume, name="verify-resume"),
    path("verify/consent", verification_views.consent, name="verify-consent"),
    path("verify/document", verification_views.document, name="verify-document"),
    path("verify/selfie", verification_views.selfie, name="verify-selfie"),
    path("verify/waiting", verification_views.waiting, name="verify-waiting"),
    path("verify/status", verification_views.status, name="verify-status"),
    path("verify/result", verification_views.result, name="verify-result"),
    path("verify/hosted", verification_views.hosted, name="verify-hosted"),
    path("verify/return", verification_views.vendor_return, name="verify-return"),
    path("verify/receipt", verification_views.deletion_receipt, name="verify-receipt"),
    path("verify/<str:link>", verification_views.open_link, name="verify-link"),
    path("webhooks/vendors/<str:vendor>", verification_views.vendor_webhook, name="vendor-webhook"),
    path("transparency/tree-head", audit_views.tree_head, name="transparency-tree-head"),
    path("transparency/proof/inclusion", audit_views.inclusion_proof, name="transparency-inclusion"),
    path("transparency/proof/consistency", audit_views.consistency_proof, name="transparency-consistency"),
    path("transparency/entries", audit_views.entries, name="transparency-entries"),
    path("account/", include("accounts.urls")),
    path("auditor/", include("auditor.urls")),
    path("admin/", admin.site.urls),
]

if settings.IDBROKER_BENCH:
    from bench.views import AuthenticatedApi, BareApi

    urlpatterns += [path("bench/bare", BareApi.as_view()), path("bench/authenticated", AuthenticatedApi.as_view())]

if settings.IDBROKER_DEMO:
    urlpatterns.append(path("", include("demo_provider.urls")))

handler400 = "verification.views.bad_request"
handler404 = "verification.views.page_not_found"
handler500 = "verification.views.server_error"
