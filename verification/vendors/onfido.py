"""Onfido (Entrust), classic API v3.6: broker-hosted capture, the broker uploads the images (vendors.md section 2).

One applicant per verification session; its id is our `vendor_session_id`. The flow is applicant → document and live
photo uploads → one check with a `document` and a `facial_similarity_photo` report. Onfido sends thin webhooks that
name a check or a report, never the applicant, so `session_for` resolves them with a fetch.

Onfido documents no Idempotency-Key, so no key is sent and VendorHttp never retries these POSTs once Onfido may have
acted on them. `start` runs once per session; if its answer is lost, a later start leaves at most an orphan applicant
holding a placeholder name and a random id: no personal data, no evidence, no check, so no charge. `submit` reads
before it writes and creates a check only when the applicant has none, because a second check is a second charge.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from .base import (
    CaptureMode,
    Check,
    DeletionState,
    EvidenceKind,
    Facts,
    NotSupported,
    Outcome,
    Result,
    StartResult,
    VendorAdapter,
    VendorError,
    WebhookEvent,
    WebhookRejected,
    vendor_config,
)
from .http import VendorHttp, json_object
from .normalize import country_alpha2, iso_date
from .signatures import body_hmac_matches, header, hex_sha256, secrets_list

# Onfido requires first_name and last_name on an applicant and has no free-form reference field (v3.6 applicant
# schema: names, email, dob, id_numbers, phone_number, address, location, consents). We send no personal data: the
# first name is a fixed placeholder and the last name carries the opaque session reference, so a record in the
# Onfido dashboard points back to nothing but a random id. Side effect: the document report's `data_comparison`
# always mismatches these names (see `_outcome`).
PLACEHOLDER_FIRST_NAME = "idbroker"
REPORT_NAMES = ("document", "facial_similarity_photo")
SANDBOX_TOKEN_PREFIX = "api_sandbox"
# Sandbox-only controls on POST /checks (onfido-openapi-spec schemas/checks: `consider`, `sub_result`). The sandbox
# returns its own sample document, so only the decision can be chosen, not the facts (no minor, no missing nationality).
SANDBOX_SCENARIOS = {
    "approved": ("Approved (the sandbox's default outcome)", {}),
    "declined": ("Declined: document suspected", {"consider": ["document"], "sub_result": "suspected"}),
    "needs_review": ("Needs review: document caution", {"consider": ["document"], "sub_result": "caution"}),
}
DOCUMENT_TYPES = {
    "passport": "passport",
    "driving_licence": "driving_licence",
    "national_identity_card": "id_card",
    "residence_permit": "residence_permit",
}
FILE_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}  # what both /documents and /live_photos accept
_OBJECT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # Onfido ids are UUIDs; anything else never reaches a URL path


def _mapping(report: dict, key: str) -> dict:
    """A report's `breakdown` or `properties`. Reports still `awaiting_data` carry `[]` there, not `{}` (Expensify
    App#31237 shows the raw JSON), so anything that is not an object counts as empty."""
    value = report.get(key)
    return value if isinstance(value, dict) else {}


def _check(breakdown: dict, name: str) -> Check:
    item = breakdown.get(name)
    result = item.get("result") if isinstance(item, dict) else None
    return {"clear": Check.PASS, "consider": Check.FAIL}.get(result, Check.UNKNOWN)


def _outcome(document: dict, facial: dict) -> Outcome:
    """Normalize two complete reports. The check's own `result` is not used: it is `consider` whenever any report
    is, including the name mismatch explained below."""
    if facial.get("result") == "consider":  # face mismatch, spoof, or no usable face: nothing to review
        return Outcome.DECLINED
    if facial.get("result") != "clear":
        return Outcome.NEEDS_REVIEW
    if document.get("result") == "clear":
        return Outcome.APPROVED
    if document.get("result") != "consider":
        return Outcome.NEEDS_REVIEW
    sub_result = document.get("sub_result")
    if sub_result in ("rejected", "suspected"):
        return Outcome.DECLINED
    if sub_result == "caution":
        # `caution` includes "the name given for the applicant does not match the document" (Onfido document
        # report guide). Our applicant names are placeholders, so a `data_comparison` mismatch says nothing about
        # the person; any other considered breakdown (expiry, age, data consistency) still goes to review.
        breakdown = _mapping(document, "breakdown")
        considered = {name for name in breakdown if _check(breakdown, name) == Check.FAIL}
        if considered and considered <= {"data_comparison"}:
            return Outcome.APPROVED
    return Outcome.NEEDS_REVIEW


