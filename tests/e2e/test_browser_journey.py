"""The whole journey in a real browser (SPEC 2.2): the demo provider asks, the user consents, photographs an ID,
takes a selfie with the (fake) camera, waits, and returns; the provider verifies the token offline."""

import contextlib
import json
import logging
import urllib.request

import pytest
from django.core.management import call_command
from jwcrypto import jwk, jws

from attestations.models import VerificationRequest
from broker.logging import JsonFormatter
from tests import images
from tests.conftest import wait_for_worker_idle
from verification.models import Evidence, VerificationSession

pytestmark = [pytest.mark.e2e]

PERSONAL = ["1990-04-12", "19900412", "12.04.1990", images.CANARY]


def _get_json(url, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.loads(response.read())


def run_browser_journey(page, base: str, artifacts, tmp_path, *, name: str, flow: str = "redirect"):
    """Drive the journey; return every text body the browser received."""
    seen = []

    def keep(response):
        if "text" in response.headers.get("content-type", "") or "json" in response.headers.get("content-type", ""):
            with contextlib.suppress(Exception):  # redirects have no body
                seen.append(response.text())

    page.on("response", keep)
    document = tmp_path / "id.png"
    document.write_bytes(images.document_png())

    page.goto(f"{base}/")
    page.screenshot(path=artifacts / f"{name}-0-provider-home.png", full_page=True)
    start = "Verify with idbroker" if flow == "redirect" else "Same, through the API flow"
    page.get_by_role("button", name=start).click()
    page.wait_for_url("**/verify/consent")
    assert page.get_by_role("heading", name="Acme AI wants to know").is_visible()
    assert page.get_by_text("Whether you are 18 or older").is_visible()
    assert page.get_by_text("What Acme AI will not get").is_visible()
    page.screenshot(path=artifacts / f"{name}-1-consent.png", full_page=True)
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/verify/document")
    page.get_by_label("Choose or take a photo of your ID").set_input_files(str(document))
    page.screenshot(path=artifacts / f"{name}-2-document.png", full_page=True)
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/verify/selfie")
    page.get_by_role("button", name="Use camera").click()
    page.wait_for_function("() => document.querySelector('.camera video').videoWidth > 0", timeout=15000)
    page.screenshot(path=artifacts / f"{name}-3-camera.png", full_page=True)
    page.get_by_role("button", name="Take photo").click()
    page.wait_for_function("() => document.querySelector('#photo').files.length === 1")
    page.locator("img.preview").wait_for(state="visible")  # the blob decodes after the file is set
    page.get_by_label("Outcome").select_option("approved")
    page.screenshot(path=artifacts / f"{name}-4-selfie.png", full_page=True)
    page.get_by_role("button", name="Submit for checking").click()

    page.wait_for_url("**/verify/waiting")
    assert page.get_by_role("heading", name="Checking your photos…").is_visible()
    page.screenshot(path=artifacts / f"{name}-5-waiting.png", full_page=True)
    page.wait_for_url("**/verify/result", timeout=30000)  # moves on by itself, no reload
    assert page.get_by_role("heading", name="You're verified").is_visible()
    page.screenshot(path=artifacts / f"{name}-6-result.png", full_page=True)
    page.get_by_role("link", name="Continue to Acme AI").click()

    page.wait_for_url("**/demo/return**")
    # Redirect flow: the provider got a code and state, never the request id; API flow: the request id.
    assert ("code=" in page.url and "state=" in page.url) if flow == "redirect" else "verification_request=" in page.url
    assert page.get_by_role("heading", name="Welcome to Acme AI").is_visible()
    page.screenshot(path=artifacts / f"{name}-7-provider.png", full_page=True)
    return seen


def check_outcome(base: str, seen: list[str], log_text: str):
    creds = json.loads((__import__("django.conf").conf.settings.VAR_DIR / "demo-provider.json").read_text())
    request = VerificationRequest.objects.get()
    final = _get_json(f"{base}/api/v1/verification-requests/{request.id}", creds["api_key"])
    assert final["status"] == "completed"

    # An independent implementation (jwcrypto) verifies the token against the published JWKS.
    keys = jwk.JWKSet.from_json(json.dumps(_get_json(f"{base}/.well-known/jwks.json")))
    token = jws.JWS()
    token.deserialize(final["attestation"].rstrip("~"))
    token.verify(keys)
    payload = json.loads(token.payload)
    assert payload["aud"] == creds["client_id"] and payload["iss"] == base
    assert payload["age_over_18"] is True and payload["verified_human"] is True
    assert payload["eligible_jurisdiction"]["eligible"] is True

    # Evidence is gone: rows, files and the data key.
    session = VerificationSession.objects.get()
    assert Evidence.objects.count() == 0 and session.wrapped_data_key is None
    # Nothing personal reached the browser, the API or the logs.
    for text in [*seen, json.dumps(final), log_text]:
        for marker in PERSONAL:
            assert marker not in text


@pytest.mark.django_db(transaction=True)
def test_whole_journey_in_chromium_with_the_fake_camera(browser, public_url, artifacts, tmp_path, settings, caplog):
    settings.IDBROKER_DEV_VENDOR_DELAY_SECONDS = 1.5  # long enough to see the waiting page move on by itself
    settings.IDBROKER_RESULT_POLL_SECONDS = 1
    call_command("load_demo")
    caplog.set_level(logging.DEBUG)
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        seen = run_browser_journey(context.new_page(), public_url, artifacts, tmp_path, name="desktop")
    finally:
        context.close()
    formatter = JsonFormatter()
    check_outcome(public_url, seen, "\n".join(formatter.format(r) for r in caplog.records))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_whole_journey_on_postgresql_with_a_celery_worker(
    browser, public_url, celery_worker_process, artifacts, tmp_path, settings, caplog
):
    from django.db import connection

    assert connection.vendor == "postgresql" and not settings.CELERY_TASK_ALWAYS_EAGER
    call_command("load_demo")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        seen = run_browser_journey(context.new_page(), public_url, artifacts, tmp_path, name="phone", flow="api")
    finally:
        context.close()
    wait_for_worker_idle()
    formatter = JsonFormatter()
    logs = "\n".join(formatter.format(r) for r in caplog.records) + celery_worker_process.read_text()
    assert "verification.tasks.submit_session" in celery_worker_process.read_text()  # the worker really ran it
    check_outcome(public_url, seen, logs)
