"""Onfido's particular edges (vendors.md section 2), beyond the shared adapter contract."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from fakevendors.onfido import FakeOnfido
from tests.verification.vendors.conftest import API_KEYS, SECRETS, Control, Receiver, VendorUnderTest
from verification.vendors import breaker
from verification.vendors.base import Check, DeletionState, EvidenceKind, Outcome, VendorError, WebhookRejected
from verification.vendors.onfido import PLACEHOLDER_FIRST_NAME

TOKEN = SECRETS["onfido"][0]


@pytest.fixture
def onfido(settings):
    receiver = Receiver()
    fake = FakeOnfido(
        api_key=API_KEYS["onfido"], webhook_secrets=SECRETS["onfido"], webhook_url=receiver.url, sandbox_delay=60
    )
    fake.start()
    settings.IDBROKER_VENDORS = {**settings.IDBROKER_VENDORS, "onfido": fake.adapter_settings()}
    breaker.reset_all()
    yield VendorUnderTest("onfido", fake, Control(fake.url), receiver, settings)
    breaker.reset_all()
    fake.stop()
    receiver.stop()


def api(onfido) -> httpx.Client:
    """Onfido's API as any client sees it, to look at what the fake answers."""
    headers = {"Authorization": f"Token token={onfido.fake.api_key}"}
    return httpx.Client(base_url=onfido.fake.url + "/v3.6", headers=headers, timeout=10)


def calls(onfido, method: str, path: str) -> list[dict]:
    return [r for r in onfido.control.requests() if r["method"] == method and r["path"].startswith("/v3.6" + path)]


def latest_check(onfido, applicant_id: str) -> dict:
    return onfido.fake.sessions[applicant_id]["checks"][-1]


def now() -> datetime:
    return datetime.now(UTC)


def signed(body: bytes, token: str = TOKEN) -> dict[str, str]:
    return {"x-sha2-signature": hmac.new(token.encode(), body, hashlib.sha256).hexdigest()}


# --- start and evidence ------------------------------------------------------------------------------------------


def test_the_applicant_carries_a_placeholder_name_and_the_opaque_reference_only(onfido):
    onfido.start("vs_opaqueRef42")
    (created,) = calls(onfido, "POST", "/applicants")
    assert json.loads(created["body"]) == {"first_name": PLACEHOLDER_FIRST_NAME, "last_name": "vs_opaqueRef42"}


