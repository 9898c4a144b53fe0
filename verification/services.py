"""Verification behaviour: start, capture, submit, decide, destroy.

Every status change is a compare-and-swap (`_transition`): a zero row count means another worker or request got
there first, and the caller treats it as a no-op. Vendor calls happen outside database transactions; tasks are
enqueued with `transaction.on_commit` and carry ids only (SPEC 3.2).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from attestations import services as attestation_services
from attestations.models import VerificationRequest
from attestations.policies import StoredFacts
from audit.services import audit_record
from broker.errors import BrokerError

from . import crypto
from .images import sanitize_image
from .models import Evidence, FactRecord, Handoff, VendorEvent, VerificationSession
from .vendors.base import CaptureMode, EvidenceKind, Outcome, Result, UnknownVendor, VendorError, get_vendor

log = logging.getLogger(__name__)
S = VerificationSession.Status
R = VerificationRequest.Status

ACTIVE = (S.STARTED, S.SUBMITTED, S.PROCESSING, S.IN_REVIEW)
TERMINAL = (S.APPROVED, S.DECLINED, S.FAILED, S.EXPIRED)
# The one table of allowed transitions (STYLE 4).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.SUBMITTED: (S.STARTED,),
    S.PROCESSING: (S.SUBMITTED,),
    S.IN_REVIEW: (S.PROCESSING,),
    S.STARTED: (S.PROCESSING, S.IN_REVIEW),  # a "retry" decision: capture again
    S.APPROVED: (S.PROCESSING, S.IN_REVIEW),
    S.DECLINED: (S.PROCESSING, S.IN_REVIEW),
    S.FAILED: (S.STARTED, S.SUBMITTED, S.PROCESSING, S.IN_REVIEW),
    S.EXPIRED: ACTIVE,
}


class SessionError(BrokerError):
    code = "session_state"
    status = 409
    title = "This step is not available now"


def _transition(session_id: str, to: str, **updates) -> bool:
    return bool(
        VerificationSession.objects.filter(pk=session_id, status__in=TRANSITIONS[to]).update(status=to, **updates)
    )


def evidence_path(evidence: Evidence) -> Path:
    return settings.IDBROKER_EVIDENCE_DIR / evidence.session_id / f"{evidence.id}.bin"


def _aad(evidence: Evidence) -> bytes:
    return f"{evidence.session_id}/{evidence.id}/{evidence.kind}".encode()


# --- Start and capture -----------------------------------------------------------------------------------------


# What an adapter's parsing raises on JSON of an unexpected shape (a list where an object was documented, ...).
UNEXPECTED_SHAPE = (TypeError, AttributeError, KeyError, ValueError, OverflowError)


class NoVendorAvailable(BrokerError):
    code = "vendor_unavailable"
    status = 503
    title = "Verification is unavailable right now"


def vendor_candidates(request: VerificationRequest) -> list[str]:
    """The provider's vendor (or the broker default), then the configured fallbacks, each once (SPEC 5)."""
    primary = request.provider.vendor or settings.IDBROKER_VENDOR
    names = [primary, *settings.IDBROKER_VENDOR_FALLBACKS]
    return [n for i, n in enumerate(names) if n and n not in names[:i] and n in settings.IDBROKER_VENDORS]


def session_start(*, request: VerificationRequest, now: datetime) -> VerificationSession:
    """The user consented: open a verification at the first vendor that is up.

    Vendors whose circuit breaker is open are passed over; a transient failure while starting moves on to the next
    fallback (the breaker counts it). The session row exists first, so a double click finds it instead of opening a
    second vendor session. For vendor-hosted capture the returned session carries `redirect_url` (not stored: it is
    a bearer link to the vendor's page)."""
    from .vendors import breaker

    if request.status != R.PENDING or request.expires_at <= now:
        raise SessionError("This request is no longer open.")
    existing = VerificationSession.objects.filter(request=request).first()
    if existing and existing.vendor_session_id:
        return existing
    candidates = vendor_candidates(request)
    if not candidates:
        raise NoVendorAvailable("No identity vendor is configured.")
    session = existing
    if session is None:
        try:
            session = VerificationSession.objects.create(
                request=request, vendor=candidates[0], created_at=now, abandon_at=now + settings.IDBROKER_ABANDONED_TTL
            )
        except IntegrityError:  # a double click raced us to it
            return VerificationSession.objects.get(request=request)
    up = [n for n in candidates if breaker.available(n)] or candidates[:1]  # wall-clock, like the breaker
    for name in up:
        vendor = get_vendor(name)
        try:
            # The vendor sees only our random session id: no name, no provider, nothing personal (SPEC 5).
            started = vendor.start(
                reference=session.id,
                return_url=f"{settings.PUBLIC_URL}/verify/return",
                idempotency_key=f"start-{session.id}",
            )
        except VendorError as exc:
            log.warning("vendor start failed", extra={"vendor": name, "code": exc.code, "session": session.id})
            continue
        VerificationSession.objects.filter(pk=session.pk).update(
            vendor=name, vendor_session_id=started.vendor_session_id
        )
        session.vendor, session.vendor_session_id = name, started.vendor_session_id
        session.redirect_url = started.redirect_url
        if name != candidates[0]:
            audit_record(event="vendor.failover", session=session.id, vendor=name, primary=candidates[0], now=now)
        return session
    raise NoVendorAvailable("Our identity checking partners are not reachable. Please try again in a few minutes.")


