"""Accessibility basics in the real browser: keyboard-only use, labelled controls, errors announced."""

import pytest
from django.core.management import call_command

from tests import images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.outerHTML)"""


def test_the_journey_works_from_the_keyboard_with_labelled_controls(browser, public_url, tmp_path, artifacts):
    call_command("load_demo")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{public_url}/")
        page.keyboard.press("Tab")  # skip link first
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_role("button", name="Verify with idbroker").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/verify/consent")
        assert page.evaluate("document.documentElement.lang") == "en"
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/verify/document")
        assert page.evaluate(UNLABELLED) == []

        # A wrong file is refused with a sentence that is announced (role=alert) and tied to the input.
        bad = tmp_path / "notes.txt"
        bad.write_text("not a photo")
        page.get_by_label("Choose or take a photo of your ID").set_input_files(str(bad))
        page.get_by_role("button", name="Continue").click()
        alert = page.get_by_role("alert")
        assert "Please choose a photo" in alert.inner_text()
        assert (
            page.get_by_label("Choose or take a photo of your ID").get_attribute("aria-describedby") == "upload-error"
        )
        page.screenshot(path=artifacts / "a11y-error.png", full_page=True)

        good = tmp_path / "id.png"
        good.write_bytes(images.document_png())
        page.get_by_label("Choose or take a photo of your ID").set_input_files(str(good))
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url("**/verify/selfie")
        assert page.evaluate(UNLABELLED) == []
    finally:
        context.close()
