"""Veriff's particular edges (vendors.md section 4), against the local fake: request signing over body or session id,
both webhook headers, the legacy X-SIGNATURE, several decisions per session, the 1920 px rule, the deletion quota
and Veriff's 12-hour deletion window."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from datetime import UTC, date, datetime

import httpx
import pytest
from PIL import Image

from tests.verification.vendors.conftest import jpeg_bytes
from verification.vendors import breaker
from verification.vendors.base import (
    Check,
    DeletionState,
    EvidenceKind,
    Outcome,
    RetryHint,
    VendorError,
    WebhookRejected,
)

pytestmark = pytest.mark.parametrize("vendor", ["veriff"], indirect=True)
NOW = lambda: datetime.now(UTC)  # noqa: E731


def _hmac(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _secret(vendor) -> str:
    return vendor.fake.adapter_settings()["webhook_secrets"][0]


def _verify(vendor, headers: dict, body: bytes):
    return vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())


def _upload_and_submit(vendor, vendor_session_id: str) -> None:
    for kind in (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE):
        vendor.adapter.upload(vendor_session_id=vendor_session_id, kind=kind, data=jpeg_bytes(), mime="image/jpeg")
    vendor.adapter.submit(vendor_session_id=vendor_session_id)


def _decide(vendor, vendor_session_id: str, scenario: str, **kwargs) -> None:
    response = vendor.control.decide(vendor_session_id, scenario, **kwargs)
    assert response.status_code == 200, response.text


def _add_decision(vendor, vendor_session_id: str, status: str, reason_code=None, person=None, document=None):
    with vendor.fake.lock:
        session = vendor.fake.sessions[vendor_session_id]
        vendor.fake._record_decision(session, status, reason_code, "reason", person, document)


def _image(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(out, format="JPEG")
    return out.getvalue()


def _signed_post(vendor, path: str, body: bytes, secret: str) -> httpx.Response:
    headers = {"X-AUTH-CLIENT": vendor.fake.api_key, "X-HMAC-SIGNATURE": _hmac(secret, body)}
    return httpx.post(vendor.fake.url + "/v1" + path, content=body, headers=headers)


# --- Request signing ---------------------------------------------------------------------------------------------


def test_start_sends_only_the_reference_and_every_request_is_signed_the_way_veriff_checks(vendor):
    vendor_session_id = vendor.walk("approved")
    vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    log = vendor.control.requests()
    create = log[0]
    assert json.loads(create["body"]) == {
        "verification": {"callback": "http://testserver/verify/return", "vendorData": "vs_contract0001"}
    }
    assert "idempotency-key" not in create["headers"]  # Veriff documents none; see VeriffVendor.start
    for request in log:
        assert request["headers"]["x-auth-client"] == vendor.fake.api_key
    read = next(r for r in log if r["method"] == "GET")
    assert read["headers"]["x-hmac-signature"] == _hmac(_secret(vendor), vendor_session_id.encode())
    submit = next(r for r in log if r["method"] == "PATCH")
    assert submit["headers"]["x-hmac-signature"] == _hmac(_secret(vendor), submit["body"].encode())


def test_requests_signed_with_the_wrong_secret_are_refused_as_a_permanent_error(vendor):
    vendor_session_id = vendor.walk("approved")
    vendor.configure(webhook_secrets=["not-the-shared-secret-0000"])
    with pytest.raises(VendorError) as failed:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert failed.value.code == "http_401" and failed.value.permanent


def test_the_fake_refuses_a_read_signed_over_the_path_instead_of_the_session_id(vendor):
    vendor_session_id = vendor.walk("approved")
    path = f"/v1/sessions/{vendor_session_id}/decision"
    headers = {"X-AUTH-CLIENT": vendor.fake.api_key, "X-HMAC-SIGNATURE": _hmac(_secret(vendor), path.encode())}
    assert httpx.get(vendor.fake.url + path, headers=headers).status_code == 401
    headers["X-HMAC-SIGNATURE"] = _hmac(_secret(vendor), vendor_session_id.encode())
    assert httpx.get(vendor.fake.url + path, headers=headers).status_code == 200


# --- Upload and submit -------------------------------------------------------------------------------------------


def test_the_fake_refuses_images_over_1920_px_on_the_longer_side(vendor):
    vendor_session_id = vendor.start()
    for width, status in ((2000, 400), (1920, 200)):
        content = "data:image/jpeg;base64," + base64.b64encode(_image(width, 1000)).decode()
        body = json.dumps({"image": {"context": "face", "content": content, "timestamp": "2026-01-01T00:00:00Z"}})
        response = _signed_post(vendor, f"/sessions/{vendor_session_id}/media", body.encode(), _secret(vendor))
        assert response.status_code == status, response.text


def test_the_adapter_shrinks_a_large_photo_to_fit_veriffs_rule(vendor):
    vendor_session_id = vendor.start()
    vendor.adapter.upload(
        vendor_session_id=vendor_session_id,
        kind=EvidenceKind.DOCUMENT_FRONT,
        data=_image(3000, 2000),
        mime="image/jpeg",
    )
    (media,) = vendor.fake.sessions[vendor_session_id]["attempts"][-1]["media"]
    assert media["context"] == "document-front"


def test_an_upload_after_submit_is_already_submitted_and_permanent(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    with pytest.raises(VendorError) as failed:
        vendor.adapter.upload(
            vendor_session_id=vendor_session_id, kind=EvidenceKind.SELFIE, data=jpeg_bytes(), mime="image/jpeg"
        )
    assert failed.value.code == "already_submitted" and failed.value.permanent


def test_a_refused_second_submit_is_not_a_failure(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    vendor.control.fault(status=400, count=1, method="PATCH")  # Veriff does not document the refusal's status
    vendor.adapter.submit(vendor_session_id=vendor_session_id)
    assert [r["method"] for r in vendor.control.requests()].count("PATCH") == 2


def test_uploads_are_logged_by_the_fake_as_size_and_digest_only(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    uploads = [r for r in vendor.control.requests() if r["path"].endswith("/media")]
    assert len(uploads) == 2
    for upload in uploads:
        assert set(json.loads(upload["body"])["image"]["content"]) == {"size", "sha256"}


# --- Results -----------------------------------------------------------------------------------------------------


def test_a_resubmission_then_an_approval_reads_as_a_clean_approval(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    _decide(vendor, vendor_session_id, "retry")
    retry = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert retry.outcome == Outcome.RETRY and retry.retry_hint == RetryHint.BLURRY and retry.facts is None

    _upload_and_submit(vendor, vendor_session_id)  # the same session takes a new attempt
    _decide(vendor, vendor_session_id, "approved")
    approved = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert approved.outcome == Outcome.APPROVED and approved.retry_hint is None
    assert approved.facts.date_of_birth == date(1990, 4, 12) and approved.face_match == Check.PASS
    decisions = vendor.fake.sessions[vendor_session_id]["decisions"]
    assert [d["status"] for d in decisions] == ["resubmission_requested", "approved"]
    assert decisions[0]["attemptId"] != decisions[1]["attemptId"]


@pytest.mark.parametrize(
    "reason_code,hint",
    [(202, RetryHint.FACE_NOT_VISIBLE), (203, RetryHint.DOCUMENT_NOT_VISIBLE), ("204", RetryHint.BLURRY)]
    + [(205, RetryHint.OTHER), (None, RetryHint.OTHER)],
)
def test_resubmission_reasons_become_hints_an_honest_user_can_act_on(vendor, reason_code, hint):
    vendor_session_id = vendor.start()
    _add_decision(vendor, vendor_session_id, "resubmission_requested", reason_code)
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).retry_hint == hint


def test_a_decline_says_face_mismatch_only_for_reason_103_and_carries_no_facts(vendor):
    vendor_session_id = vendor.walk("declined")
    declined = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert vendor.fake.sessions[vendor_session_id]["decisions"][-1]["person"]["dateOfBirth"]  # Veriff sent data
    assert declined.outcome == Outcome.DECLINED and declined.facts is None and declined.retry_hint is None
    assert declined.face_match == Check.FAIL

    _add_decision(vendor, vendor_session_id, "declined", 102)  # suspected tampering: nothing said about the face
    tampered = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert tampered.outcome == Outcome.DECLINED and tampered.face_match == Check.UNKNOWN and tampered.retry_hint is None


def test_the_tenth_attempt_is_declined_instead_of_another_resubmission(vendor):
    vendor_session_id = vendor.start()
    for _ in range(9):
        _upload_and_submit(vendor, vendor_session_id)
        _decide(vendor, vendor_session_id, "retry", webhook=False)
    _upload_and_submit(vendor, vendor_session_id)
    _decide(vendor, vendor_session_id, "retry", webhook=False)
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == Outcome.DECLINED and result.retry_hint is None
    assert vendor.fake.sessions[vendor_session_id]["decisions"][-1]["reasonCode"] == 539


def test_facts_are_normalized_and_what_veriff_left_out_stays_unknown(vendor):
    vendor_session_id = vendor.start()
    person = {"dateOfBirth": "1985-02-03", "nationality": "AUT"}
    _add_decision(vendor, vendor_session_id, "approved", None, person, {"type": "VISA", "country": "at"})
    facts = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts
    assert facts.date_of_birth == date(1985, 2, 3)
    assert (facts.nationality, facts.issuing_country) == ("AT", "AT")
    assert facts.document_type == "other" and facts.document_expiry is None


@pytest.mark.parametrize(
    "status,outcome",
    [("abandoned", Outcome.EXPIRED), ("inflow_completed", Outcome.ERROR), (["approved"], Outcome.ERROR)],
)
def test_statuses_are_read_by_their_name(vendor, status, outcome):
    vendor_session_id = vendor.start()
    with vendor.fake.lock:
        vendor.fake.sessions[vendor_session_id]["decisions"].append(
            {"id": vendor_session_id, "status": status, "code": 9121}  # 9121 is "abandoned" on one Veriff page
        )
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == outcome


# --- Webhooks ----------------------------------------------------------------------------------------------------


def test_event_and_decision_webhooks_lead_to_the_session_with_distinct_dedupe_keys(vendor):
    vendor_session_id = vendor.walk("approved", webhook=True)
    events = [_verify(vendor, headers, body) for headers, body in vendor.webhooks()]
    assert [e.type for e in events] == ["event.started", "event.submitted", "decision.approved"]
    assert {e.vendor_session_id for e in events} == {vendor_session_id}
    assert len({e.dedupe_key for e in events}) == 3
    assert events[-1].occurred_at is not None


def test_a_webhook_signed_right_but_from_another_api_key_is_rejected(vendor):
    vendor.walk("approved", webhook=True)
    headers, body = vendor.webhooks()[-1]
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {**headers, "x-auth-client": "someone-elses-api-key"}, body)
    assert rejected.value.code == "bad_signature"


def test_the_legacy_x_signature_is_not_accepted(vendor):
    vendor.walk("approved", webhook=True)
    headers, body = vendor.webhooks()[-1]
    legacy = hashlib.sha256(body + _secret(vendor).encode()).hexdigest()
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {"x-auth-client": headers["x-auth-client"], "x-signature": legacy}, body)
    assert rejected.value.code == "malformed_signature"
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {**headers, "x-hmac-signature": legacy}, body)
    assert rejected.value.code == "bad_signature"


@pytest.mark.parametrize("header", ["x-auth-client", "x-hmac-signature"])
def test_non_ascii_webhook_headers_are_malformed_not_a_crash(vendor, header):
    vendor.walk("approved", webhook=True)
    headers, body = vendor.webhooks()[-1]
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {**headers, header: "\u00b2" * 64}, body)
    assert rejected.value.code == "malformed_signature"


# --- Deletion ----------------------------------------------------------------------------------------------------


def test_a_deleted_session_leaves_the_api_at_once_and_its_data_within_12_hours(vendor):
    vendor_session_id = vendor.walk("approved")
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.SCHEDULED
    with pytest.raises(VendorError) as gone:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert gone.value.code == "http_404"
    assert vendor.control.get(f"/sessions/{vendor_session_id}")["data"] == "held"
    vendor.control.post("/clock", {"advance": 12 * 3600})
    assert vendor.control.get(f"/sessions/{vendor_session_id}")["data"] == "purged"
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE


def test_the_sixth_deletion_within_an_hour_waits_instead_of_failing(vendor):
    sessions = [vendor.walk("approved", reference=f"vs_quota{i}") for i in range(6)]
    for vendor_session_id in sessions[:5]:
        assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.SCHEDULED
    with pytest.raises(VendorError) as waited:
        vendor.adapter.delete(vendor_session_id=sessions[5])
    assert not waited.value.permanent and waited.value.code == "deletion_quota"
    assert 0 < waited.value.retry_after <= 3600
    assert breaker.state("veriff") == "closed"
    vendor.control.post("/clock", {"advance": waited.value.retry_after})
    assert vendor.adapter.delete(vendor_session_id=sessions[5]) == DeletionState.SCHEDULED


def test_the_eleventh_deletion_within_a_day_waits_for_the_daily_window(vendor):
    sessions = [vendor.walk("approved", reference=f"vs_daily{i}") for i in range(11)]
    for i, vendor_session_id in enumerate(sessions[:10]):
        if i == 5:
            vendor.control.post("/clock", {"advance": 3600})
        assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.SCHEDULED
    with pytest.raises(VendorError) as waited:
        vendor.adapter.delete(vendor_session_id=sessions[10])
    assert not waited.value.permanent and 3600 < waited.value.retry_after <= 86400 - 3600


def test_deletion_not_enabled_at_veriff_is_a_failure_the_dashboard_shows(vendor):
    vendor_session_id = vendor.walk("approved")
    vendor.control.post("/config", {"deletion_enabled": False})
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.FAILED
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED  # kept


def test_a_session_still_being_decided_is_deleted_only_after_its_decision(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    with pytest.raises(VendorError) as refused:
        vendor.adapter.delete(vendor_session_id=vendor_session_id)
    assert refused.value.code == "deletion_not_allowed_yet" and not refused.value.permanent
    _decide(vendor, vendor_session_id, "declined", webhook=False)
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.SCHEDULED


def test_deleting_an_open_session_closes_it_with_a_decision_webhook(vendor):
    vendor_session_id = vendor.start()
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.SCHEDULED
    vendor.fake._outbox.join()
    (delivery,) = vendor.webhooks()
    event = _verify(vendor, *delivery)
    assert event.type == "decision.expired" and event.vendor_session_id == vendor_session_id


# --- Pages for a human -------------------------------------------------------------------------------------------


def test_the_portal_lists_sessions_and_its_buttons_decide_and_send_the_webhook(vendor):
    vendor_session_id = vendor.start()
    _upload_and_submit(vendor, vendor_session_id)
    portal = httpx.get(vendor.fake.url + "/_portal")
    assert portal.status_code == 200 and "text/html" in portal.headers["content-type"]
    assert "Veriff sandbox" in portal.text and "local fake" in portal.text and vendor_session_id[:8] in portal.text
    answer = httpx.post(
        vendor.fake.url + f"/_portal/sessions/{vendor_session_id}/decide", data={"scenario": "approved"}
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/_portal?")
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED
    assert _verify(vendor, *vendor.webhooks()[-1]).type == "decision.approved"


def test_the_session_link_serves_a_page_that_leads_back_to_the_site(vendor):
    body = json.dumps({"verification": {"callback": "http://testserver/verify/return", "vendorData": "vs_x"}})
    created = _signed_post(vendor, "/sessions", body.encode(), _secret(vendor))
    assert created.status_code == 201
    page = httpx.get(created.json()["verification"]["url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Veriff sandbox" in page.text and "http://testserver/verify/return" in page.text
