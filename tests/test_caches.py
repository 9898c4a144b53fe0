"""One registry of per-process caches (broker/caches.py): tests and anything else forget them with one call."""

from attestations import services, signing, statuslist
from audit import transparency
from broker import caches, ratelimit
from verification.vendors import breaker


def test_every_per_process_cache_is_registered():
    assert set(caches.names()) >= {
        "attestations.api_keys",
        "attestations.revocations",
        "attestations.published_keys",
        "audit.merkle_tree",
        "vendors.breakers",
        "redis.rate_limit_client",
        "redis.check_counts_client",
    }


def test_clear_all_forgets_what_each_process_remembered():
    services._api_key_cache[("lookup", "hash")] = ("provider", "key")
    statuslist._revoked_cache[1] = frozenset({7})
    signing._key_cache[("kid", "ES256")] = None
    breaker._breakers["dev"] = breaker.pybreaker.CircuitBreaker()
    tree = transparency._tree
    ratelimit._redis()  # fills its lru_cache
    caches.clear_all()
    assert not services._api_key_cache and not statuslist._revoked_cache and not signing._key_cache
    assert not breaker._breakers
    assert transparency._tree is not tree
    assert ratelimit._redis.cache_info().currsize == 0
