"""The browser journey with each real vendor adapter against its local fake (issue 5): Persona and Stripe Identity
send the user to the vendor's own page and back; Onfido and Veriff use the broker's capture pages, and the broker
uploads. The Acme AI demo provider asks, and gets its answer at the end.

On SQLite (this pass) the fakes' webhooks are off and the broker learns decisions by asking (the waiting page's
poll, the return from the vendor's page): the path a lost webhook takes. The services pass runs a vendor-hosted
journey with webhooks delivered to the live server, on PostgreSQL with a Celery worker."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from attestations.models import Provider, VerificationRequest
from tests import images
from tests.conftest import wait_for_worker_idle
from verification.models import Evidence, VerificationSession
from verification.vendors.base import PENDING_DELETION, DeletionState

pytestmark = [pytest.mark.e2e]


def _start(page, base, artifacts, name):
    page.goto(f"{base}/")
    page.get_by_role("button", name="Verify with idbroker").click()
    page.wait_for_url("**/verify/consent")
    page.get_by_role("button", name="Continue").click()


def _finish(page, artifacts, name):
    page.wait_for_url("**/verify/result", timeout=30000)
    assert page.get_by_role("heading", name="You're verified").is_visible()
    page.screenshot(path=artifacts / f"vendor-{name}-result.png", full_page=True)
    page.get_by_role("link", name="Continue to Acme AI").click()
    page.wait_for_url("**/demo/return**")
    assert page.get_by_role("heading", name="Welcome to Acme AI").is_visible()


def _capture(page, tmp_path, *, outcome: str | None):
    document = tmp_path / "id.png"
    document.write_bytes(images.document_png())
    page.wait_for_url("**/verify/document")
    page.get_by_label("Choose or take a photo of your ID").set_input_files(str(document))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/verify/selfie")
    page.get_by_role("button", name="Use camera").click()
    page.wait_for_function("() => document.querySelector('.camera video').videoWidth > 0", timeout=15000)
    page.get_by_role("button", name="Take photo").click()
    page.wait_for_function("() => document.querySelector('#photo').files.length === 1")
    if outcome:
        page.get_by_label("Outcome").select_option(outcome)
    page.get_by_role("button", name="Submit for checking").click()
    page.wait_for_url("**/verify/waiting")


def _use_vendor(name, settings, fake_vendors):
    settings.IDBROKER_RESULT_POLL_SECONDS = 1
    for fake in fake_vendors.values():
        fake.webhook_url = ""  # SQLite: decisions arrive by polling (see the module docstring)
    call_command("load_demo")
    Provider.objects.filter(client_id="acme-demo").update(vendor=name)


def _check_done(name):
    request = VerificationRequest.objects.get()
    session = VerificationSession.objects.get(request=request)
    assert request.status == "completed" and session.vendor == name
    assert Evidence.objects.count() == 0 and session.wrapped_data_key is None
    assert session.vendor_deletion in (*PENDING_DELETION, DeletionState.DONE)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "name,button", [("persona", "Approve (German passport)"), ("stripe_identity", "Verified: adult, German passport")]
)
def test_vendor_hosted_journey_goes_to_the_vendors_page_and_back(
    browser, public_url, artifacts, settings, fake_vendors, name, button
):
    _use_vendor(name, settings, fake_vendors)
    page = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    try:
        _start(page, public_url, artifacts, name)
        page.wait_for_url(f"{fake_vendors[name].url}/**")  # the vendor's own page: no photo ever reaches us
        assert "sandbox" in page.title().lower()
        page.screenshot(path=artifacts / f"vendor-{name}-hosted.png", full_page=True)
        page.get_by_role("button", name=re.compile(re.escape(button))).click()
        page.wait_for_url("**/verify/result", timeout=30000)
        assert page.get_by_text("We never received your photos").is_visible()  # the vendor took them, not us
        _finish(page, artifacts, name)
    finally:
        page.context.close()
    _check_done(name)
    assert not (settings.IDBROKER_EVIDENCE_DIR.exists() and any(settings.IDBROKER_EVIDENCE_DIR.rglob("*.bin")))


@pytest.mark.django_db(transaction=True)
def test_onfido_journey_uploads_the_photos_and_uses_the_sandbox_outcome(
    browser, public_url, artifacts, tmp_path, settings, fake_vendors
):
    _use_vendor("onfido", settings, fake_vendors)
    page = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    try:
        _start(page, public_url, artifacts, "onfido")
        _capture(page, tmp_path, outcome="approved")
        _finish(page, artifacts, "onfido")
    finally:
        page.context.close()
    _check_done("onfido")
    uploads = [r for r in fake_vendors["onfido"].requests if r["path"] in ("/v3.6/documents", "/v3.6/live_photos")]
    assert len(uploads) == 2  # the broker uploaded both photos, then destroyed its copies


@pytest.mark.django_db(transaction=True)
def test_veriff_journey_is_decided_in_the_vendors_portal(
    browser, public_url, artifacts, tmp_path, settings, fake_vendors
):
    _use_vendor("veriff", settings, fake_vendors)
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    try:
        _start(page, public_url, artifacts, "veriff")
        _capture(page, tmp_path, outcome=None)  # Veriff test integrations never decide by themselves
        portal = context.new_page()  # an operator decides in the (fake) Customer Portal, as with a real test setup
        portal.goto(f"{fake_vendors['veriff'].url}/_portal")
        portal.screenshot(path=artifacts / "vendor-veriff-portal.png", full_page=True)
        portal.get_by_role("button", name=re.compile("^Approve", re.I)).first.click()
        _finish(page, artifacts, "veriff")
    finally:
        context.close()
    _check_done("veriff")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_vendor_hosted_journey_with_webhooks_on_postgresql_and_a_worker(
    browser, public_url, artifacts, settings, worker_fake_vendors, celery_worker_process
):
    """Production shape: Stripe's webhooks reach the live server, a Celery worker re-fetches and decides. The user
    leaves the vendor's page before the decision exists ("processing"), so the webhook, not the return, decides."""
    from django.db import connection

    assert connection.vendor == "postgresql" and not settings.CELERY_TASK_ALWAYS_EAGER
    call_command("load_demo")
    Provider.objects.filter(client_id="acme-demo").update(vendor="stripe_identity")
    stripe = worker_fake_vendors["stripe_identity"]
    page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    try:
        _start(page, public_url, artifacts, "stripe-worker")
        page.wait_for_url(f"{stripe.url}/**")
        page.get_by_role("button", name=re.compile("^Submitted: stays processing")).click()
        page.wait_for_url("**/verify/waiting")
        session = VerificationSession.objects.get()
        stripe.clock_offset += 120  # the vendor finishes; its fake delivers `verified` when next asked
        from tests.verification.vendors.conftest import Control

        Control(stripe.url).decide(session.vendor_session_id, "approved", webhook=True)
        _finish(page, artifacts, "stripe-worker")
    finally:
        page.context.close()
    _check_done("stripe_identity")
    wait_for_worker_idle()  # the vendor-copy deletion task runs after the decision
    log = celery_worker_process.read_text()
    assert "verification.tasks.process_vendor_event" in log  # the worker processed the webhook by id


@pytest.mark.django_db(transaction=True)
def test_coming_back_unfinished_from_the_vendor_page_offers_it_again(
    browser, public_url, artifacts, settings, fake_vendors
):
    _use_vendor("stripe_identity", settings, fake_vendors)
    stripe = fake_vendors["stripe_identity"]
    page = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
    try:
        _start(page, public_url, artifacts, "stripe-unfinished")
        page.wait_for_url(f"{stripe.url}/**")
        page.goto(f"{public_url}/verify/return")  # back to the site without finishing Stripe's page
        page.wait_for_url("**/verify/hosted")
        assert page.get_by_role("heading", name="Take your photos with our identity partner").is_visible()
        page.screenshot(path=artifacts / "vendor-hosted-again.png", full_page=True)
        page.get_by_role("button", name="Continue to our partner").click()
        page.wait_for_url(f"{stripe.url}/**")  # a fresh single-use link
        page.get_by_role("button", name="Verified: adult, German passport").click()
        _finish(page, artifacts, "stripe-unfinished")
    finally:
        page.context.close()
    _check_done("stripe_identity")
