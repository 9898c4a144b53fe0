"""An auditor signs in through the admin login (password and TOTP token) and reads the dashboard in Chromium."""

import pytest
from django.contrib.auth.models import User
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from auditor.services import auditor_grant
from tests.auditor.scenario import build

pytestmark = [pytest.mark.e2e]

PASSWORD = "a long auditor passphrase 42"


def _token(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


@pytest.mark.django_db(transaction=True)
def test_an_auditor_signs_in_through_the_admin_and_sees_the_dashboard(
    browser, public_url, artifacts, acme, globex, signing_key, now, settings
):
    settings.IDBROKER_ADMIN_2FA = True
    build(acme, globex, now=now)
    user, _ = auditor_grant(username="audrey")
    user.set_password(PASSWORD)
    user.save()
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    assert not User.objects.get(pk=user.pk).is_superuser

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(public_url) else None)
    try:
        page.goto(f"{public_url}/auditor/")
        assert "/admin/login/" in page.url  # sent to the admin login first
        page.fill("#id_username", "audrey")
        page.fill("#id_password", PASSWORD)
        page.fill("#id_otp_token", _token(device))
        page.click("input[type=submit]")
        page.wait_for_url(f"{public_url}/auditor/")
        page.get_by_role("heading", name="Retention and integrity").wait_for()
        for heading in (
            "Evidence held",
            "Deadline breaches",
            "Vendor-side deletions",
            "Log integrity",
            "Purges per hour, last 24 hours",
            "Destruction latency after a decision",
            "Signing keys",
            "Policy and key history",
            "Transparency log",
            "Admin sign-ins, last 24 hours",
        ):
            assert page.get_by_role("heading", name=heading).is_visible(), heading
        assert page.locator('[data-metric="evidence.count"]').inner_text() == "3"
        assert page.locator('[data-metric="breaches.total"]').inner_text() == "1"
        assert page.locator('[data-metric="vendor.pending"]').inner_text() == "2"
        assert page.locator('[data-metric="integrity.ok"]').inner_text() == "Intact"
        assert page.locator("#breach-alert").is_visible()
        # The auditor's own sign-in: recorded for auditors, not as a public leaf of the transparency log.
        assert page.locator('[data-metric="signins.ok"]').inner_text() == "1"
        assert page.locator("svg.chart").count() == 2
        page.screenshot(path=artifacts / "auditor-dashboard.png", full_page=True)

        assert page.goto(f"{public_url}/admin/attestations/provider/").status == 403
    finally:
        context.close()
    assert [u for u in outside if not u.startswith(("data:", "blob:"))] == []
