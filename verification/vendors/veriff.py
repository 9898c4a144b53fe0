"""Veriff (vendors.md section 4): broker-hosted capture through Veriff's API-only flow.

1. `POST /sessions` with only our opaque reference as `vendorData` (no `person`): Veriff would read the name and
   birth date off the document anyway, and what we never send it cannot leak from its side.
2. `POST /sessions/{id}/media`, one image per request, then `PATCH /sessions/{id}` to `submitted`.
3. The decision comes by webhook (routing facts only here) and is always re-read from `GET /sessions/{id}/decision`,
   whose answer is the session's latest decision (vendors.md pain point 7).
4. `DELETE /sessions/{id}` when we are done (opt-in at Veriff, rate limited, data gone within 12 h).

Every request carries `X-AUTH-CLIENT` (the API key) and `X-HMAC-SIGNATURE`: hex HMAC-SHA256 keyed with the
integration's shared secret over the raw body of a POST/PATCH, or over the session id of a GET/DELETE
(devdocs.veriff.com/docs/hmac-authentication-and-endpoint-security). The same secret signs Veriff's webhooks; the
first configured one signs our requests, and any configured one is accepted on webhooks while it rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import httpx
from PIL import Image, UnidentifiedImageError

from .base import (
    CaptureMode,
    Check,
    DeletionState,
    EvidenceKind,
    Facts,
    Outcome,
    Result,
    RetryHint,
    StartResult,
    VendorAdapter,
    VendorError,
    WebhookEvent,
    WebhookRejected,
    vendor_config,
)
from .http import VendorHttp, hinted_wait, json_object
from .normalize import country_alpha2, iso_date
from .signatures import body_hmac_matches, equal, header, hex_sha256, malformed, secrets_list

log = logging.getLogger(__name__)

# Veriff's media rule (apidocs v1sessionsidmedia-3): the longer side of an upload is at most 1920 px.
MAX_LONG_SIDE = 1920
CONTEXTS = {
    EvidenceKind.DOCUMENT_FRONT: "document-front",
    EvidenceKind.DOCUMENT_BACK: "document-back",
    EvidenceKind.SELFIE: "face",
}
DOCUMENT_TYPES = {
    "PASSPORT": "passport",
    "ID_CARD": "id_card",
    "DRIVERS_LICENSE": "driving_licence",
    "RESIDENCE_PERMIT": "residence_permit",
}
# Decisions by status string, never by code: Veriff's own tables disagree on 9104/9121 (vendors.md section 4).
OUTCOMES = {
    "approved": Outcome.APPROVED,
    "declined": Outcome.DECLINED,
    "resubmission_requested": Outcome.RETRY,
    "review": Outcome.NEEDS_REVIEW,
    "expired": Outcome.EXPIRED,
    "abandoned": Outcome.EXPIRED,
}
# Resubmission reason codes (Veriff decision-codes table, 2xx) as advice an honest user can act on. Decline codes
# (1xx) are never mapped to anything the user sees: they describe suspected fraud (vendors.md pain point 8).
RETRY_HINTS = {
    202: RetryHint.FACE_NOT_VISIBLE,
    203: RetryHint.DOCUMENT_NOT_VISIBLE,
    204: RetryHint.BLURRY,
}
FACE_MISMATCH = 103
# Veriff deletes within 12 h of accepting a DELETE and never reports completion (apidocs v1sessionsid-3).
DELETION_COMPLETES_WITHIN = timedelta(hours=12)
# With no Retry-After on a quota refusal, wait out the shorter of Veriff's two windows (5/hour, 10/day).
DELETION_QUOTA_WAIT = 3600.0
SESSION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
WORD = re.compile(r"[a-z0-9_]{1,40}")


def _session_path(vendor_session_id: str, suffix: str = "") -> str:
    # Our own database hands us the id, but it becomes part of a URL and of what is signed: refuse anything odd.
    if not SESSION_ID.fullmatch(vendor_session_id):
        raise VendorError("unknown_session", permanent=True)
    return f"/sessions/{vendor_session_id}{suffix}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _decision_time(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _reason_code(verification: dict) -> int | None:
    value = verification.get("reasonCode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _fit(data: bytes, mime: str) -> tuple[bytes, str]:
    """The image within Veriff's 1920 px rule. The broker sanitises (re-encodes pixels only) but does not resize."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max(img.size) <= MAX_LONG_SIDE:
                return data, mime
            img.thumbnail((MAX_LONG_SIDE, MAX_LONG_SIDE))
            out = io.BytesIO()
            img.convert("RGB").save(out, format="JPEG", quality=90)
            return out.getvalue(), "image/jpeg"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise VendorError("unreadable_image", permanent=True) from None


