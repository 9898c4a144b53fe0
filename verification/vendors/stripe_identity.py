"""Stripe Identity: vendor-hosted capture (vendors.md 3). The user is sent to Stripe's page; we never see an image.

API facts this adapter relies on (docs.stripe.com/api/identity/verification_sessions, /identity/how-sessions-work,
/identity/verification-sessions, /identity/access-verification-results):
- Form-encoded bodies, `Authorization: Bearer <key>`, a `Stripe-Version` header, and `Idempotency-Key` on POSTs:
  Stripe replays the saved response for a key it has seen (24 h), *including* an error answer.
- A session is `requires_input` → `processing` → `verified`; a failed check sends it back to `requires_input` with
  `last_error{code, reason}`, and retrieving it then gives a fresh single-use `url`. `canceled` is final.
- The date of birth and the document's expiry are "sensitive results": they come back only when expanded by name
  (`verified_outputs.dob`, `last_verification_report.document.expiration_date`), with a restricted key (`rk_…`)
  allowed to read them, and only for 48 h after processing (longer needs an IP-restricted key). Expanding the
  parent object alone omits them, which is why the retrieve below names them.
- Stripe reports no nationality and no liveness flag. `require_live_capture` only forbids uploading a file instead of
  photographing the document live; it says nothing about whether the *selfie* was of a live person, so liveness
  stays UNKNOWN on approval. The one liveness signal Stripe gives is a failure: `selfie_manipulated`.
- Redaction (`POST …/redact`) is allowed in `requires_input` (which also cancels the session) or `verified`, takes
  up to 4 days (`redaction.status` `processing` → `redacted`), and is refused while the session is `processing`
  ("you must wait until it finishes", /identity/verification-sessions#redact).
The `url` and `client_secret` are bearer credentials for the user's session: they are never logged or stored here.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, date, datetime

from .base import (
    CaptureMode,
    Check,
    DeletionState,
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
from .http import VendorHttp, json_object
from .normalize import country_alpha2, plausible_date
from .signatures import header, secrets_list, verify_timestamped

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"vs_[A-Za-z0-9]{1,64}")
SESSIONS = "/identity/verification_sessions"
# verified_outputs.dob and document.expiration_date must be named: the parent expansion omits sensitive fields.
EXPAND = [
    ("expand[]", "verified_outputs"),
    ("expand[]", "verified_outputs.dob"),
    ("expand[]", "last_verification_report"),
    ("expand[]", "last_verification_report.document.expiration_date"),
]
EVENT_TYPES = frozenset(
    f"identity.verification_session.{kind}"
    for kind in ("created", "processing", "verified", "requires_input", "canceled", "redacted")
)
DOCUMENT_TYPES = {"passport": "passport", "id_card": "id_card", "driving_license": "driving_licence"}

# last_error codes (Stripe API: verification_session.last_error.code). What an honest user can fix becomes a RETRY
# with a hint; fraud, mismatch, age, expiry and refusals end the session, and the user is told nothing more
# (vendors.md pain point 8). A code we do not know also declines: failing closed costs a user one new attempt.
RETRYABLE = {
    # Stripe's catch-all for a document it could not read or verify: a clear photo of a supported document helps.
    "document_unverified_other": RetryHint.DOCUMENT_NOT_VISIBLE,
    "document_type_not_supported": RetryHint.OTHER,
    "selfie_document_missing_photo": RetryHint.DOCUMENT_NOT_VISIBLE,
    "selfie_unverified_other": RetryHint.FACE_NOT_VISIBLE,
    "device_not_supported": RetryHint.OTHER,
}
EXPIRED_CODES = frozenset({"abandoned"})
DECLINED_CODES = frozenset(
    {
        "consent_declined",
        "under_supported_age",
        "document_expired",
        "selfie_face_mismatch",
        "selfie_manipulated",
        "country_not_supported",
    }
)


def _date(value: object) -> date | None:
    """Stripe's `{day, month, year}`. A redacted object holds the placeholder 1-1-1, which is no fact at all."""
    if not isinstance(value, dict):
        return None
    try:
        found = date(int(value["year"]), int(value["month"]), int(value["day"]))
    except (KeyError, TypeError, ValueError):
        return None
    return plausible_date(found)


def _check(status: object) -> Check:
    return {"verified": Check.PASS, "unverified": Check.FAIL}.get(status, Check.UNKNOWN)