def test_an_upload_after_the_check_exists_is_refused_as_already_submitted(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    with pytest.raises(VendorError) as refused:
        onfido.adapter.upload(
            vendor_session_id=applicant_id, kind=EvidenceKind.SELFIE, data=b"\xff\xd8jpeg", mime="image/jpeg"
        )
    assert refused.value.code == "already_submitted" and refused.value.permanent
    assert len(onfido.fake.sessions[applicant_id]["live_photos"]) == 1


def test_the_document_goes_up_as_multipart_of_unknown_type_front_side(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    (document,) = onfido.fake.sessions[applicant_id]["documents"]
    assert (document["type"], document["side"], document["file_type"]) == ("unknown", "front", "jpg")
    assert "multipart/form-data" in calls(onfido, "POST", "/documents")[0]["headers"]["content-type"]


def test_a_file_type_onfido_does_not_take_is_refused_before_any_upload(onfido):
    applicant_id = onfido.start()
    with pytest.raises(VendorError) as refused:
        onfido.adapter.upload(vendor_session_id=applicant_id, kind=EvidenceKind.SELFIE, data=b"GIF8", mime="image/gif")
    assert refused.value.code == "unsupported_media"
    assert not calls(onfido, "POST", "/live_photos")


def test_submitting_twice_creates_one_check_so_one_charge(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    onfido.adapter.submit(vendor_session_id=applicant_id)
    assert len(calls(onfido, "POST", "/checks")) == 1
    assert len(onfido.fake.sessions[applicant_id]["checks"]) == 1
    sent = json.loads(calls(onfido, "POST", "/checks")[0]["body"])
    assert sent == {"applicant_id": applicant_id, "report_names": ["document", "facial_similarity_photo"]}


def test_wrong_authorization_scheme_is_a_401_at_the_fake(onfido):
    response = httpx.get(onfido.fake.url + "/v3.6/checks", headers={"Authorization": f"Bearer {onfido.fake.api_key}"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authorization_error"


# --- results -----------------------------------------------------------------------------------------------------


def test_reports_awaiting_data_right_after_check_creation_are_pending_then_the_decision_is_read(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.PENDING
    check_id = latest_check(onfido, applicant_id)["id"]
    reports = api(onfido).get("/reports", params={"check_id": check_id}).json()["reports"]
    assert {(r["status"], str(r["breakdown"]), str(r["properties"])) for r in reports} == {
        ("awaiting_data", "[]", "[]")
    }
    assert calls(onfido, "GET", "/reports")  # the adapter read the reports, not only the check
    onfido.control.decide(applicant_id, "approved", webhook=False)
    result = onfido.adapter.fetch_result(vendor_session_id=applicant_id)
    assert result.outcome == Outcome.APPROVED
    # Photo similarity's spoof check is not liveness (that is Onfido's video/motion report): not claimed.
    assert (result.document_authentic, result.liveness, result.face_match) == (Check.PASS, Check.UNKNOWN, Check.PASS)


def test_the_name_mismatch_caused_by_placeholder_names_does_not_stop_an_approval(onfido):
    applicant_id = onfido.walk("approved")
    check = latest_check(onfido, applicant_id)
    document = next(r for r in onfido.fake.reports.values() if r["name"] == "document")
    assert check["result"] == "consider" and (document["result"], document["sub_result"]) == ("consider", "caution")
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.APPROVED


def test_a_caution_beyond_the_name_mismatch_goes_to_review_without_facts(onfido):
    result = onfido.adapter.fetch_result(vendor_session_id=onfido.walk("needs_review"))
    assert result.outcome == Outcome.NEEDS_REVIEW and result.facts is None


def test_a_face_that_does_not_match_the_document_is_declined(onfido):
    applicant_id = onfido.walk("approved")
    with onfido.fake.lock:
        onfido.fake._complete(latest_check(onfido, applicant_id), consider=["facial_similarity_photo"])
    result = onfido.adapter.fetch_result(vendor_session_id=applicant_id)
    assert (result.outcome, result.face_match, result.facts) == (Outcome.DECLINED, Check.FAIL, None)


def test_a_withdrawn_check_is_an_error(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    onfido.fake.withdraw(latest_check(onfido, applicant_id)["id"])
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.ERROR


def test_an_empty_object_that_onfido_serialises_as_a_list_reads_as_unknown_not_a_crash(onfido):
    applicant_id = onfido.walk("approved")
    facial = next(r for r in onfido.fake.reports.values() if r["name"] == "facial_similarity_photo")
    facial.update(breakdown=[], properties=[])  # the shape of an empty object in Onfido's JSON (Expensify App#31237)
    result = onfido.adapter.fetch_result(vendor_session_id=applicant_id)
    assert (result.outcome, result.face_match, result.liveness) == (Outcome.APPROVED, Check.UNKNOWN, Check.UNKNOWN)


def test_an_unknown_issuing_country_is_left_unknown_not_a_crash(onfido):
    applicant_id = onfido.walk("approved")
    document = next(r for r in onfido.fake.reports.values() if r["name"] == "document")
    document["properties"].update(issuing_country="QQQ", nationality="ZZZ")
    facts = onfido.adapter.fetch_result(vendor_session_id=applicant_id).facts
    assert (facts.issuing_country, facts.nationality, facts.document_type) == (None, None, "passport")


def test_facts_are_normalized_from_the_document_report(onfido):
    facts = onfido.adapter.fetch_result(vendor_session_id=onfido.walk("approved_minor")).facts
    assert (facts.issuing_country, facts.nationality, facts.document_type) == ("DE", "DE", "id_card")


# --- sandbox -----------------------------------------------------------------------------------------------------


def test_a_sandbox_scenario_is_sent_as_consider_and_the_sandbox_completes_the_check_with_webhooks(onfido):
    assert set(onfido.adapter.scenarios()) == {"approved", "declined", "needs_review"}
    applicant_id = onfido.start()
    for kind in onfido.adapter.evidence_kinds:
        onfido.adapter.upload(vendor_session_id=applicant_id, kind=kind, data=b"\xff\xd8jpeg", mime="image/jpeg")
    onfido.adapter.submit(vendor_session_id=applicant_id, scenario="declined")
    assert json.loads(calls(onfido, "POST", "/checks")[0]["body"])["consider"] == ["document"]
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.PENDING
    onfido.control.post("/clock", {"advance": 61})  # the sandbox's own completion, on the fake clock
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.DECLINED
    for _ in range(100):  # the sandbox delivers off the request thread
        if len(onfido.webhooks()) == 3:
            break
        time.sleep(0.05)
    assert [json.loads(b)["payload"]["action"] for _, b in onfido.webhooks()] == ["report.completed"] * 2 + [
        "check.completed"
    ]


def test_a_live_token_offers_no_scenarios_and_never_sends_sandbox_controls(onfido):
    onfido.fake.api_key = "api_live.0123456789abcdef"
    onfido.configure(api_key=onfido.fake.api_key)
    assert onfido.adapter.scenarios() == {}
    applicant_id = onfido.start()
    for kind in onfido.adapter.evidence_kinds:
        onfido.adapter.upload(vendor_session_id=applicant_id, kind=kind, data=b"\xff\xd8jpeg", mime="image/jpeg")
    onfido.adapter.submit(vendor_session_id=applicant_id, scenario="declined")
    assert "consider" not in json.loads(calls(onfido, "POST", "/checks")[0]["body"])


# --- webhooks ----------------------------------------------------------------------------------------------------


def test_a_webhook_signed_only_with_the_legacy_sha1_x_signature_is_rejected(onfido):
    onfido.walk("approved", webhook=True)
    _, body = onfido.webhooks()[0]
    legacy = {"x-signature": hmac.new(TOKEN.encode(), body, hashlib.sha1).hexdigest()}
    with pytest.raises(WebhookRejected) as rejected:
        onfido.adapter.verify_webhook(headers=legacy, body=body, now=now())
    assert rejected.value.code == "malformed_signature"


def test_a_signature_over_the_payload_alone_is_rejected(onfido):
    onfido.walk("approved", webhook=True)
    _, body = onfido.webhooks()[0]
    payload_only = json.dumps(json.loads(body)["payload"]).encode()
    with pytest.raises(WebhookRejected) as rejected:
        onfido.adapter.verify_webhook(headers=signed(payload_only), body=body, now=now())
    assert rejected.value.code == "bad_signature"


def test_a_non_ascii_signature_header_is_malformed_not_a_crash(onfido):
    with pytest.raises(WebhookRejected) as rejected:
        onfido.adapter.verify_webhook(headers={"x-sha2-signature": "²" * 64}, body=b"{}", now=now())
    assert rejected.value.code == "malformed_signature"


def test_a_report_event_is_resolved_to_the_applicant_through_its_check(onfido):
    applicant_id = onfido.walk("approved", webhook=True)
    headers, body = next(d for d in onfido.webhooks() if json.loads(d[1])["payload"]["resource_type"] == "report")
    event = onfido.adapter.verify_webhook(headers=headers, body=body, now=now())
    assert event.vendor_session_id == "" and event.resource.startswith("report:")
    assert onfido.adapter.session_for(event=event) == applicant_id
    assert calls(onfido, "GET", "/reports/") and calls(onfido, "GET", "/checks/")


def test_each_event_has_its_own_dedupe_key(onfido):
    onfido.walk("approved", webhook=True)
    keys = {onfido.adapter.verify_webhook(headers=h, body=b, now=now()).dedupe_key for h, b in onfido.webhooks()}
    assert len(keys) == 3


def test_an_event_about_a_deleted_applicant_belongs_to_no_session(onfido):
    applicant_id = onfido.walk("approved", webhook=True)
    headers, body = onfido.webhooks()[-1]
    onfido.adapter.delete(vendor_session_id=applicant_id)
    event = onfido.adapter.verify_webhook(headers=headers, body=body, now=now())
    assert onfido.adapter.session_for(event=event) == ""


# --- deletion ----------------------------------------------------------------------------------------------------


def test_an_applicant_without_a_check_is_deleted_at_once(onfido):
    applicant_id = onfido.start()
    assert onfido.adapter.delete(vendor_session_id=applicant_id) == DeletionState.DONE
    assert onfido.control.get(f"/sessions/{applicant_id}")["deleted"] is True


def test_an_archived_applicant_is_scheduled_until_the_delay_then_gone(onfido):
    applicant_id = onfido.walk("approved")
    assert onfido.adapter.delete(vendor_session_id=applicant_id) == DeletionState.SCHEDULED
    assert api(onfido).get(f"/applicants/{applicant_id}").json()["delete_at"]
    onfido.control.post("/clock", {"advance": 2 * 86400})
    assert onfido.adapter.deletion_status(vendor_session_id=applicant_id) == DeletionState.SCHEDULED
    onfido.control.post("/clock", {"advance": 86400})
    assert onfido.adapter.deletion_status(vendor_session_id=applicant_id) == DeletionState.DONE
    assert onfido.control.get(f"/sessions/{applicant_id}")["documents"] == []


def test_an_applicant_restored_in_the_dashboard_shows_the_deletion_failed(onfido):
    applicant_id = onfido.walk("approved")
    onfido.adapter.delete(vendor_session_id=applicant_id)
    assert api(onfido).post(f"/applicants/{applicant_id}/restore").status_code == 204
    assert onfido.adapter.deletion_status(vendor_session_id=applicant_id) == DeletionState.FAILED


# --- the demo dashboard ------------------------------------------------------------------------------------------


def test_the_dashboard_lets_a_person_decide_a_waiting_check(onfido):
    applicant_id = onfido.start()
    onfido.submit_evidence(applicant_id)
    check_id = latest_check(onfido, applicant_id)["id"]
    page = httpx.get(onfido.fake.url + "/dashboard")
    assert "text/html" in page.headers["content-type"] and "Onfido sandbox" in page.text and check_id in page.text
    decided = httpx.post(f"{onfido.fake.url}/dashboard/checks/{check_id}", data={"scenario": "approved"})
    assert decided.status_code == 303 and decided.headers["location"] == "/dashboard"
    assert onfido.adapter.fetch_result(vendor_session_id=applicant_id).outcome == Outcome.APPROVED
