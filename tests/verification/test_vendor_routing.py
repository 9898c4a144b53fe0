"""Choosing a vendor (SPEC 5): per provider, with ordered fallbacks past a failing primary (circuit breaker with
half-open probes); and what happens after a decision: the vendor's copy is deleted and its completion tracked."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from attestations import services as attestation_services
from audit.models import AuditEvent
from tests.verification.support import open_session
from verification import services, tasks
from verification.models import VerificationSession
from verification.vendors import breaker
from verification.vendors.base import DeletionState


def _requests(fake, method="POST") -> int:
    return len([r for r in fake.requests if r["method"] == method])


def test_a_providers_own_vendor_is_used_for_its_users(acme, now, fake_vendors):
    acme.provider.vendor = "stripe_identity"
    acme.provider.save()
    opened = open_session(acme.provider, now=now)
    assert opened.session.vendor == "stripe_identity"
    assert opened.session.vendor_session_id.startswith("vs_")
    assert opened.session.redirect_url.startswith(fake_vendors["stripe_identity"].url)


def test_the_broker_default_applies_when_the_provider_names_none(acme, now, fake_vendors, settings):
    settings.IDBROKER_VENDOR = "veriff"
    assert open_session(acme.provider, now=now).session.vendor == "veriff"


def test_a_failing_primary_falls_back_then_the_breaker_stops_calling_it(acme, now, fake_vendors, settings):
    settings.IDBROKER_VENDOR = "onfido"
    settings.IDBROKER_VENDOR_FALLBACKS = ["veriff"]
    settings.IDBROKER_VENDOR_RETRIES = 0
    settings.IDBROKER_VENDOR_BREAKER_FAILURES = 3
    settings.IDBROKER_VENDOR_BREAKER_RESET_SECONDS = 1
    breaker.reset_all()
    onfido = fake_vendors["onfido"]
    onfido.faults.append({"status": 503, "count": 1000})

    vendors = [open_session(acme.provider, now=now).session.vendor for _ in range(3)]
    assert vendors == ["veriff"] * 3  # each start tried Onfido first, got a 503, and fell back
    assert breaker.state("onfido") == "open"
    assert AuditEvent.objects.filter(event="vendor.failover").count() == 3

    tried = _requests(onfido)
    assert open_session(acme.provider, now=now).session.vendor == "veriff"
    assert _requests(onfido) == tried  # open: Onfido was not even asked

    onfido.faults.clear()  # Onfido recovers; after the reset timeout one session probes it (half-open)
    time.sleep(1.1)
    assert open_session(acme.provider, now=now).session.vendor == "onfido"
    assert breaker.state("onfido") == "closed"


def test_when_every_vendor_is_down_the_user_gets_a_page_not_a_500(client, acme, now, fake_vendors, settings):
    settings.IDBROKER_VENDOR = "onfido"
    settings.IDBROKER_VENDOR_FALLBACKS = ["veriff"]
    settings.IDBROKER_VENDOR_RETRIES = 0
    for name in ("onfido", "veriff"):
        fake_vendors[name].faults.append({"status": 502, "count": 1000})
    request, url = attestation_services.request_create(provider=acme.provider, claims=["age_over_18"], now=now)
    client.get(url.replace("http://testserver", ""))
    response = client.post("/verify/consent", {"action": "continue"})
    assert response.status_code == 503
    assert b"Please try again in a few minutes" in response.content
    # Nothing was half-opened at a vendor; the user can try again later from the same link.
    assert VerificationSession.objects.get(request=request).vendor_session_id == ""


def test_an_unconfigured_vendor_is_refused_for_a_provider(acme, now):
    from attestations.services import provider_create
    from broker.errors import BrokerError

    with pytest.raises(BrokerError) as refused:
        provider_create(
            name="X", redirect_uris=["https://x.example/cb"], claims=["age_over_18"], vendor="jumio", now=now
        )
    assert refused.value.code == "unknown_vendor"


# --- The vendor's copy ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_vendor_copy_is_deleted_and_completion_is_tracked_by_the_poller(acme, now, fake_vendors, signing_key):
    """Stripe redacts within days: the state stays in progress, the beat poller asks again, and `done` is recorded
    (with an audit entry) only when the vendor says so."""
    acme.provider.vendor = "stripe_identity"
    acme.provider.save()
    stripe = fake_vendors["stripe_identity"]
    opened = open_session(acme.provider, now=now)
    stripe.decide(opened.session.vendor_session_id, "approved")
    services.session_returned(session=opened.session, now=now)  # the user came back; eager tasks decide
    opened.refresh()
    assert opened.session.status == "approved"
    assert opened.session.vendor_deletion == DeletionState.IN_PROGRESS
    assert AuditEvent.objects.filter(event="vendor.deletion_requested", refs__session=opened.session.pk).exists()
    assert not AuditEvent.objects.filter(event="vendor.deleted").exists()

    stripe.clock_offset += 5 * 86400  # the vendor finishes its redaction
    VerificationSession.objects.filter(pk=opened.session.pk).update(vendor_deletion_next_at=timezone.now())
    assert tasks.poll_vendor_deletions() == 1
    opened.refresh()
    assert opened.session.vendor_deletion == DeletionState.DONE and opened.session.vendor_deleted_at
    assert AuditEvent.objects.filter(event="vendor.deleted", refs__session=opened.session.pk).exists()
    assert services.vendor_deletions_due(now=timezone.now() + timedelta(days=30)) == []


def test_a_deletion_quota_is_waited_out_not_recorded_as_failure(acme, now, fake_vendors, settings):
    """Veriff allows few deletions per hour: a 429 with Retry-After becomes the next attempt's time."""
    settings.IDBROKER_VENDOR = "veriff"
    opened = open_session(acme.provider, now=now)
    VerificationSession.objects.filter(pk=opened.session.pk).update(status="approved")
    fake_vendors["veriff"].faults.append({"status": 429, "count": 100, "method": "DELETE", "retry_after": 1800})
    assert services.vendor_copy_delete(session_id=opened.session.pk, now=now) == "retrying"
    opened.refresh()
    assert opened.session.vendor_deletion == ""  # not asked successfully yet
    assert opened.session.vendor_deletion_next_at == now + timedelta(seconds=1800)
    assert not AuditEvent.objects.filter(event="vendor.deletion_failed").exists()


