"""Counting online checks (SPEC 2.4): per provider per clock hour, and nothing finer.

The broker keeps no record of which token was checked when: that would be a usage trail of a person. So a check
leaves no audit entry, no log line and no per-token key anywhere; only a counter for (provider, hour) goes up.

1. With Redis (production), a check is one pipelined HINCRBY on the hour's hash `idbroker:checks:<hour>`, field the
   provider's primary key: O(1), off the database, nothing else stored.
2. Beat (`attestations.tasks.flush_check_counts`, every minute) copies each hash into `CheckCount` rows. The hash
   holds the hour's running total, so the copy *sets* the row to the larger of the two (never adds): a flush that
   died half-way, or ran twice, counts nothing twice. Hashes of hours that ended more than an hour ago are deleted
   once copied; a check lands in its own hour's hash, so nothing is added to them any more.
3. Without Redis (the embedded default: SQLite, eager Celery) the row is incremented at once with an F() update.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from broker import caches

from .models import CheckCount, Provider

PREFIX = "idbroker:checks:"
HOUR_FORMAT = "%Y%m%d%H"


@lru_cache(maxsize=1)
def _redis():
    """The Redis that Celery (and so beat, which flushes) uses; None in the embedded default."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url)


caches.register("redis.check_counts_client", _redis.cache_clear)


def hour_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def check_count_add(*, provider: Provider, now: datetime) -> None:
    """Count one check by `provider` in the hour of `now`."""
    hour = hour_of(now)
    client = _redis()
    if client is not None:
        client.hincrby(f"{PREFIX}{hour.strftime(HOUR_FORMAT)}", str(provider.pk), 1)
        return
    _store(provider_id=provider.pk, hour=hour, value=F("count") + 1, initial=1)


def _store(*, provider_id: int, hour: datetime, value, initial: int) -> None:
    """Update-or-create without a lost update: the UPDATE is atomic; a row created by a racing writer meanwhile
    makes our INSERT fail, and the UPDATE is tried again."""
    for _ in range(3):
        if CheckCount.objects.filter(provider_id=provider_id, hour=hour).update(count=value):
            return
        try:
            with transaction.atomic():
                CheckCount.objects.create(provider_id=provider_id, hour=hour, count=initial)
            return
        except IntegrityError:
            continue
    raise RuntimeError("check counter is too contended")


def check_counts_flush(*, now: datetime) -> int:
    """Copy the Redis hashes into `CheckCount` rows (idempotent); return how many (provider, hour) rows were set."""
    client = _redis()
    if client is None:
        return 0
    settled = hour_of(now) - timedelta(hours=1)
    known = set(Provider.objects.values_list("pk", flat=True))
    written = 0
    for key in client.scan_iter(match=f"{PREFIX}*", count=500):
        try:
            hour = datetime.strptime(key.decode().removeprefix(PREFIX), HOUR_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            continue  # not ours
        for field, raw in client.hgetall(key).items():
            provider_id, total = int(field), int(raw)
            if provider_id in known:  # a provider deleted meanwhile has no row to count on
                _store(provider_id=provider_id, hour=hour, value=Greatest(F("count"), total), initial=total)
                written += 1
        if hour < settled:
            client.delete(key)
    return written
