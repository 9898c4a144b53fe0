"""Verify once, reuse (SPEC 2.3): a signed-in person answers a new provider in one click, from stored facts."""

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client

from accounts.models import Account
from attestations.models import VerificationRequest
from audit.models import AuditEvent
from tests import journey
from verification import services
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db(transaction=True)


def payload(token):
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def signed_in_browser(subject, now):
    account = Account.objects.create(subject=subject, created_at=now)
    browser = Client()
    session = browser.session
    session["idb_account"] = account.pk
    session.save()
    return browser


def test_a_signed_in_person_approves_a_new_provider_in_one_click(acme, globex, signing_key, now):
    _, first = journey.complete(acme, ["age_over_18"])
    subject = VerificationSession.objects.get().subject
    browser = signed_in_browser(subject, now)
    trip = journey.start(globex, ["age_over_18", "verified_human"])
    assert browser.get(trip.link_path)["Location"] == "/verify/consent"
    page = browser.get("/verify/consent")
    assert b'value="approve"' in page.content and b"No new photos needed" in page.content
    assert browser.post("/verify/consent", {"action": "approve"})["Location"] == "/verify/result"
    request = VerificationRequest.objects.get(pk=trip.request_id)
    assert request.status == "completed"
    assert VerificationSession.objects.count() == 1  # no new capture, no vendor
    token = payload(request.token)
    assert token["aud"] == "globex" and token["age_over_18"] is True and token["verified_human"] is True
    assert token["sub"] != payload(first["attestation"])["sub"]  # pairwise
    assert b"No new photos were needed" in browser.get("/verify/result").content
    assert AuditEvent.objects.filter(event="facts.reused").count() == 1


def test_predicates_are_computed_on_the_day_of_reuse(acme, globex, signing_key, now, settings):
    settings.IDBROKER_FACTS_VALIDITY = timedelta(days=3 * 365)
    journey.complete(acme, ["age_over_18"], scenario="approved_minor")  # sixteen today
    subject = VerificationSession.objects.get().subject
    today_request, _ = services.attestation_services.request_create(
        provider=globex.provider, claims=["age_over_18"], now=now
    )
    assert (
        payload(services.request_answer_from_facts(request=today_request, subject=subject, now=now))["age_over_18"]
        is False
    )
    later = now + timedelta(days=2 * 365 + 2)
    later_request, _ = services.attestation_services.request_create(
        provider=globex.provider, claims=["age_over_18"], now=later
    )
    token = services.request_answer_from_facts(request=later_request, subject=subject, now=later)
    assert payload(token)["age_over_18"] is True


def test_expired_facts_force_a_fresh_verification(acme, globex, signing_key, now):
    journey.complete(acme, ["age_over_18"])
    subject = VerificationSession.objects.get().subject
    assert services.facts_current(subject=subject, now=now + timedelta(days=366)) is None
    services.purge_expired(now=now + timedelta(days=366))
    browser = signed_in_browser(subject, now)
    trip = journey.start(globex, ["age_over_18"])
    browser.get(trip.link_path)
    page = browser.get("/verify/consent")
    assert b'value="approve"' not in page.content and b'value="continue"' in page.content
    refused = browser.post("/verify/consent", {"action": "approve"})  # nothing to reuse
    assert refused["Location"] == "/verify/consent"
    assert VerificationRequest.objects.get(pk=trip.request_id).status == "pending"
    assert VerificationSession.objects.count() == 1  # and no capture was started behind the user's back


def test_without_an_account_there_is_no_one_click_approval(acme, globex, signing_key):
    journey.complete(acme, ["age_over_18"])
    trip = journey.start(globex, ["age_over_18"])
    browser = Client()
    browser.get(trip.link_path)
    assert b'value="approve"' not in browser.get("/verify/consent").content
