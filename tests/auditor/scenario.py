"""A retention scenario with known numbers, shared by the selector, page, export and browser tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from attestations.checkcounts import hour_of
from attestations.models import CheckCount
from audit.services import audit_record
from audit.transparency import tree_head_publish
from tests.verification.support import open_session
from verification.models import Evidence, VerificationSession


@dataclass
class Scenario:
    now: datetime
    sessions: list[VerificationSession] = field(default_factory=list)


def _evidence(session, kind, *, stored_at, deadline) -> Evidence:
    return Evidence.objects.create(
        id=f"ev_{secrets.token_hex(8)}", session=session, kind=kind, mime="image/png", size=1000,
        stored_at=stored_at, deadline=deadline,
    )  # fmt: skip


def build(acme, globex, *, now) -> Scenario:
    """3 evidence items held (1 past its deadline); vendor deletions 2 pending, 1 confirmed, 1 failed; 3 purges in
    the last 24 h (latencies 5 s and 0 s after decision), 1 older; acme 3 issued / 5 checked / 1 revoked and
    globex 2 issued in the last 30 days (plus 1 older issue for acme); 1 policy change; a published tree head."""
    now = now.replace(microsecond=0)
    s = Scenario(now=now)
    for _ in range(5):
        s.sessions.append(open_session(acme.provider, now=now - timedelta(hours=3)).session)
    held, late, waiting, done, failed = s.sessions
    _evidence(held, "document_front", stored_at=now - timedelta(minutes=20), deadline=now + timedelta(minutes=40))
    _evidence(held, "selfie", stored_at=now - timedelta(minutes=10), deadline=now + timedelta(minutes=40))
    _evidence(late, "selfie", stored_at=now - timedelta(minutes=90), deadline=now - timedelta(minutes=30))

    for session, state in ((waiting, "requested"), (held, "scheduled"), (done, "done"), (failed, "failed")):
        VerificationSession.objects.filter(pk=session.pk).update(vendor_deletion=state)

    # Two decisions destroyed 5 s and 0 s later; one destruction 25 h ago is outside the chart's window.
    VerificationSession.objects.filter(pk=done.pk).update(decided_at=now - timedelta(hours=2, seconds=5))
    VerificationSession.objects.filter(pk=failed.pk).update(decided_at=now - timedelta(minutes=30))
    audit_record(event="evidence.destroyed", session=done.pk, reason="decided", count="2", now=now - timedelta(hours=2))
    audit_record(
        event="evidence.destroyed", session=failed.pk, reason="decided", count="2", now=now - timedelta(minutes=30)
    )
    audit_record(
        event="evidence.destroyed", session=waiting.pk, reason="abandoned", count="1", now=now - timedelta(hours=2)
    )
    audit_record(
        event="evidence.destroyed", session="vs_old", reason="decided", count="2", now=now - timedelta(hours=25)
    )

    for event, provider, n in (
        ("attestation.issued", "acme", 3),
        ("attestation.revoked", "acme", 1),
        ("attestation.issued", "globex", 2),
    ):
        for i in range(n):
            audit_record(
                event=event, provider=provider, jti=f"jti-{provider}-{event}-{i}", now=now - timedelta(hours=1)
            )
    audit_record(event="attestation.issued", provider="acme", jti="jti-old", now=now - timedelta(days=40))
    # Checks are counted per provider per hour, not audited (SPEC 2.4): 5 by acme an hour ago.
    CheckCount.objects.create(provider=acme.provider, hour=hour_of(now - timedelta(hours=1)), count=5)
    audit_record(event="policy.changed", policy="export-tier1@2", now=now - timedelta(minutes=5))
    tree_head_publish(now=now)
    return s
