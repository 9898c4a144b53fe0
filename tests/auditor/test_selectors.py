"""The dashboard's figures, computed from a scenario with known numbers."""

from datetime import timedelta

import pytest

from audit.models import AuditEvent
from audit.services import audit_record
from auditor import selectors

pytestmark = pytest.mark.django_db


def test_evidence_held_counts_every_item_and_times_the_oldest_against_its_deadline(scenario):
    held = selectors.evidence_held(now=scenario.now)
    assert held["count"] == 3
    assert held["oldest_age_seconds"] == 90 * 60
    assert held["oldest_seconds_to_deadline"] == -30 * 60


def test_one_item_held_past_its_deadline_is_one_breach(scenario):
    assert selectors.deadline_breaches(now=scenario.now) == {
        "held_past_deadline": 1,
        "destroyed_by_sweeper": 0,
        "total": 1,
    }


def test_evidence_the_sweeper_destroyed_at_its_deadline_counts_as_a_breach(db, now):
    audit_record(event="evidence.destroyed", session="vs_x", reason="deadline", count="1", now=now)
    audit_record(event="evidence.destroyed", session="vs_y", reason="decided", count="1", now=now)
    assert selectors.deadline_breaches(now=now)["destroyed_by_sweeper"] == 1


def test_vendor_deletions_group_into_pending_confirmed_and_failed(scenario):
    counts = selectors.vendor_deletions(now=scenario.now)
    assert (counts["pending"], counts["confirmed"], counts["failed"]) == (2, 1, 1)


def test_purges_are_counted_per_hour_for_the_last_24_hours_only(scenario):
    purges = selectors.purges_per_hour(now=scenario.now)
    assert len(purges["hours"]) == 24
    assert purges["total"] == 3
    by_hour = {h["hour"]: h["count"] for h in purges["hours"]}
    two_hours_ago = (scenario.now - timedelta(hours=2)).replace(minute=0, second=0).isoformat()
    assert by_hour[two_hours_ago] == 2


def test_destruction_latency_runs_from_the_decision_to_the_destroyed_entry(scenario):
    latency = selectors.destruction_latency(now=scenario.now)
    assert latency["decided_sessions"] == 2
    assert latency["measured"] == 2
    assert latency["max_seconds"] == 5
    assert {b["label"]: b["count"] for b in latency["buckets"]}["< 1 s"] == 1
    assert {b["label"]: b["count"] for b in latency["buckets"]}["1–10 s"] == 1


def test_attestations_are_counted_per_provider_over_the_last_30_days(scenario):
    rows = {r["provider"]: r for r in selectors.attestations_per_provider(now=scenario.now)["providers"]}
    assert rows["acme"] == {"provider": "acme", "issued": 3, "checked": 5, "revoked": 1}
    assert rows["globex"] == {"provider": "globex", "issued": 2, "checked": 0, "revoked": 0}


def test_key_history_lists_public_facts_about_each_key_only(scenario, signing_key):
    keys = selectors.key_history(now=scenario.now)
    assert [k["kid"] for k in keys] == [signing_key.kid]
    assert set(keys[0]) == {"kid", "alg", "status", "created_at", "retire_after"}


def test_policy_history_shows_policy_changes_and_key_events_newest_first(scenario, signing_key):
    history = selectors.policy_history(now=scenario.now)
    assert [(h["event"], h["subject"]) for h in history] == [
        ("policy.changed", "export-tier1@2"),
        ("key.created", signing_key.kid),
    ]


def test_an_intact_log_and_its_tree_head_are_reported_intact(scenario):
    integrity = selectors.log_integrity(now=scenario.now)
    assert integrity["ok"] is True
    assert integrity["latest_head"]["tree_size"] == AuditEvent.objects.count()


def test_an_edited_audit_entry_is_reported_broken_at_that_entry(scenario):
    victim = AuditEvent.objects.filter(event="attestation.revoked").get()
    AuditEvent.objects.filter(pk=victim.pk).update(refs={**victim.refs, "provider": "globex"})
    integrity = selectors.log_integrity(now=scenario.now)
    assert integrity["ok"] is False
    assert integrity["first_bad_seq"] == victim.seq
    assert integrity["tree_heads_ok"] is False


def test_an_empty_broker_shows_zeros_not_errors(db, now):
    data = selectors.dashboard(now=now)
    assert data["evidence"]["count"] == 0
    assert data["evidence"]["oldest_age_seconds"] is None
    assert data["breaches"]["total"] == 0
    assert data["purges"]["total"] == 0
    assert data["integrity"]["latest_head"] is None


def test_a_recent_integrity_check_is_reused_and_a_fresh_one_finds_new_tampering(scenario):
    from audit.models import IntegrityCheck

    assert selectors.log_integrity(now=scenario.now)["ok"] is True
    victim = AuditEvent.objects.order_by("seq").first()
    AuditEvent.objects.filter(pk=victim.pk).update(refs={"provider": "rewritten"})
    assert selectors.log_integrity(now=scenario.now)["ok"] is True  # within the hour: the recorded check
    fresh = selectors.log_integrity(now=scenario.now, fresh=True)
    assert fresh["ok"] is False and fresh["first_bad_seq"] == victim.seq
    assert IntegrityCheck.objects.count() == 2


def test_an_old_check_is_reported_stale_not_rerun_by_a_page_view(scenario):
    from datetime import timedelta

    from audit.models import IntegrityCheck

    selectors.log_integrity(now=scenario.now)
    later = selectors.log_integrity(now=scenario.now + timedelta(hours=3))
    assert later["check_stale"] is True
    assert IntegrityCheck.objects.count() == 1
