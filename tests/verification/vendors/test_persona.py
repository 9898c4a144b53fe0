"""Persona's particular edges (vendors.md §1), against the local fake: signature sets during rotation, the `s=`
mis-implementation, the null-country sandbox quirk, single-use links, out-of-order events, async redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, date, datetime

import httpx
import pytest

from fakevendors.persona import TEMPLATE_ID, VERSION
from verification.vendors.base import (
    Check,
    DeletionState,
    EvidenceKind,
    NotSupported,
    Outcome,
    VendorError,
    WebhookRejected,
)

pytestmark = pytest.mark.parametrize("vendor", ["persona"], indirect=True)
RETURN = "http://testserver/verify/return"
NOW = lambda: datetime.now(UTC)  # noqa: E731


def _sign(body: bytes, secret: str, timestamp: int, key: str = "v1") -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{key}={digest}"


def _verify(vendor, headers: dict, body: bytes):
    return vendor.adapter.verify_webhook(headers=headers, body=body, now=NOW())


def _inquiry(vendor, vendor_session_id: str) -> dict:
    return vendor.fake.sessions[vendor_session_id]


def _hidden_inputs(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


# --- Start and the hosted flow -----------------------------------------------------------------------------------


def test_start_sends_persona_headers_and_nothing_but_the_reference(vendor):
    vendor.start("vs_opaqueRef42")
    create = vendor.control.requests()[0]
    assert create["path"] == "/api/v1/inquiries"
    headers = create["headers"]
    assert headers["authorization"] == f"Bearer {vendor.fake.api_key}"
    assert headers["persona-version"] == VERSION and headers["key-inflection"] == "kebab"
    assert headers["idempotency-key"] == "start-vs_opaqueRef42"
    assert json.loads(create["body"]) == {
        "data": {
            "attributes": {"inquiry-template-id": TEMPLATE_ID, "reference-id": "vs_opaqueRef42", "redirect-uri": RETURN}
        }
    }


def test_a_retried_start_gets_the_same_inquiry_and_link(vendor):
    first = vendor.adapter.start(reference="vs_again", return_url=RETURN, idempotency_key="start-vs_again")
    again = vendor.adapter.start(reference="vs_again", return_url=RETURN, idempotency_key="start-vs_again")
    assert again == first
    assert len(vendor.fake.sessions) == 1


def test_the_one_time_link_works_once_and_resume_gives_a_fresh_one(vendor):
    vendor_session_id = vendor.start()
    link = vendor.started[-1].redirect_url
    assert vendor.control.http.get(link).status_code == 200
    assert vendor.control.http.get(link).status_code == 410  # spent: a leaked link opens nothing
    fresh = vendor.adapter.resume_url(vendor_session_id=vendor_session_id, return_url=RETURN)
    assert fresh != link
    assert vendor.control.http.get(fresh).status_code == 200


def test_opening_the_page_makes_the_inquiry_pending(vendor):
    vendor_session_id = vendor.start()
    vendor.control.http.get(vendor.started[-1].redirect_url)
    assert _inquiry(vendor, vendor_session_id)["status"] == "pending"
    # The user is on Persona's page: the broker sends a returning user back there instead of a waiting page.
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.WAITING_FOR_USER


def test_the_hosted_page_sends_the_user_back_with_the_inquiry_id(vendor):
    vendor_session_id = vendor.start("vs_browser01")
    page = vendor.control.http.get(vendor.started[-1].redirect_url)
    assert "Persona sandbox" in page.text and "local fake" in page.text
    form = {**_hidden_inputs(page.text), "outcome": "approved"}
    back = vendor.control.http.post(vendor.fake.url + "/verify/finish", data=form, follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"].startswith(RETURN + "?inquiry-id=" + vendor_session_id)
    assert "reference-id=vs_browser01" in back.headers["location"]
    assert [json.loads(body)["data"]["attributes"]["name"] for _, body in vendor.webhooks()] == [
        "inquiry.started",
        "inquiry.completed",
        "inquiry.approved",
    ]
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


def test_the_hosted_page_refuses_a_spent_session_token(vendor):
    vendor.start()
    form = {**_hidden_inputs(vendor.control.http.get(vendor.started[-1].redirect_url).text), "outcome": "approved"}
    vendor.control.http.post(vendor.fake.url + "/verify/finish", data=form)
    assert vendor.control.http.post(vendor.fake.url + "/verify/finish", data=form).status_code == 403


def test_persona_hosts_the_capture_so_uploads_and_submit_are_not_supported(vendor):
    vendor_session_id = vendor.start()
    with pytest.raises(NotSupported):
        vendor.adapter.upload(vendor_session_id=vendor_session_id, kind=EvidenceKind.SELFIE, data=b"x", mime="x")
    with pytest.raises(NotSupported):
        vendor.adapter.submit(vendor_session_id=vendor_session_id)
    assert vendor.adapter.scenarios() == {}


def test_an_id_that_is_not_an_inquiry_id_is_refused_without_calling_persona(vendor):
    with pytest.raises(VendorError) as refused:
        vendor.adapter.fetch_result(vendor_session_id="inq_x/../../accounts")
    assert refused.value.code == "unknown_session" and refused.value.permanent
    assert vendor.control.requests() == []


def test_the_fake_honours_key_inflection_so_the_adapter_must_pin_kebab(vendor):
    vendor_session_id = vendor.start()
    headers = {"Authorization": f"Bearer {vendor.fake.api_key}", "Key-Inflection": "camel"}
    body = httpx.get(f"{vendor.fake.url}/api/v1/inquiries/{vendor_session_id}", headers=headers).json()
    assert "referenceId" in body["data"]["attributes"]


def test_the_fake_refuses_attributes_persona_does_not_know(vendor):
    headers = {"Authorization": f"Bearer {vendor.fake.api_key}"}
    attributes = {"inquiry-template-id": TEMPLATE_ID, "referenceId": "vs_1"}
    answer = httpx.post(
        f"{vendor.fake.url}/api/v1/inquiries", json={"data": {"attributes": attributes}}, headers=headers
    )
    assert answer.status_code == 400


def test_environment_points_the_broker_at_the_fake(vendor):
    env = vendor.fake.environment()
    assert env["PERSONA_API_URL"] == vendor.fake.url + "/api/v1"
    assert env["PERSONA_TEMPLATE_ID"] == TEMPLATE_ID and env["PERSONA_VERSION"] == VERSION
    assert env["PERSONA_WEBHOOK_SECRETS"].split(",") == vendor.fake.webhook_secrets


# --- Results -----------------------------------------------------------------------------------------------------


def test_null_nationality_and_country_code_fall_back_to_the_selected_country_for_issuing_country_only(vendor):
    vendor_session_id = vendor.walk("approved_no_nationality")
    document = _inquiry(vendor, vendor_session_id)["verifications"][0]["attributes"]
    assert document["nationality"] is None and document["country-code"] is None  # the real sandbox quirk
    facts = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts
    assert facts.issuing_country == "US"
    assert facts.nationality is None
    assert facts.document_type == "driving_licence"


def test_without_any_country_the_issuing_country_stays_unknown(vendor):
    vendor_session_id = vendor.walk("approved_no_nationality")
    _inquiry(vendor, vendor_session_id)["fields"] = {}
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts.issuing_country is None


@pytest.mark.parametrize("given,expected", [("DEU", "DE"), ("de", "DE"), ("XX", None), ("Germany", None)])
def test_countries_are_normalized_to_alpha_2_and_never_guessed(vendor, given, expected):
    vendor_session_id = vendor.walk("approved")
    document = _inquiry(vendor, vendor_session_id)["verifications"][0]["attributes"]
    document.update({"nationality": given, "country-code": given})
    _inquiry(vendor, vendor_session_id)["fields"] = {}
    facts = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts
    assert facts.nationality == expected and facts.issuing_country == expected


@pytest.mark.parametrize(
    "id_class,expected", [("pp", "passport"), ("id", "id_card"), ("rp", "residence_permit"), ("visa", "other")]
)
def test_id_classes_map_to_document_types(vendor, id_class, expected):
    vendor_session_id = vendor.walk("approved")
    _inquiry(vendor, vendor_session_id)["verifications"][0]["attributes"]["id-class"] = id_class
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).facts.document_type == expected


def test_approved_facts_are_read_from_the_government_id_with_every_check(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=vendor.walk("approved"))
    assert result.facts.date_of_birth == date(1990, 4, 12)
    assert (result.facts.nationality, result.facts.issuing_country, result.facts.document_type) == (
        "DE",
        "DE",
        "passport",
    )
    assert (result.document_authentic, result.liveness, result.face_match) == (Check.PASS, Check.PASS, Check.PASS)


def test_facts_come_from_the_passed_attempt_when_the_user_retried_inside_persona(vendor):
    vendor_session_id = vendor.walk("approved")
    inquiry = _inquiry(vendor, vendor_session_id)
    blurry = json.loads(json.dumps(inquiry["verifications"][0]))
    blurry["id"] = "ver_firstBlurryAttempt"
    blurry["attributes"].update(status="failed", birthdate="1955-01-01", **{"completed-at": "2000-01-01T00:00:00.000Z"})
    inquiry["verifications"].insert(0, blurry)
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.facts.date_of_birth == date(1990, 4, 12)


def test_a_check_persona_did_not_run_is_unknown_not_a_pass(vendor):
    vendor_session_id = vendor.walk("approved")
    inquiry = _inquiry(vendor, vendor_session_id)
    inquiry["verifications"] = [v for v in inquiry["verifications"] if v["type"] != "verification/selfie"]
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.liveness == Check.UNKNOWN
    assert result.face_match == Check.PASS  # the government-id's own id_selfie_comparison still says so


def test_an_approval_without_a_government_id_carries_no_facts(vendor):
    vendor_session_id = vendor.walk("approved")
    _inquiry(vendor, vendor_session_id)["verifications"] = []
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == Outcome.APPROVED and result.facts is None


def test_a_declined_inquiry_reports_the_failed_check_but_no_facts(vendor):
    result = vendor.adapter.fetch_result(vendor_session_id=vendor.walk("declined"))
    assert result.outcome == Outcome.DECLINED and result.facts is None
    assert result.document_authentic == Check.FAIL
    assert result.retry_hint is None  # never a fraud reason handed to the user


@pytest.mark.parametrize(
    "status,outcome",
    [("completed", Outcome.PENDING), ("failed", Outcome.DECLINED), ("needs_review", Outcome.NEEDS_REVIEW)],
)
def test_every_persona_status_is_normalized(vendor, status, outcome):
    vendor_session_id = vendor.walk("approved")
    _inquiry(vendor, vendor_session_id)["status"] = status
    result = vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert result.outcome == outcome
    assert (result.facts is not None) == (outcome == Outcome.APPROVED)


def test_completed_is_the_approval_only_for_a_template_without_a_decision_step(vendor):
    vendor_session_id = vendor.walk("approved")
    _inquiry(vendor, vendor_session_id)["status"] = "completed"
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.PENDING
    vendor.configure(completed_is_final=True)
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.APPROVED


def test_a_status_persona_may_add_later_is_an_error_not_an_approval(vendor):
    vendor_session_id = vendor.walk("approved")
    _inquiry(vendor, vendor_session_id)["status"] = "transmogrified"
    assert vendor.adapter.fetch_result(vendor_session_id=vendor_session_id).outcome == Outcome.ERROR


def test_persona_cannot_hand_back_a_retry(vendor):
    assert vendor.control.decide(vendor.start(), "retry").status_code == 422


# --- Webhooks ----------------------------------------------------------------------------------------------------


def _event_body(vendor) -> bytes:
    vendor.walk("approved", webhook=True)
    return vendor.webhooks()[0][1]


def test_two_signature_sets_during_rotation_are_accepted_with_either_secret(vendor):
    old, new = vendor.fake.webhook_secrets[0], "wbhsec_rotated_abcdef0123456789"
    vendor.control.post("/config", {"webhook_secrets": [old, new]})
    vendor.walk("approved", webhook=True)
    headers, body = vendor.webhooks()[0]
    assert len(headers["persona-signature"].split(" ")) == 2
    for secrets_ in ([old], [new], [new, old]):
        vendor.configure(webhook_secrets=secrets_)
        assert _verify(vendor, headers, body).dedupe_key.startswith("evt_")
    vendor.configure(webhook_secrets=["wbhsec_neither_0123456789"])
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, headers, body)
    assert rejected.value.code == "bad_signature"


def test_a_signature_under_s_instead_of_v1_is_rejected(vendor):
    body = _event_body(vendor)
    header = _sign(body, vendor.fake.webhook_secrets[0], int(NOW().timestamp()), key="s")
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {"persona-signature": header}, body)
    assert rejected.value.code == "malformed_signature"


@pytest.mark.parametrize("header", ["t=1²,v1=00", "t=1700000000,v1=ab\u00e9"])
def test_a_non_ascii_signature_header_is_malformed(vendor, header):
    with pytest.raises(WebhookRejected) as rejected:
        _verify(vendor, {"persona-signature": header}, _event_body(vendor))
    assert rejected.value.code == "malformed_signature"


def test_a_stale_timestamp_is_only_reported_once_the_signature_matched(vendor):
    body = _event_body(vendor)
    old = int(NOW().timestamp()) - 600
    with pytest.raises(WebhookRejected) as forged:
        _verify(vendor, {"persona-signature": _sign(body, "wbhsec_forger_0000", old)}, body)
    assert forged.value.code == "bad_signature"
    with pytest.raises(WebhookRejected) as stale:
        _verify(vendor, {"persona-signature": _sign(body, vendor.fake.webhook_secrets[0], old)}, body)
    assert stale.value.code == "stale_timestamp"


def test_events_approved_before_completed_lead_to_the_same_re_fetched_result(vendor):
    vendor_session_id = vendor.walk("approved", webhook=True)
    vendor.control.post("/webhooks/1/redeliver", {})  # inquiry.approved first ...
    vendor.control.post("/webhooks/0/redeliver", {})  # ... then inquiry.completed, late
    late = vendor.webhooks()[-2:]
    events = [_verify(vendor, headers, body) for headers, body in late]
    assert [e.type for e in events] == ["inquiry.approved", "inquiry.completed"]
    assert events[0].occurred_at > events[1].occurred_at  # created-at still tells the true order
    results = []
    for event in events:
        assert vendor.adapter.session_for(event=event) == vendor_session_id
        results.append(vendor.adapter.fetch_result(vendor_session_id=vendor_session_id))
    assert results[0] == results[1] and results[0].outcome == Outcome.APPROVED


def test_different_events_have_different_dedupe_keys(vendor):
    vendor.walk("approved", webhook=True)
    keys = {_verify(vendor, headers, body).dedupe_key for headers, body in vendor.webhooks()}
    assert len(keys) == 2


def test_a_verification_event_is_routed_to_its_inquiry(vendor):
    vendor_session_id = vendor.start()
    event = {
        "data": {
            "type": "event",
            "id": "evt_verificationPassed01",
            "attributes": {
                "name": "verification.passed",
                "created-at": "2025-01-01T00:00:00.000Z",
                "payload": {
                    "data": {
                        "type": "verification/government-id",
                        "id": "ver_abc",
                        "relationships": {"inquiry": {"data": {"type": "inquiry", "id": vendor_session_id}}},
                    }
                },
            },
        }
    }
    body = json.dumps(event).encode()
    headers = {"persona-signature": _sign(body, vendor.fake.webhook_secrets[0], int(NOW().timestamp()))}
    assert _verify(vendor, headers, body).vendor_session_id == vendor_session_id


# --- Redaction ---------------------------------------------------------------------------------------------------


def test_redaction_is_in_progress_until_every_verification_is_redacted(vendor):
    vendor_session_id = vendor.walk("approved")
    assert vendor.adapter.delete(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    assert _inquiry(vendor, vendor_session_id)["birthdate"] is None  # the inquiry itself is redacted at once
    vendor.control.post("/clock", {"advance": 1800})
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    vendor.control.post("/clock", {"advance": 1900})
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE
    for verification in _inquiry(vendor, vendor_session_id)["verifications"]:
        assert verification["attributes"]["birthdate"] is None and verification["attributes"]["redacted-at"]


def test_a_re_fetch_after_redaction_is_refused_rather_than_an_empty_approval(vendor):
    vendor_session_id = vendor.walk("approved")
    vendor.adapter.delete(vendor_session_id=vendor_session_id)
    with pytest.raises(VendorError) as redacted:
        vendor.adapter.fetch_result(vendor_session_id=vendor_session_id)
    assert redacted.value.code == "session_redacted" and redacted.value.permanent


def test_an_inquiry_never_opened_is_redacted_at_once(vendor):
    assert vendor.adapter.delete(vendor_session_id=vendor.start()) == DeletionState.DONE


def test_polling_a_redaction_that_was_never_asked_for_says_requested_not_done(vendor):
    vendor_session_id = vendor.walk("approved")
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.REQUESTED


def test_an_inquiry_persona_no_longer_knows_counts_as_deleted(vendor):
    vendor_session_id = vendor.walk("approved")
    del vendor.fake.sessions[vendor_session_id]
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE


def test_a_rate_limited_redaction_hands_back_persona_s_reset(vendor):
    vendor_session_id = vendor.walk("approved")
    vendor.control.fault(status=429, count=2, method="DELETE", retry_after=90)
    raw = httpx.delete(f"{vendor.fake.url}/api/v1/inquiries/{vendor_session_id}")
    assert raw.status_code == 429 and raw.headers["ratelimit-reset"] == "90" and "ratelimit-limit" in raw.headers
    with pytest.raises(VendorError) as limited:
        vendor.adapter.delete(vendor_session_id=vendor_session_id)
    assert limited.value.retry_after == 90 and not limited.value.permanent


def test_deletion_redacts_the_linked_account_too_and_waits_for_it(vendor):
    """Persona keeps identification numbers on the account an inquiry is linked to: redacting only the inquiry
    would leave that copy behind (vendors.md §1, Redaction)."""
    vendor_session_id = vendor.walk("approved")
    account_id = _inquiry(vendor, vendor_session_id)["account-id"]
    assert vendor.fake.accounts[account_id]["identification-numbers"]  # the copy exists
    vendor.adapter.delete(vendor_session_id=vendor_session_id)
    assert any(
        r["method"] == "DELETE" and r["path"].endswith(f"/accounts/{account_id}") for r in vendor.control.requests()
    )
    for verification in _inquiry(vendor, vendor_session_id)["verifications"]:
        verification["redact-due"] = 0  # the children are done; the account is not yet
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.IN_PROGRESS
    vendor.control.post("/clock", {"advance": 7200})
    assert vendor.adapter.deletion_status(vendor_session_id=vendor_session_id) == DeletionState.DONE
    assert vendor.fake.accounts[account_id]["identification-numbers"] == []
