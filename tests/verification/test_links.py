"""The verification link (`/verify/<secret>`): one browser only, never after expiry, never a restart after the end."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from attestations.models import VerificationRequest
from tests import images, journey
from verification.models import Evidence, VerificationSession

pytestmark = pytest.mark.django_db

NO_JOURNEY = "No verification in progress"
STEPS = ["/verify/", "/verify/consent", "/verify/document", "/verify/selfie", "/verify/waiting", "/verify/result"]


def _text(response) -> str:
    return response.content.decode()


def test_a_second_browser_replaying_the_link_gets_410_and_nothing_about_the_user(acme):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    session = VerificationSession.objects.get()

    intruder = Client()
    replay = intruder.get(trip.link_path)
    assert replay.status_code == 410
    text = _text(replay)
    assert "This link was already used" in text
    for secret in (
        trip.request_id,
        session.id,
        session.subject,
        session.vendor_session_id,
        acme.provider.name,
        acme.client_id,
        "document",
        "selfie",
    ):
        assert secret not in text
    # The intruder's browser is not bound to the request: every step says there is nothing to continue.
    for path in STEPS:
        page = intruder.get(path)
        assert page.status_code == 404 and NO_JOURNEY in _text(page), path
    photo = SimpleUploadedFile("me.jpg", images.selfie_jpeg(), content_type="image/jpeg")
    upload = intruder.post("/verify/selfie", {"photo": photo})
    assert upload.status_code == 404
    assert list(Evidence.objects.values_list("kind", flat=True)) == ["document_front"]
    # ... and the rightful browser carries on where it was.
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/selfie"


def test_the_same_browser_reopening_the_link_goes_to_its_current_step(acme):
    trip = journey.start(acme, ["age_over_18"])
    first = trip.browser.get(trip.link_path)
    assert first.status_code == 302 and first["Location"] == "/verify/consent"
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/consent"
    trip.browser.post("/verify/consent", {"action": "continue"})
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/document"
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    again = trip.browser.get(trip.link_path)
    assert again.status_code == 302 and again["Location"] == "/verify/selfie"
    assert trip.link_path.rsplit("/", 1)[1] not in again["Location"]  # the secret stays out of page URLs


def test_opening_the_link_starts_a_fresh_browser_session(acme):
    trip = journey.start(acme, ["age_over_18"])
    trip.browser.get("/verify/")  # any earlier session cookie (session fixation)
    trip.browser.session.save()
    before = trip.browser.session.session_key
    trip.browser.get(trip.link_path)
    assert trip.browser.session.session_key != before
    assert trip.browser.get("/verify/consent").status_code == 200


def test_an_unknown_link_is_404(client, acme):
    journey.start(acme, ["age_over_18"])
    response = client.get("/verify/" + "A" * 43)
    assert response.status_code == 404
    assert "This link is not valid" in _text(response)
    assert VerificationRequest.objects.get().link_opened_at is None


def test_an_expired_request_link_is_410_and_binds_nothing(acme, now):
    trip = journey.start(acme, ["age_over_18"])
    VerificationRequest.objects.filter(pk=trip.request_id).update(expires_at=now - timedelta(seconds=1))
    response = trip.browser.get(trip.link_path)
    assert response.status_code == 410
    assert "This link has expired" in _text(response)
    assert VerificationRequest.objects.get(pk=trip.request_id).link_opened_at is None
    assert trip.browser.get("/verify/consent").status_code == 404


def test_a_request_that_expires_after_opening_cannot_be_started(acme, now):
    trip = journey.start(acme, ["age_over_18"])
    trip.browser.get(trip.link_path)
    VerificationRequest.objects.filter(pk=trip.request_id).update(expires_at=now - timedelta(seconds=1))
    assert trip.browser.get(trip.link_path).status_code == 410
    response = trip.browser.post("/verify/consent", {"action": "continue"})
    assert response.status_code == 409 and "This request is no longer open." in _text(response)
    assert not VerificationSession.objects.exists()


@pytest.mark.parametrize("path", STEPS)
def test_a_step_visited_without_a_session_says_no_verification_in_progress(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert NO_JOURNEY in _text(response)
    assert "Open the link you were given" in _text(response)


@pytest.mark.parametrize("path", ["/verify/consent", "/verify/document", "/verify/selfie"])
def test_a_post_without_a_session_changes_nothing(client, acme, path):
    journey.start(acme, ["age_over_18"])
    photo = SimpleUploadedFile("id.png", images.document_png(), content_type="image/png")
    response = client.post(path, {"action": "continue", "photo": photo})
    assert response.status_code == 404 and NO_JOURNEY in _text(response)
    assert not VerificationSession.objects.exists() and not Evidence.objects.exists()


def test_the_status_poll_without_a_session_says_gone(client):
    response = client.get("/verify/status")
    assert response.status_code == 404 and response.json() == {"state": "gone"}


@pytest.mark.django_db(transaction=True)
def test_after_completion_the_link_cannot_restart_anything(acme, signing_key):
    trip, final = journey.complete(acme, ["age_over_18"])
    assert final["status"] == "completed"
    request = VerificationRequest.objects.get(pk=trip.request_id)
    session = VerificationSession.objects.get()

    assert trip.browser.get(trip.link_path)["Location"] == "/verify/result"
    replay = Client().get(trip.link_path)
    assert replay.status_code == 410 and "This link was already used" in _text(replay)

    # Every way back into the journey lands on the result, and changes nothing.
    assert trip.browser.post("/verify/consent", {"action": "continue"})["Location"] == "/verify/result"
    assert trip.browser.post("/verify/consent", {"action": "decline"})["Location"] == "/verify/result"
    for step, data, content_type in (
        ("document", images.document_png(), "image/png"),
        ("selfie", images.selfie_jpeg(), "image/jpeg"),
    ):
        response = journey.upload(trip, step, data, "photo", content_type, dev_scenario="declined")
        assert response.status_code == 302 and response["Location"] == "/verify/result"
    assert trip.browser.get("/verify/waiting")["Location"] == "/verify/result"

    assert VerificationSession.objects.count() == 1 and not Evidence.objects.exists()
    after = VerificationRequest.objects.get(pk=trip.request_id)
    assert (after.status, after.token, after.completed_at) == (request.status, request.token, request.completed_at)
    session.refresh_from_db()
    assert session.status == "approved" and session.attempts == 1 and session.wrapped_data_key is None


def test_after_the_user_declines_the_link_cannot_start_a_verification(acme):
    trip = journey.start(acme, ["age_over_18"])
    trip.browser.get(trip.link_path)
    trip.browser.post("/verify/consent", {"action": "decline"})
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/result"
    assert trip.browser.post("/verify/consent", {"action": "continue"})["Location"] == "/verify/result"
    assert trip.browser.post("/verify/document", {})["Location"] == "/verify/result"
    assert not VerificationSession.objects.exists()
    assert VerificationRequest.objects.get(pk=trip.request_id).status == "canceled"
