"""Every figure on the auditor dashboard and in its exports, computed from counts, times and random ids only.

Each function takes `now=` and returns plain data (ints, ISO strings, lists, dicts), so the page, the JSON export
and the CSV export show the same numbers from one computation. Nothing here reads evidence, facts, API keys or
private key material: the querysets below select the columns they need and no others.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from django.db.models import Count, Max, Min, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import TruncHour

from attestations.models import CheckCount, Provider, SigningKey
from audit.models import AdminSignIn, AuditEvent, TreeHead
from broker.checks import retention_problems
from verification.models import Evidence, VerificationSession

WINDOW_DAYS = 30  # destruction latency and attestation counts look back this far
HISTORY_LIMIT = 50
# Vendor deletion states (verification/services.py) as the auditor reads them.
DELETION_PENDING = ("requested", "in_progress", "scheduled")
DELETION_CONFIRMED = ("done",)
DELETION_FAILED = ("failed",)
# Upper bounds (seconds) of the destruction latency histogram; the last bucket is open-ended.
LATENCY_BUCKETS = ((1, "< 1 s"), (10, "1–10 s"), (60, "10–60 s"), (600, "1–10 min"), (3600, "10–60 min"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def evidence_held(*, now: datetime) -> dict:
    stats = Evidence.objects.aggregate(count=Count("pk"), oldest=Min("stored_at"))
    oldest = Evidence.objects.order_by("stored_at").values("stored_at", "deadline").first()
    soonest = Evidence.objects.aggregate(deadline=Min("deadline"))["deadline"]
    return {
        "count": stats["count"],
        "oldest_stored_at": _iso(oldest and oldest["stored_at"]),
        "oldest_age_seconds": _seconds(now - oldest["stored_at"]) if oldest else None,
        "oldest_deadline": _iso(oldest and oldest["deadline"]),
        # Negative once the oldest item is past its deadline (which is then also a breach).
        "oldest_seconds_to_deadline": _seconds(oldest["deadline"] - now) if oldest else None,
        "next_deadline": _iso(soonest),
    }


def destruction_latency(*, now: datetime) -> dict:
    """Decision to crypto-shredding, per session decided in the window (from the audit log's own times).

    The audit time is truncated to the second, so the decision time is too before subtracting. A decided session
    with no `evidence.destroyed` entry after its decision held no evidence then (a vendor-hosted flow, or photos
    already destroyed before a retry); it is counted, not guessed at.
    """
    since = now - timedelta(days=WINDOW_DAYS)
    decided = dict(
        VerificationSession.objects.filter(decided_at__gte=since, decided_at__lte=now).values_list("pk", "decided_at")
    )
    destroyed: dict[str, datetime] = {}
    entries = AuditEvent.objects.filter(event="evidence.destroyed", at__gte=since.replace(microsecond=0), at__lte=now)
    for session_id, at in entries.annotate(session=KT("refs__session")).values_list("session", "at"):
        decided_at = decided.get(session_id)
        if decided_at and at >= decided_at.replace(microsecond=0) and session_id not in destroyed:
            destroyed[session_id] = at
    latencies = sorted(max(0, _seconds(at - decided[sid].replace(microsecond=0))) for sid, at in destroyed.items())
    buckets, lower = [], 0
    for upper, label in LATENCY_BUCKETS:
        buckets.append({"label": label, "count": sum(1 for s in latencies if lower <= s < upper)})
        lower = upper
    buckets.append({"label": "> 1 h", "count": sum(1 for s in latencies if s >= lower)})
    return {
        "window_days": WINDOW_DAYS,
        "decided_sessions": len(decided),
        "measured": len(latencies),
        "without_destruction_entry": len(decided) - len(latencies),
        "median_seconds": int(median(latencies)) if latencies else None,
        "max_seconds": latencies[-1] if latencies else None,
        "buckets": buckets,
    }


def deadline_breaches(*, now: datetime) -> dict:
    """Must be zero. Evidence still held past its deadline, and evidence the sweeper had to destroy because the
    normal path (destroy on decision or abandonment) did not: both mean a promise to the user was at risk."""
    held = Evidence.objects.filter(deadline__lt=now).count()
    swept = AuditEvent.objects.filter(event="evidence.destroyed", refs__reason="deadline").count()
    return {"held_past_deadline": held, "destroyed_by_sweeper": swept, "total": held + swept}


def vendor_deletions(*, now: datetime) -> dict:
    counts = dict(
        VerificationSession.objects.exclude(vendor_deletion="")
        .values_list("vendor_deletion")
        .annotate(n=Count("pk"))
        .values_list("vendor_deletion", "n")
    )
    oldest_pending = VerificationSession.objects.filter(vendor_deletion__in=DELETION_PENDING).aggregate(
        at=Min("decided_at")
    )["at"]
    return {
        "pending": sum(counts.get(s, 0) for s in DELETION_PENDING),
        "confirmed": sum(counts.get(s, 0) for s in DELETION_CONFIRMED),
        "failed": sum(counts.get(s, 0) for s in DELETION_FAILED),
        "oldest_pending_decided_at": _iso(oldest_pending),
    }


def purges_per_hour(*, now: datetime) -> dict:
    """`evidence.destroyed` entries in each of the last 24 clock hours, the current (partial) hour last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=23)
    rows = (
        AuditEvent.objects.filter(event="evidence.destroyed", at__gte=start, at__lte=now)
        .annotate(hour=TruncHour("at"))
        .values("hour")
        .annotate(n=Count("pk"))
        .values_list("hour", "n")
    )
    by_hour = {hour: n for hour, n in rows}
    hours = [start + timedelta(hours=i) for i in range(24)]
    series = [{"hour": _iso(h), "count": by_hour.get(h, 0)} for h in hours]
    return {"total": sum(p["count"] for p in series), "hours": series}


