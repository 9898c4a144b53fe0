"""The redirect flow (SPEC 2.1): /authorize, the journey, a single-use code, POST /api/v1/token with PKCE."""

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from attestations.models import AuthorizationCode, Provider
from tests import images, journey

pytestmark = pytest.mark.django_db(transaction=True)
REDIRECT = "https://acme.example/return"


def race(action, n: int = 2) -> list:
    """Run `action` in n threads released together (each with its own database connection); their results."""
    import threading

    from django.db import connection

    barrier, results = threading.Barrier(n), []

    def run():
        barrier.wait()
        try:
            results.append(action())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(browser, **overrides):
    params = {
        "response_type": "code",
        "client_id": "acme",
        "redirect_uri": REDIRECT,
        "claims": "age_over_18",
        "state": "xyz-state",
        "nonce": "n-42",
        **overrides,
    }
    return browser.get("/authorize?" + urlencode({k: v for k, v in params.items() if v is not None}))


def query(location):
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def finish_journey(browser, scenario="approved"):
    assert browser.post("/verify/consent", {"action": "continue"}).status_code == 302
    for step, data, name, kind in (
        ("document", images.document_png(), "id.png", "image/png"),
        ("selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg"),
    ):
        trip = journey.Journey("", "", browser, [])
        journey.upload(trip, step, data, name, kind, dev_scenario=scenario)
    return browser.get("/verify/continue")


def code_for(acme, *, challenge=None, scenario="approved"):
    browser = Client()
    extra = {"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}
    started = authorize(browser, **extra)
    assert started.status_code == 302 and started["Location"].startswith("http://testserver/verify/")
    assert browser.get(urlsplit(started["Location"]).path)["Location"] == "/verify/consent"
    back = finish_journey(browser, scenario)
    assert back.status_code == 302 and back["Location"].startswith(REDIRECT + "?")
    return query(back["Location"])


def exchange(client, **data):
    body = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, **data}
    return client.post("/api/v1/token", urlencode(body), content_type="application/x-www-form-urlencoded")


def test_the_whole_redirect_flow_with_pkce_yields_the_attestation(acme, signing_key):
    verifier, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    assert returned["state"] == "xyz-state" and "code" in returned
    response = exchange(acme.client, code=returned["code"], code_verifier=verifier)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    payload = json.loads(base64.urlsafe_b64decode(body["attestation"].split(".")[1] + "=="))
    assert payload["aud"] == "acme" and payload["nonce"] == "n-42" and payload["age_over_18"] is True
    assert body["token_type"] == "dc+sd-jwt" and 0 < body["expires_in"] <= 900


def test_an_unknown_client_or_unregistered_redirect_uri_is_shown_not_redirected(acme):
    browser = Client()
    for response in (
        authorize(browser, client_id="nobody"),
        authorize(browser, redirect_uri="https://evil.example/"),
        authorize(browser, redirect_uri=REDIRECT + "/extra"),
        authorize(browser, redirect_uri=None),
    ):
        assert response.status_code == 400
        assert "Location" not in response
        assert b"not valid" in response.content


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"claims": "age_over_99"}, "invalid_claims"),
        ({"claims": ""}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
    ],
)
def test_request_errors_go_back_to_the_redirect_uri_with_state(acme, overrides, error):
    response = authorize(Client(), **overrides)
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    returned = query(response["Location"])
    assert returned["error"] == error and returned["state"] == "xyz-state"


def test_a_claim_the_provider_may_not_ask_for_is_refused(acme):
    Provider.objects.filter(pk=acme.provider.pk).update(allowed_claims=["age_over_18"])
    returned = query(authorize(Client(), claims="age_over_18 verified_human")["Location"])
    assert returned["error"] == "invalid_claims"


def test_public_clients_must_use_pkce_and_exchange_without_a_key(acme, signing_key):
    Provider.objects.filter(pk=acme.provider.pk).update(client_type="public")
    assert query(authorize(Client())["Location"])["error"] == "invalid_request"
    verifier, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    anonymous = APIClient()
    assert exchange(anonymous, code=returned["code"], code_verifier=verifier).status_code == 400  # no client_id
    ok = exchange(anonymous, code=returned["code"], code_verifier=verifier, client_id="acme")
    assert ok.status_code == 200, ok.content  # the refused attempt did not spend the code


