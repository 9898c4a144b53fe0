"""The person's own page (SPEC 2.3): who received what, revoke, download, delete everything."""

import json

import pytest
from django.test import Client

from accounts.models import Account, Passkey
from attestations.models import Attestation
from audit.models import AuditEvent
from audit.services import audit_verify
from tests import journey
from verification import services
from verification.models import FactRecord, VerificationSession

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def person(acme, globex, signing_key, now):
    """Verified at acme, then reused at globex, with an account."""
    journey.complete(acme, ["age_over_18"])
    subject = VerificationSession.objects.get().subject
    request, _ = services.attestation_services.request_create(provider=globex.provider, claims=["age_over_21"], now=now)
    services.request_answer_from_facts(request=request, subject=subject, now=now)
    account = Account.objects.create(subject=subject, created_at=now)
    Passkey.objects.create(account=account, credential_id="cred-1", public_key=b"k", created_at=now)
    browser = Client()
    session = browser.session
    session["idb_account"] = account.pk
    session.save()
    return account, browser


def test_the_page_lists_every_provider_that_received_an_attestation(person):
    _, browser = person
    page = browser.get("/account/").content.decode()
    assert "Acme AI" in page and "Globex Chat" in page and "age_over_21" in page
    assert page.count(">Revoke</button>") == 2


def test_revoking_one_share_flips_its_bit_and_leaves_the_other(person, acme, globex):
    _, browser = person
    at_acme = Attestation.objects.get(provider=acme.provider)
    assert browser.post(f"/account/shares/{at_acme.pk}/revoke").status_code == 302
    at_acme.refresh_from_db()
    assert at_acme.revoked_at is not None
    assert Attestation.objects.get(provider=globex.provider).revoked_at is None
    token = at_acme.request.token
    assert acme.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()["reason"] == "revoked"


def test_someone_elses_share_cannot_be_revoked(person, acme, signing_key, now):
    _, browser = person
    journey.complete(acme, ["age_over_18"])  # a second person
    foreign = Attestation.objects.order_by("-pk").first()
    assert browser.post(f"/account/shares/{foreign.pk}/revoke").status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_the_download_holds_facts_shares_and_audit_events_for_this_person_only(person):
    account, browser = person
    response = browser.get("/account/export")
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["account"]["id"] == account.pk
    assert data["facts"][0]["facts"]["date_of_birth"] == "1990-04-12"  # decrypted for the person alone
    assert {s["provider"] for s in data["shares"]} == {"Acme AI", "Globex Chat"}
    assert {"evidence.stored", "attestation.issued", "facts.reused"} <= {e["event"] for e in data["audit_events"]}


def test_delete_everything_leaves_nothing_about_the_person_but_an_audit_entry(person, acme):
    account, browser = person
    assert browser.post("/account/delete", {}).status_code == 400  # needs the confirmation
    response = browser.post("/account/delete", {"confirm": "yes"})
    assert b"Everything is deleted" in response.content
    assert not Account.objects.exists() and not Passkey.objects.exists()
    record = FactRecord.objects.get()
    assert record.sealed is None and record.wrapped_key is None and record.destroyed_at is not None
    assert not Attestation.objects.filter(revoked_at__isnull=True).exists()
    assert AuditEvent.objects.filter(event="account.deleted", refs={"account": account.pk}).exists()
    assert audit_verify().ok
    assert browser.get("/account/")["Location"] == "/account/signin"  # signed out