def attestations_per_provider(*, now: datetime) -> dict:
    since = now - timedelta(days=WINDOW_DAYS)
    rows = (
        AuditEvent.objects.filter(event__in=("attestation.issued", "attestation.revoked"), at__gte=since, at__lte=now)
        .annotate(provider=KT("refs__provider"))
        .values("provider", "event")
        .annotate(n=Count("pk"))
        .values_list("provider", "event", "n")
    )
    # Every provider is listed, a quiet one with zeros; an event naming no known provider still counts.
    table = {
        cid: {"issued": 0, "checked": 0, "revoked": 0} for cid in Provider.objects.values_list("client_id", flat=True)
    }
    for provider, event, n in rows:
        table.setdefault(provider or "(none)", {"issued": 0, "checked": 0, "revoked": 0})[event.split(".")[1]] = n
    # Checks are counted per provider per hour (attestations/checkcounts.py), never audited one by one (SPEC 2.4).
    checks = (
        CheckCount.objects.filter(hour__gte=since, hour__lte=now)
        .values("provider__client_id")
        .annotate(n=Sum("count"))
        .values_list("provider__client_id", "n")
    )
    for provider, n in checks:
        table.setdefault(provider, {"issued": 0, "checked": 0, "revoked": 0})["checked"] = n
    return {
        "window_days": WINDOW_DAYS,
        "providers": [{"provider": cid, **counts} for cid, counts in sorted(table.items())],
    }


def key_history(*, now: datetime) -> list[dict]:
    rows = SigningKey.objects.order_by("-created_at").values("kid", "alg", "status", "created_at", "retire_after")
    return [{**r, "created_at": _iso(r["created_at"]), "retire_after": _iso(r["retire_after"])} for r in rows]


def policy_history(*, now: datetime) -> list[dict]:
    rows = (
        AuditEvent.objects.filter(event__in=("policy.changed", "key.created", "key.rotated"), at__lte=now)
        .order_by("-seq")
        .values("seq", "event", "refs", "at")[:HISTORY_LIMIT]
    )
    return [
        {
            "seq": r["seq"],
            "event": r["event"],
            "subject": r["refs"].get("policy") or r["refs"].get("kid", ""),
            "at": _iso(r["at"]),
        }
        for r in rows
    ]


