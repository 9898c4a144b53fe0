"""Signing keys and provider registration through the operator's `manage.py` commands (SPEC 4 "Keys", SPEC 1)."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from jwcrypto import jwk as jwcrypto_jwk
from rest_framework.test import APIClient

from attestations import signing
from attestations.models import ApiKey, Attestation, Provider, SigningKey
from tests.attestations.support import check, issue, split
from verification import crypto

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def published_kids(client) -> list[str]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


def raw_key_columns(kid: str) -> tuple[bytes, bytes]:
    """The stored private-key columns as the database holds them, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_sealed, private_wrapped_key FROM attestations_signingkey WHERE kid = %s", [kid])
        sealed, wrapped = cursor.fetchone()
    return bytes(sealed), bytes(wrapped)


# --- create_signing_key --------------------------------------------------------------------------------------------


def test_create_signing_key_makes_one_es256_key_whose_kid_is_its_rfc7638_thumbprint(client):
    output = run("create_signing_key")
    key = SigningKey.objects.get()
    assert key.alg == "ES256" and key.status == SigningKey.Status.ACTIVE
    assert key.kid in output
    # Recompute the thumbprint with another library, from what anyone can fetch.
    (published,) = client.get("/.well-known/jwks.json").json()["keys"]
    assert published["kid"] == key.kid
    assert jwcrypto_jwk.JWK(**published).thumbprint() == key.kid
    assert published["kty"] == "EC" and published["crv"] == "P-256"


def test_create_signing_key_does_nothing_when_an_active_key_exists():
    run("create_signing_key")
    first = SigningKey.objects.get()
    assert "active key exists" in run("create_signing_key")
    assert list(SigningKey.objects.values_list("kid", flat=True)) == [first.kid]


def test_create_signing_key_can_make_an_ed25519_key(client):
    run("create_signing_key", "--alg", "Ed25519")
    key = SigningKey.objects.get()
    assert key.alg == "Ed25519"
    (published,) = client.get("/.well-known/jwks.json").json()["keys"]
    assert published["kty"] == "OKP" and published["crv"] == "Ed25519"
    assert jwcrypto_jwk.JWK(**published).thumbprint() == key.kid


def test_the_private_key_is_stored_sealed():
    run("create_signing_key")
    key = SigningKey.objects.get()
    sealed, wrapped = raw_key_columns(key.kid)
    assert b"PRIVATE KEY" not in sealed and b"PRIVATE KEY" not in wrapped
    pem = crypto.unseal(sealed, wrapped, purpose="signing-key", aad=key.kid.encode())
    assert b"PRIVATE KEY" in pem  # what the sealed column hides
    private = jwcrypto_jwk.JWK.from_pem(pem)
    d = private.export_private(as_dict=True)["d"]
    assert d.encode() not in sealed and d not in json.dumps(key.public_jwk)
    assert private.thumbprint() == key.kid  # the sealed key is the published key's partner
    # The sealed key is bound to its kid: it cannot be passed off as another key's.
    with pytest.raises(crypto.DecryptionError):
        crypto.unseal(sealed, wrapped, purpose="signing-key", aad=b"another-kid")


# --- rotate_signing_key --------------------------------------------------------------------------------------------


def test_rotation_activates_a_new_key_and_keeps_the_old_one_published_until_its_tokens_expire(client, acme, now):
    run("create_signing_key")
    old = SigningKey.objects.get()
    before = issue(acme, now=now)
    assert split(before)[0]["kid"] == old.kid

    output = run("rotate_signing_key")

    old.refresh_from_db()
    new = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    assert new.kid != old.kid and new.kid in output
    assert old.status == SigningKey.Status.RETIRING
    assert old.retire_after == Attestation.objects.get(kid=old.kid).expires_at  # its last token's expiry
    assert published_kids(client) == [old.kid, new.kid]
    # Tokens signed before the rotation still verify; new ones carry the new kid.
    assert check(acme, before).json()["valid"] is True
    after = issue(acme, now=now, subject="person-2")
    assert split(after)[0]["kid"] == new.kid
    assert check(acme, after).json()["valid"] is True

    assert signing.signing_keys_retire_expired(now=old.retire_after - timedelta(seconds=1)) == 0
    assert published_kids(client) == [old.kid, new.kid]
    assert signing.signing_keys_retire_expired(now=old.retire_after + timedelta(seconds=1)) == 1
    old.refresh_from_db()
    assert old.status == SigningKey.Status.RETIRED
    assert published_kids(client) == [new.kid]
    assert signing.signing_keys_retire_expired(now=old.retire_after + timedelta(days=1)) == 0  # once only


