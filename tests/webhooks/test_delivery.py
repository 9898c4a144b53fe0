"""Outbound webhooks to providers (issue 3, part 4): signed in the Standard Webhooks scheme, ids and status only,
retried with backoff as database rows, delivered once however many workers try."""

import base64
import json
import re
import socket
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from attestations.models import Attestation, Provider, VerificationRequest
from tests import journey
from verification import services as verification_services
from webhooks import services, tasks
from webhooks.models import WebhookDelivery, WebhookSecret

# Deliveries are enqueued with transaction.on_commit, which must really run; Celery is eager in tests.
pytestmark = pytest.mark.django_db(transaction=True)

CLAIMS = ["age_over_18", "eligible_jurisdiction"]


def _only_delivery() -> WebhookDelivery:
    rows = list(WebhookDelivery.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


def _event(provider, *, object_id="vr_test", status="expired"):
    """An event outside any transaction: on_commit runs at once, so the first attempt happens here."""
    return services.webhook_enqueue(
        provider=provider,
        event_type=f"verification_request.{status}",
        object_id=object_id,
        status=status,
        now=timezone.now(),
    )


# --- What is sent ------------------------------------------------------------------------------------------------


def test_a_completed_journey_sends_one_signed_webhook_holding_only_ids_and_status(
    hooked, receiver, signing_key, task_calls
):
    trip, final = journey.complete(hooked, CLAIMS)
    assert final["status"] == "completed"

    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got.verified  # checked on arrival by the standardwebhooks library, with the secret shown once
    assert Webhook(receiver.secrets[0]).verify(got.body, got.headers) == got.payload
    assert got.path == "/hooks/idbroker"
    assert got.headers["content-type"] == "application/json"
    delivery = _only_delivery()
    assert got.headers["webhook-id"] == delivery.id and re.fullmatch(r"wh_[A-Za-z0-9_-]{20,}", delivery.id)
    assert abs(int(got.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60

    payload = got.payload
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "verification_request.completed"
    assert payload["data"] == {"id": trip.request_id, "status": "completed"}
    # SPEC 3.3: no fact, no token, no vendor or session detail, anywhere in what the provider received.
    seen = got.body.decode() + json.dumps(got.headers)
    token = final["attestation"]
    for leak in ("1990-04-12", "19900412", token, token.split(".")[1], token.split(".")[2], "vs_", "dev"):
        assert leak not in seen, leak
    for leak in ('"DE"', "DEU", "German", "passport", "age_over_18", "eligible"):
        assert leak not in got.body.decode(), leak

    assert delivery.status == "delivered" and delivery.attempts == 1 and delivery.last_status_code == 200
    assert delivery.delivered_at is not None and delivery.last_error == ""
    # The task that sent it was handed the delivery id and nothing else.
    sent = [c for c in task_calls if c[0] == "webhooks.tasks.deliver"]
    assert sent == [("webhooks.tasks.deliver", [delivery.id], {})]


@pytest.mark.parametrize(("scenario", "status"), [("declined", "declined"), ("error", "failed")])
def test_unsuccessful_journeys_are_announced_with_their_status(hooked, receiver, signing_key, scenario, status):
    trip, final = journey.complete(hooked, ["age_over_18"], scenario=scenario)
    assert final["status"] == status
    assert [r.payload["type"] for r in receiver.requests] == [f"verification_request.{status}"]
    assert receiver.requests[0].payload["data"] == {"id": trip.request_id, "status": status}
    assert receiver.requests[0].verified


def test_a_user_declining_on_the_consent_page_is_announced_as_canceled(hooked, receiver, signing_key):
    trip = journey.start(hooked, ["age_over_18"])
    trip.browser.get(trip.link_path)
    trip.browser.post("/verify/consent", {"action": "decline"})
    assert [r.payload["data"] for r in receiver.requests] == [{"id": trip.request_id, "status": "canceled"}]
    assert receiver.requests[0].payload["type"] == "verification_request.canceled"


def test_declining_with_a_session_open_is_announced_once(hooked, receiver, signing_key):
    trip = journey.start(hooked, ["age_over_18"])
    journey.open_and_consent(trip)  # a session exists; the decline expires it too, which must not announce again
    request = VerificationRequest.objects.get(pk=trip.request_id)
    verification_services.request_decline(request=request, now=timezone.now())
    assert [r.payload for r in receiver.requests] == [
        {
            "type": "verification_request.canceled",
            "timestamp": receiver.requests[0].payload["timestamp"],
            "data": {"id": trip.request_id, "status": "canceled"},
        }
    ]


def test_an_unused_request_expiring_is_announced(hooked, receiver):
    trip = journey.start(hooked, ["age_over_18"])
    later = timezone.now() + timedelta(days=1)
    verification_services.purge_expired(now=later)
    assert [r.payload["data"] for r in receiver.requests] == [{"id": trip.request_id, "status": "expired"}]
    assert receiver.requests[0].payload["type"] == "verification_request.expired"


def test_revocation_emits_attestation_revoked_once(hooked, receiver, signing_key):
    _, final = journey.complete(hooked, ["age_over_18"])
    jti = json.loads(base64.urlsafe_b64decode(final["attestation"].split(".")[1] + "=="))["jti"]
    for _ in range(2):
        hooked.client.post("/api/v1/attestations/revoke", {"jti": jti}, format="json")
    assert [r.payload["type"] for r in receiver.requests] == [
        "verification_request.completed",
        "attestation.revoked",
    ]
    revoked = receiver.requests[1]
    assert revoked.verified and revoked.payload["data"] == {"id": jti, "status": "revoked"}
    assert Attestation.objects.get(jti=jti).revoked_at is not None


def test_nothing_is_sent_without_a_webhook_url(hooked, receiver, signing_key):
    Provider.objects.filter(pk=hooked.provider.pk).update(webhook_url="")
    journey.complete(hooked, ["age_over_18"])
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0


def test_nothing_is_sent_without_a_signing_secret(acme, receiver, signing_key):
    Provider.objects.filter(pk=acme.provider.pk).update(webhook_url=receiver.url)
    journey.complete(acme, ["age_over_18"])
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0


def test_an_event_rolled_back_with_its_transaction_is_never_sent(hooked, receiver):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        _event(hooked.provider)
        raise RuntimeError("the state change failed")
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0


def test_a_plain_http_url_off_this_machine_is_refused_without_a_request(hooked, receiver):
    port = receiver.server.server_address[1]
    Provider.objects.filter(pk=hooked.provider.pk).update(webhook_url=f"http://127.0.0.2:{port}/hooks")
    hooked.provider.refresh_from_db()
    _event(hooked.provider)
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_error, delivery.last_status_code) == ("failed", "insecure_url", None)
    assert receiver.requests == []


# --- Retries -----------------------------------------------------------------------------------------------------


def test_a_500_is_retried_after_its_backoff_and_then_delivered(hooked, receiver, signing_key):
    receiver.script = [500]
    journey.complete(hooked, ["age_over_18"])
    delivery = _only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "server_error"
    wait = delivery.next_attempt_at - delivery.last_attempt_at
    assert timedelta(seconds=4) <= wait <= timedelta(seconds=6)  # 5 s ± 20 % jitter

    # Not yet due: neither a worker nor beat touches it.
    early = delivery.last_attempt_at + timedelta(seconds=3)
    assert services.webhook_deliver(delivery_id=delivery.id, now=early) == "not_claimed"
    assert services.webhooks_claim_due(now=early) == []
    # Due: beat hands it out once, and not again while that task is on its way.
    due = delivery.next_attempt_at
    assert services.webhooks_claim_due(now=due) == [delivery.id]
    assert services.webhooks_claim_due(now=due + timedelta(seconds=15)) == []
    assert services.webhook_deliver(delivery_id=delivery.id, now=due) == "delivered"

    first, second = receiver.requests
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.verified and second.verified
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


def test_beat_delivers_what_is_due(hooked, receiver):
    receiver.script = [503]
    _event(hooked.provider)
    delivery = _only_delivery()
    assert tasks.deliver_due() == 0  # waiting out its backoff
    # Time passes (as a worker would see it): the row is due.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert tasks.deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and len(receiver.requests) == 2


def test_a_timeout_counts_as_transient(hooked, receiver, monkeypatch):
    monkeypatch.setattr(services, "TIMEOUT_SECONDS", 0.3)
    receiver.script = [("sleep", 1.0)]
    _event(hooked.provider)
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_error, delivery.last_status_code) == ("pending", "timeout", None)
    assert services.webhook_deliver(delivery_id=delivery.id, now=delivery.next_attempt_at) == "delivered"
    assert len(receiver.requests) == 2


def test_a_refused_connection_counts_as_transient(hooked, receiver):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    Provider.objects.filter(pk=hooked.provider.pk).update(webhook_url=f"http://127.0.0.1:{closed_port}/hooks")
    hooked.provider.refresh_from_db()
    _event(hooked.provider)
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_error) == ("pending", "connection_failed")