INTEGRITY_MAX_AGE = timedelta(hours=2)  # beat re-verifies hourly (audit.tasks.verify_log); older means beat stopped


def log_integrity(*, now: datetime, fresh: bool = False) -> dict:
    """The latest full verification of the log (hourly by beat), or one run now when asked (POST on the dashboard)
    or when none was ever run. Page views never start one otherwise: walking a log of millions of entries on each
    view, or on every view while a check is due, would not scale."""
    from audit.models import IntegrityCheck
    from audit.services import log_integrity_check

    check = IntegrityCheck.objects.first()
    if fresh or check is None:
        check = log_integrity_check(now=now)
    latest = TreeHead.objects.order_by("-tree_size", "-leaf_format").values("tree_size", "root_hash", "at").first()
    return {
        "ok": check.ok,
        "checked_at": _iso(check.at),
        "check_stale": now - check.at > INTEGRITY_MAX_AGE,
        "chain_ok": check.chain_ok,
        "entries": check.entries,
        "first_bad_seq": check.first_bad_seq,
        "chain_reason": check.chain_reason,
        "tree_heads_ok": check.tree_heads_ok,
        "tree_heads_checked": check.tree_heads_checked,
        "bad_tree_size": check.bad_tree_size,
        "tree_heads_reason": check.tree_heads_reason,
        "latest_head": {**latest, "at": _iso(latest["at"])} if latest else None,
        "log_head_at": _iso(AuditEvent.objects.aggregate(at=Max("at"))["at"]),
    }


ADMIN_SIGNIN_WINDOW = timedelta(hours=24)


def admin_signins(*, now: datetime) -> dict:
    """Admin sign-in attempts in the last 24 hours by outcome (AdminSignIn rows: auditors only, never public)."""
    counts = dict(
        AdminSignIn.objects.filter(at__gt=now - ADMIN_SIGNIN_WINDOW, at__lte=now)
        .values_list("outcome")
        .annotate(n=Count("pk"))
        .values_list("outcome", "n")
    )
    latest = AdminSignIn.objects.filter(outcome=AdminSignIn.Outcome.OK).values_list("at", flat=True).first()
    return {
        "window_hours": 24,
        **{outcome: counts.get(outcome, 0) for outcome in AdminSignIn.Outcome.values},
        "last_ok_at": _iso(latest),
    }


def retention_configuration(*, now: datetime) -> list[dict]:
    """The retention checks `manage.py check` runs (broker/checks.py): a deployment can keep every deadline on
    paper and still never sweep. Empty when all is well."""
    return [{"id": code, "message": message, "hint": hint} for code, message, hint in retention_problems()]


def dashboard(*, now: datetime) -> dict:
    return {
        "generated_at": _iso(now),
        "evidence": evidence_held(now=now),
        "destruction_latency": destruction_latency(now=now),
        "breaches": deadline_breaches(now=now),
        "vendor_deletions": vendor_deletions(now=now),
        "purges": purges_per_hour(now=now),
        "attestations": attestations_per_provider(now=now),
        "keys": key_history(now=now),
        "policy_history": policy_history(now=now),
        "integrity": log_integrity(now=now),
        "admin_signins": admin_signins(now=now),
        "configuration": retention_configuration(now=now),
    }


def flatten(data, prefix: str = "") -> list[tuple[str, object]]:
    """(metric, value) rows for the CSV export: nested keys joined by dots; list items keyed by their natural id."""
    rows: list[tuple[str, object]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            name = i
            if isinstance(item, dict):
                name = (
                    item.get("provider")
                    or item.get("kid")
                    or item.get("hour")
                    or item.get("label")
                    or item.get("id")
                    or i
                )
                if "seq" in item:
                    name = item["seq"]
                item = {
                    k: v for k, v in item.items() if k not in ("provider", "kid", "hour", "label", "seq", "id")
                } or item
            rows += flatten(item, f"{prefix}.{name}")
    else:
        rows.append((prefix, "" if data is None else data))
    return rows