def vendor_is_hosted(session: VerificationSession) -> bool:
    return get_vendor(session.vendor).capture_mode == CaptureMode.VENDOR_HOSTED


def hosted_url(*, session: VerificationSession) -> str:
    """A fresh link to the vendor's page for this session (vendor-hosted capture: first visit, return, retry)."""
    return get_vendor(session.vendor).resume_url(
        vendor_session_id=session.vendor_session_id, return_url=f"{settings.PUBLIC_URL}/verify/return"
    )


def session_returned(*, session: VerificationSession, now: datetime) -> bool:
    """Vendor-hosted capture: the user is back from the vendor's page (or the vendor told us it has the evidence).
    The session moves on to submitted and a result is fetched; the vendor, not the user, says what happened."""
    from . import tasks

    if session.status != S.STARTED or not vendor_is_hosted(session):
        return False
    with transaction.atomic():
        if not _transition(session.pk, S.SUBMITTED, submitted_at=now, retry_hint=""):
            return False
        attestation_services.request_transition(request_id=session.request_id, to=R.PROCESSING, now=now)
        transaction.on_commit(lambda: tasks.submit_session.delay(session.pk))
    return True


def required_kinds(session: VerificationSession) -> tuple[EvidenceKind, ...]:
    vendor = get_vendor(session.vendor)
    return vendor.evidence_kinds if vendor.capture_mode == CaptureMode.BROKER_HOSTED else ()


def evidence_store(
    *, session: VerificationSession, kind: EvidenceKind, fileobj, declared_type: str, now: datetime
) -> Evidence:
    """Validate, strip, encrypt and store one image. A retake replaces the previous image of that kind."""
    if session.status != S.STARTED:
        raise SessionError("Photos can no longer be changed for this verification.")
    if kind not in required_kinds(session):
        raise SessionError("This photo is not needed.")
    clean = sanitize_image(fileobj, declared_type=declared_type)
    with transaction.atomic():
        locked = VerificationSession.objects.select_for_update().get(pk=session.pk)
        if locked.status != S.STARTED:
            raise SessionError("Photos can no longer be changed for this verification.")
        if not locked.wrapped_data_key:
            _, wrapped = crypto.new_data_key()  # fresh per verification (and per attempt after a retry)
            locked.wrapped_data_key = wrapped
            locked.save(update_fields=["wrapped_data_key"])
        for old in Evidence.objects.filter(session=locked, kind=kind):
            _destroy_one(old)
        evidence = Evidence(
            id=f"ev_{secrets.token_urlsafe(12)}",
            session=locked,
            kind=kind,
            mime="image/jpeg",
            size=len(clean),
            stored_at=now,
            deadline=now + settings.IDBROKER_EVIDENCE_TTL,
        )
        key = crypto.unwrap_data_key(locked.wrapped_data_key)
        path = evidence_path(evidence)
        crypto.encrypt_to_file(
            key, path, (clean[i : i + crypto.CHUNK] for i in range(0, len(clean), crypto.CHUNK)), _aad(evidence)
        )
        try:
            evidence.save(force_insert=True)
        except Exception:
            crypto.shred_file(path)
            raise
        audit_record(event="evidence.stored", session=locked.id, evidence=evidence.id, now=now)
    return evidence


def evidence_read(evidence: Evidence) -> bytes:
    key = crypto.unwrap_data_key(
        VerificationSession.objects.values_list("wrapped_data_key", flat=True).get(pk=evidence.session_id)
    )
    return crypto.decrypt_file(key, evidence_path(evidence), _aad(evidence))


def _destroy_one(evidence: Evidence) -> None:
    crypto.shred_file(evidence_path(evidence))
    Evidence.objects.filter(pk=evidence.pk).delete()


