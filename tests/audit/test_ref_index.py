"""Issue 10, item 6: a person's own audit entries are found through an index of the ids each entry names, so the
account export costs the same on a log of 100 entries and on one of 100,000 (it walked the whole log: 39 s and
131 MB at 100,000 entries). Measured here by what the database does, not by a clock: the number of queries, and
on SQLite the number of virtual-machine steps the queries take (a scan of the log grows with every entry)."""

from __future__ import annotations

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.services import account_export
from audit.models import AuditEvent, AuditRef
from audit.services import audit_entries_naming, audit_record
from audit.transparency import log_size
from tests.verification.support import open_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(acme, signing_key, now):
    """A person verified once: their request and session appear in a few entries among everyone else's."""
    opened = open_session(acme.provider, now=now)
    session, request = opened.session, opened.request
    audit_record(event="evidence.destroyed", session=session.pk, reason="decided", count="2", now=now)
    audit_record(event="facts.reused", request=request.pk, session=session.pk, now=now)  # names both: listed once
    return Account.objects.create(subject=session.subject, created_at=now)


def _grow(count: int, now) -> None:
    """`count` entries about other people, stored as audit_record stores them (entry and index rows), in bulk."""
    start = log_size()
    rows = [
        AuditEvent(
            seq=start + i + 1, event="request.created", refs={"request": f"vr_other_{start + i}", "provider": "acme"},
            at=now.replace(microsecond=0), prev_hash="0" * 64, hash=secrets.token_hex(32), salt=secrets.token_hex(32),
        )
        for i in range(count)
    ]  # fmt: skip
    AuditEvent.objects.bulk_create(rows, batch_size=1000)
    AuditRef.objects.bulk_create(
        [AuditRef(entry_id=r.seq, key=k, value=v) for r in rows for k, v in r.refs.items()], batch_size=1000
    )


def _export_cost(account, now) -> tuple[list, list[str], int]:
    """The export's audit events, the SQL it ran, and (SQLite) the VM steps it took, in hundreds."""
    connection.ensure_connection()
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    raw = connection.connection if connection.vendor == "sqlite" else None
    if raw is not None:
        raw.set_progress_handler(tick, 100)
    try:
        with CaptureQueriesContext(connection) as queries:
            events = account_export(account=account, now=now)["audit_events"]
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)
    return events, [q["sql"] for q in queries.captured_queries], steps[0]


def test_the_account_export_finds_a_persons_entries_by_index_not_by_walking_the_log(person, now):
    _grow(100, now)
    small_events, small_sql, small_steps = _export_cost(person, now)
    _grow(5000, now)
    large_events, large_sql, large_steps = _export_cost(person, now)

    assert [e["event"] for e in small_events] == ["request.created", "evidence.destroyed", "facts.reused"]
    assert large_events == small_events
    assert len(large_sql) == len(small_sql)  # the same queries, whatever the log's size
    audit_sql = [sql for sql in large_sql if "audit_auditevent" in sql]
    assert len(audit_sql) == 1 and "audit_auditref" in audit_sql[0]  # one lookup through the index
    if connection.vendor == "sqlite":
        # 51 times the log; a walk grows its steps about as much. An index lookup does not.
        assert large_steps <= small_steps * 1.3 + 5, (small_steps, large_steps)


def test_the_index_lookup_uses_the_index_on_sqlite(person, now):
    if connection.vendor != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    _grow(500, now)
    query = AuditEvent.objects.filter(ref_index__value__in=["vs_x", "vr_y"]).distinct().order_by("seq")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "audit_auditref" in plan and "USING INDEX" in plan
    assert "SCAN audit_auditevent" not in plan


def test_every_entry_written_is_indexed_by_the_ids_it_names(signing_key, now):
    entry = audit_record(event="request.expired", session="vs_idx", request="vr_idx", reason="unused", now=now)
    assert set(entry.ref_index.values_list("key", "value")) == {
        ("session", "vs_idx"),
        ("request", "vr_idx"),
        ("reason", "unused"),
    }
    assert audit_entries_naming({"vr_idx"}) == [entry] == audit_entries_naming({"vs_idx", "vr_idx"})
    assert audit_entries_naming(set()) == [] and audit_entries_naming({"vr_nobody"}) == []
