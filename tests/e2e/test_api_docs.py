"""The API docs page renders in Chromium from our own static files (the machine has no internet)."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_offline_with_every_endpoint(browser, public_url, artifacts):
    context = browser.new_context()
    page = context.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(public_url) else None)
    try:
        page.goto(f"{public_url}/api/docs/")
        page.get_by_text("idbroker provider API").first.wait_for(timeout=20000)
        for operation in ("/api/v1/verification-requests", "/api/v1/token", "/api/v1/attestations/check"):
            assert page.get_by_text(operation).count() > 0, operation
        page.screenshot(path=artifacts / "api-docs.png")
    finally:
        context.close()
    assert [u for u in outside if not u.startswith(("data:", "blob:"))] == []
