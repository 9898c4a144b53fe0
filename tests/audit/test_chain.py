"""The append-only, hash-chained audit log (SPEC 3.6): edits, deletions and reorderings are detected."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from attestations.models import Attestation, SigningKey
from audit.models import AuditEvent
from audit.services import GENESIS, audit_record, audit_verify
from tests import journey
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(db, now):
    """Five genuine entries, a minute apart."""
    start = now - timedelta(minutes=10)
    entries = [
        ("provider.created", {"provider": "acme"}),
        ("request.created", {"request": "vr_one", "provider": "acme"}),
        ("attestation.issued", {"request": "vr_one", "provider": "acme", "jti": "jti-one"}),
        ("attestation.shared", {"request": "vr_one", "provider": "acme"}),
        ("attestation.revoked", {"provider": "acme", "jti": "jti-one"}),
    ]
    return [audit_record(event=e, now=start + timedelta(minutes=i), **refs) for i, (e, refs) in enumerate(entries)]


def sql(statement: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def raw_row(seq: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT event, refs, at, prev_hash, hash FROM audit_auditevent WHERE seq = %s", [seq])
        return cursor.fetchone()


def rehash(prev_hash: str, seq: int, event: str, refs: dict, at: datetime) -> str:
    """The chain rule as documented in audit.services, written out again so the test does not trust the code."""
    body = json.dumps([seq, event, refs, at.isoformat()], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(prev_hash.encode() + body.encode()).hexdigest()


def verify_command() -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit_log", stdout=out)
    return out.getvalue()


# --- A clean log ---------------------------------------------------------------------------------------------------


def test_a_clean_log_verifies(log):
    result = audit_verify()
    assert result.ok is True and result.entries == 5 and result.first_bad_seq is None


def test_an_empty_log_verifies(db):
    assert audit_verify().ok is True and audit_verify().entries == 0


def test_entries_chain_from_the_genesis_hash_by_the_documented_rule(log):
    rows = list(AuditEvent.objects.order_by("seq"))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    for before, row in zip([None, *rows], rows, strict=False):
        assert row.prev_hash == (before.hash if before else GENESIS)
        assert row.hash == rehash(row.prev_hash, row.seq, row.event, row.refs, row.at)


def test_entries_keep_times_to_the_second_and_drop_empty_refs(db, now):
    entry = audit_record(event="request.created", request="vr_x", provider="", now=now)
    assert entry.refs == {"request": "vr_x"}
    assert entry.at == now.replace(microsecond=0)


def test_an_unknown_event_is_refused(db, now):
    with pytest.raises(ValueError, match="unknown audit event"):
        audit_record(event="user.birthday", now=now)
    assert not AuditEvent.objects.exists()


def test_an_entry_written_with_a_non_utc_time_still_verifies(db, now):
    berlin = datetime(2026, 6, 1, 14, 30, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    audit_record(event="key.created", kid="k1", now=berlin)
    audit_record(event="key.rotated", kid="k2", now=now)
    assert audit_verify().ok is True
    assert AuditEvent.objects.get(seq=1).at == berlin  # the same instant, stored in UTC


def test_verify_audit_log_prints_intact_on_a_clean_log(log):
    output = verify_command()
    assert "intact" in output and "5 entries" in output


# --- Tampering -----------------------------------------------------------------------------------------------------


def test_editing_a_rows_refs_by_sql_is_detected_at_that_row(log):
    assert sql("UPDATE audit_auditevent SET refs = %s WHERE seq = 3", [json.dumps({"jti": "someone-else"})]) == 1
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 3
    assert "hash" in result.reason


@pytest.mark.parametrize(
    ("column", "value"),
    [("event", "attestation.shared"), ("at", "2020-01-01 00:00:00"), ("prev_hash", "f" * 64), ("hash", "e" * 64)],
)
def test_editing_any_column_is_detected(log, column, value):
    assert sql(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = 2", [value]) == 1  # noqa: S608
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 2


def test_an_edited_row_with_a_recomputed_hash_breaks_the_link_to_the_next(log):
    prev_hash = raw_row(2)[3]
    at = AuditEvent.objects.get(seq=2).at
    forged_refs = {"request": "vr_forged", "provider": "acme"}
    forged_hash = rehash(prev_hash, 2, "request.created", forged_refs, at)
    sql("UPDATE audit_auditevent SET refs = %s, hash = %s WHERE seq = 2", [json.dumps(forged_refs), forged_hash])
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 3
    assert "link" in result.reason


def test_deleting_a_row_is_detected(log):
    assert sql("DELETE FROM audit_auditevent WHERE seq = 2") == 1
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 2
    assert "missing" in result.reason


def test_deleting_the_first_row_is_detected(log):
    sql("DELETE FROM audit_auditevent WHERE seq = 1")
    assert audit_verify().first_bad_seq == 1


def test_swapping_two_rows_content_is_detected(log):
    second, third = raw_row(2), raw_row(3)
    update = "UPDATE audit_auditevent SET event = %s, refs = %s, at = %s WHERE seq = %s"
    sql(update, [third[0], third[1], third[2], 2])
    sql(update, [second[0], second[1], second[2], 3])
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 2


def test_reordering_two_whole_rows_is_detected(log):
    # Every column moves with its row; only the positions change.
    sql("UPDATE audit_auditevent SET seq = 1000 WHERE seq = 2")
    sql("UPDATE audit_auditevent SET seq = 2 WHERE seq = 3")
    sql("UPDATE audit_auditevent SET seq = 3 WHERE seq = 1000")
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 2


def test_verify_audit_log_raises_on_a_broken_log_and_names_the_entry(log):
    sql("UPDATE audit_auditevent SET refs = %s WHERE seq = 4", [json.dumps({"provider": "globex"})])
    with pytest.raises(CommandError, match="entry 4"):
        verify_command()


def test_appending_after_tampering_does_not_repair_the_chain(log, now):
    sql("DELETE FROM audit_auditevent WHERE seq = 3")
    audit_record(event="key.created", kid="k", now=now)
    result = audit_verify()
    assert result.ok is False and result.first_bad_seq == 3


# --- What the log holds --------------------------------------------------------------------------------------------

RANDOM_ID = re.compile(r"^[A-Za-z0-9_-]{16,}$")
VOCABULARY = {
    "outcome": {"approved", "declined", "needs_review", "retry", "expired", "error", "failed"},
    "reason": {"decided", "expired", "abandoned", "canceled", "deadline"},
    "state": {"requested", "done", "failed", "n/a"},
}


@pytest.mark.django_db(transaction=True)  # the journey's tasks run on commit
def test_after_a_journey_the_log_holds_only_random_ids_event_types_and_times(acme, signing_key):
    trip, final = journey.complete(acme, ["age_over_18", "eligible_jurisdiction", "document_valid"])
    assert final["status"] == "completed"
    session = VerificationSession.objects.get()
    ids = {
        "provider": {"acme"},
        "request": {trip.request_id},
        "session": {session.pk},
        "jti": set(Attestation.objects.values_list("jti", flat=True)),
        "kid": set(SigningKey.objects.values_list("kid", flat=True)),
    }
    rows = list(AuditEvent.objects.order_by("seq"))
    events = [row.event for row in rows]
    for expected in ("request.created", "evidence.stored", "facts.stored", "attestation.issued", "evidence.destroyed"):
        assert expected in events
    for row in rows:
        for key, value in row.refs.items():
            if key in ids:
                assert value in ids[key], (row.event, key, value)
            elif key in VOCABULARY:
                assert value in VOCABULARY[key], (row.event, key, value)
            elif key == "evidence":
                assert value.startswith("ev_") and RANDOM_ID.match(value), value
            elif key == "count":
                assert value.isdigit()
            else:
                pytest.fail(f"unexpected audit ref {key}={value!r} in {row.event}")
    # Nothing the vendor reported, in any form, anywhere else. (The ids above, and evidence ids, are checked by
    # equality or pattern: a random id may contain "1990" or "DE" by chance.)
    dumped = json.dumps(
        [[r.event, r.at.isoformat(), [v for k, v in r.refs.items() if k not in ids and k != "evidence"]] for r in rows]
    )
    for personal in ("1990-04-12", "1990", "19900412", "12.04.1990", "passport", "id_card", "2031", "DE"):
        assert personal not in dumped
    values = [v for row in rows for v in row.refs.values()]
    assert "DE" not in values and "dev" not in values
    dumped = json.dumps([[r.event, r.refs, r.at.isoformat()] for r in rows])
    for secret_ish in (session.subject, session.vendor_session_id, final["attestation"].split(".")[2]):
        assert not secret_ish or secret_ish not in dumped
    assert audit_verify().ok is True