@pytest.mark.parametrize("status", [408, 429])
def test_request_timeout_and_rate_limit_answers_are_transient(hooked, receiver, status):
    receiver.script = [status]
    _event(hooked.provider)
    assert _only_delivery().status == "pending"


def test_retry_after_is_respected(hooked, receiver):
    receiver.script = [(429, {"Retry-After": "120"})]
    _event(hooked.provider)
    delivery = _only_delivery()
    assert delivery.next_attempt_at - delivery.last_attempt_at >= timedelta(seconds=120)


def test_a_400_fails_permanently_without_retries(hooked, receiver):
    receiver.script = [400]
    _event(hooked.provider)
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("failed", 400, "client_error")
    assert delivery.next_attempt_at is None
    much_later = timezone.now() + timedelta(days=3)
    assert services.webhooks_claim_due(now=much_later) == []
    assert services.webhook_deliver(delivery_id=delivery.id, now=much_later) == "not_pending"
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed(hooked, receiver):
    receiver.script = [(307, {"Location": receiver.url + "/elsewhere"})]
    _event(hooked.provider)
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("failed", 307, "redirect")
    assert len(receiver.requests) == 1


def test_every_attempt_failing_follows_the_schedule_and_ends_dead(hooked, receiver):
    receiver.default = 500
    _event(hooked.provider)
    delivery = _only_delivery()
    waits = []
    while delivery.status == "pending":
        waits.append(delivery.next_attempt_at - delivery.last_attempt_at)
        services.webhook_deliver(delivery_id=delivery.id, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    assert delivery.status == "dead" and delivery.attempts == services.MAX_ATTEMPTS == 8
    assert len(receiver.requests) == 8
    for wait, base in zip(waits, services.BACKOFF, strict=True):
        assert base * 0.8 <= wait <= base * 1.2
    assert services.webhooks_claim_due(now=timezone.now() + timedelta(days=30)) == []


# --- Exactly one sender ------------------------------------------------------------------------------------------


def test_two_workers_claiming_the_same_delivery_send_it_once(hooked, receiver):
    release = threading.Event()
    receiver.script = [("gate", release)]
    outcome = {}

    def first_worker():
        try:
            outcome["delivery"] = _event(hooked.provider)  # its on-commit task POSTs and waits at the receiver
        finally:
            connection.close()

    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        assert receiver.arrived.wait(10)
        delivery = _only_delivery()
        # The first attempt is in flight: a second worker, now or a minute later, finds nothing to claim.
        for now in (timezone.now(), timezone.now() + timedelta(minutes=1)):
            assert services.webhook_deliver(delivery_id=delivery.id, now=now) == "not_claimed"
            assert services.webhooks_claim_due(now=now) == []
    finally:
        release.set()
        worker.join(10)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert services.webhook_deliver(delivery_id=delivery.id, now=timezone.now()) == "not_pending"
    assert len(receiver.requests) == 1


def test_an_attempt_whose_worker_died_is_retried_after_the_lease(hooked, receiver):
    receiver.script = [500]
    _event(hooked.provider)
    delivery = _only_delivery()
    # A worker claims it and dies before recording anything: the claim is all that is left.
    assert WebhookDelivery.objects.filter(pk=delivery.pk, attempts=1).update(
        attempts=2, next_attempt_at=delivery.next_attempt_at + services.CLAIM_LEASE
    )
    assert services.webhook_deliver(delivery_id=delivery.id, now=delivery.next_attempt_at) == "not_claimed"
    after_lease = delivery.next_attempt_at + services.CLAIM_LEASE
    assert services.webhooks_claim_due(now=after_lease) == [delivery.id]
    assert services.webhook_deliver(delivery_id=delivery.id, now=after_lease) == "delivered"
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and len(receiver.requests) == 2


def test_the_secret_is_sealed_at_rest(hooked, receiver):
    row = WebhookSecret.objects.get(provider=hooked.provider)
    secret = receiver.secrets[0]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    raw = bytes(row.sealed) + bytes(row.wrapped_key)
    assert secret.encode() not in raw and base64.b64decode(secret.removeprefix("whsec_")) not in raw


def test_a_persons_revocations_reach_each_provider_at_its_own_random_time(hooked, globex, receiver, signing_key):
    """The attack: "delete everything" revoked a person's shares at one instant, and each provider's
    `attestation.revoked` arrived within the same second with that instant as its timestamp, so two providers
    comparing notices could tell their users were one person."""
    from accounts.models import Account
    from accounts.services import account_delete_everything
    from attestations import services as attestation_services
    from verification.models import VerificationSession
    from webhooks.signing import webhook_secret_create

    Provider.objects.filter(pk=globex.provider.pk).update(webhook_url=receiver.url)
    globex.provider.refresh_from_db()
    receiver.secrets.append(webhook_secret_create(provider=globex.provider, now=timezone.now()))
    journey.complete(hooked, ["age_over_18"])
    subject = VerificationSession.objects.get().subject
    request, _ = attestation_services.request_create(
        provider=globex.provider, claims=["age_over_18"], now=timezone.now()
    )
    verification_services.request_answer_from_facts(request=request, subject=subject, now=timezone.now())
    account = Account.objects.create(subject=subject, created_at=timezone.now())
    before = len(receiver.requests)

    now = timezone.now()
    account_delete_everything(account=account, now=now)
    notices = list(WebhookDelivery.objects.filter(event_type="attestation.revoked"))
    assert len(notices) == 2 and len(receiver.requests) == before  # nothing sent at the moment of deletion
    times = [n.next_attempt_at for n in notices]
    assert all(now <= t <= now + timedelta(minutes=60) for t in times) and times[0] != times[1]
    assert [n.payload["timestamp"] for n in notices] == [services._iso(t) for t in times]  # not the deletion time
    # Not even a stray first-attempt call sends one early.
    assert {services.webhook_deliver(delivery_id=n.pk, now=now) for n in notices} == {"not_claimed"}
    for notice in notices:
        services.webhook_deliver(delivery_id=notice.pk, now=notice.next_attempt_at)
    arrived = [r.payload for r in receiver.requests[before:]]
    assert sorted(p["type"] for p in arrived) == ["attestation.revoked"] * 2
    assert {p["timestamp"] for p in arrived} == {n.payload["timestamp"] for n in notices}


def test_an_operators_or_providers_revocation_is_announced_at_once(hooked, receiver, signing_key):
    _, final = journey.complete(hooked, ["age_over_18"])
    jti = json.loads(base64.urlsafe_b64decode(final["attestation"].split(".")[1] + "=="))["jti"]
    hooked.client.post("/api/v1/attestations/revoke", {"jti": jti}, format="json")
    assert receiver.requests[-1].payload["type"] == "attestation.revoked"
