"""Content-Security-Policy (issue 10, item 13a): every page carries a strict policy, and nothing in our templates or
in any rendered page needs an exception to it (no inline script, no event-handler attribute, no inline style).
tests/e2e/test_csp.py checks in Chromium that the policy is enforced and no page violates it."""

from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from auditor.services import auditor_grant
from tests import images, journey
from tests.conftest import otp_verified

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "connect-src": "'self'",
}


def policy(response) -> dict[str, str]:
    header = response.get("Content-Security-Policy", "")
    return dict((part.strip().split(" ", 1) + [""])[:2] for part in header.split(";") if part.strip())


class InlineFinder(HTMLParser):
    """Everything a strict policy would block: inline scripts, on* handlers, style attributes and elements,
    javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        names = {name.lower(): value or "" for name, value in attrs}
        if tag == "script" and not names.get("src"):
            self._in_script_without_src = True
            if names.get("type", "") not in ("application/json", "application/ld+json"):
                self.found.append(f"<script> without src: {attrs}")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in names.items():
            if name.startswith("on"):
                self.found.append(f"event handler {name}= on <{tag}>")
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            if name in ("href", "src", "action", "formaction") and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL on <{tag}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script_without_src = False


def inline_parts(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


def _templates() -> list[Path]:
    folders = [ROOT / "templates", *ROOT.glob("*/templates")]
    return sorted(p for folder in folders for p in folder.rglob("*.html") if ".venv" not in p.parts)


def test_no_template_holds_inline_script_handlers_or_styles():
    templates = _templates()
    assert len(templates) >= 15
    problems = {str(p.relative_to(ROOT)): inline_parts(p.read_text()) for p in templates}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_inline_finder_finds_what_it_looks_for():
    found = inline_parts(
        '<script>alert(1)</script><script src="/x.js"></script><a href="JavaScript:x" onclick="y">a</a>'
        '<p style="color:red"></p><style>p{}</style><img src=x onerror=z>'
    )
    assert len(found) == 6, found


def _html_pages(responses) -> list:
    return [r for r in responses if r.status_code == 200 and r.get("Content-Type", "").startswith("text/html")]


def _check(responses, where):
    for response in responses:
        directives = policy(response)
        for name, value in REQUIRED.items():
            assert directives.get(name) == value, (where, name, directives)
        assert "'unsafe-inline'" not in directives.get("script-src", "") and "unsafe-eval" not in str(directives)
        if response.get("Content-Type", "").startswith("text/html"):
            body = response.content.decode()
            assert inline_parts(body) == [] or where == "/api/docs/", (where, inline_parts(body))


def test_every_page_of_the_journey_carries_the_policy_and_needs_no_exception(acme, signing_key, settings):
    settings.IDBROKER_DEV_VENDOR_DELAY_SECONDS = 60  # the decision waits: the waiting page shows
    trip = journey.start(acme, ["age_over_18"])
    browser = trip.browser
    pages = {}
    browser.get(trip.link_path)
    for path in ("/verify/consent",):
        pages[path] = browser.get(path)
    browser.post("/verify/consent", {"action": "continue"})
    for path in ("/verify/document", "/verify/handoff"):
        pages[path] = browser.get(path)
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    pages["/verify/selfie"] = browser.get("/verify/selfie")
    journey.upload(trip, "selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg", dev_scenario="approved")
    pages["/verify/waiting"] = browser.get("/verify/waiting")
    for path, response in pages.items():
        assert response.status_code == 200, (path, response.status_code)
        _check([response], path)


@pytest.mark.django_db(transaction=True)  # the decision is enqueued on commit
def test_the_result_page_carries_the_policy(acme, signing_key):
    trip, final = journey.complete(acme, ["age_over_18"])
    assert final["status"] == "completed"
    result = trip.browser.get("/verify/result")
    assert result.status_code == 200
    _check([result], "/verify/result")


def test_account_admin_auditor_docs_demo_and_error_pages_carry_the_policy(admin_user, signing_key, acme):
    anonymous = Client()
    operator = otp_verified(Client(), admin_user)
    auditor, _ = auditor_grant(username="audrey")
    auditor_client = otp_verified(Client(), auditor)
    checked = {
        "/": anonymous.get("/"),
        "/account/signin": anonymous.get("/account/signin"),
        "/admin/login/": anonymous.get("/admin/login/"),
        "/api/docs/": anonymous.get("/api/docs/"),
        "/auditor/": auditor_client.get("/auditor/"),
        "/admin/": operator.get("/admin/"),
        "/admin/ provider change form": operator.get(f"/admin/attestations/provider/{acme.provider.pk}/change/"),
        "/no-such-page": anonymous.get("/no-such-page"),
        "/verify/consent (no journey)": anonymous.get("/verify/consent"),
        "/.well-known/jwks.json": anonymous.get("/.well-known/jwks.json"),
    }
    assert django_settings.IDBROKER_DEMO
    for where, response in checked.items():
        assert response.status_code in (200, 404), (where, response.status_code)
        _check([response], where)
    assert len(_html_pages(checked.values())) >= 7


def test_api_docs_run_their_start_up_script_from_a_file():
    page = Client().get("/api/docs/")
    html = page.content.decode()
    assert "<script>" not in html and 'src="/api/docs/?script="' in html
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert policy(page)["style-src"] == "'self' 'unsafe-inline'"  # Swagger UI's own inline styles, this page only


def test_forms_may_go_to_our_origin_and_the_configured_vendors_hosted_pages_only(settings):
    from broker import csp

    settings.IDBROKER_VENDORS = {**settings.IDBROKER_VENDORS, "stripe_identity": {"api_url": "http://127.0.0.1:8103"}}
    sources = csp.form_action_sources()
    assert sources[0] == "'self'"
    assert "https://verify.stripe.com" in sources and "http://127.0.0.1:8103" in sources
    assert "https://withpersona.com" not in sources  # Persona is not configured
    assert "*" not in sources and "https:" not in sources
