"""Cross-device capture (SPEC 2.2 step 3): a one-time phone link continues the same verification, and the browser
that opens it can take photos and nothing else (issue 10 item 1: whoever phished the QR code must not get the
person's result, way back to the provider, facts or account)."""

import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts.models import Account, Passkey
from tests import images, journey
from tests.accounts.authenticator import SoftPasskey, register, sign_in
from verification.models import Handoff, VerificationSession

# No verification starts without a signing key (it could not issue), so every test here has one.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("signing_key")]
ORIGIN = "http://testserver"


def desktop_at_document(acme):
    trip = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(trip)
    return trip


def phone_path(page) -> str:
    text = page.content.decode()
    start = text.index("/verify/phone/")
    return text[start : text.index("<", start)].strip()


def shown_code(page) -> str:
    text = page.content.decode()
    start = text.index('id="handoff-code">') + len('id="handoff-code">')
    return text[start : text.index("<", start)]


def phone_takes_the_photos(phone, *, scenario="approved"):
    doc = phone.post(
        "/verify/on-phone/document",
        {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")},
    )
    assert doc.status_code == 302 and doc["Location"] == "/verify/on-phone/selfie", doc
    selfie = phone.post(
        "/verify/on-phone/selfie",
        {
            "photo": journey.SimpleUploadedFile("me.jpg", images.selfie_jpeg(), "image/jpeg"),
            "dev_scenario": scenario,
        },
    )
    assert selfie.status_code == 302 and selfie["Location"] == "/verify/on-phone/done", selfie
    return selfie


def test_the_phone_takes_the_photos_and_the_desktop_follows(acme, signing_key):
    trip = desktop_at_document(acme)
    page = trip.browser.get("/verify/handoff")
    assert page.status_code == 200 and b"<svg" in page.content
    phone = Client()
    joined = phone.get(phone_path(page))
    assert joined.status_code == 302 and joined["Location"] == "/verify/on-phone/document"
    doc = phone.post(
        "/verify/on-phone/document",
        {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")},
    )
    assert doc["Location"] == "/verify/on-phone/selfie"
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/selfie"  # the desktop sees progress
    phone.post(
        "/verify/on-phone/selfie", {"photo": journey.SimpleUploadedFile("me.jpg", images.selfie_jpeg(), "image/jpeg")}
    )
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/result"
    assert b"You're verified" in trip.browser.get("/verify/result").content


def test_both_devices_show_the_provider_and_the_same_short_code(acme):
    trip = desktop_at_document(acme)
    page = trip.browser.get("/verify/handoff")
    code = shown_code(page)
    assert len(code) == 7 and code[3] == "-" and "Acme AI" in page.content.decode()
    phone = Client()
    phone.get(phone_path(page))
    on_phone = phone.get("/verify/on-phone/document").content.decode()
    assert code in on_phone and "Acme AI" in on_phone
    assert "Continue on your phone" not in on_phone  # a phone does not hand off again
    # The computer names the phone that joined, so a person can tell a phone they do not know.
    assert trip.browser.get("/verify/status").json()["phone"] == {"code": code}


def test_a_phone_link_browser_never_gets_the_result_the_way_back_or_an_account(acme, signing_key):
    """The attack: someone who scanned (or phished) the QR code waits for the verification to finish, then tries
    to see the result, take the code back to the provider, fetch the receipt, or attach a passkey."""
    trip = desktop_at_document(acme)
    phone = Client()
    phone.get(phone_path(trip.browser.get("/verify/handoff")))
    phone_takes_the_photos(phone)
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/result"

    done = phone.get("/verify/on-phone/done")
    assert done.status_code == 200 and b"go back to your computer" in done.content
    assert b"verified" not in done.content.lower()  # the phone never learns the outcome
    for path in ("/verify/result", "/verify/continue", "/verify/receipt", "/verify/consent", "/verify/waiting"):
        response = phone.get(path)
        assert response.status_code == 404, path
        assert b"No verification in progress" in response.content or b"No receipt yet" in response.content
    assert phone.get("/verify/status").status_code == 404
    assert phone.get("/verify/on-phone/document")["Location"] == "/verify/on-phone/done"  # photos are in
    refused = phone.post("/account/passkeys/options", content_type="application/json", data="{}")
    assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    made = register(phone, SoftPasskey(origin=ORIGIN))
    assert made.status_code == 403
    assert Account.objects.count() == 0

    # The person at the computer still has everything.
    assert b"You're verified" in trip.browser.get("/verify/result").content
    assert register(trip.browser, SoftPasskey(origin=ORIGIN)).status_code == 200
    assert Account.objects.count() == 1


def test_a_phone_cannot_add_photos_after_they_were_submitted_or_after_its_window(acme, now):
    trip = desktop_at_document(acme)
    phone = Client()
    phone.get(phone_path(trip.browser.get("/verify/handoff")))
    Handoff.objects.update(used_at=now - timedelta(minutes=31))
    assert phone.get("/verify/on-phone/document")["Location"] == "/verify/on-phone/done"
    late = phone.post(
        "/verify/on-phone/document",
        {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")},
    )
    assert late.status_code == 302 and late["Location"] == "/verify/on-phone/done"
    assert not VerificationSession.objects.get().evidence.exists()


def test_a_phone_grant_ends_with_the_photos_even_when_a_retry_reopens_the_verification(acme):
    """A retry sends the verification back to "take photos": the phone that took the first ones (or whoever held
    the QR code) must not be able to take the new ones; the person at the computer gets a fresh code."""
    trip = desktop_at_document(acme)
    phone = Client()
    phone.get(phone_path(trip.browser.get("/verify/handoff")))
    phone_takes_the_photos(phone, scenario="retry")
    assert trip.browser.get("/verify/status").json()["next"] == "/verify/document"  # the vendor asked for a retake
    session = VerificationSession.objects.get()
    assert session.status == VerificationSession.Status.STARTED and session.retry_hint

    assert phone.get("/verify/on-phone/document")["Location"] == "/verify/on-phone/done"
    late = phone.post(
        "/verify/on-phone/document",
        {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")},
    )
    assert late.status_code == 302 and late["Location"] == "/verify/on-phone/done"
    assert not session.evidence.exists()
    assert "phone" not in trip.browser.get("/verify/status").json()  # no phone is taking photos now
    again = Client()
    assert again.get(phone_path(trip.browser.get("/verify/handoff")))["Location"] == "/verify/on-phone/document"


def _document_from(browser, path="/verify/on-phone/document"):
    return browser.post(path, {"photo": journey.SimpleUploadedFile("id.png", images.document_png(), "image/png")})


def test_only_the_phone_the_computer_names_can_take_photos(acme):
    """The attack: someone opens a phished QR code first; the person sees a code that is not their phone's, shows a
    new code and scans it with their own phone. The computer now names the person's phone, so the first phone must
    have lost its grant: it used to keep uploading (and could replace the person's photos) unseen."""
    trip = desktop_at_document(acme)
    attacker = Client()
    attacker.get(phone_path(trip.browser.get("/verify/handoff")))
    attacker_code = trip.browser.get("/verify/status").json()["phone"]["code"]

    page = trip.browser.get("/verify/handoff")
    own = Client()
    own.get(phone_path(page))
    assert trip.browser.get("/verify/status").json()["phone"] == {"code": shown_code(page)} != attacker_code

    refused = _document_from(attacker)
    assert refused.status_code == 302 and refused["Location"] == "/verify/on-phone/done"
    assert not VerificationSession.objects.get().evidence.exists()
    phone_takes_the_photos(own)
    assert b"You're verified" in trip.browser.get("/verify/result").content


def test_taking_the_photos_on_the_computer_instead_ends_every_phone_grant(acme):
    """The hand-off page says: not your phone? Take the photos on this computer instead. Doing so must cut that
    phone off, or it could still replace the photos until they are submitted."""
    trip = desktop_at_document(acme)
    stranger = Client()
    stranger.get(phone_path(trip.browser.get("/verify/handoff")))
    assert "phone" in trip.browser.get("/verify/status").json()

    assert _document_from(trip.browser, "/verify/document")["Location"] == "/verify/selfie"
    assert "phone" not in trip.browser.get("/verify/status").json()
    assert stranger.get("/verify/on-phone/document")["Location"] == "/verify/on-phone/done"
    assert _document_from(stranger)["Location"] == "/verify/on-phone/done"
    stored = VerificationSession.objects.get().evidence.get()
    assert (
        stranger.post(
            "/verify/on-phone/selfie",
            {"photo": journey.SimpleUploadedFile("me.jpg", images.selfie_jpeg(), "image/jpeg")},
        )["Location"]
        == "/verify/on-phone/done"
    )
    assert list(VerificationSession.objects.get().evidence.all()) == [stored]  # the computer's photo, alone


def test_an_account_is_made_once_per_verification_by_the_browser_that_opened_the_link(acme, signing_key):
    trip, _ = journey.complete(acme, ["age_over_18"])
    assert b"Create a passkey" in trip.browser.get("/verify/result").content
    first = SoftPasskey(origin=ORIGIN)
    assert register(trip.browser, first).status_code == 200
    account = Account.objects.get()
    assert b"Create a passkey" not in trip.browser.get("/verify/result").content

    # Signed out, the same browser (or anyone who got hold of its cookie) cannot attach another passkey through
    # the verification: that needs the account.
    session = trip.browser.session
    session.pop("idb_account")
    session.save()
    second = register(trip.browser, SoftPasskey(origin=ORIGIN))
    assert second.status_code == 403
    assert Passkey.objects.filter(account=account).count() == 1

    # Deleting the account does not let the verification make a new one.
    assert sign_in(trip.browser, first).status_code == 200
    trip.browser.post("/account/delete", {"confirm": "yes"})
    assert Account.objects.count() == 0
    journey_browser = trip.browser
    session = journey_browser.session
    session["idb_request"] = trip.request_id
    session.save()
    assert register(journey_browser, SoftPasskey(origin=ORIGIN)).status_code == 403
    assert Account.objects.count() == 0


def test_adding_a_passkey_needs_a_recent_sign_in_with_user_verification(acme, signing_key):
    trip, _ = journey.complete(acme, ["age_over_18"])
    first = SoftPasskey(origin=ORIGIN)
    assert register(trip.browser, first).status_code == 200
    assert register(trip.browser, SoftPasskey(origin=ORIGIN)).status_code == 200  # just proved: may add
    assert Passkey.objects.count() == 2

    session = trip.browser.session
    session["idb_uv_at"] = int(time.time()) - 3600  # a signed-in browser left open for an hour
    session.save()
    stale = register(trip.browser, SoftPasskey(origin=ORIGIN))
    assert stale.status_code == 403 and "Sign in again" in stale.json()["detail"]
    assert Passkey.objects.count() == 2

    # A sign-in without user verification (a key without PIN or biometrics) is refused outright.
    other = Client()
    first.user_verified = False
    refused = sign_in(other, first)
    assert refused.status_code == 400 and "idb_account" not in other.session
    first.user_verified = True
    assert sign_in(other, first).status_code == 200
    assert register(other, SoftPasskey(origin=ORIGIN)).status_code == 200
    assert Passkey.objects.count() == 3


def test_a_passkey_made_without_user_verification_is_refused(acme, signing_key):
    trip, _ = journey.complete(acme, ["age_over_18"])
    refused = register(trip.browser, SoftPasskey(origin=ORIGIN, user_verified=False))
    assert refused.status_code == 400
    assert Account.objects.count() == 0
    assert VerificationSession.objects.get().account_claimed_at is None  # nothing spent: the person may retry
    assert register(trip.browser, SoftPasskey(origin=ORIGIN)).status_code == 200


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
