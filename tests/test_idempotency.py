"""Idempotency-Key on provider POSTs (issue 3, API hygiene)."""

from datetime import timedelta

import pytest

from attestations.idempotency import idempotency_purge
from attestations.models import IdempotencyRecord, VerificationRequest

pytestmark = pytest.mark.django_db

BODY = {"claims": ["age_over_18"], "nonce": "n1"}


def create(provider, body=BODY, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return provider.client.post("/api/v1/verification-requests", body, format="json", **headers)


def test_a_retried_post_with_the_same_key_replays_the_first_response(acme):
    first, second = create(acme), create(acme)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert VerificationRequest.objects.count() == 1


def test_the_stored_response_is_sealed_because_it_holds_the_users_link(acme):
    url = create(acme).json()["url"]
    record = IdempotencyRecord.objects.get()
    assert url.rsplit("/", 1)[1].encode() not in bytes(record.sealed)


def test_the_same_key_with_another_body_is_refused(acme):
    create(acme)
    other = create(acme, body={"claims": ["age_over_21"]})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_keys_are_per_provider(acme, globex):
    assert create(acme).json()["id"] != create(globex).json()["id"]
    assert VerificationRequest.objects.count() == 2


def test_without_a_key_each_post_creates_a_request(acme):
    create(acme, key=None)
    create(acme, key=None)
    assert VerificationRequest.objects.count() == 2


def test_a_failed_request_can_be_retried_with_the_same_key(acme):
    bad = create(acme, body={"claims": ["age_over_99"]})
    assert bad.status_code == 400
    assert create(acme, body={"claims": ["age_over_99"]}).status_code == 400
    assert not IdempotencyRecord.objects.exists()  # refused requests leave no record, so a fix can reuse the key


def test_a_request_still_in_flight_is_a_conflict(acme):
    create(acme)
    IdempotencyRecord.objects.update(status_code=None)  # as if the first request were still running
    response = create(acme)
    assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"


def test_records_are_purged_after_a_day(acme, now):
    create(acme)
    assert idempotency_purge(now=now + timedelta(hours=23)) == 0
    assert idempotency_purge(now=now + timedelta(hours=25)) == 1
