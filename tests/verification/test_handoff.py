"""Cross-device capture (SPEC 2.2 step 3): a one-time phone link continues the same verification."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests import images, journey
from verification.models import Handoff

pytestmark = pytest.mark.django_db(transaction=True)


def desktop_at_document(acme):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    return trip


def phone_path(page) -> str:
    text = page.content.decode()
    start = text.index("/verify/phone/")
    return text[start : text.index("<", start)].strip()


def test_the_phone_takes_the_photos_and_the_desktop_follows(acme, signing_key):
    trip = desktop_at_document(acme)
    page = trip.browser.get("/verify/handoff")
    assert page.status_code == 200 and b"<svg" in page.content
    phone = Client()
    joined = phone.get(phone_path(page))
    assert joined.status_code == 302 and joined["Location"] == "/verify/document"
    doc = phone.post(
        "/verify/document", {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")}
    )
    assert doc["Location"] == "/verify/selfie"
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/selfie"  # the desktop sees progress
    phone.post("/verify/selfie", {"photo": journey.SimpleUploadedFile("me.jpg", images.selfie_jpeg(), "image/jpeg")})
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/result"
    assert b"You're verified" in trip.browser.get("/verify/result").content


def test_a_phone_link_works_once(acme):
    trip = desktop_at_document(acme)
    path = phone_path(trip.browser.get("/verify/handoff"))
    assert Client().get(path).status_code == 302
    replay = Client().get(path)
    assert replay.status_code == 410 and b"already used" in replay.content


def test_a_phone_link_expires_and_a_new_code_replaces_the_old(acme, now):
    trip = desktop_at_document(acme)
    first = phone_path(trip.browser.get("/verify/handoff"))
    second = phone_path(trip.browser.get("/verify/handoff"))
    assert Client().get(first).status_code == 410  # superseded
    Handoff.objects.update(expires_at=now - timedelta(seconds=1))
    assert Client().get(second).status_code == 410


def test_the_phone_page_shows_nothing_about_the_user_and_the_link_is_not_logged(acme, caplog):
    trip = desktop_at_document(acme)
    path = phone_path(trip.browser.get("/verify/handoff"))
    token = urlsplit(path).path.rsplit("/", 1)[1]
    bogus = Client().get(path + "x")
    assert bogus.status_code == 410
    from broker.logging import JsonFormatter

    assert token not in "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert Handoff.objects.filter(token_hash=token).count() == 0  # stored hashed


def test_no_phone_link_once_the_photos_are_submitted(acme, signing_key):
    trip, _ = journey.complete(acme, ["age_over_18"])
    assert trip.browser.get("/verify/handoff")["Location"] == "/verify/result"
