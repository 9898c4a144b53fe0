"""SPEC 3.2/3.3 tested directly: after full journeys, look everywhere a personal fact or evidence byte could leak.

The dev vendor's approved persona was born on 1990-04-12 and holds a German passport; the uploaded images carry a
canary string in their metadata. None of it may appear in logs, task arguments, API responses, pages, admin pages,
audit rows or the token.
"""

import json
import logging
import re

import pytest
from django.contrib.admin.sites import site
from django.contrib.admin.utils import quote
from django.urls import reverse

from audit.models import AuditEvent
from broker.logging import JsonFormatter
from tests import images, journey

pytestmark = pytest.mark.django_db(transaction=True)

FACT_MARKERS = ["1990-04-12", "19900412", "12.04.1990", "1990/04/12", images.CANARY]
ID_ARG = re.compile(r"^vs_[A-Za-z0-9_-]{16,}$")


def assert_clean(text: str, where: str):
    for marker in FACT_MARKERS:
        assert marker not in text, f"{marker!r} leaked into {where}"


def test_nothing_personal_leaks_anywhere_after_journeys(acme, signing_key, caplog, task_calls, admin_client):
    caplog.set_level(logging.DEBUG)
    outcomes = {}
    for scenario in ("approved", "declined", "approved_minor"):
        trip, final = journey.complete(acme, ["age_over_18", "eligible_jurisdiction"], scenario=scenario)
        outcomes[scenario] = final
        for response in trip.responses:
            assert_clean(response.content.decode(errors="replace"), f"response to {response.request['PATH_INFO']}")

    # Logs, formatted as production formats them.
    formatter = JsonFormatter()
    assert_clean("\n".join(formatter.format(r) for r in caplog.records), "logs")

    # Task arguments: ids only, never bytes or facts.
    invoked = task_calls
    assert {name for name, *_ in invoked} >= {
        "verification.tasks.submit_session",
        "verification.tasks.delete_vendor_copy",
    }
    for name, args, kwargs in invoked:
        assert not kwargs and len(args) == 1 and ID_ARG.match(args[0]), (name, args, kwargs)

    # Audit rows hold event types, random ids and times.
    for row in AuditEvent.objects.all():
        assert_clean(json.dumps(row.refs), "audit log")
        assert all(isinstance(v, str) and len(v) < 80 for v in row.refs.values())

    # Every admin changelist and change page.
    for model in site._registry:
        meta = model._meta
        changelist = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200
        assert_clean(changelist.content.decode(), f"admin {meta.model_name} list")
        for pk in model.objects.values_list("pk", flat=True)[:5]:
            # Admin URLs escape primary keys (`_` is its escape character: "vs_3A…" must be quoted, or it is read
            # as ":"), as the admin's own links do.
            page = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[quote(pk)]))
            assert page.status_code == 200
            text = page.content.decode()
            assert_clean(text, f"admin {meta.model_name} page")
            assert "idb_" not in text or "_…" in text  # API keys show their prefix only

    # The token: only what was asked, no vendor, no session, no country.
    token_payload = json.loads(
        __import__("base64").urlsafe_b64decode(outcomes["approved"]["attestation"].split(".")[1] + "==")
    )
    assert_clean(json.dumps(token_payload), "token")
    for value in map(json.dumps, token_payload.values()):
        assert '"DE"' not in value and "dev" not in value and "vs_" not in value


def test_admin_shows_no_plaintext_api_key(acme, admin_client):
    page = admin_client.get(reverse("admin:attestations_provider_change", args=[acme.provider.pk]))
    assert page.status_code == 200
    assert acme.api_key not in page.content.decode()
    assert acme.api_key.split("_", 2)[2] not in page.content.decode()  # the secret part (it may contain "_")
