"""IETF OAuth Token Status List: encoding, random indices, and revocation visible offline (SPEC 4)."""

import json

import pytest
from joserfc import jws
from joserfc.jwk import KeySet

from attestations import statuslist
from attestations.models import Attestation
from attestations.services import attestation_revoke
from tests import journey

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_specification_example_decodes_to_its_bits():
    # draft-ietf-oauth-status-list, 1-bit example: statuses 1,0,0,1,1,1,0,1, 1,1,0,0,0,1,0,1 → bytes B9 A3.
    packed = statuslist.decode("eNrbuRgAAhcBXQ")
    assert packed == bytes([0xB9, 0xA3])
    assert [statuslist.bit(packed, i) for i in range(16)] == [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]


def test_encoding_reproduces_the_specification_example():
    revoked = [i for i, b in enumerate([1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]) if b]
    assert statuslist.encode(revoked, 16) == "eNrbuRgAAhcBXQ"


def _payload(token):
    return json.loads(jws.extract_compact(token.split("~")[0].encode()).payload)


def test_a_revoked_token_shows_its_bit_in_the_signed_list_and_at_the_check_api(client, acme, signing_key, now):
    _, first = journey.complete(acme, ["age_over_18"])
    _, second = journey.complete(acme, ["age_over_18"])
    ref_first = _payload(first["attestation"])["status"]["status_list"]
    ref_second = _payload(second["attestation"])["status"]["status_list"]
    assert ref_first["uri"] == ref_second["uri"] and ref_first["idx"] != ref_second["idx"]

    attestation_revoke(attestation=Attestation.objects.get(status_idx=ref_first["idx"]), now=now)

    path = ref_first["uri"].removeprefix("http://testserver")
    response = client.get(path)
    assert response["Content-Type"] == "application/statuslist+jwt"
    assert "max-age=300" in response["Cache-Control"]
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    verified = jws.deserialize_compact(response.content.decode(), keys, algorithms=["ES256"])
    assert verified.headers()["typ"] == "statuslist+jwt"
    body = json.loads(verified.payload)
    assert body["sub"] == ref_first["uri"] and body["ttl"] == 300 and body["status_list"]["bits"] == 1
    packed = statuslist.decode(body["status_list"]["lst"])
    assert len(packed) * 8 == 1 << 20
    assert statuslist.bit(packed, ref_first["idx"]) == 1
    assert statuslist.bit(packed, ref_second["idx"]) == 0
    assert sum(bin(b).count("1") for b in packed) == 1

    checked = acme.client.post("/api/v1/attestations/check", {"token": first["attestation"]}, format="json").json()
    assert checked == {"valid": False, "reason": "revoked", "claims": {}}
    other = acme.client.post("/api/v1/attestations/check", {"token": second["attestation"]}, format="json").json()
    assert other["valid"] is True


def test_indices_are_random_not_sequential(acme, signing_key, settings):
    settings.IDBROKER_STATUS_LIST_SIZE = 1 << 16
    rows = [
        statuslist.attestation_create_with_status(
            jti=f"j{i}",
            provider=acme.provider,
            claim_names=[],
            kid="k",
            issued_at="2026-01-01T00:00Z",
            expires_at="2026-01-01T00:15Z",
        )
        for i in range(20)
    ]
    indices = [r.status_idx for r in rows]
    assert len(set(indices)) == 20
    assert indices != sorted(indices)
    assert max(indices) - min(indices) > 1000  # spread over the list, not clustered


def test_a_half_full_list_gives_way_to_a_new_one(acme, signing_key, settings):
    settings.IDBROKER_STATUS_LIST_SIZE = 16
    lists = {
        statuslist.attestation_create_with_status(
            jti=f"j{i}",
            provider=acme.provider,
            claim_names=[],
            kid="k",
            issued_at="2026-01-01T00:00Z",
            expires_at="2026-01-01T00:15Z",
        ).status_list_id
        for i in range(12)
    }
    assert len(lists) == 2  # 8 on the first (half of 16), the rest on a second list


def test_an_unknown_status_list_is_404(client, db):
    assert client.get("/status-lists/999").status_code == 404