def evidence_destroy(*, session_id: str, now: datetime, reason: str) -> int:
    """Crypto-shred a session's evidence: files, rows and the data key. Idempotent and safe to race."""
    with transaction.atomic():
        rows = list(Evidence.objects.select_for_update().filter(session_id=session_id))
        for evidence in rows:
            _destroy_one(evidence)
        shredded = VerificationSession.objects.filter(pk=session_id, wrapped_data_key__isnull=False).update(
            wrapped_data_key=None
        )
        if rows or shredded:
            audit_record(event="evidence.destroyed", session=session_id, reason=reason, count=str(len(rows)), now=now)
    # rmdir only succeeds once empty; OSError: a concurrent sweeper removed it, or a new upload landed meanwhile.
    with contextlib.suppress(OSError):
        (settings.IDBROKER_EVIDENCE_DIR / session_id).rmdir()
    return len(rows)


def session_submit(*, session: VerificationSession, scenario: str | None = None, now: datetime) -> None:
    """All photos are in: hand the verification to the vendor, asynchronously."""
    from . import tasks

    missing = set(required_kinds(session)) - set(
        Evidence.objects.filter(session=session).values_list("kind", flat=True)
    )
    if missing:
        raise SessionError("Some photos are still missing.")
    vendor = get_vendor(session.vendor)
    # A sandbox outcome (dev vendor, vendor sandboxes) travels with the session to the submit task.
    scenario = scenario if scenario and scenario in vendor.scenarios() else ""
    with transaction.atomic():
        if not _transition(session.pk, S.SUBMITTED, submitted_at=now, retry_hint="", sandbox_scenario=scenario):
            raise SessionError("This verification was already submitted.")
        attestation_services.request_transition(request_id=session.request_id, to=R.PROCESSING, now=now)
        # A phone's capability ends with the photos: a retry needs a new code shown on the computer.
        Handoff.objects.filter(session=session).delete()
        transaction.on_commit(lambda: tasks.submit_session.delay(session.pk))


# --- Cross-device capture ---------------------------------------------------------------------------------------
# The phone is a camera, nothing more. The browser that opens a phone link gets a capability to add photos to this
# one verification while it waits for them: never the journey itself (result, way back to the provider, deletion
# receipt) and never an account. Whoever phished or replayed a QR code therefore gains nothing but the chance to
# upload photos, which the person at the computer sees happen.

HANDOFF_TTL = timedelta(minutes=10)  # to open the link
PHONE_CAPTURE_TTL = timedelta(minutes=30)  # to take the photos once it is open (the abandoned-session deadline)
# No 0/O, 1/I/L: read aloud or compared at a glance without mistakes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class HandoffInvalid(BrokerError):
    code = "handoff_invalid"
    status = 410
    title = "This phone link cannot be used"


@dataclass(frozen=True)
class HandoffLink:
    url: str
    code: str


def _handoff_code() -> str:
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
    return f"{chars[:3]}-{chars[3:]}"


def handoff_create(*, session: VerificationSession, now: datetime) -> HandoffLink:
    """A fresh single-use link for the phone, and the code both devices show; earlier unopened ones stop working."""
    if session.status != S.STARTED:
        raise SessionError("Photos can no longer be taken for this verification.")
    token = secrets.token_urlsafe(32)
    code = _handoff_code()
    with transaction.atomic():
        Handoff.objects.filter(session=session, used_at__isnull=True).delete()
        Handoff.objects.create(
            session=session,
            token_hash=crypto.keyed_hash("handoff", token),
            code=code,
            created_at=now,
            expires_at=now + HANDOFF_TTL,
        )
    return HandoffLink(url=f"{settings.PUBLIC_URL}/verify/phone/{token}", code=code)


def handoff_use(*, token: str, now: datetime) -> Handoff:
    """The phone opened the link: spend it (compare-and-swap). The caller keeps the returned handoff's id in the
    phone's browser session as its capture-only capability."""
    handoff = Handoff.objects.select_related("session").filter(token_hash=crypto.keyed_hash("handoff", token)).first()
    if handoff is None or handoff.expires_at <= now or handoff.session.status != S.STARTED:
        raise HandoffInvalid()
    if not Handoff.objects.filter(pk=handoff.pk, used_at__isnull=True).update(used_at=now):
        raise HandoffInvalid()
    # One phone at a time, the one the computer names (handoff_joined): a phone that joined earlier (perhaps whoever
    # phished the first QR code, which is why the person showed a new one) loses its grant.
    Handoff.objects.filter(session_id=handoff.session_id, used_at__isnull=False).exclude(pk=handoff.pk).delete()
    return handoff


