"""Revocation by provider request and in bulk when a jurisdiction policy changes (issue 3, part 2)."""

import json

import pytest
from django.core.management import call_command

from attestations import statuslist
from attestations.models import Attestation, JurisdictionPolicy
from audit.models import AuditEvent
from tests import journey

pytestmark = pytest.mark.django_db(transaction=True)


def _jti(token):
    import base64

    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]


def _check(provider, token):
    return provider.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()


def test_a_provider_revokes_its_own_attestation_and_only_its_own(acme, globex, signing_key):
    _, final = journey.complete(acme, ["age_over_18"])
    token = final["attestation"]
    foreign = globex.client.post("/api/v1/attestations/revoke", {"jti": _jti(token)}, format="json")
    assert foreign.status_code == 404
    assert _check(acme, token)["valid"] is True
    first = acme.client.post("/api/v1/attestations/revoke", {"jti": _jti(token)}, format="json")
    assert first.status_code == 200 and first.json() == {"revoked": True}
    again = acme.client.post("/api/v1/attestations/revoke", {"jti": _jti(token)}, format="json")
    assert again.json() == {"revoked": False}
    assert _check(acme, token)["reason"] == "revoked"
    row = Attestation.objects.get(jti=_jti(token))
    assert statuslist.is_revoked(row.status_list_id, row.status_idx)
    assert AuditEvent.objects.filter(event="attestation.revoked").count() == 1


def test_changing_a_policy_bumps_its_version_and_revokes_answers_under_the_old_one(acme, signing_key):
    _, eligible = journey.complete(acme, ["eligible_jurisdiction"])
    _, age_only = journey.complete(acme, ["age_over_18"])
    call_command("create_policy", slug="export-tier1", mode="deny", countries="CU,IR,KP,SY,DE")
    policy = JurisdictionPolicy.objects.get(slug="export-tier1")
    assert policy.version == 2
    assert _check(acme, eligible["attestation"])["reason"] == "revoked"
    assert _check(acme, age_only["attestation"])["valid"] is True  # did not depend on the policy
    _, fresh = journey.complete(acme, ["eligible_jurisdiction"])
    claims = _check(acme, fresh["attestation"])["claims"]
    assert claims["eligible_jurisdiction"] == {"policy": "export-tier1", "version": 2, "eligible": False}
    assert AuditEvent.objects.filter(event="policy.changed").count() == 1


def test_re_saving_the_same_rule_changes_nothing(acme, signing_key):
    _, eligible = journey.complete(acme, ["eligible_jurisdiction"])
    call_command("create_policy", slug="export-tier1", mode="deny", countries="sy,kp,ir,cu")
    assert JurisdictionPolicy.objects.get(slug="export-tier1").version == 1
    assert _check(acme, eligible["attestation"])["valid"] is True
