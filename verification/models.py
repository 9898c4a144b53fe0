"""A verification at a vendor, its short-lived evidence, and the minimal facts kept after a decision.

State machine (transitions live in `services.TRANSITIONS`, applied as compare-and-swap updates):

    started ──upload──▶ started ──submit──▶ submitted ──claim──▶ processing ──▶ approved | declined | failed
       ▲                                                             │
       └──────────────────────── retry (photos again) ◀──────────────┤──▶ in_review ──▶ (decision)
    any non-terminal ──deadline──▶ expired
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from attestations.models import VerificationRequest


def new_session_id() -> str:
    return f"vs_{secrets.token_urlsafe(16)}"


def new_subject_id() -> str:
    return secrets.token_urlsafe(24)


class VerificationSession(models.Model):
    class Status(models.TextChoices):
        STARTED = "started"
        SUBMITTED = "submitted"
        PROCESSING = "processing"
        IN_REVIEW = "in_review"
        APPROVED = "approved"
        DECLINED = "declined"
        FAILED = "failed"
        EXPIRED = "expired"

    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    request = models.OneToOneField(VerificationRequest, on_delete=models.CASCADE, related_name="session")
    # A random handle for "the person behind this verification": pairwise `sub` values are keyed hashes of it.
    subject = models.CharField(max_length=64, default=new_subject_id, editable=False)
    vendor = models.CharField(max_length=32)
    vendor_session_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.STARTED)
    attempts = models.PositiveSmallIntegerField(default=1)
    retry_hint = models.CharField(max_length=32, blank=True)
    # Fresh per verification, wrapped under the master key; NULL once shredded (SPEC 3.1).
    wrapped_data_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # When the session counts as abandoned if nobody submitted (SPEC 3.1: 30 minutes by default).
    abandon_at = models.DateTimeField()
    # The vendor's time of the last decision acted on (a retry): an older or equal one fetched again is stale.
    last_vendor_decision_at = models.DateTimeField(null=True, blank=True)
    # A sandbox outcome chosen on the capture page (dev vendor, vendor sandboxes); empty in production.
    sandbox_scenario = models.CharField(max_length=32, blank=True)
    # The vendor's copy (SPEC 3.1): requested / in_progress / scheduled / done / failed / n/a, polled until final.
    vendor_deletion = models.CharField(max_length=16, blank=True, help_text="requested / done / failed / n/a")
    vendor_deletion_next_at = models.DateTimeField(null=True, blank=True)
    vendor_deletion_attempts = models.PositiveSmallIntegerField(default=0)
    vendor_deleted_at = models.DateTimeField(null=True, blank=True)
    # An account may be made from this verification once, by the browser that opened the provider's link (set by
    # compare-and-swap when the first passkey is registered; never cleared, so a deleted account is not re-made).
    account_claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_poll_at"]),
            models.Index(fields=["status", "abandon_at"]),
            models.Index(fields=["vendor_deletion", "vendor_deletion_next_at"]),
        ]

    def __str__(self) -> str:
        return self.id


class Evidence(models.Model):
    """One encrypted image. The row and its file are deleted on destruction; nothing of it outlives the deadline."""

    class Kind(models.TextChoices):
        DOCUMENT_FRONT = "document_front", "ID document (front)"
        DOCUMENT_BACK = "document_back", "ID document (back)"
        SELFIE = "selfie", "Selfie"

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    session = models.ForeignKey(VerificationSession, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    mime = models.CharField(max_length=32)
    size = models.PositiveIntegerField()
    stored_at = models.DateTimeField(default=timezone.now)
    uploaded_at = models.DateTimeField(null=True, blank=True)  # sent to the vendor (a retried task skips it)
    deadline = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "kind"], name="one_evidence_per_kind")]
        indexes = [models.Index(fields=["deadline"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class FactRecord(models.Model):
    """The minimal facts a decision produced (SPEC 3.5), sealed; shredded at `expires_at`."""

    session = models.OneToOneField(VerificationSession, on_delete=models.CASCADE, related_name="facts")
    subject = models.CharField(max_length=64, db_index=True)
    sealed = models.BinaryField(null=True)
    wrapped_key = models.BinaryField(null=True)
    verified_month = models.CharField(max_length=7)  # "2026-11": the coarse `assurance.verified`
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    destroyed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"facts for {self.session_id}"


class VendorEvent(models.Model):
    """Dedupe ledger and work item for inbound vendor webhooks: routing facts only (the vendor's ids and event
    name), never the payload. A task processes it by id: resolve the session, then re-fetch the result."""

    vendor = models.CharField(max_length=32)
    dedupe_key = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)
    event_type = models.CharField(max_length=80, blank=True)
    vendor_session_id = models.CharField(max_length=128, blank=True)
    resource = models.CharField(max_length=128, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vendor", "dedupe_key"], name="vendor_event_once")]

    def __str__(self) -> str:
        return f"{self.vendor} event"


class Handoff(models.Model):
    """A one-time link that continues a verification on a phone (SPEC 2.2 step 3): hashed, single use, minutes.

    The browser that opens it may only take photos for this verification. `code` is not a secret: both devices show
    it (with the provider's name) so that a person who did not start the hand-off can tell.
    """

    session = models.ForeignKey(VerificationSession, on_delete=models.CASCADE, related_name="handoffs")
    token_hash = models.CharField(max_length=64, unique=True)
    code = models.CharField(max_length=7, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"handoff for {self.session_id}"
