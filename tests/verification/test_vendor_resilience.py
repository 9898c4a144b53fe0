"""What the broker does when a vendor call is retried, a decision is stale, or the user leaves a vendor's page early
(issue 5, found in review): each case against the vendor's fake server, through the real services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.verification.support import open_session, store_both
from tests.verification.vendors.conftest import Control
from verification import services
from verification.models import Evidence, VerificationSession
from verification.vendors.base import WebhookRejected, get_vendor

pytestmark = pytest.mark.django_db(transaction=True)


def _uploads(fake) -> int:
    return len([r for r in fake.requests if r["path"].endswith(("/documents", "/live_photos", "/media"))])


@pytest.mark.parametrize("name", ["onfido", "veriff"])
def test_a_retried_submit_task_sends_no_photo_twice_and_does_not_fail(acme, now, fake_vendors, settings, name):
    settings.IDBROKER_VENDOR = name
    opened = open_session(acme.provider, now=now)
    store_both(opened, now=now)
    VerificationSession.objects.filter(pk=opened.session.pk).update(status="submitted", submitted_at=now)
    assert services.session_process(session_id=opened.session.pk, now=now) == "pending"
    assert _uploads(fake_vendors[name]) == 2
    # The task's acknowledgement was lost: Celery runs it again on a session the vendor already has.
    VerificationSession.objects.filter(pk=opened.session.pk).update(status="submitted")
    assert services.session_process(session_id=opened.session.pk, now=now) == "pending"
    assert _uploads(fake_vendors[name]) == 2
    assert opened.refresh().session.status == "processing"


def test_photos_destroyed_while_the_vendor_was_down_fail_the_session_cleanly(acme, now, fake_vendors, settings):
    settings.IDBROKER_VENDOR = "onfido"
    opened = open_session(acme.provider, now=now)
    store_both(opened, now=now)
    VerificationSession.objects.filter(pk=opened.session.pk).update(status="submitted", submitted_at=now)
    services.purge_expired(now=now + timedelta(hours=2))  # past the evidence deadline
    assert Evidence.objects.count() == 0
    assert services.session_process(session_id=opened.session.pk, now=now + timedelta(hours=2)) == "failed"
    assert _uploads(fake_vendors["onfido"]) == 0


def test_a_previous_decision_shown_again_is_not_acted_on_twice(acme, now, fake_vendors, settings, signing_key):
    """Veriff's /decision keeps answering `resubmission_requested` until it decides the new attempt."""
    settings.IDBROKER_VENDOR = "veriff"
    control = Control(fake_vendors["veriff"].url)
    opened = open_session(acme.provider, now=now)
    store_both(opened, now=now)
    services.session_submit(session=opened.session, now=now)
    control.decide(opened.session.vendor_session_id, "retry", webhook=False)
    assert services.result_fetch(session_id=opened.session.pk, now=now) == "retry"
    assert opened.refresh().session.attempts == 2

    store_both(opened, now=now)  # new photos, submitted again
    services.session_submit(session=opened.refresh().session, now=now)
    session = opened.refresh().session
    assert session.status == "processing" and session.attempts == 2  # the old decision did not count again

    control.decide(session.vendor_session_id, "approved", webhook=False)
    assert services.result_fetch(session_id=session.pk, now=now) == "approved"


def test_coming_back_from_a_vendor_page_unfinished_returns_to_that_page(client, acme, now, fake_vendors, settings):
    from attestations import services as attestation_services

    settings.IDBROKER_VENDOR = "stripe_identity"
    request, url = attestation_services.request_create(provider=acme.provider, claims=["age_over_18"], now=now)
    client.get(url.replace("http://testserver", ""))
    client.post("/verify/consent", {"action": "continue"})
    back = client.get("/verify/return")  # the user pressed "back to site" without finishing at Stripe
    assert back["Location"] == "/verify/hosted"
    session = VerificationSession.objects.get(request=request)
    request.refresh_from_db()
    assert session.status == "started" and request.status == "pending"
    page = client.get("/verify/hosted")
    assert b"Continue to our partner" in page.content
    onward = client.post("/verify/hosted")
    assert onward.status_code == 302 and onward["Location"].startswith(fake_vendors["stripe_identity"].url)


def test_a_huge_persona_timestamp_is_a_rejected_webhook_not_a_crash(fake_vendors):
    header = "t=" + "9" * 5000 + ",v1=" + "a" * 64
    with pytest.raises(WebhookRejected):
        get_vendor("persona").verify_webhook(headers={"persona-signature": header}, body=b"{}", now=None)
