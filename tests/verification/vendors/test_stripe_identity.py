"""Stripe Identity's particular edges (vendors.md 3), against the local fake: signature rotation and v0, idempotent
replays, single-use links, sensitive-field expansion, last_error codes, and redaction that waits out `processing`."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, date, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from fakevendors.stripe_identity import VERSION
from verification.vendors.base import (
    Check,
    DeletionState,
    EvidenceKind,
    NotSupported,
    Outcome,
    RetryHint,
    VendorError,
    WebhookRejected,
)

pytestmark = pytest.mark.parametrize("vendor", ["stripe_identity"], indirect=True)
RETURN_URL = "http://testserver/verify/return"
NOW = lambda: datetime.now(UTC)  # noqa: E731


def api(vendor, key: str | None = None) -> httpx.Client:
    key = vendor.fake.api_key if key is None else key
    return httpx.Client(base_url=vendor.fake.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def finish(vendor, url: str, outcome: str) -> httpx.Response:
    """The person picks an outcome on Stripe's (fake) hosted page, as in Stripe's test mode."""
    return httpx.post(url, data={"outcome": outcome}, follow_redirects=False, timeout=10)


def started(vendor, outcome: str | None = None) -> str:
    vendor_session_id = vendor.start()
    if outcome:
        assert finish(vendor, vendor.started[-1].redirect_url, outcome).status_code == 303
    return vendor_session_id


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def fake_session(vendor, vendor_session_id: str) -> dict:
    return vendor.control.get(f"/sessions/{vendor_session_id}")


def advance(vendor, seconds: float) -> None:
    vendor.control.post("/clock", {"advance": seconds})


# --- Start and links ---------------------------------------------------------------------------------------------


def test_start_sends_stripe_form_parameters_with_the_key_version_and_idempotency_key(vendor):
    vendor.start("vs_ref123")
    (request,) = [r for r in vendor.control.requests() if r["method"] == "POST"]
    assert request["headers"]["authorization"] == f"Bearer {vendor.fake.api_key}"
    assert request["headers"]["stripe-version"] == VERSION
    assert request["headers"]["idempotency-key"] == "start-vs_ref123"
    assert request["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(request["body"]) == {
        "type": ["document"],
        "options[document][require_matching_selfie]": ["true"],
        "options[document][require_live_capture]": ["true"],
        "options[document][allowed_types][]": ["passport", "id_card", "driving_license"],
        "return_url": [RETURN_URL],
        "client_reference_id": ["vs_ref123"],
    }


def test_a_repeated_start_with_the_same_idempotency_key_returns_the_same_session(vendor):
    first = vendor.adapter.start(reference="vs_a", return_url=RETURN_URL, idempotency_key="key-1")
    again = vendor.adapter.start(reference="vs_a", return_url=RETURN_URL, idempotency_key="key-1")
    assert again.vendor_session_id == first.vendor_session_id
    assert len(vendor.fake.sessions) == 1
    with api(vendor) as client:
        replay = client.post(
            "/identity/verification_sessions", data={"type": "document"}, headers={"Idempotency-Key": "k"}
        )
        same = client.post(
            "/identity/verification_sessions", data={"type": "document"}, headers={"Idempotency-Key": "k"}
        )
        other = client.post(
            "/identity/verification_sessions", data={"type": "id_number"}, headers={"Idempotency-Key": "k"}
        )
    assert same.json()["id"] == replay.json()["id"] and same.headers["idempotent-replayed"] == "true"
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_a_replayed_start_hands_out_the_current_link_not_the_spent_one(vendor):
    vendor_session_id = started(vendor, "abandoned")  # the person left; the first link is spent
    again = vendor.adapter.start(
        reference="vs_contract0001", return_url=RETURN_URL, idempotency_key="start-vs_contract0001"
    )
    assert again.vendor_session_id == vendor_session_id
    assert again.redirect_url != vendor.started[0].redirect_url and httpx.get(again.redirect_url).status_code == 200


def test_a_start_that_timed_out_is_retried_without_opening_a_second_session(vendor):
    vendor.settings.IDBROKER_VENDOR_TIMEOUT_SECONDS = 0.3
    vendor.control.fault(delay=1.0, count=1, method="POST")
    vendor.start()
    time.sleep(1.2)  # the stalled first attempt completes at the vendor after our retry
    posts = [r for r in vendor.control.requests() if r["method"] == "POST"]
    assert len(posts) == 2 and len({r["headers"]["idempotency-key"] for r in posts}) == 1
    assert len(vendor.fake.sessions) == 1


def test_the_hosted_page_sends_the_person_back_to_the_return_url(vendor):
    vendor.start()
    page = httpx.get(vendor.started[-1].redirect_url)
    assert page.status_code == 200 and "Stripe Identity sandbox" in page.text and "local fake" in page.text
    back = finish(vendor, vendor.started[-1].redirect_url, "verified")
    assert back.status_code == 303 and back.headers["location"] == RETURN_URL
    assert [json.loads(body)["type"] for _, body in vendor.webhooks()] == [
        "identity.verification_session.processing",
        "identity.verification_session.verified",
    ]


def test_retry_gives_a_fresh_link_and_the_spent_one_is_refused(vendor):
    vendor_session_id = vendor.walk("retry")
    first_url = vendor.started[-1].redirect_url
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == Outcome.RETRY and result.retry_hint == RetryHint.DOCUMENT_NOT_VISIBLE
    assert httpx.get(first_url).status_code == 410
    fresh = vendor.adapter.resume_url(vendor_session_id=vendor_session_id, return_url=RETURN_URL)
    assert fresh != first_url and httpx.get(fresh).status_code == 200
    assert finish(vendor, fresh, "verified").status_code == 303
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


def test_a_verified_session_cannot_be_resumed(vendor):
    vendor_session_id = vendor.walk("approved")
    with pytest.raises(VendorError) as refused:
        vendor.adapter.resume_url(vendor_session_id=vendor_session_id, return_url=RETURN_URL)
    assert refused.value.permanent


def test_the_client_secret_and_the_link_never_reach_the_logs(vendor, caplog):
    for name in (None, "httpx", "httpcore"):  # everything, even what settings quiet down in production
        caplog.set_level(logging.DEBUG, logger=name)
    vendor_session_id = vendor.walk("retry", webhook=True)
    secrets_seen = {vendor.fake.sessions[vendor_session_id]["client_secret"], vendor.started[-1].redirect_url}
    vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    secrets_seen.add(vendor.adapter.resume_url(vendor_session_id=vendor_session_id, return_url=RETURN_URL))
    secrets_seen.add(vendor.fake.sessions[vendor_session_id]["client_secret"])
    for headers, body in vendor.webhooks():
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
    vendor.adapter.delete(vendor_session_id=vendor_session_id)
    assert "HTTP Request" in caplog.text  # the calls were logged, so their absence below means something
    for secret in secrets_seen:
        assert secret.rsplit("/", 1)[-1] not in caplog.text


def test_there_are_no_api_scenarios_or_uploads(vendor):
    vendor_session_id = vendor.start()
    assert vendor.adapter.scenarios() == {}
    with pytest.raises(NotSupported):
        vendor.adapter.upload(
            vendor_session_id=vendor_session_id, kind=EvidenceKind.SELFIE, data=b"x", mime="image/jpeg"
        )
    with pytest.raises(NotSupported):
        vendor.adapter.submit(vendor_session_id=vendor_session_id)


def test_a_session_id_that_is_not_stripe_shaped_is_refused_without_calling_stripe(vendor):
    with pytest.raises(VendorError) as refused:
        vendor.adapter.fetch_result(vendor_session_id="vs_1/../../charges")
    assert refused.value.code == "unknown_session" and refused.value.permanent
    assert vendor.control.requests() == []


# --- Results -----------------------------------------------------------------------------------------------------


def test_an_approved_driving_licence_is_normalized_without_nationality_or_liveness(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=vendor.walk("approved_no_nationality"))
    assert result.outcome == Outcome.APPROVED
    assert result.facts.date_of_birth == date(1988, 11, 21)
    assert result.facts.nationality is None
    assert (result.facts.issuing_country, result.facts.document_type) == ("US", "driving_licence")
    assert result.facts.document_expiry > date.today()
    assert (result.document_authentic, result.face_match) == (Check.PASS, Check.PASS)
    assert result.liveness == Check.UNKNOWN  # Stripe reports no liveness result on success


def test_sensitive_fields_come_only_when_expanded_by_name(vendor):
    vendor_session_id = vendor.walk("approved")
    with api(vendor) as client:
        parents = client.get(
            f"/identity/verification_sessions/{vendor_session_id}",
            params=[("expand[]", "verified_outputs"), ("expand[]", "last_verification_report")],
        ).json()
        typo = client.get(f"/identity/verification_sessions/{vendor_session_id}", params={"expand[]": "dob"})
    assert parents["verified_outputs"]["first_name"] and parents["verified_outputs"]["dob"] is None
    assert parents["last_verification_report"]["document"]["expiration_date"] is None
    assert typo.status_code == 400
    facts = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts
    assert facts.date_of_birth == date(1990, 4, 12) and facts.document_expiry is not None


def test_after_48_hours_the_birth_date_is_unknown_rather_than_guessed(vendor, caplog):
    vendor_session_id = vendor.walk("approved")
    advance(vendor, 49 * 3600)
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == Outcome.APPROVED and result.facts.date_of_birth is None
    assert "no date of birth" in caplog.text


def test_a_processing_session_is_pending_until_stripe_decides(vendor):
    vendor_session_id = started(vendor, "processing")
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.PENDING
    advance(vendor, 61)
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


@pytest.mark.parametrize(
    "outcome,expected,hint,face_match,liveness",
    [
        ("document_unverified_other", Outcome.RETRY, RetryHint.DOCUMENT_NOT_VISIBLE, Check.UNKNOWN, Check.UNKNOWN),
        ("document_expired", Outcome.DECLINED, None, Check.UNKNOWN, Check.UNKNOWN),
        ("selfie_face_mismatch", Outcome.DECLINED, None, Check.FAIL, Check.UNKNOWN),
        ("selfie_manipulated", Outcome.DECLINED, None, Check.UNKNOWN, Check.FAIL),
        ("under_supported_age", Outcome.DECLINED, None, Check.UNKNOWN, Check.UNKNOWN),
        ("consent_declined", Outcome.DECLINED, None, Check.UNKNOWN, Check.UNKNOWN),
        ("abandoned", Outcome.EXPIRED, None, Check.UNKNOWN, Check.UNKNOWN),
    ],
)
def test_last_error_codes_become_honest_outcomes(vendor, outcome, expected, hint, face_match, liveness):
    result = vendor.adapter.fetch_result(vendor_session_id=started(vendor, outcome))
    assert (result.outcome, result.retry_hint, result.facts) == (expected, hint, None)
    assert (result.face_match, result.liveness) == (face_match, liveness)


def test_an_unknown_last_error_code_declines_and_is_logged(vendor, caplog):
    vendor_session_id = vendor.start()
    with vendor.fake.lock:
        vendor.fake.sessions[vendor_session_id]["object"]["last_error"] = {"code": "brand_new_code", "reason": "?"}
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.DECLINED
    assert "unmapped vendor error code" in caplog.text


# --- Webhooks ----------------------------------------------------------------------------------------------------


def test_a_webhook_reduces_to_routing_facts(vendor):
    vendor_session_id = vendor.walk("approved", webhook=True)
    events = [vendor.adapter.verify_webhook(headers=h, body=b, now=NOW()) for h, b in vendor.webhooks()]
    assert [e.type for e in events] == [
        "identity.verification_session.processing",
        "identity.verification_session.verified",
    ]
    assert {e.vendor_session_id for e in events} == {vendor_session_id}
    assert len({e.dedupe_key for e in events}) == 2 and all(e.dedupe_key.startswith("evt_") for e in events)
    assert all(abs((e.occurred_at - NOW()).total_seconds()) < 60 for e in events)


def test_every_v1_of_a_secret_roll_is_checked(vendor):
    old, new = "whsec_old_0123456789", "whsec_new_0123456789"
    vendor.control.post("/config", {"webhook_secrets": [old, new]})
    vendor.walk("approved", webhook=True)
    headers, body = vendor.webhooks()[0]
    assert headers["stripe-signature"].count("v1=") == 2 and ",v0=" in headers["stripe-signature"]
    for configured in ([new], [old]):
        vendor.configure(webhook_secrets=configured)
        assert vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW()).dedupe_key
    vendor.configure(webhook_secrets=["whsec_other_0123456789"])
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
    assert rejected.value.code == "bad_signature"


def test_a_header_with_only_a_v0_signature_is_rejected(vendor):
    vendor.walk("approved", webhook=True)
    _, body = vendor.webhooks()[0]
    timestamp = int(NOW().timestamp())
    v0 = sign(vendor.fake.webhook_secrets[0], timestamp, body)  # even a v0 made with our own secret is not trusted
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers={"stripe-signature": f"t={timestamp},v0={v0}"}, body=body, now=NOW())
    assert rejected.value.code == "malformed_signature"


@pytest.mark.parametrize("header", ["", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc", "t=\u00b2,v1=abc", "t=1,v1=\u00e9"])
def test_an_unparseable_signature_header_is_malformed(vendor, header):
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers={"stripe-signature": header}, body=b"{}", now=NOW())
    assert rejected.value.code == "malformed_signature"


def test_a_stale_and_tampered_delivery_is_a_bad_signature_not_a_stale_one(vendor):
    vendor.walk("approved", webhook=True)
    vendor.control.post("/webhooks/0/redeliver", {"stale": True, "tamper": True})
    headers, body = vendor.webhooks()[-1]
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
    assert rejected.value.code == "bad_signature"


def test_an_authentic_event_about_something_else_is_a_malformed_body(vendor):
    body = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}).encode()
    headers = {k.lower(): v for k, v in vendor.fake.signed_headers(body, timestamp=int(NOW().timestamp())).items()}
    with pytest.raises(WebhookRejected) as rejected:
        vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())
    assert rejected.value.code == "malformed_body"


# --- Redaction ---------------------------------------------------------------------------------------------------


def test_redaction_of_a_verified_session_ends_in_placeholders_and_the_result_is_no_longer_read(vendor):
    vendor_session_id = vendor.walk("approved")
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    advance(vendor, 2 * 86400)
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    advance(vendor, 86400)
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE
    state = fake_session(vendor, vendor_session_id)
    assert state["verified_outputs"]["last_name"] == "[redacted]"
    assert state["verified_outputs"]["dob"] == {"day": 1, "month": 1, "year": 1}
    assert [r["path"].endswith("/redact") for r in vendor.control.requests()].count(True) == 1  # asked once
    redacted = [(h, b) for h, b in vendor.webhooks() if json.loads(b)["type"].endswith(".redacted")]
    fake_now = datetime.fromtimestamp(vendor.fake.now(), UTC)  # signed on the vendor's (advanced) clock
    assert vendor.adapter.verify_webhook(headers=redacted[0][0], body=redacted[0][1], now=fake_now).dedupe_key
    with pytest.raises(VendorError) as gone:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert gone.value.code == "session_redacted" and gone.value.permanent


def test_redacting_a_session_the_person_never_finished_cancels_it(vendor):
    vendor_session_id = vendor.start()
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    assert fake_session(vendor, vendor_session_id)["object"]["status"] == "canceled"
    assert [json.loads(b)["type"] for _, b in vendor.webhooks()] == ["identity.verification_session.canceled"]


def test_redaction_refused_while_processing_waits_and_is_asked_once_stripe_has_decided(vendor):
    vendor_session_id = started(vendor, "processing")
    with api(vendor) as client:
        assert client.post(f"/identity/verification_sessions/{vendor_session_id}/redact").status_code == 400
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.REQUESTED
    assert fake_session(vendor, vendor_session_id)["object"]["redaction"] is None
    advance(vendor, 61)  # Stripe finishes processing by itself
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    advance(vendor, 3 * 86400)
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE


def test_a_saved_refusal_is_replayed_for_its_key_so_each_redaction_uses_a_fresh_key(vendor):
    vendor_session_id = started(vendor, "processing")
    path = f"/identity/verification_sessions/{vendor_session_id}/redact"
    with api(vendor) as client:
        assert client.post(path, headers={"Idempotency-Key": "fixed"}).status_code == 400
        advance(vendor, 61)
        replayed = client.post(path, headers={"Idempotency-Key": "fixed"})
    assert replayed.status_code == 400 and replayed.headers["idempotent-replayed"] == "true"
    vendor.control.fault(status=503, count=1, method="POST", path=f"/v1{path}")
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    keys = [r["headers"]["idempotency-key"] for r in vendor.control.requests() if r["path"].endswith("/redact")]
    assert keys[0] == keys[1] == "fixed" and keys[2] == keys[3] != "fixed"  # one retried call, one new key


def test_a_canceled_session_is_expired_and_a_refused_redaction_is_reported_as_failed(vendor):
    vendor_session_id = vendor.start()
    with api(vendor) as client:
        assert client.post(f"/identity/verification_sessions/{vendor_session_id}/cancel").status_code == 200
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.EXPIRED
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.FAILED


# --- The fake's own fidelity -------------------------------------------------------------------------------------


def test_the_fake_refuses_a_wrong_key_and_accepts_the_key_as_basic_user(vendor):
    vendor_session_id = vendor.start()
    with api(vendor, key="sk_test_wrong") as client:
        wrong = client.get(f"/identity/verification_sessions/{vendor_session_id}")
    basic = httpx.get(
        f"{vendor.fake.url}/v1/identity/verification_sessions/{vendor_session_id}", auth=(vendor.fake.api_key, "")
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert basic.status_code == 200


def test_the_fake_refuses_unknown_parameters_and_json_bodies(vendor):
    with api(vendor) as client:
        unknown = client.post(
            "/identity/verification_sessions", data={"type": "document", "options[document][allowed_types]": "passport"}
        )
        as_json = client.post("/identity/verification_sessions", json={"type": "document"})
    assert unknown.status_code == 400 and "unknown parameter" in unknown.json()["error"]["message"]
    assert as_json.status_code == 400 and as_json.json()["error"]["param"] == "type"


def test_the_environment_points_the_broker_at_the_fake(vendor):
    env = vendor.fake.environment()
    assert env["STRIPE_API_URL"] == vendor.fake.url + "/v1"
    assert env["STRIPE_SECRET_KEY"] == vendor.fake.api_key
    assert env["STRIPE_WEBHOOK_SECRETS"] == ",".join(vendor.fake.webhook_secrets)
    assert env["STRIPE_VERSION"] == VERSION