def handoff_end(*, session: VerificationSession) -> None:
    """The computer took a photo itself ("take the photos on this computer instead"): every phone's grant ends, so
    a phone the person did not recognise cannot replace the photos before they are submitted."""
    Handoff.objects.filter(session=session).delete()


def handoff_capture_session(*, handoff_id: int, now: datetime) -> VerificationSession | None:
    """The verification a phone may still take photos for: its handoff was opened, is not past the capture
    window, and the verification still waits for photos. Submitting ends every phone's capability."""
    handoff = Handoff.objects.select_related("session__request__provider").filter(pk=handoff_id).first()
    if handoff is None or handoff.used_at is None or handoff.used_at + PHONE_CAPTURE_TTL <= now:
        return None
    return handoff.session if handoff.session.status == S.STARTED else None


def handoff_joined(*, session: VerificationSession) -> Handoff | None:
    """The phone that joined this verification, if one did (for the computer to show its code)."""
    return Handoff.objects.filter(session=session, used_at__isnull=False).order_by("-used_at").first()


# --- Vendor processing (run by tasks) --------------------------------------------------------------------------


def session_process(*, session_id: str, now: datetime) -> str:
    """Claim a submitted session, upload its evidence and submit it at the vendor, then look for a result."""
    if not _transition(session_id, S.PROCESSING, next_poll_at=now):
        return "not_claimed"
    session = VerificationSession.objects.get(pk=session_id)
    vendor = get_vendor(session.vendor)
    try:
        if vendor.capture_mode == CaptureMode.BROKER_HOSTED:
            evidence = list(Evidence.objects.filter(session=session).order_by("kind"))
            if set(required_kinds(session)) - {e.kind for e in evidence}:
                # The vendor was down past the evidence deadline and the sweeper destroyed the photos.
                return _fail(session, now=now, code="evidence_expired")
            for item in evidence:
                if item.uploaded_at:  # a retried task: never send a photo twice (no vendor dedupes uploads)
                    continue
                try:
                    vendor.upload(
                        vendor_session_id=session.vendor_session_id,
                        kind=EvidenceKind(item.kind),
                        data=evidence_read(item),
                        mime=item.mime,
                    )
                except VendorError as exc:
                    if exc.code != "already_submitted":
                        raise
                    break  # an earlier attempt of this task got as far as submitting: go on to the result
                Evidence.objects.filter(pk=item.pk).update(uploaded_at=now)
            vendor.submit(vendor_session_id=session.vendor_session_id, scenario=session.sandbox_scenario or None)
    except VendorError as exc:
        if exc.permanent:
            return _fail(session, now=now, code=exc.code)
        # Let the task retry: put the claim back so the retry can take it again.
        VerificationSession.objects.filter(pk=session_id, status=S.PROCESSING).update(status=S.SUBMITTED)
        raise
    audit_record(event="vendor.submitted", session=session.id, now=now)
    return result_fetch(session_id=session_id, now=now)


def result_fetch(*, session_id: str, now: datetime) -> str:
    session = VerificationSession.objects.filter(pk=session_id, status__in=(S.PROCESSING, S.IN_REVIEW)).first()
    if session is None:
        return "not_active"
    try:
        result = get_vendor(session.vendor).fetch_result(vendor_session_id=session.vendor_session_id)
    except UNEXPECTED_SHAPE:
        # JSON of a shape the adapter did not expect: a vendor bug or an API change. Retried like an outage (the
        # poller keeps asking), logged with a code only: the body may hold personal data.
        log.warning("vendor answer not understood", extra={"vendor": session.vendor, "session": session.pk})
        raise VendorError("malformed_response") from None
    except VendorError as exc:
        if exc.permanent:
            return _fail(session, now=now, code=exc.code)
        raise
    return result_apply(session=session, result=result, now=now)


def _next_poll(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.IDBROKER_RESULT_POLL_SECONDS)


