"""Writing and checking the audit chain.

Each entry's hash is SHA-256 over the previous hash and a canonical JSON of (seq, event, refs, at). `seq` is unique,
so two writers racing for the same position cannot both win: the loser retries on the new head. Editing, deleting
or reordering rows breaks the chain at the first affected entry, which `audit_verify` names.

Each entry also gets a random 32-byte salt: its public form is the commitment SHA-256(salt || entry) (see
`entry_commitment`), and the ids it names go into the AuditRef index so a person's own entries are found by
lookup. The chain does not cover the salt (so chains written before salts existed still verify); a changed salt
changes the commitment, which the signed tree heads catch.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import AdminSignIn, AuditEvent, AuditRef

GENESIS = "0" * 64
EVENTS = frozenset(
    {
        "request.created",
        "evidence.stored",
        "evidence.destroyed",
        "vendor.submitted",
        "vendor.decided",
        "vendor.deletion_requested",
        "vendor.deleted",
        "vendor.deletion_failed",
        "vendor.failover",
        "facts.stored",
        "facts.reused",
        "account.deleted",
        "facts.destroyed",
        "attestation.issued",
        "attestation.shared",
        # "attestation.checked" was here until issue 10: checks are counted per provider per hour, never recorded per
        # token (SPEC 2.4). Entries written before stay in the chain.
        "attestation.revoked",
        "request.canceled",
        "request.expired",
        "key.created",
        "key.rotated",
        "policy.changed",
        "provider.created",
        "api_key.created",
        "api_key.revoked",
        # "admin.signin" was here until issue 10: sign-ins are AdminSignIn rows now (auditors only), never leaves of
        # the public log. Entries written before stay in the chain.
    }
)
SALT_BYTES = 32
MAX_INDEXED_REF = 255  # AuditRef.value; every id we write is far shorter


def entry_body(seq: int, event: str, refs: dict, at: datetime) -> bytes:
    """The canonical bytes of one entry: what the chain hashes and what is a Merkle leaf (audit/transparency.py)."""
    return json.dumps([seq, event, refs, at.isoformat()], sort_keys=True, separators=(",", ":")).encode()


def entry_commitment(salt: str, body: bytes) -> bytes:
    """The public form of an entry: SHA-256(salt || canonical entry), the salt being 32 random bytes (hex in the
    database). Hiding: without the salt, even someone who can guess the whole entry (a provider that knows its own
    request id and roughly when) cannot confirm the guess. Binding: SHA-256 collision resistance. The Merkle leaf of
    the entry is this commitment (leaf hash = SHA-256(0x00 || commitment)), so proofs verify without the entry."""
    return hashlib.sha256(bytes.fromhex(salt) + body).digest()


def _entry_hash(prev_hash: str, seq: int, event: str, refs: dict, at: datetime) -> str:
    return hashlib.sha256(prev_hash.encode() + entry_body(seq, event, refs, at)).hexdigest()


def audit_record(*, event: str, now: datetime | None = None, **refs: str) -> AuditEvent:
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    # In UTC: the hash covers `at.isoformat()`, and the database hands the time back in UTC, so an entry written
    # with another offset (an injected `now`) would otherwise fail its own integrity check.
    at = (now or timezone.now()).astimezone(UTC).replace(microsecond=0)
    clean = {k: str(v) for k, v in refs.items() if v}
    for _ in range(20):
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        seq, prev = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS)
        try:
            with transaction.atomic():
                entry = AuditEvent.objects.create(
                    seq=seq,
                    event=event,
                    refs=clean,
                    at=at,
                    prev_hash=prev,
                    hash=_entry_hash(prev, seq, event, clean, at),
                    salt=secrets.token_hex(SALT_BYTES),
                )
                AuditRef.objects.bulk_create(
                    AuditRef(entry_id=seq, key=k, value=v) for k, v in clean.items() if len(v) <= MAX_INDEXED_REF
                )
                return entry
        except IntegrityError:
            continue  # another writer took this position; build on the new head
    raise RuntimeError("audit log is too contended")


def audit_entries_naming(ids) -> list[AuditEvent]:
    """Every entry that names one of these ids (a person's sessions, requests, tokens, account), oldest first, found
    through the AuditRef index: the cost grows with that person's entries, not with the log."""
    ids = {str(i) for i in ids if i}
    if not ids:
        return []
    return list(AuditEvent.objects.filter(ref_index__value__in=ids).distinct().order_by("seq"))


def admin_signin_record(*, outcome: str, user_id: int | None = None, now: datetime | None = None) -> AdminSignIn:
    """An admin sign-in attempt, for auditors only (not an audit entry, so never a public leaf)."""
    return AdminSignIn.objects.create(
        at=(now or timezone.now()).replace(microsecond=0),
        outcome=AdminSignIn.Outcome(outcome),
        user_id=user_id if outcome == AdminSignIn.Outcome.OK else None,
    )


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


def audit_verify() -> AuditCheck:
    prev, expected_seq, count = GENESIS, 1, 0
    for row in (
        AuditEvent.objects.order_by("seq").values_list("seq", "event", "refs", "at", "prev_hash", "hash").iterator()
    ):
        seq, event, refs, at, prev_hash, digest = row
        count += 1
        if seq != expected_seq:
            return AuditCheck(False, count, expected_seq, f"entry {expected_seq} is missing")
        if prev_hash != prev:
            return AuditCheck(False, count, seq, "does not link to the previous entry")
        if _entry_hash(prev, seq, event, refs, at) != digest:
            return AuditCheck(False, count, seq, "content does not match its hash")
        prev, expected_seq = digest, seq + 1
    return AuditCheck(True, count)


def log_integrity_check(*, now: datetime):
    """Verify the chain and every signed tree head; store the result as an IntegrityCheck row and return it."""
    import logging

    from .models import IntegrityCheck
    from .transparency import tree_heads_verify

    chain, heads = audit_verify(), tree_heads_verify()
    check = IntegrityCheck.objects.create(
        at=now,
        ok=chain.ok and heads.ok,
        entries=chain.entries,
        chain_ok=chain.ok,
        first_bad_seq=chain.first_bad_seq,
        chain_reason=chain.reason[:200],
        tree_heads_ok=heads.ok,
        tree_heads_checked=heads.checked,
        bad_tree_size=heads.bad_tree_size,
        tree_heads_reason=heads.reason[:200],
    )
    if not check.ok:
        logging.getLogger(__name__).error("audit log integrity check failed", extra={"code": "audit_tampered"})
    return check
