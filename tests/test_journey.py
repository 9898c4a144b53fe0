"""The API flow of SPEC 2.1/2.2 end to end through the test client, on the embedded default (eager tasks)."""

import json

import pytest
from django.utils import timezone
from joserfc import jws
from joserfc.jwk import KeySet

from attestations.models import VerificationRequest
from tests import journey
from verification.models import Evidence, FactRecord, VerificationSession

pytestmark = pytest.mark.django_db(transaction=True)


def _payload(token: str) -> dict:
    return json.loads(jws.extract_compact(token.split("~")[0].encode()).payload)


def test_approved_journey_yields_an_attestation_that_verifies_with_the_jwks(client, acme, signing_key):
    claims = ["age_over_18", "eligible_jurisdiction", "verified_human"]
    _, final = journey.complete(acme, claims)
    assert final["status"] == "completed"
    token = final["attestation"]
    assert token.endswith("~") and token.count("~") == 1
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    verified = jws.deserialize_compact(token[:-1], keys, algorithms=["ES256"])
    assert verified.headers() == {"alg": "ES256", "typ": "dc+sd-jwt", "kid": signing_key.kid}
    payload = json.loads(verified.payload)
    assert payload["age_over_18"] is True
    assert payload["eligible_jurisdiction"] == {"policy": "export-tier1", "version": 1, "eligible": True}
    assert payload["verified_human"] is True
    assert payload["aud"] == "acme" and payload["nonce"] == "nonce-123"
    assert payload["iat"] % 3600 == 0
    assert payload["assurance"] == {"evidence": "document+selfie", "verified": timezone.now().strftime("%Y-%m")}


def test_token_holds_exactly_the_allowed_keys_and_nothing_personal(acme, signing_key):
    _, final = journey.complete(acme, ["age_over_21"])
    payload = _payload(final["attestation"])
    expected = {"iss", "vct", "sub", "aud", "iat", "nbf", "exp", "jti", "nonce", "assurance", "status", "age_over_21"}
    assert set(payload) == expected
    assert set(payload["status"]) == {"status_list"} and set(payload["status"]["status_list"]) == {"idx", "uri"}
    text = json.dumps(payload)
    for personal in ("1990", "DE", "passport", "dev", "vs_"):
        assert personal not in text.replace(payload["sub"], "").replace(payload["jti"], "")


def test_after_the_journey_no_evidence_ciphertext_or_data_key_remains(acme, signing_key, settings):
    journey.complete(acme, ["age_over_18"])
    session = VerificationSession.objects.get()
    assert session.status == "approved"
    assert Evidence.objects.count() == 0
    assert session.wrapped_data_key is None
    assert not any(p.is_file() for p in settings.IDBROKER_EVIDENCE_DIR.rglob("*"))
    assert session.vendor_deletion == "done"


def test_minor_gets_a_false_age_predicate_stated_as_false(acme, signing_key):
    _, final = journey.complete(acme, ["age_over_18", "age_over_21"], scenario="approved_minor")
    payload = _payload(final["attestation"])
    assert payload["age_over_18"] is False and payload["age_over_21"] is False


def test_restricted_nationality_is_not_eligible(acme, signing_key):
    _, final = journey.complete(acme, ["eligible_jurisdiction"], scenario="approved_restricted")
    assert _payload(final["attestation"])["eligible_jurisdiction"]["eligible"] is False


def test_missing_nationality_is_not_asserted_either_way(acme, signing_key):
    _, final = journey.complete(acme, ["eligible_jurisdiction", "age_over_18"], scenario="approved_no_nationality")
    payload = _payload(final["attestation"])
    assert "eligible_jurisdiction" not in payload  # neither a false yes nor a false no: the provider asks again
    assert payload["age_over_18"] is True


def test_the_result_page_says_which_question_got_no_answer(acme, signing_key):
    trip, _ = journey.complete(acme, ["eligible_jurisdiction", "age_over_18"], scenario="approved_no_nationality")
    page = trip.browser.get("/verify/result").content.decode()
    answered, _, unanswered = page.partition("We could not answer")
    assert "18 or older" in answered and "eligible" not in answered
    assert "eligible under" in unanswered


