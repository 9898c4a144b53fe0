"""Issue 10, item 13 (first part): admin sign-ins are for auditors, not for the public transparency log.

Before, every attempt was an `admin.signin` audit entry, so a public leaf: anyone watching the log could count
operators' sign-ins and failures, and time them. Now they are AdminSignIn rows that auditors read."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from audit.models import AdminSignIn, AuditEvent
from audit.transparency import tree_head_publish

pytestmark = pytest.mark.django_db

PASSWORD = "a long operator passphrase 7"
PUBLIC = (
    ("/transparency/tree-head", {}),
    ("/transparency/entries", {"start": 0, "end": 1000}),
    ("/transparency/proof/inclusion", {"index": 0, "tree_size": 1}),
    ("/transparency/proof/consistency", {"first": 1, "second": 1}),
)


def _public(client: Client) -> list[bytes]:
    return [client.get(path, query).content for path, query in PUBLIC]


def test_an_admin_sign_in_leaves_nothing_public_and_is_visible_to_an_auditor(
    auditor_client, signing_key, settings, now
):
    settings.IDBROKER_ADMIN_2FA = False  # password only: the sign-in itself is not what this test is about
    get_user_model().objects.create_superuser("night-operator", password=PASSWORD)
    tree_head_publish(now=now)
    outsider = Client()
    entries, before = AuditEvent.objects.count(), _public(outsider)

    operator = Client()
    assert operator.post("/admin/login/", {"username": "night-operator", "password": "wrong"}).status_code == 200
    assert operator.post("/admin/login/", {"username": "night-operator", "password": PASSWORD}).status_code == 302
    tree_head_publish(now=now + timedelta(minutes=1))  # beat's next minute: nothing new to sign

    assert AuditEvent.objects.count() == entries  # no leaf for either attempt
    assert _public(outsider) == before  # every public transparency answer is byte for byte the same
    for body in _public(outsider):
        assert b"signin" not in body and b"night-operator" not in body

    assert list(AdminSignIn.objects.order_by("pk").values_list("outcome", flat=True)) == ["failed", "ok"]
    listing = auditor_client.get("/admin/audit/adminsignin/")
    assert listing.status_code == 200
    assert listing.content.decode().count('class="field-outcome"') == 2
    html = auditor_client.get("/auditor/").content.decode()
    assert re.search(r'data-metric="signins.ok">1<', html) and re.search(r'data-metric="signins.failed">1<', html)
    assert auditor_client.get("/auditor/export.json").json()["admin_signins"]["ok"] == 1


def test_the_public_cannot_open_the_sign_in_records(client):
    AdminSignIn.objects.create(at=timezone.now(), outcome="failed")
    response = client.get("/admin/audit/adminsignin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