def test_rotation_waits_for_the_longest_lived_token_of_the_old_key(acme, globex, signing_key, now):
    globex.provider.attestation_ttl_seconds = 3 * 24 * 3600
    globex.provider.save(update_fields=["attestation_ttl_seconds"])
    issue(acme, now=now)
    issue(globex, now=now - timedelta(hours=1))
    signing.signing_key_rotate(now=now)
    signing_key.refresh_from_db()
    assert signing_key.retire_after == now - timedelta(hours=1) + timedelta(days=3)


def test_rotating_a_key_that_signed_nothing_retires_it_from_now(signing_key, now):
    signing.signing_key_rotate(now=now)
    signing_key.refresh_from_db()
    assert signing_key.status == SigningKey.Status.RETIRING and signing_key.retire_after == now
    assert signing.signing_keys_retire_expired(now=now) == 1


def test_rotation_can_switch_algorithm(client, acme, signing_key, now):
    old_token = issue(acme, now=now)
    run("rotate_signing_key", "--alg", "Ed25519")
    new_token = issue(acme, now=now, subject="person-2")
    assert split(new_token)[0]["alg"] == "Ed25519"
    assert check(acme, old_token).json()["valid"] is True
    assert check(acme, new_token).json()["valid"] is True
    assert {k["alg"] for k in client.get("/.well-known/jwks.json").json()["keys"]} == {"ES256", "Ed25519"}


def test_signing_without_an_active_key_is_a_clear_error(acme, signing_key, now):
    SigningKey.objects.update(status=SigningKey.Status.RETIRING)
    with pytest.raises(RuntimeError, match="create_signing_key"):
        issue(acme, now=now)


# --- create_provider -----------------------------------------------------------------------------------------------


def provider_args(*extra) -> list[str]:
    return [
        "create_provider",
        "--name",
        "Initech",
        "--redirect-uri",
        "https://initech.example/back",
        "--redirect-uri",
        "http://localhost:3000/back",
        "--claims",
        "age_over_18, verified_human",
        *extra,
    ]


def test_create_provider_prints_its_client_id_and_key_once_and_the_key_works(signing_key):
    output = run(*provider_args("--json"))
    printed = json.loads(output)
    assert set(printed) == {"client_id", "api_key"}
    key = printed["api_key"]
    assert output.count(key) == 1 and key.startswith("idb_")
    provider = Provider.objects.get(client_id=printed["client_id"])
    assert provider.name == "Initech" and provider.allowed_claims == ["age_over_18", "verified_human"]
    assert provider.redirect_uris == ["https://initech.example/back", "http://localhost:3000/back"]
    stored = ApiKey.objects.get(provider=provider)
    assert key.split("_", 2)[2] not in (stored.secret_hash, stored.lookup)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    created = client.post("/api/v1/verification-requests", {"claims": ["age_over_18"]}, format="json")
    assert created.status_code == 201
    assert client.get(f"/api/v1/verification-requests/{created.json()['id']}").json()["status"] == "pending"
    refused = client.post("/api/v1/verification-requests", {"claims": ["age_over_21"]}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_claims"


def test_create_provider_in_text_mode_warns_that_the_key_is_shown_once():
    output = run(*provider_args("--client-id", "initech"))
    key = ApiKey.objects.get(provider__client_id="initech")
    assert "client_id: initech" in output and "not shown again" in output
    assert output.count(f"idb_{key.lookup}_") == 1


def test_create_provider_with_a_policy_may_ask_for_eligible_jurisdiction(policy):
    printed = json.loads(run(*provider_args("--json", "--policy", policy.slug, "--claims", "eligible_jurisdiction")))
    provider = Provider.objects.get(client_id=printed["client_id"])
    assert provider.policy == policy and provider.allowed_claims == ["eligible_jurisdiction"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--policy", "no-such-policy"), "no-such-policy"),
        (("--claims", "eligible_jurisdiction"), "policy"),
        (("--claims", "age_over_18,date_of_birth"), "date_of_birth"),
        (("--redirect-uri", "http://initech.example/plain-http"), "https"),
        (("--redirect-uri", "https://initech.example/back#frag"), "fragment"),
    ],
)
def test_create_provider_refuses_bad_input_cleanly_and_creates_nothing(policy, extra, message):
    with pytest.raises(CommandError, match=message):
        run(*provider_args(*extra))
    assert not Provider.objects.filter(name="Initech").exists()
    assert not ApiKey.objects.exists()