@pytest.mark.parametrize(("scenario", "status"), [("declined", "declined"), ("error", "failed")])
def test_unsuccessful_outcomes_reach_the_provider_without_a_token(acme, signing_key, scenario, status):
    trip, final = journey.complete(acme, ["age_over_18"], scenario=scenario)
    assert final["status"] == status and final["attestation"] is None
    assert Evidence.objects.count() == 0 and FactRecord.objects.count() == 0
    back = trip.browser.get("/verify/continue")
    expected = {"declined": "verification_declined", "failed": "temporarily_unavailable"}[status]
    # The way back tells the provider only that it did not work.
    assert back["Location"] == f"https://acme.example/return?verification_request={trip.request_id}&error={expected}"


def test_retry_outcome_asks_for_new_photos_then_succeeds(acme, signing_key):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    journey.upload(trip, "document", journey.images.document_png(), "id.png", "image/png")
    journey.upload(trip, "selfie", journey.images.selfie_jpeg(), "me.jpg", "image/jpeg", dev_scenario="retry")
    page = trip.browser.get("/verify/", follow=True)
    assert page.request["PATH_INFO"] == "/verify/document"
    assert b"blurry" in page.content
    assert Evidence.objects.count() == 0
    journey.upload(trip, "document", journey.images.document_png(), "id.png", "image/png")
    journey.upload(trip, "selfie", journey.images.selfie_jpeg(), "me.jpg", "image/jpeg")
    request = VerificationRequest.objects.get(pk=trip.request_id)
    assert request.status == "completed"
    assert VerificationSession.objects.get().attempts == 2


def test_needs_review_waits_then_completes(acme, signing_key, settings):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    journey.upload(trip, "document", journey.images.document_png(), "id.png", "image/png")
    journey.upload(trip, "selfie", journey.images.selfie_jpeg(), "me.jpg", "image/jpeg", dev_scenario="needs_review")
    session = VerificationSession.objects.get()
    assert session.status == "in_review"
    assert Evidence.objects.count() == 0  # our copy goes once the vendor has taken the case
    waiting = trip.browser.get("/verify/waiting")
    assert b"closer look" in waiting.content


def test_user_declining_returns_access_denied(acme, signing_key):
    trip = journey.start(acme, ["age_over_18"])
    trip.browser.get(trip.link_path)
    response = trip.browser.post("/verify/consent", {"action": "decline"}, follow=True)
    assert b"Nothing was shared" in response.content
    assert trip.browser.get("/verify/continue")["Location"].endswith("&error=access_denied")
    assert VerificationRequest.objects.get(pk=trip.request_id).status == "canceled"


def test_two_providers_get_different_subjects_for_the_same_person(acme, globex, signing_key, now):
    from attestations.services import request_complete, request_create
    from verification.services import facts_read

    journey.complete(acme, ["age_over_18"])
    session = VerificationSession.objects.get()
    facts = facts_read(session.facts)
    other, _ = request_create(provider=globex.provider, claims=["age_over_18"], now=now)
    token = request_complete(request=other, subject=session.subject, facts=facts, verified_month="2026-11", now=now)
    first = _payload(VerificationRequest.objects.get(pk=session.request_id).token)
    assert _payload(token)["sub"] != first["sub"]
    assert _payload(token)["aud"] == "globex"


def test_an_unknown_demo_outcome_is_ignored_not_a_server_error(acme, signing_key):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    journey.upload(trip, "document", journey.images.document_png(), "id.png", "image/png")
    response = journey.upload(
        trip, "selfie", journey.images.selfie_jpeg(), "me.jpg", "image/jpeg", dev_scenario="<script>"
    )
    assert response.status_code == 302
    assert VerificationRequest.objects.get(pk=trip.request_id).status == "completed"  # the default outcome
