"""Retention (SPEC 3.1, 3.5, 3.6): the sweeper destroys whatever is past its deadline, with time injected as `now`."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command

from attestations import services as attestation_services
from audit.models import AuditEvent
from audit.services import audit_verify
from tests.verification.support import evidence_files, open_session, store, store_both
from verification import services, tasks
from verification.crypto import DecryptionError
from verification.models import Evidence, FactRecord, VerificationSession
from verification.vendors.base import EvidenceKind

pytestmark = pytest.mark.django_db

NOTHING = {"evidence": 0, "abandoned": 0, "requests": 0, "facts": 0}


def _destroyed_entries(session_id: str) -> list[dict]:
    return [
        e.refs for e in AuditEvent.objects.filter(event="evidence.destroyed") if e.refs.get("session") == session_id
    ]


@pytest.fixture
def lost_task(acme, now):
    """Photos stored and submitted, but the Celery task that hands them to the vendor never ran."""
    opened = open_session(acme.provider, now=now)
    evidence = store_both(opened, now=now)
    services.session_submit(session=opened.session, now=now)  # the on_commit enqueue never fires in this test
    opened.refresh()
    assert opened.session.status == "submitted" and opened.request.status == "processing"
    return opened, evidence


def test_evidence_deadline_is_an_hour_after_upload_by_default(lost_task, now):
    _, evidence = lost_task
    assert {e.deadline for e in evidence} == {now + timedelta(minutes=60)}


def test_evidence_is_kept_until_its_deadline(lost_task, now):
    opened, evidence = lost_task
    assert services.purge_expired(now=now + timedelta(minutes=59)) == NOTHING
    assert Evidence.objects.count() == 2 and len(evidence_files()) == 2
    assert services.evidence_read(evidence[0]).startswith(b"\xff\xd8")


def test_evidence_past_its_deadline_is_destroyed_even_when_the_task_was_lost(lost_task, now, tmp_path):
    opened, evidence = lost_task
    backup = {e.id: services.evidence_path(e).read_bytes() for e in evidence}

    counts = services.purge_expired(now=now + timedelta(minutes=61))

    assert counts == {**NOTHING, "evidence": 2}
    assert not Evidence.objects.exists()
    assert evidence_files() == []
    opened.refresh()
    assert opened.session.wrapped_data_key is None
    # Crypto-shredding: a copy of the ciphertext from a backup is unreadable once the data key is gone.
    for item in evidence:
        path = services.evidence_path(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(backup[item.id])
        with pytest.raises(DecryptionError):
            services.evidence_read(item)


def test_destroying_evidence_leaves_no_empty_session_folder(lost_task, now, settings):
    opened, _ = lost_task
    folder = settings.IDBROKER_EVIDENCE_DIR / opened.session.id
    assert folder.is_dir()
    services.purge_expired(now=now + timedelta(minutes=61))
    assert not folder.exists()


def test_an_operator_may_shorten_the_evidence_deadline(acme, now, settings):
    settings.IDBROKER_EVIDENCE_TTL = timedelta(minutes=5)
    opened = open_session(acme.provider, now=now)
    evidence = store(opened, EvidenceKind.DOCUMENT_FRONT, now=now)
    assert evidence.deadline == now + timedelta(minutes=5)
    assert services.purge_expired(now=now + timedelta(minutes=4))["evidence"] == 0
    assert services.purge_expired(now=now + timedelta(minutes=6))["evidence"] == 1
    assert not Evidence.objects.exists()


def test_abandoned_sessions_expire_after_30_minutes_with_their_evidence_and_key(
    acme, now, django_capture_on_commit_callbacks
):
    opened = open_session(acme.provider, now=now)
    store(opened, EvidenceKind.DOCUMENT_FRONT, now=now)  # the user took one photo, then walked away
    assert opened.refresh().session.abandon_at == now + timedelta(minutes=30)
    assert opened.session.wrapped_data_key is not None

    assert services.purge_expired(now=now + timedelta(minutes=29)) == NOTHING
    assert opened.refresh().session.status == "started"

    with django_capture_on_commit_callbacks(execute=True):
        counts = services.purge_expired(now=now + timedelta(minutes=31))

    assert counts == {**NOTHING, "abandoned": 1}
    opened.refresh()
    assert opened.session.status == "expired"
    assert opened.session.decided_at == now + timedelta(minutes=31)
    assert opened.session.wrapped_data_key is None
    assert opened.request.status == "expired"
    assert not Evidence.objects.exists() and evidence_files() == []
    assert opened.session.vendor_deletion == "done"  # the vendor is asked to drop its copy too (SPEC 3.7)
    assert _destroyed_entries(opened.session.id)
    assert AuditEvent.objects.filter(event="request.expired", refs__reason="abandoned").count() == 1


def test_an_abandoned_session_can_no_longer_take_photos(acme, now):
    opened = open_session(acme.provider, now=now)
    services.purge_expired(now=now + timedelta(minutes=31))
    with pytest.raises(services.SessionError):
        store(opened.refresh(), EvidenceKind.DOCUMENT_FRONT, now=now + timedelta(minutes=32))
    assert not Evidence.objects.exists()


def test_a_request_nobody_opened_expires_at_its_deadline(acme, now):
    request, _ = attestation_services.request_create(provider=acme.provider, claims=["age_over_18"], now=now)
    assert services.purge_expired(now=request.expires_at - timedelta(seconds=1)) == NOTHING
    assert services.purge_expired(now=request.expires_at) == {**NOTHING, "requests": 1}
    request.refresh_from_db()
    assert request.status == "expired"


def test_purge_is_idempotent(lost_task, acme, now):
    open_session(acme.provider, now=now)  # and an abandoned one
    later = now + timedelta(minutes=61)
    first = services.purge_expired(now=later)
    assert first == {**NOTHING, "evidence": 2, "abandoned": 1}
    entries = AuditEvent.objects.count()
    assert services.purge_expired(now=later) == NOTHING
    assert services.purge_expired(now=later + timedelta(days=1)) == NOTHING
    assert AuditEvent.objects.count() == entries


@pytest.fixture
def approved(acme, now, signing_key):
    """A verification decided by the vendor through the services, as the task would run it."""
    opened = open_session(acme.provider, now=now)
    store_both(opened, now=now)
    services.session_submit(session=opened.session, now=now)
    assert services.session_process(session_id=opened.session.id, now=now) == "approved"
    return opened.refresh()


def test_facts_are_kept_for_their_validity_period(approved, now):
    record = FactRecord.objects.get(session=approved.session)
    assert record.expires_at == now + timedelta(days=365)
    assert services.purge_expired(now=record.expires_at - timedelta(seconds=1)) == NOTHING
    assert services.facts_read(record).date_of_birth is not None


def test_facts_past_their_expiry_are_shredded(approved, now):
    record = FactRecord.objects.get(session=approved.session)
    assert services.purge_expired(now=record.expires_at) == {**NOTHING, "facts": 1}
    record.refresh_from_db()
    assert record.sealed is None and record.wrapped_key is None
    assert record.destroyed_at == record.expires_at
    with pytest.raises(DecryptionError):
        services.facts_read(record)
    assert AuditEvent.objects.filter(event="facts.destroyed", refs__session=approved.session.id).count() == 1
    assert services.purge_expired(now=record.expires_at + timedelta(days=1)) == NOTHING


def test_every_destruction_is_audited_and_the_chain_stays_intact(lost_task, now):
    opened, _ = lost_task
    services.purge_expired(now=now + timedelta(minutes=61))
    (entry,) = _destroyed_entries(opened.session.id)
    assert entry == {"session": opened.session.id, "reason": "deadline", "count": "2"}
    check = audit_verify()
    assert check.ok and check.entries == AuditEvent.objects.count()


def test_audit_entries_of_a_purge_hold_no_evidence(lost_task, now):
    opened, evidence = lost_task
    services.purge_expired(now=now + timedelta(minutes=61))
    text = json.dumps([e.refs for e in AuditEvent.objects.all()])
    assert "CANARY" not in text
    assert opened.session.subject not in text and opened.session.vendor_session_id not in text


def test_manage_py_purge_evidence_runs_the_same_sweeper(acme):
    from django.utils import timezone

    two_hours_ago = timezone.now() - timedelta(hours=2)
    opened = open_session(acme.provider, now=two_hours_ago)
    store_both(opened, now=two_hours_ago)
    attestation_services.request_create(provider=acme.provider, claims=["age_over_18"], now=two_hours_ago)
    out = io.StringIO()

    call_command("purge_evidence", stdout=out)

    assert json.loads(out.getvalue()) == {"evidence": 2, "abandoned": 1, "requests": 1, "facts": 0}
    assert not Evidence.objects.exists() and evidence_files() == []
    assert VerificationSession.objects.get().wrapped_data_key is None
    assert audit_verify().ok
    out = io.StringIO()
    call_command("purge_evidence", stdout=out)
    assert json.loads(out.getvalue()) == NOTHING


def test_the_beat_task_runs_the_same_sweeper(acme):
    from django.utils import timezone

    two_hours_ago = timezone.now() - timedelta(hours=2)
    opened = open_session(acme.provider, now=two_hours_ago)
    store(opened, EvidenceKind.SELFIE, now=two_hours_ago)
    counts = tasks.purge_expired.apply().get()
    assert counts["evidence"] == 1 and counts["abandoned"] == 1
    assert not Evidence.objects.exists()
