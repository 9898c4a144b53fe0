"""Fixed-window rate limits on the shared cache (atomic `add` + `incr` in Redis): O(1) per request.

Used for providers (by provider) and for the browser endpoints that invite guessing or flooding: passkey sign-in
and registration, photo uploads, phone links (by client address, which is only ever used as a keyed hash).
"""

from __future__ import annotations

import ipaddress
import math
import time
from functools import lru_cache, wraps

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse

from broker import caches
from verification.crypto import keyed_hash

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


@lru_cache(maxsize=1)
def _redis():
    """With the Redis cache backend, talk to Redis directly: one pipelined round trip instead of Django's three
    (`add`, then `incr`, which checks `exists` first)."""
    conf = settings.CACHES["default"]
    if conf["BACKEND"] != REDIS_CACHE:
        return None
    import redis

    location = conf["LOCATION"]
    return redis.Redis.from_url(location[0] if isinstance(location, list | tuple) else location)


caches.register("redis.rate_limit_client", _redis.cache_clear)


def clock() -> float:
    """Seconds since the epoch; its own function so tests can keep a run inside one window (tests/conftest.py)."""
    return time.time()


def hit(key: str, *, limit: int, window: int) -> tuple[bool, int]:
    """Count one request against `key`; return (allowed, seconds until the window resets)."""
    now = clock()
    slot = int(now // window)
    cache_key = f"ratelimit:{key}:{window}:{slot}"
    client = _redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.set(f"idbroker:{cache_key}", 0, ex=window + 1, nx=True)
        pipe.incr(f"idbroker:{cache_key}")
        count = pipe.execute()[1]
    else:
        cache.add(cache_key, 0, timeout=window + 1)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr: this request opens the next window
            cache.add(cache_key, 1, timeout=window + 1)
            count = 1
    return count <= limit, max(1, math.ceil((slot + 1) * window - now))


def client_network(address: str) -> str:
    """What one client is: an IPv4 address, or an IPv6 /64 (one subscriber's prefix: hopping through the
    2^64 addresses of one's own network must not give fresh buckets). Behind proxies, REMOTE_ADDR is already the
    client's (broker/proxies.py)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_key(request) -> str:
    return keyed_hash("rate-limit-client", client_network(request.META.get("REMOTE_ADDR", "")))


def per_client(scope: str, *, limit: int, window: int):
    """View decorator: at most `limit` requests per `window` seconds from one client address for this scope."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            allowed, retry_after = hit(f"{scope}:{client_key(request)}", limit=limit, window=window)
            if not allowed:
                response = JsonResponse(
                    {"code": "rate_limited", "detail": "Too many attempts. Please wait a moment and try again."},
                    status=429,
                )
                response["Retry-After"] = str(retry_after)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