class StripeIdentityVendor(VendorAdapter):
    name = "stripe_identity"
    capture_mode = CaptureMode.VENDOR_HOSTED
    evidence_kinds = ()

    def _http(self) -> VendorHttp:
        config = vendor_config(self.name)  # read per call: settings change between calls (tests, key rotation)
        headers = {"Authorization": f"Bearer {config['api_key']}"}
        if config.get("version"):
            headers["Stripe-Version"] = config["version"]
        return VendorHttp(self.name, config["api_url"], headers=headers)

    @staticmethod
    def _path(vendor_session_id: str, suffix: str = "") -> str:
        if not SESSION_ID.fullmatch(vendor_session_id or ""):
            raise VendorError("unknown_session", permanent=True)
        return f"{SESSIONS}/{vendor_session_id}{suffix}"

    @staticmethod
    def _json(response) -> dict:
        """A verification session object, or a transient `malformed_response`."""
        body = json_object(response)
        if not SESSION_ID.fullmatch(str(body.get("id", ""))):
            raise VendorError("malformed_response")
        return body

    def _retrieve(self, vendor_session_id: str, *, expand: bool = False) -> dict:
        response = self._http().request("GET", self._path(vendor_session_id), params=EXPAND if expand else None)
        return self._json(response)

    # --- start and resume ----------------------------------------------------------------------------------------
    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        # Only the opaque reference travels (SPEC 3.3): no name, email or birth date goes into provided_details or
        # metadata. The idempotency key makes a retried start return the same session instead of a second one.
        form = {
            "type": "document",
            "options[document][require_matching_selfie]": "true",
            "options[document][require_live_capture]": "true",
            "options[document][allowed_types][]": ["passport", "id_card", "driving_license"],
            "return_url": return_url,
            "client_reference_id": reference,
        }
        response = self._http().request("POST", SESSIONS, data=form, idempotency_key=idempotency_key)
        session = self._json(response)
        if response.headers.get("idempotent-replayed") == "true":
            # A replay carries the url of the first answer, which may be spent by now: ask for the current one.
            session = self._retrieve(session["id"])
        if session.get("status") != "requires_input":  # a replay for a session the person already finished
            raise VendorError("session_not_resumable", permanent=True)
        if not session.get("url"):
            raise VendorError("unexpected_response")
        return StartResult(vendor_session_id=session["id"], redirect_url=session["url"])

    def resume_url(self, *, vendor_session_id: str, return_url: str) -> str:
        """Stripe's `url` is single-use; retrieving a session in `requires_input` mints a fresh one. The return URL
        was fixed when the session was created (Stripe cannot change it), so `return_url` is not sent again."""
        session = self._retrieve(vendor_session_id)
        if session.get("status") != "requires_input" or not session.get("url"):
            raise VendorError("session_not_resumable", permanent=True)
        return session["url"]

    # --- results -------------------------------------------------------------------------------------------------
    def fetch_result(self, *, vendor_session_id: str) -> Result:
        session = self._retrieve(vendor_session_id, expand=True)
        if session.get("redaction"):
            # Asked to forget (or already forgotten): what remains is placeholders, never facts.
            raise VendorError("session_redacted", permanent=True)
        status = session.get("status")
        if status == "verified":
            return self._approved(session)
        if status == "processing":
            return Result(Outcome.PENDING)
        if status == "canceled":
            return Result(Outcome.EXPIRED)
        if status != "requires_input":
            raise VendorError("unexpected_status")
        error = session.get("last_error")
        code = error.get("code") if isinstance(error, dict) else None
        if not code:
            return Result(Outcome.WAITING_FOR_USER)  # created, or the user is on Stripe's page right now
        if code in EXPIRED_CODES:
            return Result(Outcome.EXPIRED)
        if code in RETRYABLE:
            # Stripe keeps `last_error` until the person submits again: the report's time lets the broker tell this
            # failure from one it already sent the person back for.
            report = session.get("last_verification_report")
            created = report.get("created") if isinstance(report, dict) else None
            decided = datetime.fromtimestamp(created, UTC) if isinstance(created, int) and created > 0 else None
            return Result(Outcome.RETRY, retry_hint=RETRYABLE[code], decided_at=decided)
        if code not in DECLINED_CODES:
            log.warning("unmapped vendor error code, declining", extra={"vendor": self.name, "code": str(code)[:64]})
        # The two failures Stripe names precisely; anything else stays UNKNOWN rather than a guessed FAIL.
        return Result(
            Outcome.DECLINED,
            face_match=Check.FAIL if code == "selfie_face_mismatch" else Check.UNKNOWN,
            liveness=Check.FAIL if code == "selfie_manipulated" else Check.UNKNOWN,
        )

    def _approved(self, session: dict) -> Result:
        report = session.get("last_verification_report")
        report = report if isinstance(report, dict) else {}
        document = report.get("document") if isinstance(report.get("document"), dict) else {}
        selfie = report.get("selfie") if isinstance(report.get("selfie"), dict) else {}
        outputs = session.get("verified_outputs")
        if not isinstance(outputs, dict) or not document:
            raise VendorError("incomplete_result")  # the expansions are missing: a transient answer, ask again
        dob = _date(outputs.get("dob"))
        if dob is None:
            # Not guessed. Usually the key: a restricted key with sensitive-results access, read within 48 h.
            log.warning("vendor returned no date of birth", extra={"vendor": self.name, "code": "dob_unavailable"})
        facts = Facts(
            date_of_birth=dob,
            nationality=None,  # Stripe has no nationality field (vendors.md 3)
            issuing_country=country_alpha2(document.get("issuing_country")),
            document_type=DOCUMENT_TYPES.get(document.get("type"), "other"),
            document_expiry=_date(document.get("expiration_date")),
        )
        return Result(
            Outcome.APPROVED,
            facts=facts,
            document_authentic=_check(document.get("status")),
            liveness=Check.UNKNOWN,
            face_match=_check(selfie.get("status")),
        )

    # --- webhooks ------------------------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`; v1 = HMAC-SHA256(whsec, "<t>.<raw body>").
        Several v1 appear while a secret rolls; v0 is a legacy test-mode scheme and is ignored, as the SDKs do
        (rubydoc Stripe::Webhook::Signature). Tolerance 300 s, the official SDKs' default (vendors.md 3)."""
        verify_timestamped(
            header(headers, "stripe-signature"),
            body=body,
            secrets=secrets_list(vendor_config(self.name).get("webhook_secrets")),
            now=now,
        )
        return self._event(body)

    @staticmethod
    def _event(body: bytes) -> WebhookEvent:
        """Routing facts only. The snapshot in data.object is not read beyond its id: results are re-fetched."""
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
            session_id = event["data"]["object"]["id"]
            created = event.get("created")
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("malformed_body") from None
        if (
            not isinstance(event_id, str)
            or not event_id.startswith("evt_")
            or event_type not in EVENT_TYPES
            or not isinstance(session_id, str)
            or not SESSION_ID.fullmatch(session_id)
        ):
            raise WebhookRejected("malformed_body")
        occurred_at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) and created > 0 else None
        # Stripe's event id is the same on every redelivery of an event and differs between events.
        return WebhookEvent(dedupe_key=event_id, vendor_session_id=session_id, type=event_type, occurred_at=occurred_at)

    # --- deletion ------------------------------------------------------------------------------------------------
    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """Redact Stripe's copy, or report where an earlier redaction stands.

        1. Retrieve first: a redaction already asked for is only polled, never asked again.
        2. `processing` cannot be redacted (nor canceled): REQUESTED, and `deletion_status` asks again once Stripe
           has decided. The session always leaves `processing` by itself, so the wait ends.
        3. Otherwise redact. Each call uses a fresh idempotency key: VendorHttp may then retry the POST safely, and a
           refusal saved under an old key cannot be replayed to us for 24 h after the state allows redaction.
        4. A refusal outside `processing` (a session canceled by someone without redaction, which Stripe does not
           redact) is FAILED: the operator must act in Stripe's dashboard.
        """
        session = self._redaction_state(vendor_session_id)
        if isinstance(session, DeletionState):
            return session
        try:
            response = self._http().request(
                "POST", self._path(vendor_session_id, "/redact"), idempotency_key=f"redact-{uuid.uuid4()}"
            )
        except VendorError as error:
            if error.code != "http_400":
                raise
            after = self._redaction_state(vendor_session_id)
            if isinstance(after, DeletionState):
                return after
            log.warning("vendor refused redaction", extra={"vendor": self.name, "code": str(after.get("status"))})
            return DeletionState.FAILED
        return self._redaction(self._json(response)) or DeletionState.REQUESTED

    def deletion_status(self, *, vendor_session_id: str) -> DeletionState:
        return self.delete(vendor_session_id=vendor_session_id)

    def _redaction_state(self, vendor_session_id: str) -> DeletionState | dict:
        """Where redaction stands, or the session itself when it is not asked for yet and may be asked now."""
        response = self._http().request("GET", self._path(vendor_session_id), ok=(200, 404))
        if response.status_code == 404:
            return DeletionState.DONE  # Stripe holds nothing under this id
        session = self._json(response)
        state = self._redaction(session)
        if state is not None:
            return state
        if session.get("status") == "processing":
            return DeletionState.REQUESTED
        return session

    @staticmethod
    def _redaction(session: dict) -> DeletionState | None:
        redaction = session.get("redaction")
        if not isinstance(redaction, dict):
            return None
        return DeletionState.DONE if redaction.get("status") == "redacted" else DeletionState.IN_PROGRESS
