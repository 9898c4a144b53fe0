"""A whole verification with each real vendor adapter against its fake server (SPEC 5), and the privacy invariants
checked on everything the broker kept or said (SPEC 3).

The fakes deliver their webhooks over HTTP to a relay, which hands the exact bytes and headers to the broker's
endpoint through the test client, in the test's thread: SQLite (this pass's database) cannot serve two threads at
once. The services pass delivers them straight to a live server on PostgreSQL with a Celery worker."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from attestations import services as attestation_services
from attestations.models import Attestation
from audit.models import AuditEvent
from broker.logging import JsonFormatter
from tests import images
from tests.verification.vendors.conftest import Control, Receiver
from verification.models import Evidence, FactRecord, VendorEvent, VerificationSession
from verification.vendors.base import PENDING_DELETION, DeletionState

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def relay(fake_vendors):
    receiver = Receiver()
    for fake in fake_vendors.values():
        fake.webhook_url = receiver.url
    receiver.forwarded = 0
    yield receiver
    receiver.stop()


def forward(client, relay, name) -> list[int]:
    """Deliver what the vendor sent since the last call to the broker's webhook endpoint, byte for byte."""
    statuses = []
    for headers, body in relay.received[relay.forwarded :]:
        keep = {k: v for k, v in headers.items() if k not in ("content-length", "host", "connection")}
        response = client.post(f"/webhooks/vendors/{name}", data=body, content_type="application/json", headers=keep)
        statuses.append(response.status_code)
    relay.forwarded = len(relay.received)
    return statuses


VENDORS = ["persona", "onfido", "stripe_identity", "veriff"]
PERSONAL_KEYS = re.compile(r"birth|dob|first|last|number|given|family|surname", re.I)


def personal_values(state) -> set[str]:
    """Every personal value the fake vendor holds for a session (names, birth dates, document numbers), in the
    spellings they could leak in: as given, and dates also as YYYY-MM-DD."""
    found: set[str] = set()

    def walk(node, key=""):
        if isinstance(node, dict):
            if {"day", "month", "year"} <= set(node) and PERSONAL_KEYS.search(key):
                found.add(f"{node['year']:04d}-{node['month']:02d}-{node['day']:02d}")
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and PERSONAL_KEYS.search(key) and len(node) >= 4 and node != "[redacted]":
            found.add(node)

    walk(state)
    return found


def _journey(client, relay, provider, fake, name, now):
    request, url = attestation_services.request_create(provider=provider, claims=["age_over_18"], now=now)
    client.get(url.replace("http://testserver", ""))
    response = client.post("/verify/consent", {"action": "continue"})
    session = VerificationSession.objects.get(request=request)
    assert session.vendor == name
    if name in ("persona", "stripe_identity"):  # vendor-hosted: straight to the vendor's page
        assert response.status_code == 302 and response["Location"].startswith(fake.url)
    else:  # broker-hosted: our capture pages, then the broker uploads
        assert response["Location"] == "/verify/document"
        photo = io.BytesIO(images.selfie_jpeg())
        photo.name = "selfie.jpg"
        document = io.BytesIO(images.document_png())
        document.name = "id.png"
        client.post("/verify/document", {"photo": document})
        client.post("/verify/selfie", {"photo": photo})
        session.refresh_from_db()
        assert session.status == "processing", session.status  # uploaded and submitted; the vendor has not decided
    forward(client, relay, name)  # e.g. Veriff's "submitted" event
    response = Control(fake.url).decide(session.vendor_session_id, "approved", webhook=True)
    assert response.status_code == 200, response.text
    statuses = forward(client, relay, name)
    assert statuses and set(statuses) == {200}, statuses
    if name in ("persona", "stripe_identity"):
        client.get("/verify/return")  # the vendor's page sent the user back
    session.refresh_from_db()
    request.refresh_from_db()
    return request, session


@pytest.mark.parametrize("name", VENDORS)
def test_a_verification_completes_through_each_vendor_and_keeps_nothing_personal(
    client, relay, acme, now, fake_vendors, signing_key, name, caplog, task_calls
):
    caplog.set_level(logging.DEBUG)
    acme.provider.vendor = name
    acme.provider.save()
    fake = fake_vendors[name]
    request, session = _journey(client, relay, acme.provider, fake, name, now)

    assert session.status == "approved" and request.status == "completed"
    assert Attestation.objects.filter(request=request).exists()
    assert FactRecord.objects.filter(session=session).exists()
    assert Evidence.objects.count() == 0 and session.wrapped_data_key is None
    assert session.vendor_deletion in (*PENDING_DELETION, DeletionState.DONE)
    assert AuditEvent.objects.filter(event="vendor.deletion_requested", refs__session=session.pk).exists()
    events = VendorEvent.objects.filter(vendor=name)
    assert events.exists() and all(e.processed_at for e in events)

    # Nothing the vendor knows about the person is in our logs, audit rows, ledger rows or task messages.
    # Onfido requires applicant names: ours are a placeholder and this session's own random id (the reference).
    personal = personal_values(fake.sessions[session.vendor_session_id]) - {session.pk}
    assert personal, "the fake holds personal data for this session (else this test proves nothing)"
    logs = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    audit = json.dumps(list(AuditEvent.objects.values("event", "refs")))
    ledger = json.dumps(list(events.values()), default=str)
    tasks = json.dumps(task_calls)
    for value in personal:
        for where, text in (("logs", logs), ("audit", audit), ("ledger", ledger), ("tasks", tasks)):
            assert value not in text, f"{value!r} leaked into {where}"
    assert all(isinstance(a, str | int) for _, args, _ in task_calls for a in args)


@pytest.mark.parametrize("name", VENDORS)
def test_webhook_endpoint_refuses_forgeries_and_acknowledges_duplicates(
    client, relay, acme, now, fake_vendors, signing_key, name
):
    acme.provider.vendor = name
    acme.provider.save()
    fake = fake_vendors[name]
    _journey(client, relay, acme.provider, fake, name, now)
    control = Control(fake.url)
    count = VendorEvent.objects.count()

    control.post("/webhooks/0/redeliver", {})
    assert forward(client, relay, name) == [200]  # a duplicate: 200, so the vendor stops retrying
    control.post("/webhooks/0/redeliver", {"tamper": True})
    assert forward(client, relay, name) == [401]
    control.post("/webhooks/0/redeliver", {"stale": True})
    # Body-only signatures (Onfido, Veriff) cannot tell a stale delivery: the dedupe ledger absorbs it.
    assert forward(client, relay, name) == [401 if name in ("persona", "stripe_identity") else 200]
    assert VendorEvent.objects.count() == count  # nothing new was recorded or processed

    too_big = client.post(f"/webhooks/vendors/{name}", data=b"x" * (300 * 1024), content_type="application/json")
    assert too_big.status_code == 413
    unsigned = client.post(f"/webhooks/vendors/{name}", data=b"{}", content_type="application/json")
    assert unsigned.status_code == 401