def result_apply(*, session: VerificationSession, result: Result, now: datetime) -> str:
    outcome = result.outcome
    if (
        result.decided_at
        and session.last_vendor_decision_at
        and result.decided_at <= session.last_vendor_decision_at
        and outcome != Outcome.PENDING
    ):
        outcome = Outcome.PENDING  # the decision we already acted on (Veriff shows it until it decides the new attempt)
    if outcome == Outcome.WAITING_FOR_USER:
        if vendor_is_hosted(session):
            return _back_to_user(session, now=now)
        outcome = Outcome.PENDING
    if outcome == Outcome.PENDING:
        VerificationSession.objects.filter(pk=session.pk, status__in=(S.PROCESSING, S.IN_REVIEW)).update(
            next_poll_at=_next_poll(now)
        )
        return "pending"
    if outcome == Outcome.NEEDS_REVIEW:
        # The vendor holds what it needs for the review; our copy goes now.
        if _transition(session.pk, S.IN_REVIEW, next_poll_at=_next_poll(now)):
            evidence_destroy(session_id=session.pk, now=now, reason="decided")
        return "in_review"
    if outcome == Outcome.RETRY:
        return _retry(session, result, now=now)
    if outcome == Outcome.APPROVED and result.facts is not None:
        return _approve(session, result, now=now)
    if outcome == Outcome.EXPIRED:
        return session_expire(session_id=session.pk, now=now, reason="vendor_expired")
    if outcome in (Outcome.DECLINED, Outcome.APPROVED):  # approved without facts cannot answer anything
        return _finish(session, S.DECLINED, R.DECLINED, now=now)
    return _fail(session, now=now, code="vendor_error")


def _back_to_user(session: VerificationSession, *, now: datetime) -> str:
    """Vendor-hosted: the vendor is waiting for the user (they came back, or a "started" event arrived, before
    finishing its page). The journey returns to the vendor link, and the abandonment clock runs again."""
    with transaction.atomic():
        if not VerificationSession.objects.filter(pk=session.pk, status__in=TRANSITIONS[S.STARTED]).update(
            status=S.STARTED, submitted_at=None, next_poll_at=None, abandon_at=now + settings.IDBROKER_ABANDONED_TTL
        ):
            return "not_active"
        attestation_services.request_transition(
            request_id=session.request_id, to=R.PENDING, now=now, allowed_from=[R.PROCESSING]
        )
    return "waiting_for_user"


def _retry(session: VerificationSession, result: Result, *, now: datetime) -> str:
    if session.attempts >= settings.IDBROKER_MAX_ATTEMPTS:
        return _finish(session, S.DECLINED, R.DECLINED, now=now)
    hint = str(result.retry_hint or "other")
    with transaction.atomic():
        if not VerificationSession.objects.filter(pk=session.pk, status__in=TRANSITIONS[S.STARTED]).update(
            status=S.STARTED,
            retry_hint=hint,
            attempts=session.attempts + 1,
            last_vendor_decision_at=result.decided_at,
            submitted_at=None,
            next_poll_at=None,
            abandon_at=now + settings.IDBROKER_ABANDONED_TTL,
        ):
            return "not_active"
        attestation_services.request_transition(
            request_id=session.request_id, to=R.PENDING, now=now, allowed_from=[R.PROCESSING]
        )
    evidence_destroy(session_id=session.pk, now=now, reason="decided")
    audit_record(event="vendor.decided", session=session.pk, outcome="retry", now=now)
    return "retry"


