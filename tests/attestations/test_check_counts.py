"""SPEC 2.4: the broker counts checks per provider per hour, and keeps no record of which token was checked when."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.apps import apps
from django.core import serializers

from attestations import checkcounts, services
from attestations.models import Attestation, CheckCount
from audit.models import AuditEvent
from tests.attestations.support import check, issue, split

pytestmark = pytest.mark.django_db


def every_row() -> set[str]:
    """Every row of every table, one JSON string each: what the database holds, all of it."""
    rows = set()
    for model in apps.get_models():
        if not model._meta.managed or model._meta.proxy:
            continue  # no table of its own (the auditor's permission holder)
        for obj in serializers.serialize("python", model.objects.all()):
            rows.add(json.dumps(obj, sort_keys=True, default=str))
    return rows


def traces_of(token: str, *, subject: str) -> list[str]:
    """The strings that would tie a record to this token: jti, pairwise sub, signature, payload, the person."""
    _, payload, _ = split(token)
    attestation = Attestation.objects.get(jti=payload["jti"])
    head, body, signature = token.removesuffix("~").split(".")
    return [payload["jti"], payload["sub"], signature, body, subject, attestation.holder]


def counts(provider) -> dict:
    return dict(CheckCount.objects.filter(provider=provider.provider).values_list("hour", "count"))


def test_a_check_leaves_no_trace_of_the_token_only_the_hourly_count_goes_up(acme, signing_key, now, caplog):
    token = issue(acme, now=now, subject="person-1")
    assert check(acme, issue(acme, now=now, subject="person-2")).json()["valid"]  # warm: API key, caches
    hour = checkcounts.hour_of(now)
    assert counts(acme) == {hour: 1}
    before, audit_before = every_row(), AuditEvent.objects.count()
    caplog.set_level(logging.DEBUG)

    assert check(acme, token).json()["valid"] is True

    changed = every_row() - before
    assert [json.loads(row)["model"] for row in changed] == ["attestations.checkcount"]
    assert counts(acme) == {hour: 2}
    assert AuditEvent.objects.count() == audit_before
    logged = caplog.text + json.dumps([[r.getMessage(), vars(r)] for r in caplog.records], default=str)
    for trace in traces_of(token, subject="person-1"):
        assert trace not in logged
        for row in changed:
            assert trace not in row
    # The attestation's own row is untouched: no "last checked" anywhere.
    attestation_rows = [r for r in before if '"model": "attestations.attestation"' in r]
    assert all(r in every_row() for r in attestation_rows)


def test_checks_are_counted_per_provider_and_per_clock_hour_whatever_their_outcome(acme, globex, signing_key, now):
    own, theirs = issue(acme, now=now), issue(globex, now=now)
    start = now.replace(minute=0, second=0, microsecond=0)
    for at in (start + timedelta(minutes=1), start + timedelta(minutes=59)):
        for token in (own, theirs, "garbage~"):
            services.attestation_check(provider=acme.provider, token=token, now=at)
    services.attestation_check(provider=globex.provider, token=theirs, now=start + timedelta(minutes=30))
    services.attestation_check(provider=acme.provider, token=own, now=start + timedelta(hours=1))
    hour = checkcounts.hour_of(now)
    assert counts(acme) == {hour: 6, hour + timedelta(hours=1): 1}
    assert counts(globex) == {hour: 1}


def test_the_auditor_dashboard_reads_checks_from_the_counters(acme, globex, signing_key, now):
    from auditor.selectors import attestations_per_provider

    token = issue(acme, now=now)
    for _ in range(3):
        check(acme, token)
    rows = {row["provider"]: row for row in attestations_per_provider(now=now)["providers"]}
    assert rows["acme"]["checked"] == 3 and rows["globex"]["checked"] == 0


# --- With Redis, as production runs it -----------------------------------------------------------------------------


@pytest.fixture
def redis_counts(settings):
    """The check counter on the real Redis of the services pass (CELERY_BROKER_URL), emptied of our keys."""
    import redis

    checkcounts._redis.cache_clear()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter(match=f"{checkcounts.PREFIX}*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(match=f"{checkcounts.PREFIX}*"):
        client.delete(key)
    checkcounts._redis.cache_clear()


def everything_in(client) -> str:
    """Every key and value in this Redis database, as text."""
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = client.zrange(key, 0, -1) if kind == "zset" else b""
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_with_redis_a_check_is_one_counter_increment_flushed_into_the_table_once(
    acme, globex, signing_key, now, redis_counts
):
    token = issue(acme, now=now, subject="person-1")
    rows_before = AuditEvent.objects.count()
    for _ in range(3):
        assert services.attestation_check(provider=acme.provider, token=token, now=now).valid
    services.attestation_check(provider=globex.provider, token=token, now=now)  # not theirs: counted all the same
    assert AuditEvent.objects.count() == rows_before
    assert not CheckCount.objects.exists()  # nothing written on the request path
    dump = everything_in(redis_counts)
    for trace in traces_of(token, subject="person-1"):
        assert trace not in dump
    key = f"{checkcounts.PREFIX}{checkcounts.hour_of(now):%Y%m%d%H}"
    assert redis_counts.hgetall(key) == {str(acme.provider.pk).encode(): b"3", str(globex.provider.pk).encode(): b"1"}

    hour = checkcounts.hour_of(now)
    assert checkcounts.check_counts_flush(now=now) == 2
    assert counts(acme) == {hour: 3} and counts(globex) == {hour: 1}
    # A second flush (beat ran twice, or a flush died half-way and ran again) counts nothing twice.
    checkcounts.check_counts_flush(now=now)
    assert counts(acme) == {hour: 3}
    services.attestation_check(provider=acme.provider, token=token, now=now)
    checkcounts.check_counts_flush(now=now)
    assert counts(acme) == {hour: 4}
    # Two hours on, the hour is settled: copied once more, then its hash is gone.
    checkcounts.check_counts_flush(now=now + timedelta(hours=2))
    assert not redis_counts.exists(key) and counts(acme) == {hour: 4}


def test_no_path_is_left_that_writes_a_per_token_check_entry(settings, now):
    """The deferred `attestation.checked` path (a Redis list drained into the log every 5 s) outlived the change to
    counters: the event was still accepted and beat still drained the list. Both are gone (SPEC 2.4)."""
    import audit.tasks
    from audit.services import audit_record

    with pytest.raises(ValueError, match="unknown audit event"):
        audit_record(event="attestation.checked", provider="acme", jti="jti-1", now=now)
    assert AuditEvent.objects.count() == 0
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "audit.tasks.drain_deferred" not in scheduled
    assert not hasattr(audit.tasks, "audit_defer") and not hasattr(audit.tasks, "drain_deferred")
