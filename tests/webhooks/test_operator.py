"""Disabling a failing endpoint, the operator's view and actions in admin, and the secret's command (shown once,
rotated with an overlap)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from attestations.models import Provider
from tests import journey
from webhooks import services, signing
from webhooks.models import WebhookDelivery, WebhookSecret

pytestmark = pytest.mark.django_db(transaction=True)


def _event(provider, object_id="vr_test"):
    return services.webhook_enqueue(
        provider=provider,
        event_type="verification_request.expired",
        object_id=object_id,
        status="expired",
        now=timezone.now(),
    )


def _run_to_the_end(delivery: WebhookDelivery) -> WebhookDelivery:
    """Let every scheduled attempt happen (time injected: each one exactly when due)."""
    delivery.refresh_from_db()
    while delivery.status == "pending":
        services.webhook_deliver(delivery_id=delivery.id, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    return delivery


def _secret(provider) -> WebhookSecret:
    return WebhookSecret.objects.get(provider=provider)


# --- Disabling ---------------------------------------------------------------------------------------------------


def test_repeated_dead_deliveries_disable_the_endpoint_and_later_events_are_not_sent(hooked, receiver, signing_key):
    receiver.default = 500
    for n in range(services.DISABLE_AFTER):
        assert _secret(hooked.provider).disabled_at is None
        assert _run_to_the_end(_event(hooked.provider, f"vr_{n}")).status == "dead"
    secret = _secret(hooked.provider)
    assert secret.disabled_at is not None and secret.disabled_reason == "failures"
    sent = len(receiver.requests)
    assert sent == services.DISABLE_AFTER * services.MAX_ATTEMPTS

    receiver.default = 200
    trip, _ = journey.complete(hooked, ["age_over_18"])
    assert len(receiver.requests) == sent  # recorded for the operator, never sent
    skipped = WebhookDelivery.objects.get(payload__data__id=trip.request_id)
    assert (skipped.status, skipped.last_error, skipped.attempts) == ("failed", "disabled", 0)
    assert services.webhooks_claim_due(now=timezone.now() + timedelta(days=1)) == []


def test_a_pending_delivery_waits_while_its_endpoint_is_disabled(hooked, receiver):
    receiver.script = [500]
    delivery = _event(hooked.provider)
    WebhookSecret.objects.filter(provider=hooked.provider).update(disabled_at=timezone.now())
    delivery.refresh_from_db()
    due = delivery.next_attempt_at
    assert services.webhooks_claim_due(now=due) == []
    assert services.webhook_deliver(delivery_id=delivery.id, now=due) == "disabled"
    services.webhook_endpoint_enable(provider_id=hooked.provider.pk, now=due)
    assert services.webhooks_claim_due(now=due) == [delivery.id]
    assert services.webhook_deliver(delivery_id=delivery.id, now=due) == "delivered"


def test_a_success_in_between_resets_the_count(hooked, receiver):
    receiver.script = [400] * (services.DISABLE_AFTER - 1) + [200, 400]
    for n in range(services.DISABLE_AFTER + 1):
        _event(hooked.provider, f"vr_{n}")
    secret = _secret(hooked.provider)
    assert secret.disabled_at is None and secret.consecutive_failures == 1


def test_410_gone_disables_at_once(hooked, receiver):
    receiver.script = [410]
    delivery = _event(hooked.provider)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "gone")
    assert _secret(hooked.provider).disabled_reason == "gone"
    _event(hooked.provider, "vr_next")
    assert len(receiver.requests) == 1


# --- Admin -------------------------------------------------------------------------------------------------------


def test_admin_shows_deliveries_and_secrets_but_never_the_secret(hooked, receiver, admin_client, signing_key):
    receiver.script = [503]
    journey.complete(hooked, ["age_over_18"])
    delivery = WebhookDelivery.objects.get()
    listing = admin_client.get(reverse("admin:webhooks_webhookdelivery_changelist"))
    assert listing.status_code == 200
    text = listing.content.decode()
    for shown in (delivery.id, "verification_request.completed", "pending", "503", "server_error"):
        assert shown in text, shown
    page = admin_client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.id]))
    assert page.status_code == 200 and b"<form" in page.content and b'name="_save"' not in page.content
    secret = receiver.secrets[0]
    for name in ("changelist", "change"):
        args = [] if name == "changelist" else [_secret(hooked.provider).pk]
        response = admin_client.get(reverse(f"admin:webhooks_webhooksecret_{name}", args=args))
        assert response.status_code == 200
        assert (
            secret not in response.content.decode() and secret.removeprefix("whsec_") not in response.content.decode()
        )
    assert admin_client.get(reverse("admin:webhooks_webhooksecret_add")).status_code == 403
    assert admin_client.get(reverse("admin:webhooks_webhookdelivery_add")).status_code == 403


def test_admin_re_enables_an_endpoint_and_retries_a_delivery_now(hooked, receiver, admin_client):
    receiver.script = [400]
    delivery = _event(hooked.provider)
    WebhookSecret.objects.filter(provider=hooked.provider).update(
        disabled_at=timezone.now(), disabled_reason="failures", consecutive_failures=5
    )
    secret = _secret(hooked.provider)
    response = admin_client.post(
        reverse("admin:webhooks_webhooksecret_changelist"), {"action": "enable", "_selected_action": [secret.pk]}
    )
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.disabled_at is None and secret.consecutive_failures == 0

    response = admin_client.post(
        reverse("admin:webhooks_webhookdelivery_changelist"), {"action": "retry_now", "_selected_action": [delivery.id]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert len(receiver.requests) == 2 and all(r.verified for r in receiver.requests)


# --- The secret ----------------------------------------------------------------------------------------------------


def test_the_command_prints_the_secret_once_and_rotation_overlaps(acme, receiver):
    Provider.objects.filter(pk=acme.provider.pk).update(webhook_url=receiver.url)
    acme.provider.refresh_from_db()
    out = StringIO()
    call_command("create_webhook_secret", client_id="acme", stdout=out)
    old = out.getvalue().strip()
    assert old.startswith("whsec_")
    receiver.secrets.append(old)
    _event(acme.provider)

    new_out = StringIO()
    call_command("create_webhook_secret", client_id="acme", stdout=new_out)
    new = new_out.getvalue().strip()
    assert new.startswith("whsec_") and new != old
    _event(acme.provider, "vr_after_rotation")

    first, second = receiver.requests
    assert len(first.headers["webhook-signature"].split(" ")) == 1
    assert len(second.headers["webhook-signature"].split(" ")) == 2  # new and old, during the overlap
    for secret in (old, new):
        Webhook(secret).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(first.body, first.headers)

    # After the overlap only the new secret signs.
    row = _secret(acme.provider)
    after = row.previous_until + timedelta(seconds=1)
    headers = signing.signature_headers(row=row, client_id="acme", msg_id="wh_later", body="{}", now=after)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).sign("wh_later", after, "{}") == headers["webhook-signature"]


def test_the_command_refuses_an_unknown_provider(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_webhook_secret", client_id="nobody", stdout=StringIO())


def test_finished_deliveries_are_purged_after_thirty_days(acme, now):
    from datetime import timedelta

    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_deliveries_purge

    old = WebhookDelivery.objects.create(
        provider=acme.provider, event_type="x", payload={}, status="delivered", created_at=now - timedelta(days=31)
    )
    pending = WebhookDelivery.objects.create(
        provider=acme.provider, event_type="x", payload={}, status="pending", created_at=now - timedelta(days=31)
    )
    fresh = WebhookDelivery.objects.create(
        provider=acme.provider, event_type="x", payload={}, status="dead", created_at=now - timedelta(days=1)
    )
    assert webhook_deliveries_purge(now=now) == 1
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {pending.pk, fresh.pk}
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()