def _approve(session: VerificationSession, result: Result, *, now: datetime) -> str:
    vendor_facts = result.facts
    facts = StoredFacts(
        date_of_birth=vendor_facts.date_of_birth,
        nationality=vendor_facts.nationality,
        issuing_country=vendor_facts.issuing_country,
        document_type=vendor_facts.document_type,
        document_expiry=vendor_facts.document_expiry,
        document_authentic=result.document_authentic,
        liveness=result.liveness,
        face_match=result.face_match,
    )
    # SPEC 3.5: keep facts for the validity period, never past the document's expiry.
    expires = now + settings.IDBROKER_FACTS_VALIDITY
    if facts.document_expiry is not None:
        expires = min(
            expires, datetime.combine(facts.document_expiry + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
        )
    month = now.strftime("%Y-%m")
    with transaction.atomic():
        if not _transition(session.pk, S.APPROVED, decided_at=now, next_poll_at=None):
            return "not_active"
        sealed, wrapped = crypto.seal(
            json.dumps(facts.to_json()).encode(), purpose="facts", aad=session.subject.encode()
        )
        FactRecord.objects.create(
            session=session,
            subject=session.subject,
            sealed=sealed,
            wrapped_key=wrapped,
            verified_month=month,
            created_at=now,
            expires_at=expires,
        )
        audit_record(event="vendor.decided", session=session.pk, outcome="approved", now=now)
        audit_record(event="facts.stored", session=session.pk, now=now)
        attestation_services.request_complete(
            request=session.request, subject=session.subject, facts=facts, verified_month=month, now=now
        )
    _after_decision(session, now=now)
    return "approved"


def _finish(session: VerificationSession, status: str, request_status: str, *, now: datetime) -> str:
    with transaction.atomic():
        if not _transition(session.pk, status, decided_at=now, next_poll_at=None):
            return "not_active"
        attestation_services.request_transition(request_id=session.request_id, to=request_status, now=now)
        audit_record(event="vendor.decided", session=session.pk, outcome=status, now=now)
    _after_decision(session, now=now)
    return status


def _fail(session: VerificationSession, *, now: datetime, code: str) -> str:
    log.warning("vendor failed permanently", extra={"session": session.pk, "vendor": session.vendor, "code": code})
    return _finish(session, S.FAILED, R.FAILED, now=now)


def _after_decision(session: VerificationSession, *, now: datetime, reason: str = "decided") -> None:
    from . import tasks

    evidence_destroy(session_id=session.pk, now=now, reason=reason)
    if session.vendor_session_id:
        transaction.on_commit(lambda: tasks.delete_vendor_copy.delay(session.pk))


DELETION_POLL = timedelta(minutes=30)
DELETION_MAX_ATTEMPTS = 20


def vendor_copy_delete(*, session_id: str, now: datetime) -> str:
    """Ask the vendor to delete its copy, or poll a deletion asked for earlier; record where it stands (SPEC 3.1).

    Vendors finish asynchronously (Stripe within days, Persona's children later, Onfido after its deletion delay,
    Veriff within 12 h and only 10 per day), so a pending state is polled by `vendor_deletions_due` as a database
    row with a next time, not as a Celery countdown. Transient failures (a deletion quota's 429) wait as long as
    the vendor asks; after DELETION_MAX_ATTEMPTS the state is `failed`, visible to operators and auditors."""
    from .vendors.base import PENDING_DELETION, DeletionState

    session = VerificationSession.objects.get(pk=session_id)
    if not session.vendor_session_id or session.vendor_deletion in (DeletionState.DONE, DeletionState.NOT_SUPPORTED):
        return session.vendor_deletion or "n/a"
    vendor = get_vendor(session.vendor)
    attempts = session.vendor_deletion_attempts + 1  # consecutive failures: reset by every answer
    try:
        if session.vendor_deletion in PENDING_DELETION:
            state = vendor.deletion_status(vendor_session_id=session.vendor_session_id)
        else:
            state = vendor.delete(vendor_session_id=session.vendor_session_id)
    except VendorError as exc:
        failed = exc.permanent or attempts >= DELETION_MAX_ATTEMPTS
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else DELETION_POLL
        VerificationSession.objects.filter(pk=session_id).update(
            vendor_deletion="failed" if failed else session.vendor_deletion,
            vendor_deletion_attempts=attempts,
            vendor_deletion_next_at=None if failed else now + wait,
        )
        log.warning("vendor deletion failed", extra={"vendor": session.vendor, "code": exc.code, "session": session_id})
        if failed:
            audit_record(event="vendor.deletion_failed", session=session_id, code=exc.code, now=now)
        return "failed" if failed else "retrying"
    pending = state in PENDING_DELETION
    poll = DELETION_POLL
    if state == DeletionState.SCHEDULED and vendor.deletion_completes_within:
        poll = max(poll, vendor.deletion_completes_within)  # the vendor never confirms: wait out its promise
    # Compare-and-swap on the state we read: the first task, the poller and a vendor event may race; the loser's
    # older answer must not overwrite a newer one (nor audit twice).
    if not VerificationSession.objects.filter(pk=session_id, vendor_deletion=session.vendor_deletion).update(
        vendor_deletion=str(state),
        vendor_deletion_attempts=0,
        vendor_deletion_next_at=now + poll if pending else None,
        vendor_deleted_at=now if state == DeletionState.DONE else None,
    ):
        return "raced"
    if not session.vendor_deletion:
        audit_record(event="vendor.deletion_requested", session=session_id, state=str(state), now=now)
    if state == DeletionState.DONE:
        audit_record(event="vendor.deleted", session=session_id, now=now)
    elif state == DeletionState.FAILED:
        audit_record(event="vendor.deletion_failed", session=session_id, code="vendor_refused", now=now)
    return str(state)


def vendor_deletions_due(*, now: datetime, batch: int = 100) -> list[str]:
    """Sessions whose vendor deletion should be asked again or polled: each claimed by moving its next time."""
    due = []
    rows = VerificationSession.objects.filter(vendor_deletion_next_at__lte=now).values_list(
        "pk", "vendor_deletion_next_at"
    )
    for session_id, next_at in rows[:batch]:
        if VerificationSession.objects.filter(pk=session_id, vendor_deletion_next_at=next_at).update(
            vendor_deletion_next_at=now + DELETION_POLL
        ):
            due.append(session_id)
    return due


def session_expire(*, session_id: str, now: datetime, reason: str) -> str:
    session = VerificationSession.objects.filter(pk=session_id).first()
    if session is None:
        return "not_found"
    with transaction.atomic():
        if not _transition(session_id, S.EXPIRED, decided_at=now, next_poll_at=None):
            return "not_active"
        attestation_services.request_transition(request_id=session.request_id, to=R.EXPIRED, now=now)
        audit_record(event="request.expired", session=session_id, request=session.request_id, reason=reason, now=now)
    _after_decision(session, now=now, reason=reason)
    return "expired"


def request_decline(*, request: VerificationRequest, now: datetime) -> None:
    """The user said no on the consent page: the provider gets `access_denied`, we keep nothing."""
    if attestation_services.request_transition(request_id=request.pk, to=R.CANCELED, now=now, allowed_from=[R.PENDING]):
        audit_record(event="request.canceled", request=request.pk, now=now)
    session = VerificationSession.objects.filter(request=request).first()
    if session is not None:
        session_expire(session_id=session.pk, now=now, reason="user_declined")


# --- Facts -----------------------------------------------------------------------------------------------------


def facts_read(record: FactRecord) -> StoredFacts:
    plain = crypto.unseal(record.sealed, record.wrapped_key, purpose="facts", aad=record.subject.encode())
    return StoredFacts.from_json(json.loads(plain))


def facts_current(*, subject: str, now: datetime) -> tuple[FactRecord, StoredFacts] | None:
    """The person's newest facts that are still valid today (SPEC 2.3 reuse), or None: verify again."""
    record = (
        FactRecord.objects.filter(subject=subject, destroyed_at__isnull=True, expires_at__gt=now)
        .order_by("-created_at")
        .first()
    )
    if record is None:
        return None
    facts = facts_read(record)
    if facts.document_expiry is not None and facts.document_expiry < now.date():
        return None
    return record, facts


def request_answer_from_facts(*, request: VerificationRequest, subject: str, now: datetime) -> str | None:
    """One-click reuse: answer a new provider's request from stored facts, evaluated on today's date (an
    age_over_21 asked a year later is answered for that day). No new photos, no vendor call."""
    current = facts_current(subject=subject, now=now)
    if current is None or request.status != R.PENDING or request.expires_at <= now:
        return None
    record, facts = current
    audit_record(event="facts.reused", request=request.pk, session=record.session_id, now=now)
    return attestation_services.request_complete(
        request=request, subject=subject, facts=facts, verified_month=record.verified_month, now=now
    )


def facts_destroy(*, record_id: int, now: datetime) -> bool:
    if FactRecord.objects.filter(pk=record_id, destroyed_at__isnull=True).update(
        sealed=None, wrapped_key=None, destroyed_at=now
    ):
        session_id = FactRecord.objects.values_list("session_id", flat=True).get(pk=record_id)
        audit_record(event="facts.destroyed", session=session_id, now=now)
        return True
    return False


# --- Sweepers --------------------------------------------------------------------------------------------------


def purge_expired(*, now: datetime, batch: int = 500) -> dict[str, int]:
    """Destroy everything past its deadline, even if the task that should have done it was lost (SPEC 3.1).

    Safe to run concurrently: each destroy locks the rows it deletes (a second sweeper waits, then finds nothing),
    and every step is a compare-and-swap or an idempotent delete, so nothing is counted or audited twice.
    """
    counts = {"evidence": 0, "abandoned": 0, "requests": 0, "facts": 0}
    overdue = Evidence.objects.filter(deadline__lte=now).values_list("session_id", flat=True).distinct()[:batch]
    for session_id in list(overdue):
        counts["evidence"] += evidence_destroy(session_id=session_id, now=now, reason="deadline")
    abandoned = VerificationSession.objects.filter(status=S.STARTED, abandon_at__lte=now).values_list("pk", flat=True)
    for session_id in list(abandoned[:batch]):
        counts["abandoned"] += session_expire(session_id=session_id, now=now, reason="abandoned") == "expired"
    stale = VerificationRequest.objects.filter(status=R.PENDING, expires_at__lte=now, session__isnull=True)
    for request_id in list(stale.values_list("pk", flat=True)[:batch]):
        if attestation_services.request_transition(
            request_id=request_id, to=R.EXPIRED, now=now, allowed_from=[R.PENDING]
        ):
            counts["requests"] += 1
            audit_record(event="request.expired", request=request_id, reason="unused", now=now)
    for record_id in list(
        FactRecord.objects.filter(expires_at__lte=now, destroyed_at__isnull=True).values_list("pk", flat=True)[:batch]
    ):
        counts["facts"] += facts_destroy(record_id=record_id, now=now)
    if any(counts.values()):
        log.info("purge", extra={"event": "purge", "count": json.dumps(counts)})
    return counts


def poll_due(*, now: datetime, batch: int = 200) -> list[str]:
    """Sessions whose result should be looked at again: claim each by moving `next_poll_at` forward."""
    due = []
    candidates = VerificationSession.objects.filter(status__in=(S.PROCESSING, S.IN_REVIEW), next_poll_at__lte=now)
    for session_id, next_poll in candidates.values_list("pk", "next_poll_at")[:batch]:
        if VerificationSession.objects.filter(pk=session_id, next_poll_at=next_poll).update(
            next_poll_at=_next_poll(now)
        ):
            due.append(session_id)
    return due


def submitted_stuck(*, now: datetime, older_than: timedelta = timedelta(minutes=2)) -> list[str]:
    """Submitted sessions whose submit task was lost (broker restart): the caller enqueues them again."""
    return list(
        VerificationSession.objects.filter(status=S.SUBMITTED, submitted_at__lte=now - older_than).values_list(
            "pk", flat=True
        )[:200]
    )


def session_nudge(*, session: VerificationSession, now: datetime) -> bool:
    """The waiting page asked for news: fetch the result now if one is due (rate-limited by `next_poll_at`)."""
    from . import tasks

    if session.status not in (S.PROCESSING, S.IN_REVIEW) or not session.next_poll_at or session.next_poll_at > now:
        return False
    if VerificationSession.objects.filter(pk=session.pk, next_poll_at=session.next_poll_at).update(
        next_poll_at=now + timedelta(seconds=1)
    ):
        transaction.on_commit(lambda: tasks.fetch_result.delay(session.pk))
        return True
    return False


# --- Inbound vendor webhooks -----------------------------------------------------------------------------------


def webhook_receive(*, vendor_name: str, headers: dict[str, str], body: bytes, now: datetime) -> str:
    """Authenticate (raises WebhookRejected), record once, and hand the event to a task by id (SPEC 5).

    Nothing from the body is trusted or kept: the ledger row holds the vendor's ids and event name, the task
    re-fetches the result. Duplicates are answered 200 too, so vendors stop retrying."""
    from . import tasks

    if vendor_name not in settings.IDBROKER_VENDORS:
        raise UnknownVendor(vendor_name)
    event = get_vendor(vendor_name).verify_webhook(headers=headers, body=body, now=now)
    try:
        with transaction.atomic():
            row = VendorEvent.objects.create(
                vendor=vendor_name,
                dedupe_key=event.dedupe_key[:200],
                received_at=now,
                event_type=event.type[:80],
                vendor_session_id=event.vendor_session_id[:128],
                resource=event.resource[:128],
            )
            transaction.on_commit(lambda: tasks.process_vendor_event.delay(row.pk))
    except IntegrityError:
        return "duplicate"
    return "accepted"


def vendor_event_process(*, event_id: int, now: datetime) -> str:
    """Find the session an event is about, then re-fetch its result. Out-of-order and stale events are harmless:
    the vendor's current state decides, and a session already decided ignores them."""
    if not VendorEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(processed_at=now):
        return "already_processed"
    row = VendorEvent.objects.get(pk=event_id)
    vendor = get_vendor(row.vendor)
    from .vendors.base import WebhookEvent

    try:
        vendor_session_id = vendor.session_for(
            event=WebhookEvent(row.dedupe_key, row.vendor_session_id, row.event_type, resource=row.resource)
        )
    except VendorError:
        VendorEvent.objects.filter(pk=event_id).update(processed_at=None)  # let the task retry
        raise
    session = (
        VerificationSession.objects.filter(vendor=row.vendor, vendor_session_id=vendor_session_id).first()
        if vendor_session_id
        else None
    )
    if session is None:
        outcome = "unknown_session"
    elif session.status == S.STARTED and vendor_is_hosted(session):
        outcome = "submitted" if session_returned(session=session, now=now) else "ignored"
    elif session.status in (S.PROCESSING, S.IN_REVIEW):
        outcome = result_fetch(session_id=session.pk, now=now)
    elif session.vendor_deletion_next_at and session.vendor_deletion_next_at <= now:
        outcome = vendor_copy_delete(session_id=session.pk, now=now)  # e.g. Stripe's `redacted`, when a poll is due
    else:
        outcome = "ignored"
    VendorEvent.objects.filter(pk=event_id).update(outcome=outcome[:32])
    return outcome
