"""Second pass of `make test`: the product on PostgreSQL, with a real Celery worker and Redis broker.

What reaches Redis is read with MONITOR while journeys run: every task message must carry ids only.
"""

import base64
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection

from attestations.models import VerificationRequest
from tests import images, journey
from verification import services
from verification.models import Evidence, VerificationSession

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
FACT_MARKERS = ["1990-04-12", "19900412", images.CANARY]


class RedisTap:
    """Record every command Redis receives (MONITOR) from a background thread."""

    def __init__(self, url):
        self.lines: list[str] = []
        self._client = redis.Redis.from_url(url)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self._client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                self.lines.append(command["command"])
                if self._stop.is_set():
                    break

    def __enter__(self):
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._client.ping()  # wake the listener so it sees the stop flag
        self._thread.join(5)


def _wait_for(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_task_messages_in_redis_carry_ids_only(acme, signing_key, public_url, celery_worker_process):
    assert connection.vendor == "postgresql"
    with RedisTap(settings.CELERY_BROKER_URL) as tap:
        trip = journey.start(acme, ["age_over_18", "eligible_jurisdiction"])
        journey.open_and_consent(trip)
        journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
        journey.upload(trip, "selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg")
        done = _wait_for(lambda: VerificationRequest.objects.get(pk=trip.request_id).status == "completed")
        assert done, celery_worker_process.read_text()[-3000:]
        assert _wait_for(lambda: VerificationSession.objects.get().vendor_deletion == "done")
    # Kombu publishes with LPUSH onto the queue; the message is JSON with a base64 body.
    published = [line for line in tap.lines if line.startswith("LPUSH celery ")]
    assert len(published) >= 2, tap.lines[:20]
    seen_tasks = set()
    for line in published:
        message = json.loads(line[len("LPUSH celery ") :])
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        seen_tasks.add(message["headers"]["task"])
        assert kwargs == {} and len(args) == 1 and re.fullmatch(r"vs_[A-Za-z0-9_-]{16,}", args[0]), args
    assert {"verification.tasks.submit_session", "verification.tasks.delete_vendor_copy"} <= seen_tasks
    everything = "\n".join(tap.lines) + celery_worker_process.read_text()
    for marker in FACT_MARKERS:
        assert marker not in everything
    assert Evidence.objects.count() == 0


def test_check_api_answers_on_postgresql(acme, signing_key, public_url, celery_worker_process):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    journey.upload(trip, "selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg")
    assert _wait_for(lambda: VerificationRequest.objects.get(pk=trip.request_id).status == "completed")
    token = VerificationRequest.objects.get(pk=trip.request_id).token
    checked = acme.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()
    assert checked["valid"] is True and checked["claims"]["age_over_18"] is True


def test_concurrent_sweepers_destroy_each_item_exactly_once(acme, signing_key, now, settings):
    """SKIP LOCKED claims plus idempotent destroys: four sweepers racing never double-count or fail."""
    sessions = []
    for _ in range(6):
        trip = journey.start(acme, ["age_over_18"])
        journey.open_and_consent(trip)
        journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
        sessions.append(VerificationSession.objects.get(request_id=trip.request_id))
    later = now + settings.IDBROKER_EVIDENCE_TTL + timedelta(minutes=1)

    def sweep():
        try:
            return services.purge_expired(now=later)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: sweep(), range(4)))
    assert sum(r["evidence"] for r in results) == 6
    assert sum(r["abandoned"] for r in results) == 6
    assert Evidence.objects.count() == 0
    assert set(VerificationSession.objects.values_list("status", flat=True)) == {"expired"}
    assert not any(p.is_file() for p in settings.IDBROKER_EVIDENCE_DIR.rglob("*"))


def test_rate_limits_on_the_redis_cache_take_one_pipelined_round_trip(settings):
    from broker import ratelimit

    settings.CACHES = {"default": {"BACKEND": ratelimit.REDIS_CACHE, "LOCATION": "redis://127.0.0.1:6379/14"}}
    ratelimit._redis.cache_clear()
    try:
        client = ratelimit._redis()
        assert client is not None
        client.flushdb()
        results = [ratelimit.hit("test:client", limit=3, window=60) for _ in range(4)]
        assert [allowed for allowed, _ in results] == [True, True, True, False]
        (key,) = client.keys("idbroker:ratelimit:test:client:*")
        assert 0 < client.ttl(key) <= 61  # the window cleans up after itself
        assert ratelimit.hit("test:other", limit=3, window=60)[0] is True
    finally:
        ratelimit._redis.cache_clear()
        client.flushdb()
