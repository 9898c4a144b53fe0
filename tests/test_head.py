"""HEAD works wherever GET does (issue 10, item 13e; RFC 9110 9.3.2): JWKS and the issuer metadata answered 405.
Every URL in the urlconf that answers 200 to GET answers HEAD with the same status and headers and no body."""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from attestations import statuslist
from tests.conftest import otp_verified

pytestmark = pytest.mark.django_db


def _paths(patterns, prefix=""):
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _paths(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            yield prefix + route


def _concrete(route: str, samples: dict[str, str]) -> str | None:
    if route.startswith("^"):  # a regex pattern (the admin's catch-all): nothing to walk
        return None
    for placeholder, value in samples.items():
        route = route.replace(placeholder, value)
    return None if "<" in route else "/" + route


@pytest.fixture
def samples(signing_key, acme):
    return {"<int:list_id>": str(statuslist.current_list().pk)}


def test_head_answers_like_get_on_every_url(samples, admin_user):
    routes = sorted({p for p in (_concrete(r, samples) for r in _paths(get_resolver().url_patterns)) if p})
    clients = {"anonymous": Client(), "admin": otp_verified(Client(), admin_user)}
    answered = set()
    for who, client in clients.items():
        for path in routes:
            got = client.get(path)
            if got.status_code != 200:
                continue
            head = client.head(path)
            assert head.status_code == 200, (who, path, head.status_code)
            assert head.content == b"", (who, path)
            assert head["Content-Type"] == got["Content-Type"], (who, path)
            answered.add(path)
    for must in (
        "/.well-known/jwks.json",
        "/.well-known/jwt-vc-issuer",
        "/.well-known/attestation-issuer",
        "/healthz",
        f"/status-lists/{samples['<int:list_id>']}",
        "/api/docs/",
        "/admin/",
    ):
        assert must in answered, (must, sorted(answered))
    assert len(answered) >= 12


def test_head_on_jwks_keeps_the_length_and_caching_headers_of_get(signing_key):
    client = Client()
    got = client.get("/.well-known/jwks.json")
    head = client.head("/.well-known/jwks.json")
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Length"] == str(len(got.content))
    assert head.get("Cache-Control") == got.get("Cache-Control")


def test_head_is_not_a_way_around_a_method_a_view_refuses(acme):
    # Only GET is mapped; POST-only endpoints still refuse HEAD as they refuse GET.
    assert Client().get("/api/v1/token").status_code == Client().head("/api/v1/token").status_code
    assert Client().head("/verify/status").status_code == Client().get("/verify/status").status_code


def test_a_head_from_a_link_preview_spends_no_verification_link_and_no_phone_link(acme, signing_key):
    # Link previews, mail scanners and prefetchers probe with HEAD; answered as a GET it would open the one-time
    # link first and the person would then be told "already used".
    from tests import journey
    from verification.models import Handoff

    trip = journey.start(acme, ["age_over_18"])
    assert Client().head(trip.link_path).status_code == 405
    journey.open_and_consent(trip)  # the person's own click still opens it

    page = trip.browser.get("/verify/handoff").content.decode()
    start = page.index("/verify/phone/")
    phone_path = page[start : page.index("<", start)].strip()
    handoffs = Handoff.objects.count()
    assert trip.browser.head("/verify/handoff").status_code == 405
    assert Handoff.objects.count() == handoffs  # no phone link minted by a HEAD either
    assert Client().head(phone_path).status_code == 405
    assert Client().get(phone_path).status_code == 302  # not spent by the HEAD


def test_a_head_mints_no_code_and_starts_no_request(acme, signing_key):
    from attestations.models import AuthorizationCode, VerificationRequest

    before = VerificationRequest.objects.count()
    probe = Client().head("/authorize?response_type=code&client_id=acme&redirect_uri=https://acme.example/return")
    assert probe.status_code == 405 and probe["Allow"] == "GET"
    assert VerificationRequest.objects.count() == before
    assert Client().head("/verify/continue").status_code == 405
    assert not AuthorizationCode.objects.exists()
