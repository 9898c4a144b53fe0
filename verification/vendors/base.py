"""The vendor adapter interface (SPEC 5) and the registry of adapters by name.

Adapters never touch the ORM: they take and return the small frozen dataclasses below. Two capture modes exist
because real vendors differ (vendors.md): broker-hosted (we upload the images) and vendor-hosted (the user is sent
to the vendor's page; we never see an image).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import import_module
from typing import ClassVar


class CaptureMode(enum.StrEnum):
    BROKER_HOSTED = "broker_hosted"
    VENDOR_HOSTED = "vendor_hosted"


class Outcome(enum.StrEnum):
    PENDING = "pending"  # the vendor has not decided yet
    WAITING_FOR_USER = "waiting_for_user"  # vendor-hosted: the user has not finished the vendor's page
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
    #: The vendor's time of this decision, where it gives one (Veriff `decisionTime`): lets the broker tell a new
    #: decision from the previous attempt's, which some vendors keep showing until they decide again.
    decided_at: datetime | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """What an authenticated webhook says, reduced to routing facts. Never a result: callers re-fetch.

    `vendor_session_id` names our session at the vendor when the event carries it; otherwise it is empty and
    `resource` names the vendor object the event is about (Onfido's thin check/report events), which
    `VendorAdapter.session_for` resolves with a fetch, off the request path.
    """

    dedupe_key: str
    vendor_session_id: str
    type: str
    occurred_at: datetime | None = None
    resource: str = ""


class DeletionState(enum.StrEnum):
    """Where the vendor's copy stands. Vendors delete asynchronously (vendors.md): Stripe redacts within days,
    Persona redacts children async, Onfido archives then hard-deletes after a delay, Veriff within 12 h."""

    REQUESTED = "requested"  # asked; the vendor confirms later (poll `deletion_status`)
    IN_PROGRESS = "in_progress"  # the vendor says it is redacting
    SCHEDULED = "scheduled"  # the vendor will hard-delete at a known time
    DONE = "done"
    FAILED = "failed"
    NOT_SUPPORTED = "n/a"


PENDING_DELETION = (DeletionState.REQUESTED, DeletionState.IN_PROGRESS, DeletionState.SCHEDULED)


class VendorError(Exception):
    """A vendor call failed. `permanent` errors end the session; others are retried with backoff.

    `retry_after` (seconds) is the vendor's own hint (429 `Retry-After`, `RateLimit-Reset`, a deletion quota)."""

    def __init__(self, code: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(code)
        self.code = code
        self.permanent = permanent
        self.retry_after = retry_after


class WebhookRejected(Exception):
    """The webhook is not authentic (bad signature, stale timestamp) or not parseable. `code` says which."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NotSupported(VendorError):
    def __init__(self, what: str):
        super().__init__(f"not_supported:{what}", permanent=True)


class UnknownVendor(LookupError):
    """No adapter by that name, or one that is not configured (no credentials in the environment)."""


class VendorAdapter:
    name: ClassVar[str]
    capture_mode: ClassVar[CaptureMode]
    #: Vendor-hosted adapters ask for these; broker-hosted ones list what the capture pages collect.
    evidence_kinds: ClassVar[tuple[EvidenceKind, ...]] = (EvidenceKind.DOCUMENT_FRONT, EvidenceKind.SELFIE)
    #: For a vendor that accepts a deletion but never reports completion (Veriff: data gone within 12 h), how long
    #: after the request its copy is gone: the broker polls `deletion_status` no earlier, so DONE is never early.
    deletion_completes_within: ClassVar[timedelta | None] = None

    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        """Open a verification at the vendor. `reference` is opaque and non-personal. Vendor-hosted adapters
        return the `redirect_url` the user is sent to; `return_url` is where the vendor sends them back."""
        raise NotImplementedError

    def resume_url(self, *, vendor_session_id: str, return_url: str) -> str:
        """Vendor-hosted only: a fresh link to the vendor's page for the same session (after a retry, or when the
        first link was spent)."""
        raise NotSupported("resume_url")

    def upload(self, *, vendor_session_id: str, kind: EvidenceKind, data: bytes, mime: str) -> None:
        raise NotSupported("upload")

    def submit(self, *, vendor_session_id: str, scenario: str | None = None) -> None:
        """Broker-hosted only: all evidence is uploaded, start the checks. Must be safe to call twice (a retried
        task). `scenario` is a sandbox outcome (see `scenarios`), ignored by adapters without one."""
        raise NotSupported("submit")

    def fetch_result(self, *, vendor_session_id: str) -> Result:
        raise NotImplementedError

    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Authenticate on the raw body, then parse. Never trust the body's result: callers re-fetch.
        `headers` have lower-case names."""
        raise NotImplementedError

    def session_for(self, *, event: WebhookEvent) -> str:
        """The vendor session an event is about (may call the vendor when the event only names a resource)."""
        return event.vendor_session_id

    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """Ask the vendor to delete or redact its copy. Must be safe to call again."""
        return DeletionState.NOT_SUPPORTED

    def deletion_status(self, *, vendor_session_id: str) -> DeletionState:
        """Poll an asynchronous deletion requested earlier."""
        return DeletionState.NOT_SUPPORTED

    def scenarios(self) -> dict[str, str]:
        """Sandbox outcomes `submit(scenario=...)` accepts, name → label; empty when there is no sandbox control
        through the API (live keys, or a vendor whose test outcomes are set in its dashboard)."""
        return {}


# Adapters by name, as dotted paths imported on first use (a broken optional adapter cannot stop start-up).
REGISTRY: dict[str, str] = {
    "dev": "verification.vendors.dev.DevVendor",
    "persona": "verification.vendors.persona.PersonaVendor",
    "onfido": "verification.vendors.onfido.OnfidoVendor",
    "stripe_identity": "verification.vendors.stripe_identity.StripeIdentityVendor",
    "veriff": "verification.vendors.veriff.VeriffVendor",
}


def vendor_config(name: str) -> dict:
    """The vendor's settings (settings.IDBROKER_VENDORS), or UnknownVendor when it has no credentials."""
    from django.conf import settings

    config = settings.IDBROKER_VENDORS.get(name)
    if not config:
        raise UnknownVendor(name)
    return config


def get_vendor(name: str) -> VendorAdapter:
    try:
        path = REGISTRY[name]
    except KeyError:
        raise UnknownVendor(name) from None
    module_name, _, class_name = path.rpartition(".")
    return getattr(import_module(module_name), class_name)()