def test_an_operator_can_queue_a_failed_deletion_again(acme, now, fake_vendors, settings, admin_client):
    """Veriff answers 403 while deletion is not enabled for the integration: `failed`, shown in admin. Once Veriff
    enables it, the admin action queues it again and the poller asks the vendor again."""
    settings.IDBROKER_VENDOR = "veriff"
    veriff = fake_vendors["veriff"]
    opened = open_session(acme.provider, now=now)
    VerificationSession.objects.filter(pk=opened.session.pk).update(status="expired")
    veriff.deletion_enabled = False
    assert services.vendor_copy_delete(session_id=opened.session.pk, now=now) == "failed"
    assert VerificationSession.objects.get(pk=opened.session.pk).vendor_deletion_next_at is None

    veriff.deletion_enabled = True
    admin_client.post(
        "/admin/verification/verificationsession/",
        {"action": "retry_vendor_deletion", "_selected_action": [opened.session.pk]},
    )
    assert services.vendor_deletions_due(now=timezone.now()) == [opened.session.pk]
    assert services.vendor_copy_delete(session_id=opened.session.pk, now=timezone.now()) == "scheduled"


def test_a_primary_that_times_out_falls_back_too(acme, now, fake_vendors, settings):
    settings.IDBROKER_VENDOR = "onfido"
    settings.IDBROKER_VENDOR_FALLBACKS = ["veriff"]
    settings.IDBROKER_VENDOR_TIMEOUT_SECONDS = 0.3
    fake_vendors["onfido"].faults.append({"delay": 1.0, "count": 10})
    opened = open_session(acme.provider, now=now)
    assert opened.session.vendor == "veriff" and opened.session.vendor_session_id
    assert AuditEvent.objects.filter(event="vendor.failover", refs__vendor="veriff").exists()
