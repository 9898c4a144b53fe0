"""Passkey accounts in Chromium with the DevTools virtual authenticator (SPEC 2.3)."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import Account, Passkey
from attestations.models import Attestation
from audit.services import audit_verify
from tests import images
from verification.models import FactRecord, VerificationSession

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSKEY_ROWS = "document.querySelectorAll('table[aria-label=\"Your passkeys\"] tr').length"
VIRTUAL = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def verify_in_browser(page, base, tmp_path):
    document, selfie = tmp_path / "id.png", tmp_path / "me.jpg"
    document.write_bytes(images.document_png())
    selfie.write_bytes(images.selfie_jpeg())
    page.goto(f"{base}/")
    page.get_by_role("button", name="Verify with idbroker").click()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Choose or take a photo of your ID").set_input_files(str(document))
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Or upload a selfie").set_input_files(str(selfie))
    page.get_by_role("button", name="Submit for checking").click()
    page.wait_for_url("**/verify/result", timeout=30000)


def test_create_a_passkey_sign_out_and_sign_in_again(browser, public_url, tmp_path, artifacts):
    call_command("load_demo")
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": VIRTUAL},
    )["authenticatorId"]
    try:
        verify_in_browser(page, public_url, tmp_path)
        page.get_by_role("button", name="Create a passkey").click()
        page.get_by_text("Your passkey is ready").wait_for(timeout=15000)
        page.screenshot(path=artifacts / "passkey-created.png", full_page=True)
        account = Account.objects.get()
        assert account.subject == VerificationSession.objects.get().subject
        assert Passkey.objects.filter(account=account).count() == 1
        assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]) == 1
        # The way back to the provider is still there.
        assert page.get_by_role("link", name="Continue to Acme AI").is_visible()

        page.goto(f"{public_url}/account/")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/account/signin")
        page.goto(f"{public_url}/account/")
        page.wait_for_url("**/account/signin")  # signed out really means signed out

        page.get_by_role("button", name="Sign in with a passkey").click()
        page.wait_for_url("**/account/", timeout=15000)
        assert page.get_by_role("heading", name="Your idbroker account").is_visible()
        assert Passkey.objects.get().last_used_at is not None

        # Several passkeys (a second device: the first one already holds a passkey for this account and the
        # browser refuses to make a duplicate); the last one cannot be removed.
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL})
        page.get_by_role("button", name="Add another passkey").click()
        page.wait_for_function("() => " + PASSKEY_ROWS + " === 3", timeout=15000)
        assert Passkey.objects.count() == 2
        page.screenshot(path=artifacts / "passkey-account.png", full_page=True)
        page.get_by_role("button", name="Remove passkey").first.click()
        page.wait_for_function("() => " + PASSKEY_ROWS + " === 2")
        page.get_by_role("button", name="Remove passkey").click()
        assert "only passkey" in page.get_by_role("alert").inner_text()
        assert Passkey.objects.count() == 1

        # Verify once, reuse: another provider asks; the signed-in person approves in one click, no photos.
        from django.utils import timezone

        from attestations.services import provider_create, request_create

        other, _ = provider_create(
            name="Globex Chat",
            redirect_uris=["https://globex.example/back"],
            claims=["age_over_18"],
            now=timezone.now(),
        )
        _, link = request_create(provider=other, claims=["age_over_18"], now=timezone.now())
        page.goto(link)
        page.wait_for_url("**/verify/consent")
        assert page.get_by_text("No new photos needed").is_visible()
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url("**/verify/result")
        assert page.get_by_text("No new photos were needed").is_visible()
        page.screenshot(path=artifacts / "reuse-result.png", full_page=True)
        assert VerificationSession.objects.count() == 1

        # The person's own page: revoke one share, download, delete everything.
        page.goto(f"{public_url}/account/")
        assert page.get_by_role("cell", name="Globex Chat", exact=True).is_visible()
        page.get_by_role("button", name="Revoke what Globex Chat received").click()
        page.wait_for_url("**/account/")
        assert page.get_by_role("button", name="Revoke what Globex Chat received").count() == 0
        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data (JSON)").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert {s["provider"] for s in exported["shares"]} == {"Acme AI", "Globex Chat"}
        page.screenshot(path=artifacts / "my-data.png", full_page=True)
        page.get_by_label("I understand").check()
        page.get_by_role("button", name="Delete everything").click()
        assert page.get_by_role("heading", name="Everything is deleted").is_visible()
        assert not Account.objects.exists() and not Passkey.objects.exists()
        assert not FactRecord.objects.filter(sealed__isnull=False).exists()
        assert not Attestation.objects.filter(revoked_at__isnull=True).exists()
        assert audit_verify().ok
    finally:
        context.close()


def test_an_unknown_passkey_cannot_sign_in_and_registration_needs_a_verification(browser, public_url):
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": VIRTUAL},
    )
    try:
        page.goto(f"{public_url}/account/signin")
        page.get_by_role("button", name="Sign in with a passkey").click()
        status = page.locator("#passkey-status")
        page.wait_for_function("() => document.querySelector('#passkey-status').textContent.length > 40", timeout=15000)
        assert "not known here" in status.inner_text() or "not allowed" in status.inner_text().lower()
        response = page.request.post(f"{public_url}/account/passkeys/options")
        assert response.status == 403
        assert not Account.objects.exists()
    finally:
        context.close()