class VeriffVendor(VendorAdapter):
    name = "veriff"
    capture_mode = CaptureMode.BROKER_HOSTED
    evidence_kinds = (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE)
    deletion_completes_within = DELETION_COMPLETES_WITHIN

    def _http(self, vendor_session_id: str = "") -> VendorHttp:
        config = vendor_config(self.name)
        shared_secrets = config.get("webhook_secrets") or []
        if not shared_secrets:
            raise VendorError("missing_shared_secret", permanent=True)
        key = shared_secrets[0].encode()

        def sign(request: httpx.Request) -> None:
            payload = request.content if request.method in ("POST", "PATCH") else vendor_session_id.encode()
            request.headers["X-HMAC-SIGNATURE"] = hmac.new(key, payload, hashlib.sha256).hexdigest()

        return VendorHttp(self.name, config["api_url"], headers={"X-AUTH-CLIENT": config["api_key"]}, auth=sign)

    # --- session and evidence ------------------------------------------------------------------------------------
    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        """Veriff documents no Idempotency-Key, so none is sent, and VendorHttp then never repeats this POST after
        a timeout (only after a refusal that did nothing: connection refused, 429). A retried task may still
        open a second session after a lost answer; that orphan holds nothing personal (only `vendorData`, our
        opaque reference), receives no media, and simply expires at Veriff, while the broker keeps the one id
        it recorded."""
        body = {"verification": {"callback": return_url, "vendorData": reference}}
        answer = json_object(self._http().request("POST", "/sessions", json=body))
        verification = answer.get("verification")
        session_id = verification.get("id") if isinstance(verification, dict) else None
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            raise VendorError("malformed_response")
        return StartResult(vendor_session_id=session_id)

    def upload(self, *, vendor_session_id: str, kind: EvidenceKind, data: bytes, mime: str) -> None:
        path = _session_path(vendor_session_id, "/media")
        data, mime = _fit(data, mime)
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        content = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        body = {"image": {"context": CONTEXTS[kind], "content": content, "timestamp": timestamp}}
        response = self._http(vendor_session_id).request("POST", path, json=body, ok=(200, 201, 409))
        if response.status_code == 409:  # Veriff refuses media once the attempt is submitted
            raise VendorError("already_submitted", permanent=True)

    def submit(self, *, vendor_session_id: str, scenario: str | None = None) -> None:
        """`scenario` is ignored: Veriff test integrations are decided by hand in the Customer Portal.

        A second PATCH is refused ("Session cannot be updated after it has been submitted", apidocs
        v1sessionsid-2) with a status Veriff does not document. Our body never varies, so a 400 or 409 here is
        about the session's state: already submitted, the work is done; decided or expired, the next decision
        poll says so. Failing the session instead would throw away a decision Veriff is about to make."""
        body = {"verification": {"status": "submitted"}}
        path = _session_path(vendor_session_id)
        self._http(vendor_session_id).request("PATCH", path, json=body, ok=(200, 201, 202, 204, 400, 409))

    # --- result --------------------------------------------------------------------------------------------------
    def fetch_result(self, *, vendor_session_id: str) -> Result:
        """The decision endpoint answers the latest decision only, so a resubmission followed by an approval
        reads as a clean approval: nothing from an earlier decision is carried over (vendors.md pain point 7)."""
        path = _session_path(vendor_session_id, "/decision")
        verification = json_object(self._http(vendor_session_id).request("GET", path)).get("verification")
        if verification is None:
            return Result(Outcome.PENDING)
        if not isinstance(verification, dict):
            raise VendorError("malformed_response")
        outcome = OUTCOMES.get(_text(verification.get("status")), Outcome.ERROR)
        # `/decision` shows the latest decision until Veriff decides a resubmitted attempt: its time lets the
        # broker recognise the one it already acted on (services.result_apply).
        decided = _decision_time(verification.get("decisionTime"))
        if outcome == Outcome.APPROVED:
            # Veriff reports no separate document, liveness or face-match verdicts (vendors.md section 4): they are
            # part of its decision, and each failing one is its own decline reason (102 tampering, 103 face
            # mismatch, 105 suspicious behaviour). An approval therefore is Veriff's pass on all three.
            # Liveness stays UNKNOWN: we upload still images through the API, and Veriff's liveness comes from its
            # own capture SDK, which this flow does not use; an approval does not speak for it.
            return Result(
                outcome,
                facts=self._facts(verification),
                document_authentic=Check.PASS,
                liveness=Check.UNKNOWN,
                face_match=Check.PASS,
                decided_at=decided,
            )
        if outcome == Outcome.DECLINED:
            face = Check.FAIL if _reason_code(verification) == FACE_MISMATCH else Check.UNKNOWN
            return Result(outcome, face_match=face, decided_at=decided)
        if outcome == Outcome.RETRY:
            hint = RETRY_HINTS.get(_reason_code(verification), RetryHint.OTHER)
            return Result(outcome, retry_hint=hint, decided_at=decided)
        return Result(outcome, decided_at=decided)

    @staticmethod
    def _facts(verification: dict) -> Facts:
        person = verification.get("person") if isinstance(verification.get("person"), dict) else {}
        document = verification.get("document") if isinstance(verification.get("document"), dict) else {}
        return Facts(
            date_of_birth=iso_date(person.get("dateOfBirth")),
            nationality=country_alpha2(person.get("nationality")),
            issuing_country=country_alpha2(document.get("country")),
            document_type=DOCUMENT_TYPES.get(_text(document.get("type")), "other"),
            document_expiry=iso_date(document.get("validUntil")),
        )

    # --- webhooks ------------------------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Both headers must hold: `x-auth-client` is our API key and `x-hmac-signature` the HMAC of the raw body.
        Veriff signs no timestamp; a replay is absorbed by the dedupe key and the re-fetch. The legacy
        `X-SIGNATURE` (a plain SHA-256 of body + secret, no HMAC) is deliberately not looked at."""
        config = vendor_config(self.name)
        client = header(headers, "x-auth-client")
        signature = hex_sha256(header(headers, "x-hmac-signature"))
        if not client:
            raise malformed()
        # Both are computed before either is looked at: timing does not say which one failed.
        signed = body_hmac_matches(signature, body=body, secrets=secrets_list(config.get("webhook_secrets")))
        ours = equal(client, str(config["api_key"]))
        if not (signed and ours):
            raise WebhookRejected("bad_signature")
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookRejected("malformed_body") from None
        parsed = self._decision_event(event) or self._flow_event(event)
        if parsed is None:
            raise WebhookRejected("malformed_body")
        return parsed

    @staticmethod
    def _decision_event(event: object) -> WebhookEvent | None:
        """`{status, verification: {id, attemptId, code, status, decisionTime, ...}}` (docs/decision-webhook)."""
        verification = event.get("verification") if isinstance(event, dict) else None
        if not isinstance(verification, dict):
            return None
        session, attempt = verification.get("id"), verification.get("attemptId") or ""
        status, code = verification.get("status"), verification.get("code")
        if not (
            isinstance(session, str)
            and SESSION_ID.fullmatch(session)
            and isinstance(attempt, str)
            and (not attempt or SESSION_ID.fullmatch(attempt))
            and isinstance(status, str)
            and WORD.fullmatch(status)
            and type(code) is int
        ):
            return None
        try:
            occurred = datetime.fromisoformat(verification["decisionTime"])
        except (KeyError, TypeError, ValueError):
            occurred = None
        # Each decision is its own event: review (9121) then approved (9001) on one attempt are two deliveries.
        return WebhookEvent(
            dedupe_key=f"{session}:{attempt}:{code}:{status}",
            vendor_session_id=session,
            type=f"decision.{status}",
            occurred_at=occurred,
        )

    @staticmethod
    def _flow_event(event: object) -> WebhookEvent | None:
        """`{id, attemptId, feature, code: 7001|7002, action: started|submitted}` (docs/event-webhook)."""
        if not isinstance(event, dict):
            return None
        session, attempt = event.get("id"), event.get("attemptId") or ""
        code, action = event.get("code"), event.get("action")
        if not (
            isinstance(session, str)
            and SESSION_ID.fullmatch(session)
            and isinstance(attempt, str)
            and (not attempt or SESSION_ID.fullmatch(attempt))
            and isinstance(action, str)
            and WORD.fullmatch(action)
            and type(code) is int
        ):
            return None
        return WebhookEvent(
            dedupe_key=f"{session}:{attempt}:{code}:{action}", vendor_session_id=session, type=f"event.{action}"
        )

    # --- deletion ------------------------------------------------------------------------------------------------
    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """Veriff's DELETE (apidocs v1sessionsid-3), signed over the session id. Its answers:
        1. 200: accepted; the session leaves the API at once and its data within 12 h -> SCHEDULED.
        2. 404: already gone (an earlier call, or a retry of this one, got through) -> SCHEDULED like a 200: the
           data may still be within Veriff's 12 h, and the broker waits that out before `deletion_status`.
        3. 403: deletion is not enabled for this integration (off by default; a Veriff Solutions Engineer turns
           it on). FAILED, not NOT_SUPPORTED: Veriff does offer it, and the dashboard must show an operator that
           copies are being kept (SPEC 3.7). Retrying costs nothing.
        4. 400: "Session is not in a completed status" (submitted, not yet decided) -> a transient VendorError:
           the decision will come, and a FAILED state would end the broker's attempts for good.
        5. 429: the quota (5 an hour, 10 a day) -> a transient VendorError with `retry_after`: a wait, not a
           failure. It is answered here rather than retried inline, since seconds of backoff cannot help."""
        path = _session_path(vendor_session_id)
        http = self._http(vendor_session_id)
        response = http.request("DELETE", path, ok=(200, 202, 204, 400, 403, 404, 429))
        status = response.status_code
        if status == 429:
            raise VendorError("deletion_quota", retry_after=hinted_wait(response) or DELETION_QUOTA_WAIT)
        if status == 404:
            return DeletionState.SCHEDULED
        if status == 403:
            log.warning("veriff refused a deletion: not enabled for this integration", extra={"vendor": self.name})
            return DeletionState.FAILED
        if status == 400:
            raise VendorError("deletion_not_allowed_yet")
        return DeletionState.SCHEDULED

    def deletion_status(self, *, vendor_session_id: str) -> DeletionState:
        """404 from the decision endpoint is the only confirmation Veriff ever gives, so it is DONE here. It means
        the deletion was accepted; the data itself goes within `deletion_completes_within` of the request, which
        Veriff never reports and only the caller, who knows when it asked, can add. A session still readable
        was not deleted: FAILED, so the broker asks again."""
        path = _session_path(vendor_session_id, "/decision")
        response = self._http(vendor_session_id).request("GET", path, ok=(200, 404))
        return DeletionState.DONE if response.status_code == 404 else DeletionState.FAILED
