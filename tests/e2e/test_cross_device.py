"""Cross-device capture in Chromium: a desktop without a camera hands off to a phone by QR code, the phone takes
the photos (the selfie with the fake camera), and the desktop page follows along to the result."""

import re

import pytest
from django.core.management import call_command

from tests import images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_desktop_hands_off_to_a_phone_and_follows_along(browser, public_url, artifacts, tmp_path, settings):
    settings.IDBROKER_DEV_VENDOR_DELAY_SECONDS = 1
    settings.IDBROKER_RESULT_POLL_SECONDS = 1
    call_command("load_demo")
    document = tmp_path / "id.png"
    document.write_bytes(images.document_png())
    desktop_ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        desktop = desktop_ctx.new_page()
        desktop.goto(f"{public_url}/")
        desktop.get_by_role("button", name="Verify with idbroker").click()
        desktop.get_by_role("button", name="Continue").click()
        desktop.wait_for_url("**/verify/document")
        desktop.get_by_role("link", name="No camera here? Continue on your phone").click()
        desktop.wait_for_url("**/verify/handoff")
        assert desktop.locator(".qr svg").is_visible()
        desktop.screenshot(path=artifacts / "handoff-desktop.png", full_page=True)
        shown = desktop.locator("details code").text_content()
        link = re.search(r"http\S+/verify/phone/[A-Za-z0-9_-]+", shown).group(0)
        code = desktop.locator("#handoff-code").text_content()

        phone = phone_ctx.new_page()
        phone.goto(link)
        phone.wait_for_url("**/verify/on-phone/document")
        # Both devices show the provider and the same code; the phone offers no further hand-off.
        assert phone.get_by_role("note").filter(has_text=code).filter(has_text="Acme AI").is_visible()
        assert phone.get_by_role("link", name="No camera here? Continue on your phone").count() == 0
        phone.screenshot(path=artifacts / "handoff-phone-document.png", full_page=True)
        desktop.get_by_text(f"A phone with the code {code} is taking the photos").wait_for(timeout=15000)
        phone.get_by_label("Choose or take a photo of your ID").set_input_files(str(document))
        phone.get_by_role("button", name="Continue").click()
        phone.wait_for_url("**/verify/on-phone/selfie")
        phone.get_by_role("button", name="Use camera").click()
        phone.wait_for_function("() => document.querySelector('.camera video').videoWidth > 0", timeout=15000)
        phone.get_by_role("button", name="Take photo").click()
        phone.wait_for_function("() => document.querySelector('#photo').files.length === 1")
        phone.get_by_role("button", name="Submit for checking").click()
        phone.wait_for_url("**/verify/on-phone/done", timeout=30000)
        phone.screenshot(path=artifacts / "handoff-phone-done.png", full_page=True)
        # The phone is only a camera: no result, no way to the provider, no passkey.
        assert phone.get_by_role("heading", name="Done: go back to your computer").is_visible()
        assert phone.get_by_role("button", name="Create a passkey").count() == 0
        assert phone.goto(f"{public_url}/verify/result").status == 404

        # The desktop page moved on by itself and can take the user back to the provider.
        desktop.wait_for_url("**/verify/result", timeout=30000)
        assert desktop.get_by_role("heading", name="You're verified").is_visible()
        desktop.get_by_role("link", name="Continue to Acme AI").click()
        desktop.wait_for_url("**/demo/return**")
        assert desktop.get_by_role("heading", name="Welcome to Acme AI").is_visible()

        # The phone link was single use.
        replay = phone_ctx.new_page()
        response = replay.goto(link)
        assert response.status == 410
    finally:
        desktop_ctx.close()
        phone_ctx.close()
