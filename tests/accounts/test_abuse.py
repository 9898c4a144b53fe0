"""Sessions and abuse (issue 4, part 5): rate limits per client, secure cookies, CSRF, sign-in attempts logged
without personal data."""

import json
import logging

import pytest
from django.test import Client

from broker.logging import JsonFormatter
from tests import journey

pytestmark = pytest.mark.django_db


def test_passkey_sign_in_is_rate_limited_per_client():
    browser = Client()
    codes = [browser.post("/account/signin/options").status_code for _ in range(12)]
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]
    limited = browser.post("/account/signin/options")
    assert 0 < int(limited["Retry-After"]) <= 60
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert other.post("/account/signin/options").status_code == 200  # another client has its own budget


def test_phone_and_verification_links_are_rate_limited(db):
    browser = Client()
    codes = [browser.get(f"/verify/phone/guess{i:030d}").status_code for i in range(22)]
    assert codes[:20] == [410] * 20 and set(codes[20:]) == {429}


def test_refused_sign_ins_are_logged_without_personal_data(caplog):
    caplog.set_level(logging.INFO)
    browser = Client()
    browser.post("/account/signin/options")
    credential = {"id": "Y3JlZA", "rawId": "Y3JlZA", "type": "public-key", "response": {}}
    response = browser.post("/account/signin/finish", json.dumps(credential), content_type="application/json")
    assert response.status_code == 400
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "accounts.views"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["event"] == "passkey.signin" and entry["code"] == "passkey_invalid"
    assert "Y3JlZA" not in lines[0] and "127.0.0.1" not in lines[0]


def test_account_endpoints_need_csrf(acme):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/account/signin/options").status_code == 403
    assert strict.post("/account/delete", {"confirm": "yes"}).status_code == 403


def test_session_cookies_are_http_only_and_same_site(acme, settings):
    trip = journey.start(acme, ["age_over_18"])
    opened = trip.browser.get(trip.link_path)
    cookie = opened.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True and cookie["samesite"] == "Lax"
    assert settings.SESSION_COOKIE_SECURE is False  # tests run over plain HTTP; production defaults to True
