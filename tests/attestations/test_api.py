"""Provider API hygiene (SPEC 6): authentication, validation, isolation, throttling, problem details, discovery."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from attestations import services
from attestations.models import ApiKey
from tests.attestations.support import issue

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
REQUESTS = "/api/v1/verification-requests"
CHECK = "/api/v1/attestations/check"


def assert_problem(response, status: int, code: str) -> dict:
    """An RFC 9457 problem-details document with our stable code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert {"type", "title", "status", "code"} <= set(body), body
    assert body["status"] == status and body["code"] == code
    assert body["type"].endswith(f"/{code}") and body["title"]
    return body


def bearer(value: str | None, *, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    if value is not None:
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {value}".strip())
    return client


def create(handle, **body):
    return handle.client.post(REQUESTS, {"claims": ["age_over_18"], **body}, format="json")


# --- Authentication ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", REQUESTS), ("get", f"{REQUESTS}/vr_x"), ("post", CHECK), ("post", "/api/v1/attestations/revoke")],
)
def test_no_authorization_header_is_a_401_unauthenticated(db, method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_scheme_is_an_invalid_api_key(acme):
    for scheme in ("Basic", "Token", "bearer-ish"):
        assert_problem(
            bearer(acme.api_key, scheme=scheme).post(CHECK, {"token": "x~"}, format="json"), 401, "invalid_api_key"
        )
    assert_problem(bearer("", scheme="Bearer").post(CHECK, {"token": "x~"}, format="json"), 401, "invalid_api_key")


@pytest.mark.parametrize(
    "key",
    [
        "not-a-key",
        "idb_",
        "idb__",
        "idb_abc",
        "idb_abc_",
        "xyz_abc_def",
        "idb_deadbeef0000_" + "A" * 43,
        "idb_\u00e9_x",
    ],
)
def test_a_malformed_or_unknown_key_is_an_invalid_api_key(acme, key):
    assert_problem(bearer(key).get(f"{REQUESTS}/vr_x"), 401, "invalid_api_key")


def test_a_real_lookup_with_the_wrong_secret_is_an_invalid_api_key(acme):
    prefix, lookup, secret = acme.api_key.split("_", 2)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert_problem(bearer(f"{prefix}_{lookup}_{wrong}").get(f"{REQUESTS}/vr_x"), 401, "invalid_api_key")
    assert bearer(acme.api_key).get(f"{REQUESTS}/vr_x").status_code == 404  # the genuine key gets past auth


def test_a_revoked_key_is_refused_at_once_even_after_it_was_used(acme, now):
    assert create(acme).status_code == 201  # the key is now remembered by this process
    key = ApiKey.objects.get(provider=acme.provider)
    services.api_key_revoke(key=key, now=now)
    assert_problem(create(acme), 401, "invalid_api_key")
    fresh = services.api_key_create(provider=acme.provider, now=now)
    replacement = bearer(fresh).post(REQUESTS, {"claims": ["age_over_18"]}, format="json")
    assert replacement.status_code == 201


def test_an_inactive_provider_cannot_authenticate(acme):
    acme.provider.is_active = False
    acme.provider.save(update_fields=["is_active"])
    assert_problem(create(acme), 401, "invalid_api_key")


def test_api_keys_are_stored_hashed_and_the_plaintext_is_nowhere_in_the_database(acme, globex):
    secrets = [handle.api_key.split("_", 2)[2] for handle in (acme, globex)]
    assert create(acme).status_code == 201  # using the key must not write it anywhere either
    assert all(len(s) >= 40 for s in secrets)
    dumped = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            dumped.append(repr(cursor.fetchall()))
    everything = "\n".join(dumped)
    for handle, secret in zip((acme, globex), secrets, strict=True):
        assert secret not in everything
        assert handle.api_key not in everything
    row = ApiKey.objects.get(provider=acme.provider)
    assert acme.api_key == f"idb_{row.lookup}_{secrets[0]}"
    assert len(row.secret_hash) == 64 and row.secret_hash != secrets[0]


# --- Validation ----------------------------------------------------------------------------------------------------


def test_claims_not_allowed_for_the_provider_are_invalid_claims(acme):
    acme.provider.allowed_claims = ["age_over_18"]
    acme.provider.save(update_fields=["allowed_claims"])
    body = assert_problem(create(acme, claims=["age_over_18", "age_over_21"]), 400, "invalid_claims")
    assert "age_over_21" in body["detail"]
    assert create(acme, claims=["age_over_18"]).status_code == 201


@pytest.mark.parametrize("claims", [["favourite_colour"], ["age_over_19"], ["age_over_18", "date_of_birth"]])
def test_an_unknown_claim_is_invalid_claims(acme, claims):
    assert_problem(create(acme, claims=claims), 400, "invalid_claims")


def test_no_claims_is_an_invalid_request(acme):
    assert_problem(create(acme, claims=[]), 400, "invalid_request")


def test_eligible_jurisdiction_without_a_policy_is_invalid_claims(acme):
    acme.provider.policy = None
    acme.provider.save(update_fields=["policy"])
    assert_problem(create(acme, claims=["eligible_jurisdiction"]), 400, "invalid_claims")


def test_a_return_url_that_is_not_registered_is_refused(acme):
    for url in ("https://evil.example/return", "https://acme.example/return/", "https://acme.example/return?x=1"):
        assert_problem(create(acme, return_url=url), 400, "invalid_return_url")
    assert create(acme, return_url="https://acme.example/return").status_code == 201


def test_malformed_json_is_a_400_malformed_json(acme):
    for raw in ('{"claims": ["age_over_18"', "not json", '{"claims": [age_over_18]}'):
        response = acme.client.post(REQUESTS, raw, content_type="application/json")
        assert_problem(response, 400, "malformed_json")
    assert_problem(acme.client.post(CHECK, "{", content_type="application/json"), 400, "malformed_json")


def test_a_body_that_is_not_json_is_unsupported_media_type(acme):
    response = acme.client.post(REQUESTS, "claims=age_over_18", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")


# --- Isolation between providers ------------------------------------------------------------------------------------


def test_another_providers_request_is_indistinguishable_from_a_missing_one(acme, globex):
    theirs = create(globex).json()["id"]
    foreign = acme.client.get(f"{REQUESTS}/{theirs}")
    missing = acme.client.get(f"{REQUESTS}/vr_{'x' * 22}")
    assert_problem(foreign, 404, "not_found")
    assert foreign.json() == missing.json()
    assert globex.client.get(f"{REQUESTS}/{theirs}").status_code == 200


def test_a_request_before_completion_has_no_attestation(acme):
    created = create(acme, nonce="n-1")
    assert created.status_code == 201
    summary = created.json()
    assert set(summary) == {"id", "url", "status", "expires_at"} and summary["status"] == "pending"
    body = acme.client.get(f"{REQUESTS}/{summary['id']}").json()
    assert body["status"] == "pending"
    assert body["attestation"] is None and body["completed_at"] is None
    assert body["claims"] == ["age_over_18"]
    assert set(body) == {"id", "status", "claims", "created_at", "expires_at", "completed_at", "attestation"}


# --- Throttling ----------------------------------------------------------------------------------------------------


def test_each_provider_has_its_own_rate_limit(acme, globex):
    # A daily window, so the test cannot straddle a window boundary (fixed windows reset there).
    acme.provider.rate_limit = "3/day"
    acme.provider.save(update_fields=["rate_limit"])
    for _ in range(3):
        assert acme.client.get(f"{REQUESTS}/vr_x").status_code == 404
    throttled = acme.client.get(f"{REQUESTS}/vr_x")
    assert_problem(throttled, 429, "rate_limited")
    assert 0 < int(throttled["Retry-After"]) <= 86400
    assert_problem(acme.client.post(CHECK, {"token": "x~"}, format="json"), 429, "rate_limited")
    # globex shares the default limit, not acme's exhausted budget.
    assert globex.client.get(f"{REQUESTS}/vr_x").status_code == 404


# --- Every error is a problem-details document -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda h: APIClient().post(CHECK, {"token": "x~"}, format="json"), 401, "unauthenticated"),
        (lambda h: bearer("idb_nope_nope").post(CHECK, {"token": "x~"}, format="json"), 401, "invalid_api_key"),
        (lambda h: h.client.post(CHECK, {}, format="json"), 400, "invalid_request"),
        (lambda h: h.client.post(CHECK, "{", content_type="application/json"), 400, "malformed_json"),
        (lambda h: h.client.get(CHECK), 405, "method_not_allowed"),
        (lambda h: h.client.delete(f"{REQUESTS}/vr_x"), 405, "method_not_allowed"),
        (lambda h: h.client.get(f"{REQUESTS}/vr_x"), 404, "not_found"),
        (lambda h: create(h, claims=["nope"]), 400, "invalid_claims"),
        (lambda h: create(h, return_url="https://evil.example/"), 400, "invalid_return_url"),
        (lambda h: h.client.post(REQUESTS, "x", content_type="text/plain"), 415, "unsupported_media_type"),
        (lambda h: h.client.post("/api/v1/attestations/revoke", {"jti": "nope"}, format="json"), 404, "not_found"),
        (
            lambda h: APIClient().post(
                "/api/v1/token",
                {"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://a.example"},
                format="json",
            ),
            400,
            "invalid_client",
        ),
    ],
)
def test_every_error_response_is_problem_details(acme, call, status, code):
    response = call(acme)
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "code"} <= set(body)
    assert body["status"] == status and isinstance(body["title"], str) and body["title"]
    assert body["code"] == code and body["type"].endswith(f"/{code}")