def test_a_confidential_client_cannot_exchange_without_its_key(acme, signing_key):
    returned = code_for(acme)
    response = exchange(APIClient(), code=returned["code"], client_id="acme")
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("verifier", [None, "wrong" * 10, ""])
def test_a_missing_or_wrong_pkce_verifier_is_refused(acme, signing_key, verifier):
    _, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    data = {"code": returned["code"]}
    if verifier is not None:
        data["code_verifier"] = verifier
    response = exchange(acme.client, **data)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_replayed_code_fails_and_revokes_what_it_delivered(acme, signing_key):
    returned = code_for(acme)
    first = exchange(acme.client, code=returned["code"])
    assert first.status_code == 200
    token = first.json()["attestation"]
    before = acme.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()
    assert before["valid"] is True
    second = exchange(acme.client, code=returned["code"])
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    after = acme.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()
    assert after == {"valid": False, "reason": "revoked", "claims": {}}


def test_a_code_is_bound_to_its_client(acme, globex, signing_key):
    returned = code_for(acme)
    stolen = exchange(globex.client, code=returned["code"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_a_code_expires_after_sixty_seconds(acme, signing_key):
    returned = code_for(acme)
    code = AuthorizationCode.objects.get()
    assert code.expires_at - code.created_at <= timedelta(seconds=60)
    AuthorizationCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = exchange(acme.client, code=returned["code"])
    assert response.status_code == 400 and "expired" in response.json()["error_description"]


def test_the_redirect_uri_must_match_at_the_token_endpoint(acme, signing_key):
    Provider.objects.filter(pk=acme.provider.pk).update(redirect_uris=[REDIRECT, "https://acme.example/other"])
    returned = code_for(acme)
    response = exchange(acme.client, code=returned["code"], redirect_uri="https://acme.example/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_garbage_codes_and_grant_types_are_clear_errors(acme, signing_key):
    assert exchange(acme.client, code="nope").json()["error"] == "invalid_grant"
    wrong = acme.client.post(
        "/api/v1/token", {"grant_type": "password", "code": "x", "redirect_uri": REDIRECT}, format="json"
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "unsupported_grant_type"
    missing = acme.client.post("/api/v1/token", {}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("scenario", "error"), [("declined", "verification_declined"), ("error", "temporarily_unavailable")]
)
def test_unsuccessful_verifications_return_an_error_with_state_and_no_code(acme, signing_key, scenario, error):
    returned = code_for(acme, scenario=scenario)
    assert returned == {"error": error, "state": "xyz-state"}
    assert not AuthorizationCode.objects.exists()


def test_declining_consent_returns_access_denied_with_state(acme):
    browser = Client()
    started = authorize(browser)
    browser.get(urlsplit(started["Location"]).path)
    browser.post("/verify/consent", {"action": "decline"})
    assert query(browser.get("/verify/continue")["Location"]) == {"error": "access_denied", "state": "xyz-state"}


# --- A failed exchange leaves the code to its client (issue 10, item 7) --------------------------------------------


def valid_at_check(handle, token) -> bool:
    return handle.client.post("/api/v1/attestations/check", {"token": token}, format="json").json()["valid"]


@pytest.mark.parametrize(
    "attempt",
    [
        {"code_verifier": "wrong" * 10},  # an intercepted code, without the verifier
        {"code_verifier": None},
        {"redirect_uri": "https://acme.example/other"},
    ],
)
def test_an_attacker_with_the_code_but_not_what_binds_it_neither_spends_it_nor_gets_it_revoked(
    acme, signing_key, attempt
):
    Provider.objects.filter(pk=acme.provider.pk).update(redirect_uris=[REDIRECT, "https://acme.example/other"])
    verifier, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    data = {"code": returned["code"], "code_verifier": verifier, **attempt}
    attacker = exchange(acme.client, **{k: v for k, v in data.items() if v is not None})
    assert attacker.status_code == 400 and attacker.json()["error"] == "invalid_grant"
    real = exchange(acme.client, code=returned["code"], code_verifier=verifier)
    assert real.status_code == 200, real.content
    assert valid_at_check(acme, real.json()["attestation"])


def test_another_client_presenting_the_code_leaves_it_to_its_own_client(acme, globex, signing_key):
    verifier, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    stolen = exchange(globex.client, code=returned["code"], code_verifier=verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    real = exchange(acme.client, code=returned["code"], code_verifier=verifier)
    assert real.status_code == 200 and valid_at_check(acme, real.json()["attestation"])


def test_after_redemption_only_a_correct_replay_revokes_a_wrong_one_is_just_refused(acme, signing_key):
    verifier, challenge = pkce_pair()
    returned = code_for(acme, challenge=challenge)
    token = exchange(acme.client, code=returned["code"], code_verifier=verifier).json()["attestation"]
    guess = exchange(acme.client, code=returned["code"], code_verifier="wrong" * 10)
    assert guess.status_code == 400 and guess.json()["error"] == "invalid_grant"
    assert valid_at_check(acme, token)  # someone without the verifier cannot get the person's attestation revoked
    replay = exchange(acme.client, code=returned["code"], code_verifier=verifier)
    assert replay.status_code == 400 and "revoked" in replay.json()["error_description"]
    assert not valid_at_check(acme, token)


def test_an_expired_code_is_refused_without_being_spent(acme, signing_key):
    returned = code_for(acme)
    AuthorizationCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert exchange(acme.client, code=returned["code"]).status_code == 400
    assert AuthorizationCode.objects.get().used_at is None


@pytest.mark.services  # real concurrency needs PostgreSQL: SQLite serialises the two writers anyway
def test_two_correct_exchanges_racing_exactly_one_wins(acme, signing_key):
    from attestations import oauth, services
    from attestations.models import VerificationRequest
    from tests.attestations.support import FACTS

    # The code of a completed redirect-flow request, minted as the result page does (no journey: no worker here).
    verifier, challenge = pkce_pair()
    now = timezone.now()
    request, _ = services.request_create(provider=acme.provider, claims=["age_over_18"], return_url=REDIRECT, now=now)
    VerificationRequest.objects.filter(pk=request.pk).update(code_challenge=challenge, flow="redirect")
    services.request_complete(request=request, subject="person-1", facts=FACTS, verified_month="2026-11", now=now)
    returned = query(oauth.return_location(request=VerificationRequest.objects.get(pk=request.pk), now=now))
    clients = [APIClient(), APIClient()]
    for client in clients:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {acme.api_key}")

    def redeem():
        return exchange(clients.pop(), code=returned["code"], code_verifier=verifier).status_code

    results = race(redeem)
    assert sorted(results) == [200, 400]
    assert AuthorizationCode.objects.get().used_at is not None


# --- Anonymous /authorize: limited, and nothing permanent unless someone opens the link (issue 10, item 5) ---------


def test_anonymous_authorize_calls_from_one_address_are_limited_with_retry_after(acme):
    from attestations.views import AUTHORIZE_PER_CLIENT_PER_MINUTE

    script = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(AUTHORIZE_PER_CLIENT_PER_MINUTE):
        assert authorize(script).status_code == 302
    refused = authorize(script)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert "Location" not in refused
    assert authorize(Client(REMOTE_ADDR="203.0.113.8")).status_code == 302  # someone else is not locked out


def test_anonymous_authorize_calls_for_one_provider_are_limited_across_addresses(acme, globex):
    Provider.objects.filter(pk=acme.provider.pk).update(rate_limit="5/min")
    for i in range(5):
        assert authorize(Client(REMOTE_ADDR=f"198.51.100.{i}")).status_code == 302
    refused = authorize(Client(REMOTE_ADDR="198.51.100.99"))
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert "Location" not in refused and b"Too many" in refused.content
    other = authorize(
        Client(REMOTE_ADDR="198.51.100.99"), client_id="globex", redirect_uri="https://globex.example/back"
    )
    assert other.status_code == 302  # globex's own bucket


def test_an_authorize_nobody_opened_leaves_no_request_audit_entry_or_webhook_even_after_it_expires(acme):
    from attestations.models import VerificationRequest
    from audit.models import AuditEvent
    from verification import services as verification_services
    from webhooks.models import WebhookDelivery
    from webhooks.signing import webhook_secret_create

    # A provider that would hear of every request that ends (no network: a loopback URL is refused anyway).
    Provider.objects.filter(pk=acme.provider.pk).update(webhook_url="https://127.0.0.1:9/hook")
    webhook_secret_create(provider=Provider.objects.get(pk=acme.provider.pk), now=timezone.now())
    audit_before = AuditEvent.objects.count()
    links = [authorize(Client(REMOTE_ADDR=f"192.0.2.{i}"))["Location"] for i in range(10)]
    assert len(set(links)) == 10  # ten calls, ten distinct links
    assert not VerificationRequest.objects.exists()
    assert AuditEvent.objects.count() == audit_before
    verification_services.purge_expired(now=timezone.now() + timedelta(days=1))
    assert not VerificationRequest.objects.exists()
    assert AuditEvent.objects.count() == audit_before
    assert not WebhookDelivery.objects.exists()
    # Opening a link is what makes the request (and its one audit entry), once, however often it is opened.
    browser = Client()
    assert browser.get(urlsplit(links[0]).path)["Location"] == "/verify/consent"
    browser.get(urlsplit(links[0]).path)
    request = VerificationRequest.objects.get()
    assert (request.flow, request.state, request.nonce) == ("redirect", "xyz-state", "n-42")
    created = AuditEvent.objects.filter(event="request.created")
    assert list(created.values_list("refs__request", flat=True)) == [request.pk]


def test_a_link_opened_in_a_second_browser_is_refused_and_makes_no_second_request(acme):
    from attestations.models import VerificationRequest

    link = urlsplit(authorize(Client())["Location"]).path
    assert Client().get(link).status_code == 302
    assert Client().get(link).status_code == 410
    assert VerificationRequest.objects.count() == 1


def test_a_forged_expired_or_tampered_redirect_link_is_refused_without_a_request(acme):
    from attestations import oauth
    from attestations.models import VerificationRequest

    link = urlsplit(authorize(Client())["Location"]).path
    body = link.removeprefix("/verify/")
    tampered = body[:-6] + ("AAAAAA" if body[-6:] != "AAAAAA" else "BBBBBB")
    for path in (f"/verify/{tampered}", "/verify/" + "A" * 200, "/verify/" + "x" * 5000):
        assert Client().get(path).status_code == 404
    expired = oauth.authorize(
        params={"response_type": "code", "client_id": "acme", "redirect_uri": REDIRECT, "claims": "age_over_18"},
        now=timezone.now() - timedelta(days=1),
    ).link_url
    assert Client().get(urlsplit(expired).path).status_code == 410
    Provider.objects.filter(pk=acme.provider.pk).update(allowed_claims=["verified_human"])  # changed since
    assert Client().get(link).status_code == 404
    assert not VerificationRequest.objects.exists()


def test_any_link_authorize_hands_out_opens_and_one_too_long_is_an_error_for_the_provider(acme):
    """A valid /authorize with a long non-ASCII state used to get a link the broker then refused to open (404
    "not valid"): its \\u-escaped ticket outgrew the opening limit. The longest state and nonce now open; a request
    that would still outgrow it goes back to the provider as invalid_request, with its state."""
    from attestations.models import VerificationRequest

    state, nonce = "\U0001f600" * 500, "\u00e9" * 128  # the longest kept (500, 128), four and two bytes each
    started = authorize(Client(), state=state, nonce=nonce)
    assert started.status_code == 302 and started["Location"].startswith("http://testserver/verify/")
    browser = Client()
    assert browser.get(urlsplit(started["Location"]).path)["Location"] == "/verify/consent"
    request = VerificationRequest.objects.get()
    assert (request.state, request.nonce) == (state, nonce)

    long_uri = REDIRECT + "?" + "a" * 3000
    Provider.objects.filter(pk=acme.provider.pk).update(redirect_uris=[REDIRECT, long_uri])
    refused = authorize(Client(), redirect_uri=long_uri, state=state)
    assert refused.status_code == 302 and refused["Location"].startswith(long_uri)
    assert query(refused["Location"])["error"] == "invalid_request"
    assert query(refused["Location"])["state"] == state


@pytest.mark.services  # real concurrency needs PostgreSQL
def test_two_first_openings_of_one_link_racing_make_one_request(acme):
    from attestations import services
    from attestations.models import VerificationRequest
    from audit.models import AuditEvent

    link = urlsplit(authorize(Client())["Location"]).path.removeprefix("/verify/")
    found = race(lambda: services.request_by_link(link, now=timezone.now()).pk)
    assert len(found) == 2 and found[0] == found[1]
    assert VerificationRequest.objects.count() == 1
    assert AuditEvent.objects.filter(event="request.created").count() == 1
