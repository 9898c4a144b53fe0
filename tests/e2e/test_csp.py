"""The Content-Security-Policy is enforced in Chromium and the product lives within it (issue 10, item 13a): the
whole journey, the hand-off, the account, admin, auditor, API docs and demo pages raise no
`securitypolicyviolation` event, and an injected inline script is really blocked."""

import pytest
from django.core.management import call_command

from tests.e2e.test_browser_journey import run_browser_journey

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPORT = """document.addEventListener('securitypolicyviolation', (e) =>
  window.__idbCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} on ${e.documentURI}`));"""


class Watch:
    """Every CSP violation (the DOM event and Chromium's console message) and every document without the header."""

    def __init__(self, context):
        self.violations: list[str] = []
        self.documents: list[str] = []
        self.unprotected: list[str] = []
        context.expose_function("__idbCspViolation", lambda text: self.violations.append(text))
        context.add_init_script(REPORT)
        context.on("page", self._page)

    def _page(self, page):
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message):
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _response(self, response):
        if response.request.resource_type == "document" and 200 <= response.status < 300:
            self.documents.append(response.url)
            if "script-src 'self'" not in response.headers.get("content-security-policy", ""):
                self.unprotected.append(response.url)


def test_the_whole_journey_raises_no_policy_violation(browser, public_url, artifacts, tmp_path, settings):
    settings.IDBROKER_DEV_VENDOR_DELAY_SECONDS = 1
    settings.IDBROKER_RESULT_POLL_SECONDS = 1
    call_command("load_demo")
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    watch = Watch(context)
    try:
        run_browser_journey(context.new_page(), public_url, artifacts, tmp_path, name="csp")
    finally:
        context.close()
    assert watch.violations == []
    pages = {url.split("?")[0].removeprefix(public_url) for url in watch.documents}
    for page in ("/", "/verify/consent", "/verify/document", "/verify/selfie", "/verify/waiting", "/verify/result"):
        assert page in pages, (page, pages)
    assert "/demo/return" in pages
    assert watch.unprotected == []


def test_the_other_pages_raise_no_policy_violation(browser, public_url, settings):
    call_command("load_demo")
    context = browser.new_context()
    watch = Watch(context)
    page = context.new_page()
    try:
        page.goto(f"{public_url}/")
        page.get_by_role("button", name="Verify with idbroker").click()
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url("**/verify/document")
        page.get_by_role("link", name="No camera here? Continue on your phone").click()
        page.wait_for_url("**/verify/handoff")
        page.locator(".qr svg").wait_for()
        for path in ("/account/", "/admin/login/", "/auditor/", "/transparency/tree-head"):
            page.goto(f"{public_url}{path}")
        page.goto(f"{public_url}/api/docs/")
        page.get_by_text("idbroker provider API").first.wait_for(timeout=20000)
        page.get_by_text("/api/v1/token").first.click()  # expand an operation: more of Swagger UI's rendering
        page.wait_for_timeout(300)
    finally:
        context.close()
    assert watch.violations == []
    assert watch.unprotected == []
    assert len(watch.documents) >= 8


def test_an_injected_inline_script_is_blocked_and_reported(browser, public_url):
    """The control for the tests above: the watch sees violations, and the policy is enforced, not report-only."""
    context = browser.new_context()
    watch = Watch(context)
    page = context.new_page()
    try:
        page.goto(f"{public_url}/")
        page.evaluate(
            """() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';
                       document.body.append(s); }"""
        )
        page.wait_for_timeout(200)
        assert page.evaluate("() => window.injected") is None
    finally:
        context.close()
    assert any("script-src" in v for v in watch.violations), watch.violations
