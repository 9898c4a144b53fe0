"""Per-client limits behind the TLS proxy (issue 10 item 4): every person has their own bucket, and nobody can pick
theirs by sending a header."""

import pytest
from django.test import Client

from broker.proxies import client_address
from broker.ratelimit import client_network

pytestmark = pytest.mark.django_db
PROXY = "10.0.0.2"  # the TLS proxy's address as gunicorn sees it
XFF = "HTTP_X_FORWARDED_FOR"


def sign_in_options(client: Client, **headers) -> int:
    return client.post("/account/signin/options", **headers).status_code


def test_behind_one_proxy_each_person_has_their_own_bucket(settings):
    """The attack on today's main: behind the proxy every request has the proxy's REMOTE_ADDR, so one client
    exhausting the limit locked everybody out."""
    settings.IDBROKER_TRUSTED_PROXIES = 1
    attacker = Client(REMOTE_ADDR=PROXY)
    codes = [sign_in_options(attacker, **{XFF: "203.0.113.66"}) for _ in range(12)]
    assert codes[10:] == [429, 429]
    someone_else = Client(REMOTE_ADDR=PROXY)
    assert sign_in_options(someone_else, **{XFF: "198.51.100.7"}) == 200


def test_a_client_cannot_choose_its_bucket_by_prepending_addresses(settings):
    settings.IDBROKER_TRUSTED_PROXIES = 1
    attacker = Client(REMOTE_ADDR=PROXY)
    # The proxy appends the real address; whatever the client sent sits to its left and is ignored.
    codes = [sign_in_options(attacker, **{XFF: f"192.0.2.{i}, 203.0.113.66"}) for i in range(12)]
    assert codes[10:] == [429, 429]
    # Nor can it spend someone else's budget: their own entry is the right-most one.
    victim = Client(REMOTE_ADDR=PROXY)
    assert sign_in_options(victim, **{XFF: "203.0.113.66, 198.51.100.7"}) == 200


def test_without_a_configured_proxy_the_header_is_never_read(settings):
    settings.IDBROKER_TRUSTED_PROXIES = 0
    attacker = Client(REMOTE_ADDR="203.0.113.66")
    codes = [sign_in_options(attacker, **{XFF: f"192.0.2.{i}"}) for i in range(12)]
    assert codes[10:] == [429, 429]  # a fresh forged address per request bought nothing


def test_the_admin_sign_in_pacing_uses_the_client_behind_the_proxy(settings):
    settings.IDBROKER_TRUSTED_PROXIES = 1
    attacker = Client(REMOTE_ADDR=PROXY)
    codes = [
        attacker.post("/admin/login/", {"username": "x", "password": "y"}, **{XFF: "203.0.113.66"}).status_code
        for _ in range(15)
    ]
    assert codes[-1] == 429
    admin = Client(REMOTE_ADDR=PROXY)
    page = admin.get("/admin/login/", **{XFF: "198.51.100.7"})
    assert page.status_code == 200
    answer = admin.post("/admin/login/", {"username": "x", "password": "y"}, **{XFF: "198.51.100.7"})
    assert answer.status_code != 429


@pytest.mark.parametrize(
    ("header", "hops", "expected"),
    [
        ("203.0.113.5", 1, "203.0.113.5"),
        ("1.2.3.4, 203.0.113.5", 1, "203.0.113.5"),
        ("garbage, 203.0.113.5", 1, "203.0.113.5"),
        ("1.2.3.4, 203.0.113.5, 10.0.0.3", 2, "203.0.113.5"),
        ("203.0.113.5:51234", 1, "203.0.113.5"),
        ("[2001:db8::7]:443", 1, "2001:db8::7"),
        ("", 1, PROXY),  # sent to gunicorn directly (a health check): its own address
        ("203.0.113.5", 2, PROXY),  # fewer entries than proxies: nothing trustworthy
        ("not-an-address", 1, PROXY),
        ("1.2.3.4," * 5000 + " 203.0.113.5", 1, "203.0.113.5"),  # padded: only the right end is read
    ],
)
def test_the_client_is_the_entry_the_outermost_trusted_proxy_wrote(header, hops, expected):
    meta = {"REMOTE_ADDR": PROXY, XFF: header}
    assert client_address(meta, hops=hops, header=XFF) == expected


def test_an_ipv6_client_is_its_slash_64():
    assert client_network("2001:db8:1:2::1") == client_network("2001:db8:1:2:ffff::9")
    assert client_network("2001:db8:1:2::1") != client_network("2001:db8:1:3::1")
    assert client_network("::ffff:203.0.113.5") == "203.0.113.5"
    assert client_network("203.0.113.5") != client_network("203.0.113.6")


def test_a_proxy_without_counted_hops_is_flagged_at_deploy(settings):
    from broker.checks import proxies_counted

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.IDBROKER_TRUSTED_PROXIES = 0
    assert [w.id for w in proxies_counted(None)] == ["idbroker.W030"]
    settings.IDBROKER_TRUSTED_PROXIES = 1
    assert proxies_counted(None) == []
