"""The vendor adapter interface (SPEC 5) and the registry of adapters by name.

Adapters never touch the ORM: they take and return the small frozen dataclasses below. Two capture modes exist
because real vendors differ (vendors.md): broker-hosted (we upload the images) and vendor-hosted (the user is sent
to the vendor's page; we never see an image).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from importlib import import_module
from typing import ClassVar


class CaptureMode(enum.StrEnum):
    BROKER_HOSTED = "broker_hosted"
    VENDOR_HOSTED = "vendor_hosted"


class Outcome(enum.StrEnum):
    PENDING = "pending"  # the vendor has not decided yet
    APPROVED = "approved"
    DECLINED = "declined"
    NEEDS_REVIEW = "needs_review"
    RETRY = "retry"  # the user should capture again (blurry photo, glare, ...)
    EXPIRED = "expired"
    ERROR = "error"


class Check(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


class EvidenceKind(enum.StrEnum):
    DOCUMENT_FRONT = "document_front"
    DOCUMENT_BACK = "document_back"
    SELFIE = "selfie"


class RetryHint(enum.StrEnum):
    """What an honest user can fix. Never a fraud signal (vendors.md pain point 8)."""

    BLURRY = "blurry"
    GLARE = "glare"
    DOCUMENT_NOT_VISIBLE = "document_not_visible"
    FACE_NOT_VISIBLE = "face_not_visible"
    OTHER = "other"


@dataclass(frozen=True)
class StartResult:
    vendor_session_id: str
    redirect_url: str | None = None  # vendor-hosted capture only
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Facts:
    date_of_birth: date | None
    nationality: str | None  # ISO 3166-1 alpha-2, or None when the vendor does not say
    issuing_country: str | None  # ISO 3166-1 alpha-2
    document_type: str  # passport | id_card | driving_licence | residence_permit | other
    document_expiry: date | None


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    facts: Facts | None = None
    document_authentic: Check = Check.UNKNOWN
    liveness: Check = Check.UNKNOWN
    face_match: Check = Check.UNKNOWN
    retry_hint: RetryHint | None = None


@dataclass(frozen=True)
class WebhookEvent:
    dedupe_key: str
    vendor_session_id: str
    type: str
    occurred_at: datetime | None = None


class DeletionState(enum.StrEnum):
    REQUESTED = "requested"
    DONE = "done"
    NOT_SUPPORTED = "n/a"


class VendorError(Exception):
    """A vendor call failed. `permanent` errors end the session; others are retried with backoff."""

    def __init__(self, code: str, *, permanent: bool = False):
        super().__init__(code)
        self.code = code
        self.permanent = permanent


class WebhookRejected(Exception):
    """The webhook is not authentic (bad signature, stale timestamp) or not parseable. `code` says which."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NotSupported(VendorError):
    def __init__(self, what: str):
        super().__init__(f"not_supported:{what}", permanent=True)


class UnknownVendor(LookupError):
    pass


class VendorAdapter:
    name: ClassVar[str]
    capture_mode: ClassVar[CaptureMode]
    #: Vendor-hosted adapters ask for these; broker-hosted ones list what the capture pages collect.
    evidence_kinds: ClassVar[tuple[EvidenceKind, ...]] = (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE)

    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        """Open a verification at the vendor. `reference` is opaque and non-personal."""
        raise NotImplementedError

    def upload(self, *, vendor_session_id: str, kind: EvidenceKind, data: bytes, mime: str) -> None:
        raise NotSupported("upload")

    def submit(self, *, vendor_session_id: str) -> None:
        raise NotSupported("submit")

    def fetch_result(self, *, vendor_session_id: str) -> Result:
        raise NotImplementedError

    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Authenticate on the raw body, then parse. Never trust the body's result: callers re-fetch."""
        raise NotImplementedError

    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """Ask the vendor to delete or redact its copy."""
        return DeletionState.NOT_SUPPORTED

    def simulate(self, *, vendor_session_id: str, scenario: str) -> None:
        """Sandbox-only: choose the outcome of a session (Persona simulate-actions, Onfido `consider`, ...)."""
        raise NotSupported("simulate")

    @classmethod
    def scenarios(cls) -> dict[str, str]:
        """Outcomes `simulate` accepts, name → label; empty when the adapter has no sandbox control."""
        return {}


# Adapters by name, as dotted paths imported on first use (a broken optional adapter cannot stop start-up).
REGISTRY: dict[str, str] = {
    "dev": "verification.vendors.dev.DevVendor",
}


def get_vendor(name: str) -> VendorAdapter:
    try:
        path = REGISTRY[name]
    except KeyError:
        raise UnknownVendor(name) from None
    module_name, _, class_name = path.rpartition(".")
    return getattr(import_module(module_name), class_name)()