# --- Discovery and health ------------------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_check_endpoint(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/attestations/check" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/attestations/check"]
    assert "/api/v1/verification-requests" in schema["paths"]
    assert b"/api/v1/attestations/check" in client.get("/api/schema/").content  # the default (YAML) rendering too


def test_the_jwks_is_cacheable_and_holds_only_public_members(client, signing_key, now):
    from attestations.signing import signing_key_create

    ed25519 = signing_key_create(alg="Ed25519", now=now)
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=" in response["Cache-Control"] and "public" in response["Cache-Control"]
    keys = response.json()["keys"]
    assert {k["kid"] for k in keys} == {signing_key.kid, ed25519.kid}
    for key in keys:
        assert "d" not in key and not {"p", "q", "dp", "dq", "qi", "k"} & set(key)
        assert key["use"] == "sig" and key["alg"] in {"ES256", "Ed25519"}
    assert set(next(k for k in keys if k["alg"] == "ES256")) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert set(next(k for k in keys if k["alg"] == "Ed25519")) == {"kty", "crv", "x", "kid", "alg", "use"}


def test_the_issuer_metadata_names_the_issuer_and_its_jwks(client, db, settings):
    for path in ("/.well-known/jwt-vc-issuer", "/.well-known/attestation-issuer"):
        response = client.get(path)
        assert response.status_code == 200 and "max-age=" in response["Cache-Control"]
        metadata = response.json()
        assert metadata["issuer"] == settings.PUBLIC_URL
        assert metadata["jwks_uri"] == f"{settings.PUBLIC_URL}/.well-known/jwks.json"
        assert metadata["check_endpoint"] == f"{settings.PUBLIC_URL}/api/v1/attestations/check"
        assert "age_over_18" in metadata["claims_supported"]


def test_the_jwks_uri_in_the_metadata_serves_the_keys_a_token_names(client, acme, signing_key, now, settings):
    from tests.attestations.support import split

    header, _, _ = split(issue(acme, now=now))
    jwks_uri = client.get("/.well-known/jwt-vc-issuer").json()["jwks_uri"]
    keys = client.get(jwks_uri.removeprefix(settings.PUBLIC_URL)).json()["keys"]
    assert header["kid"] in {k["kid"] for k in keys}


def test_the_health_endpoint_answers_200(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True}


def test_public_endpoints_need_no_api_key_and_refuse_writes(client, db):
    for path in ("/.well-known/jwks.json", "/.well-known/jwt-vc-issuer", "/healthz", "/api/schema/"):
        assert client.get(path).status_code == 200
    assert client.post("/.well-known/jwks.json").status_code == 405
