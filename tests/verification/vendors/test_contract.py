"""The adapter contract (SPEC 5): every real vendor adapter passes the same cases against its local fake server.

What differs by vendor is stated here as data (which outcomes a vendor can produce, whether it signs a timestamp),
taken from vendors.md, so a difference is an assertion, not a skip.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from verification.vendors import breaker
from verification.vendors.base import (
    PENDING_DELETION,
    Check,
    DeletionState,
    EvidenceKind,
    NotSupported,
    Outcome,
    VendorError,
    WebhookRejected,
)

# Outcomes a vendor cannot produce (vendors.md, normalized status table): the fake refuses the scenario (422).
CANNOT = {
    "persona": {"retry"},
    "onfido": {"retry", "expired"},  # classic checks have no expired state
    "stripe_identity": {"needs_review"},
    "veriff": set(),
}
# Vendors whose webhook signature covers a timestamp (Persona, Stripe): stale deliveries are refused. Onfido and
# Veriff sign the body only; replays are caught by the dedupe ledger and are harmless because results are re-fetched.
TIMESTAMPED = {"persona", "stripe_identity"}
DOCUMENT_TYPES = {"passport", "id_card", "driving_licence", "residence_permit", "other"}
NOW = lambda: datetime.now(UTC)  # noqa: E731


def decided(vendor, scenario: str) -> str | None:
    """Walk a session to `scenario`; None when the vendor cannot produce it (asserted to be a known gap)."""
    vendor_session_id = vendor.start()
    vendor.submit_evidence(vendor_session_id)
    response = vendor.control.decide(vendor_session_id, scenario, webhook=False)
    if scenario in CANNOT[vendor.name]:
        assert response.status_code == 422, f"{vendor.name} should not be able to produce {scenario}"
        return None
    assert response.status_code == 200, response.text
    return vendor_session_id


# --- Start -------------------------------------------------------------------------------------------------------


def test_start_opens_a_session_with_only_the_opaque_reference(vendor):
    vendor_session_id = vendor.start("vs_opaqueRef42")
    assert vendor_session_id
    started = vendor.started[-1]
    if vendor.hosted:
        assert started.redirect_url and started.redirect_url.startswith(vendor.fake.url)
    else:
        assert started.redirect_url is None
    sent = " ".join(str(r["body"]) for r in vendor.control.requests())
    assert "vs_opaqueRef42" in sent  # the reference travels, so the vendor's records point back to nothing personal
    assert "return" in sent or not vendor.hosted  # hosted pages must know where to send the user back


def test_vendor_hosted_page_is_served_and_returns_the_user(vendor):
    if not vendor.hosted:
        with pytest.raises(NotSupported):
            vendor.adapter.resume_url(vendor_session_id=vendor.start(), return_url="http://testserver/verify/return")
        return
    vendor_session_id = vendor.start()
    page = vendor.control.http.get(vendor.started[-1].redirect_url, follow_redirects=False)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    again = vendor.adapter.resume_url(vendor_session_id=vendor_session_id, return_url="http://testserver/verify/return")
    assert again.startswith(vendor.fake.url)


def test_broker_hosted_upload_is_refused_after_submit_and_vendor_hosted_refuses_uploads(vendor):
    vendor_session_id = vendor.start()
    if vendor.hosted:
        with pytest.raises(NotSupported):
            vendor.adapter.upload(
                vendor_session_id=vendor_session_id, kind=EvidenceKind.DOCUMENT_FRONT, data=b"x", mime="image/jpeg"
            )
        return
    vendor.submit_evidence(vendor_session_id)
    vendor.adapter.submit(vendor_session_id=vendor_session_id)  # a retried task submits twice: harmless
    uploads = [r for r in vendor.control.requests() if r["method"] == "POST" and "size" in str(r["body"])]
    assert uploads, "evidence went up as multipart/JSON uploads"


# --- Results -----------------------------------------------------------------------------------------------------


def test_result_is_pending_until_the_vendor_decides(vendor):
    vendor_session_id = vendor.start()
    vendor.submit_evidence(vendor_session_id)
    # Vendor-hosted: nobody has finished the vendor's page yet, which the broker must tell from "deciding".
    waiting = Outcome.WAITING_FOR_USER if vendor.hosted else Outcome.PENDING
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == waiting


def test_approved_result_is_normalized(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=decided(vendor, "approved"))
    assert result.outcome == Outcome.APPROVED
    facts = result.facts
    assert isinstance(facts.date_of_birth, date) and facts.date_of_birth < date.today() - timedelta(days=18 * 365)
    assert re.fullmatch(r"[A-Z]{2}", facts.issuing_country)
    assert facts.nationality is None or re.fullmatch(r"[A-Z]{2}", facts.nationality)
    assert facts.document_type in DOCUMENT_TYPES
    assert facts.document_expiry is None or facts.document_expiry > date.today()
    assert {result.document_authentic, result.liveness, result.face_match} <= set(Check)
    assert result.face_match == Check.PASS


def test_missing_nationality_stays_unknown(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=decided(vendor, "approved_no_nationality"))
    assert result.outcome == Outcome.APPROVED
    assert result.facts.nationality is None
    assert re.fullmatch(r"[A-Z]{2}", result.facts.issuing_country)


def test_a_minor_is_reported_with_the_birth_date_the_vendor_read(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=decided(vendor, "approved_minor"))
    assert result.outcome == Outcome.APPROVED
    assert result.facts.date_of_birth > date.today() - timedelta(days=18 * 365)


@pytest.mark.parametrize(
    "scenario,outcome",
    [
        ("declined", Outcome.DECLINED),
        ("retry", Outcome.RETRY),
        ("needs_review", Outcome.NEEDS_REVIEW),
        ("expired", Outcome.EXPIRED),
    ],
)
def test_other_decisions_are_normalized(vendor, scenario, outcome):
    vendor_session_id = decided(vendor, scenario)
    if vendor_session_id is None:
        return
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == outcome
    if outcome == Outcome.RETRY:
        assert result.retry_hint is not None
    if outcome != Outcome.APPROVED:
        assert result.facts is None  # nothing personal is carried for a session that answers nothing


# --- Webhooks ----------------------------------------------------------------------------------------------------


def _delivered(vendor, scenario="approved"):
    vendor_session_id = vendor.walk(scenario, webhook=True)
    deliveries = vendor.webhooks()
    assert deliveries, "the fake delivered the vendor's events"
    return vendor_session_id, deliveries


def test_authentic_webhook_is_accepted_and_leads_to_the_session(vendor):
    vendor_session_id, deliveries = _delivered(vendor)
    for headers, body in deliveries:
        event = vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
        assert event.dedupe_key
        assert vendor.adapter.session_for(event=event) == vendor_session_id


def test_duplicate_delivery_has_the_same_dedupe_key(vendor):
    _, deliveries = _delivered(vendor)
    vendor.control.post("/webhooks/0/redeliver", {})
    first, again = vendor.webhooks()[0], vendor.webhooks()[-1]
    key = vendor.adapter.verify_webhook(headers=first[0], body=first[1], now=NOW()).dedupe_key
    assert vendor.adapter.verify_webhook(headers=again[0], body=again[1], now=NOW()).dedupe_key == key


def test_tampered_body_is_rejected(vendor):
    _delivered(vendor)
    vendor.control.post("/webhooks/0/redeliver", {"tamper": True})
    headers, body = vendor.webhooks()[-1]
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
    assert rejected.value.code == "bad_signature"


def test_webhook_signed_with_another_secret_is_rejected(vendor):
    _, deliveries = _delivered(vendor)
    vendor.configure(webhook_secrets=["not-the-secret-0123456789"])
    headers, body = deliveries[0]
    with pytest.raises(WebhookRejected):
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())


def test_missing_signature_is_rejected(vendor):
    _, deliveries = _delivered(vendor)
    headers, body = deliveries[0]
    bare = {k: v for k, v in headers.items() if "signature" not in k and k != "x-auth-client"}
    with pytest.raises(WebhookRejected):
        vendor.adapter.verify_webhook(headers=bare, body=body, now=NOW())


def test_stale_timestamp_is_rejected_where_the_vendor_signs_one(vendor):
    _delivered(vendor)
    vendor.control.post("/webhooks/0/redeliver", {"stale": True})
    headers, body = vendor.webhooks()[-1]
    if vendor.name in TIMESTAMPED:
        with pytest.raises(WebhookRejected) as rejected:
            vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
        assert rejected.value.code == "stale_timestamp"
    else:  # nothing in the signature says when; the dedupe ledger and the re-fetch make a replay harmless
        assert vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW()).dedupe_key


def test_secret_rotation_accepts_old_and_new(vendor):
    new_secret = "rotated-secret-abcdef0123456789"
    vendor.control.post("/config", {"webhook_secrets": [new_secret]})
    _, deliveries = _delivered(vendor)
    vendor.configure(webhook_secrets=[vendor.fake.adapter_settings()["webhook_secrets"][0], new_secret])
    headers, body = deliveries[0]
    assert vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW()).dedupe_key


def test_authentic_but_malformed_body_is_malformed_not_a_bad_signature(vendor):
    _, deliveries = _delivered(vendor)
    headers, _ = deliveries[0]
    garbage = b'{"not": "an event"}'
    signed = vendor.fake.signed_headers(garbage, timestamp=int(NOW().timestamp()))
    headers = {**headers, **{k.lower(): v for k, v in signed.items()}}
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers=headers, body=garbage, now=NOW())
    assert rejected.value.code == "malformed_body"


# --- Deletion ----------------------------------------------------------------------------------------------------


def test_deletion_of_the_vendor_copy_is_tracked_to_completion(vendor):
    vendor_session_id = decided(vendor, "approved")
    state = vendor.adapter.delete(vendor_session_id=vendor_session_id)
    assert state in (*PENDING_DELETION, DeletionState.DONE)
    for _ in range(6):  # a day at a time: Stripe takes up to 4 days, Onfido archives then hard-deletes
        if state == DeletionState.DONE:
            break
        vendor.control.post("/clock", {"advance": 86400})
        state = vendor.adapter.deletion_status(vendor_session_id=vendor_session_id)
    assert state == DeletionState.DONE
    # Asking again is harmless (never an error, never a failure); Veriff cannot tell "done" from "just deleted"
    # at that point and answers scheduled, which the broker never asks after done anyway.
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) in (DeletionState.DONE, *PENDING_DELETION)


# --- Resilience --------------------------------------------------------------------------------------------------


def test_a_transient_server_error_is_retried(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.control.fault(status=503, count=1, method="GET")
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


def test_persistent_server_errors_are_transient_vendor_errors(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.control.fault(status=502, count=50, method="GET")
    with pytest.raises(VendorError) as failed:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert not failed.value.permanent


def test_rate_limit_answers_are_waited_out(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.control.fault(status=429, count=1, method="GET", retry_after=0)
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


def test_a_long_rate_limit_wait_is_handed_back_to_the_caller(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.control.fault(status=429, count=1, method="GET", retry_after=120)
    with pytest.raises(VendorError) as failed:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert not failed.value.permanent and failed.value.retry_after == 120


def test_a_timeout_is_a_transient_error(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.settings.IDBROKER_VENDOR_TIMEOUT_SECONDS = 0.3
    vendor.control.fault(delay=1.0, count=10, method="GET")
    with pytest.raises(VendorError) as failed:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert failed.value.code == "timeout" and not failed.value.permanent


def test_wrong_credentials_are_a_permanent_error(vendor):
    vendor.configure(api_key="wrong-key-0000")
    with pytest.raises(VendorError) as failed:
        vendor.start()
    assert failed.value.permanent


def test_breaker_opens_after_repeated_failures_and_stops_calling(vendor):
    vendor_session_id = decided(vendor, "approved")
    vendor.settings.IDBROKER_VENDOR_RETRIES = 0
    breaker.reset_all()
    vendor.control.fault(status=503, count=100, method="GET")
    for _ in range(vendor.settings.IDBROKER_VENDOR_BREAKER_FAILURES):
        with pytest.raises(VendorError):
            vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert breaker.state(vendor.name) == "open"
    calls = len(vendor.control.requests())
    with pytest.raises(VendorError) as failed:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert failed.value.code == "circuit_open"
    assert len(vendor.control.requests()) == calls  # the open circuit did not call the vendor