def _facts(properties: dict) -> Facts:
    """Only the facts the broker keeps (SPEC 3.5); names, numbers, MRZ lines and addresses are never read."""
    return Facts(
        date_of_birth=iso_date(properties.get("date_of_birth")),
        nationality=country_alpha2(properties.get("nationality")),
        issuing_country=country_alpha2(properties.get("issuing_country")),
        document_type=DOCUMENT_TYPES.get(properties.get("document_type"), "other"),
        document_expiry=iso_date(properties.get("date_of_expiry")),
    )


def _object_id(value: object, code: str = "unexpected_response") -> str:
    if not isinstance(value, str) or not _OBJECT_ID.fullmatch(value):
        raise VendorError(code, permanent=True)
    return value


class OnfidoVendor(VendorAdapter):
    name = "onfido"
    capture_mode = CaptureMode.BROKER_HOSTED
    evidence_kinds = (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE)

    def _http(self) -> VendorHttp:
        config = vendor_config(self.name)  # read per call: settings change between calls (tests, key rotation)
        return VendorHttp(
            self.name,
            config["api_url"],
            headers={"Authorization": f"Token token={config['api_key']}", "Accept": "application/json"},
        )

    def _sandbox(self) -> bool:
        return str(vendor_config(self.name).get("api_key", "")).startswith(SANDBOX_TOKEN_PREFIX)

    @staticmethod
    def _checks(http: VendorHttp, applicant_id: str) -> list[dict]:
        response = http.request("GET", "/checks", params={"applicant_id": _object_id(applicant_id, "unknown_session")})
        checks = json_object(response).get("checks")
        return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []

    # --- session -------------------------------------------------------------------------------------------------
    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        response = self._http().request(
            "POST", "/applicants", json={"first_name": PLACEHOLDER_FIRST_NAME, "last_name": reference}
        )
        return StartResult(vendor_session_id=_object_id(json_object(response).get("id")))

    def upload(self, *, vendor_session_id: str, kind: EvidenceKind, data: bytes, mime: str) -> None:
        http = self._http()
        if self._checks(http, vendor_session_id):
            raise VendorError("already_submitted", permanent=True)  # a check has already read the evidence
        extension = FILE_EXTENSIONS.get(mime)
        if extension is None:
            raise VendorError("unsupported_media", permanent=True)
        fields = {"applicant_id": vendor_session_id}
        if kind == EvidenceKind.DOCUMENT_FRONT:
            # The capture page does not ask which document it is: `unknown` lets the document report classify it.
            path, fields = "/documents", {**fields, "type": "unknown", "side": "front"}
        elif kind == EvidenceKind.SELFIE:
            path = "/live_photos"
        else:
            raise NotSupported(f"upload:{kind}")
        http.request("POST", path, data=fields, files={"file": (f"{kind}.{extension}", data, mime)})

    def submit(self, *, vendor_session_id: str, scenario: str | None = None) -> None:
        http = self._http()
        if self._checks(http, vendor_session_id):
            return
        body: dict = {"applicant_id": vendor_session_id, "report_names": list(REPORT_NAMES)}
        if scenario is not None and self._sandbox():  # never send sandbox controls with a live token
            if scenario not in SANDBOX_SCENARIOS:
                raise VendorError("unknown_scenario", permanent=True)
            body.update(SANDBOX_SCENARIOS[scenario][1])
        http.request("POST", "/checks", json=body)

    def scenarios(self) -> dict[str, str]:
        return {name: label for name, (label, _) in SANDBOX_SCENARIOS.items()} if self._sandbox() else {}

    # --- results -------------------------------------------------------------------------------------------------
    def fetch_result(self, *, vendor_session_id: str) -> Result:
        http = self._http()
        checks = self._checks(http, vendor_session_id)
        if not checks:
            return Result(Outcome.PENDING)  # evidence not submitted yet
        check = max(checks, key=lambda c: str(c.get("created_at", "")))
        if check.get("status") == "withdrawn":
            return Result(Outcome.ERROR)
        response = http.request("GET", "/reports", params={"check_id": _object_id(check.get("id"))})
        reports = [r for r in json_object(response).get("reports") or [] if isinstance(r, dict)]
        if any(r.get("status") in ("cancelled", "withdrawn") for r in reports):
            return Result(Outcome.ERROR)
        # Reports sit in `awaiting_data` right after the check is created (vendors.md pain point 10): only a
        # complete check whose every report is complete is a decision.
        if check.get("status") != "complete" or any(r.get("status") != "complete" for r in reports):
            return Result(Outcome.PENDING)
        document = next((r for r in reports if r.get("name") == "document"), None)
        facial = next((r for r in reports if r.get("name") == "facial_similarity_photo"), None)
        if document is None or facial is None:
            return Result(Outcome.ERROR)
        outcome = _outcome(document, facial)
        facial_breakdown = _mapping(facial, "breakdown")
        return Result(
            outcome,
            facts=_facts(_mapping(document, "properties")) if outcome == Outcome.APPROVED else None,
            document_authentic=_check(_mapping(document, "breakdown"), "visual_authenticity"),
            # Photo similarity's visual_authenticity is spoof detection on one still photo, not liveness (Onfido's
            # liveness is the video/motion reports, which need its SDK): not claimed.
            liveness=Check.UNKNOWN,
            face_match=_check(facial_breakdown, "face_comparison"),
        )

    # --- webhooks ------------------------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        # Only X-SHA2-Signature: hex HMAC-SHA256 of the entire raw body, keyed with the webhook token (vendors.md
        # pain point 3: not `payload` alone). The legacy v2 X-Signature is SHA-1 and is never accepted (pain point 4).
        # No timestamp is signed: a replay is caught by the dedupe key and is harmless because results are re-fetched.
        signature = hex_sha256(header(headers, "x-sha2-signature"))
        tokens = secrets_list(vendor_config(self.name).get("webhook_secrets"))  # several while rotating
        if not body_hmac_matches(signature, body=body, secrets=tokens):
            raise WebhookRejected("bad_signature")
        try:  # authentic from here on: parse errors are malformed_body, never bad_signature (pain point 5)
            payload = json.loads(body)["payload"]
            resource_type, action, obj = payload["resource_type"], payload["action"], payload["object"]
            object_id = _object_id(obj["id"])
            completed_at = obj.get("completed_at_iso8601") or ""
            if resource_type not in ("check", "report") or not isinstance(action, str) or not action:
                raise ValueError
            occurred_at = datetime.fromisoformat(completed_at) if completed_at else None
        except (ValueError, KeyError, TypeError, AttributeError, VendorError):
            raise WebhookRejected("malformed_body") from None
        return WebhookEvent(
            dedupe_key=f"{resource_type}:{object_id}:{action}:{completed_at}",
            vendor_session_id="",
            type=action,
            occurred_at=occurred_at,
            resource=f"{resource_type}:{object_id}",
        )

    def session_for(self, *, event: WebhookEvent) -> str:
        """The applicant behind a check or report event. A resource Onfido no longer has (the applicant was
        deleted) belongs to no session: answered with "" rather than an error that would be retried forever."""
        if event.vendor_session_id:
            return event.vendor_session_id
        resource_type, _, object_id = event.resource.partition(":")
        if resource_type not in ("check", "report"):
            raise VendorError("unknown_resource", permanent=True)
        http = self._http()
        if resource_type == "report":
            report = self._get(http, f"/reports/{_object_id(object_id, 'unknown_resource')}")
            if report is None:
                return ""
            object_id = report.get("check_id")
        check = self._get(http, f"/checks/{_object_id(object_id, 'unknown_resource')}")
        return "" if check is None else _object_id(check.get("applicant_id"))

    @staticmethod
    def _get(http: VendorHttp, path: str) -> dict | None:
        response = http.request("GET", path, ok=(200, 404))
        return None if response.status_code == 404 else json_object(response)

    # --- deletion ------------------------------------------------------------------------------------------------
    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """DELETE archives the applicant with its documents, photos, checks and reports until the account's deletion
        delay ends (restorable until then), or deletes at once when there is no check (vendors.md, deletion)."""
        path = f"/applicants/{_object_id(vendor_session_id, 'unknown_session')}"
        self._http().request("DELETE", path, ok=(204, 404))
        return self.deletion_status(vendor_session_id=vendor_session_id)

    def deletion_status(self, *, vendor_session_id: str) -> DeletionState:
        applicant = self._get(self._http(), f"/applicants/{_object_id(vendor_session_id, 'unknown_session')}")
        if applicant is None:
            return DeletionState.DONE
        if applicant.get("delete_at"):
            return DeletionState.SCHEDULED
        # Live again (restored from the dashboard): the vendor holds the data, a new delete is needed.
        return DeletionState.FAILED
