"""The `dev` vendor: deterministic, offline, for demos and tests.

It behaves like a broker-hosted vendor (Onfido/Veriff shape): start, upload, submit, decide after a configurable
delay, sign webhooks like Stripe (`t=<unix>,v1=<hex HMAC-SHA256 over "t.body">`), and delete its copy on request.
Its "database" is a folder of small JSON files, so the web process and a Celery worker see the same sessions.
It keeps a digest of each upload, never the image: a fake vendor has no reason to hold a face.

The outcome is chosen by `submit(scenario=...)`, which the capture page offers only while this vendor is active,
like a sandbox's "force outcome" switch. Without a choice the verification is approved.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings

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
)
from .signatures import header, hmac_sha256_hex, secrets_list, verify_timestamped

SCENARIOS = {
    "approved": "Approved: adult, passport from Germany",
    "approved_minor": "Approved: 16 years old",
    "approved_restricted": "Approved: nationality on the demo deny-list",
    "approved_no_nationality": "Approved: driving licence without nationality",
    "retry": "Retry: blurry document photo",
    "declined": "Declined",
    "needs_review": "Needs review, then approved",
    "error": "Vendor error",
}


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _facts(scenario: str, today: date) -> Facts:
    expiry = (
        today.replace(year=today.year + 5) if not (today.month == 2 and today.day == 29) else date(today.year + 5, 3, 1)
    )
    if scenario == "approved_minor":
        return Facts(_years_ago(today, 16), "DE", "DE", "id_card", expiry)
    if scenario == "approved_restricted":
        return Facts(date(1979, 8, 3), "IR", "IR", "passport", expiry)
    if scenario == "approved_no_nationality":
        return Facts(date(1988, 11, 21), None, "US", "driving_licence", expiry)
    return Facts(date(1990, 4, 12), "DE", "DE", "passport", expiry)


class DevVendor(VendorAdapter):
    name = "dev"
    capture_mode = CaptureMode.BROKER_HOSTED
    evidence_kinds = (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE)

    def __init__(self, root: Path | None = None, delay_seconds: float | None = None):
        self.root = Path(root or settings.IDBROKER_DEV_VENDOR_DIR)
        self.delay = settings.IDBROKER_DEV_VENDOR_DELAY_SECONDS if delay_seconds is None else delay_seconds

    # --- storage -------------------------------------------------------------------------------------------------
    def _path(self, vendor_session_id: str) -> Path:
        if (
            not vendor_session_id.startswith("dev_")
            or not vendor_session_id[4:].replace("-", "").replace("_", "").isalnum()
        ):
            raise VendorError("unknown_session", permanent=True)
        return self.root / f"{vendor_session_id}.json"

    def _load(self, vendor_session_id: str) -> dict:
        try:
            return json.loads(self._path(vendor_session_id).read_text())
        except FileNotFoundError:
            raise VendorError("unknown_session", permanent=True) from None

    def _save(self, vendor_session_id: str, state: dict) -> None:
        path = self._path(vendor_session_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)  # atomic on POSIX: a concurrent reader sees the old or the new state, never half

    # --- the interface -------------------------------------------------------------------------------------------
    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        self.root.mkdir(parents=True, exist_ok=True)
        # Idempotency: the same key returns the same vendor session, as a real vendor would.
        vendor_session_id = "dev_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        if not self._path(vendor_session_id).exists():
            self._save(
                vendor_session_id,
                {"reference": reference, "uploads": {}, "scenario": "approved", "submitted_at": None, "deleted": False},
            )
        return StartResult(vendor_session_id=vendor_session_id)

    def upload(self, *, vendor_session_id: str, kind: EvidenceKind, data: bytes, mime: str) -> None:
        state = self._load(vendor_session_id)
        if state["submitted_at"] is not None:
            raise VendorError("already_submitted", permanent=True)
        state["uploads"][str(kind)] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mime": mime}
        self._save(vendor_session_id, state)

    def submit(self, *, vendor_session_id: str, scenario: str | None = None) -> None:
        state = self._load(vendor_session_id)
        missing = {str(k) for k in self.evidence_kinds} - set(state["uploads"])
        if missing:
            raise VendorError("evidence_missing", permanent=True)
        if scenario is not None and scenario not in SCENARIOS:
            raise VendorError("unknown_scenario", permanent=True)
        if state["submitted_at"] is None:
            state["submitted_at"] = time.time()
            state["scenario"] = scenario or state["scenario"]
            self._save(vendor_session_id, state)

    def scenarios(self) -> dict[str, str]:
        return dict(SCENARIOS)

    def fetch_result(self, *, vendor_session_id: str) -> Result:
        state = self._load(vendor_session_id)
        if state["deleted"]:
            raise VendorError("session_deleted", permanent=True)
        if state["submitted_at"] is None:
            return Result(Outcome.PENDING)
        elapsed = time.time() - state["submitted_at"]
        if elapsed < self.delay:
            return Result(Outcome.PENDING)
        scenario = state["scenario"]
        today = datetime.now(UTC).date()
        if scenario == "needs_review" and elapsed < self.delay + 5:
            return Result(Outcome.NEEDS_REVIEW)
        if scenario == "retry":
            # A real vendor lets the user try again on the same session: the next submit starts over.
            state.update(submitted_at=None, uploads={}, scenario="approved")
            self._save(vendor_session_id, state)
            return Result(Outcome.RETRY, retry_hint=RetryHint.BLURRY)
        if scenario == "declined":
            return Result(Outcome.DECLINED, document_authentic=Check.FAIL, liveness=Check.PASS, face_match=Check.FAIL)
        if scenario == "error":
            raise VendorError("vendor_error", permanent=True)
        return Result(
            Outcome.APPROVED,
            facts=_facts(scenario, today),
            document_authentic=Check.PASS,
            liveness=Check.PASS,
            face_match=Check.PASS,
        )

    def delete(self, *, vendor_session_id: str) -> DeletionState:
        state = self._load(vendor_session_id)
        state.update(deleted=True, uploads={}, reference="")
        self._save(vendor_session_id, state)
        return DeletionState.DONE

    # --- webhooks (Stripe-shaped signature) ----------------------------------------------------------------------
    @staticmethod
    def sign(body: bytes, *, secret: str, timestamp: int) -> str:
        return f"t={timestamp},v1={hmac_sha256_hex(secret, f'{timestamp}.'.encode() + body)}"

    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        verify_timestamped(
            header(headers, "dev-signature"),
            body=body,
            secrets=secrets_list(settings.IDBROKER_DEV_VENDOR_WEBHOOK_SECRET),  # several during rotation
            now=now,
        )
        try:
            event = json.loads(body)
            return WebhookEvent(
                dedupe_key=str(event["id"]), vendor_session_id=str(event["session"]), type=str(event["type"])
            )
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("malformed_body") from None


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)
