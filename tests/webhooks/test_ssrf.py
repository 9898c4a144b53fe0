"""Outbound webhooks never reach the broker's own machine or network (issue 10, item 13c): a webhook URL whose host
resolves to a private, loopback, link-local or IPv4-in-IPv6 address is refused before any connection, every address
a name resolves to is checked, and the connection goes to the address that was checked (no second DNS answer).

Host names other than 127.0.0.1's are answered by a fake resolver and connections to them by a fake connector that
records the attempt and refuses it: no packet leaves this machine whatever the code under test does."""

import socket
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from attestations.models import Provider
from webhooks import egress, services
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)

FORBIDDEN = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]
PUBLIC = "93.184.215.14"


class FakeInternet:
    """DNS answers and TCP attempts for host names, recorded; every connection is refused."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.lookups: list[str] = []
        self.connects: list[tuple] = []

    def resolve(self, host, port):
        self.lookups.append(host)
        infos = []
        for address in self.answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return infos

    def connect(self, family, sockaddr, timeout):
        self.connects.append(sockaddr)
        raise ConnectionRefusedError("fake: refused")


@pytest.fixture
def internet(monkeypatch):
    fake = FakeInternet({})
    monkeypatch.setattr(egress, "resolve", fake.resolve)
    monkeypatch.setattr(egress, "connect", fake.connect)
    return fake


@pytest.fixture
def strict(settings):
    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = False


def _hook(provider, url):
    Provider.objects.filter(pk=provider.pk).update(webhook_url=url)
    provider.refresh_from_db()
    return services.webhook_enqueue(
        provider=provider,
        event_type="verification_request.expired",
        object_id="vr_x",
        status="expired",
        now=timezone.now(),
    )


@pytest.mark.parametrize("address", FORBIDDEN)
def test_an_address_outside_the_public_internet_is_not_public(address):
    assert not egress.is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_a_public_address_is_public(address):
    assert egress.is_public(address)


@pytest.mark.parametrize("address", FORBIDDEN)
def test_a_webhook_host_resolving_to_a_forbidden_address_gets_no_connection(
    hooked, receiver, strict, internet, address
):
    internet.answers["hooks.acme.example"] = [address]
    delivery = _hook(hooked.provider, "https://hooks.acme.example/idbroker")
    delivery.refresh_from_db()
    assert internet.lookups == ["hooks.acme.example"]
    assert internet.connects == []  # refused before any packet
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == "forbidden_address" and delivery.last_status_code is None
    assert delivery.next_attempt_at is None  # not retried: the operator must change the URL


def test_the_local_receiver_gets_nothing_when_private_targets_are_not_allowed(hooked, receiver, strict):
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        delivery = _hook(hooked.provider, url)
        delivery.refresh_from_db()
        assert delivery.last_error == "forbidden_address", url
    assert receiver.requests == []


def test_one_private_address_among_public_ones_refuses_the_host(hooked, receiver, strict, internet):
    internet.answers["hooks.acme.example"] = [PUBLIC, "10.1.2.3"]
    delivery = _hook(hooked.provider, "https://hooks.acme.example/idbroker")
    delivery.refresh_from_db()
    assert internet.connects == [] and delivery.last_error == "forbidden_address"


def test_the_connection_goes_to_the_address_that_was_checked(hooked, receiver, strict, internet):
    internet.answers["hooks.acme.example"] = [PUBLIC]
    delivery = _hook(hooked.provider, "https://hooks.acme.example/idbroker")
    delivery.refresh_from_db()
    # One lookup, then a connection to its answer: a rebinding DNS server gets no second question.
    assert internet.lookups == ["hooks.acme.example"]
    assert internet.connects == [(PUBLIC, 443)]
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.last_error == "connection_failed"


def test_a_forbidden_address_does_not_count_towards_disabling_the_endpoint(hooked, receiver, strict):
    for _ in range(services.DISABLE_AFTER + 1):
        _hook(hooked.provider, receiver.url)
    hooked.provider.webhook_secret.refresh_from_db()
    assert hooked.provider.webhook_secret.consecutive_failures == 0


def test_the_opener_sends_to_the_resolved_address_with_the_name_as_host(receiver, settings, monkeypatch):
    """The name is resolved by egress.resolve and the socket opened to its answer (here the local receiver)."""
    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    monkeypatch.setattr(
        egress, "resolve", lambda host, p: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]
    )
    request = urllib.request.Request(f"http://hooks.acme.example:{port}/hooks/idbroker", data=b"{}", method="POST")
    with egress.build_opener().open(request, timeout=5) as response:
        assert response.status == 200
    assert receiver.requests[0].headers["host"] == f"hooks.acme.example:{port}"


def test_proxy_variables_do_not_route_webhooks_around_the_check(hooked, receiver, strict, internet, monkeypatch):
    internet.answers.update({"hooks.acme.example": ["10.0.0.1"], "proxy.example": [PUBLIC]})
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://proxy.example:3128")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    delivery = _hook(hooked.provider, "https://hooks.acme.example/idbroker")
    delivery.refresh_from_db()
    assert internet.lookups == ["hooks.acme.example"] and internet.connects == []
    assert delivery.last_error == "forbidden_address"


def _self_signed(folder, name):
    """A throwaway certificate for `name` (cryptography is already a dependency, through jwcrypto)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_is_checked_against_the_name_while_the_socket_goes_to_the_checked_address(
    receiver, settings, monkeypatch, tmp_path
):
    """Connecting to an address rather than the name must not weaken TLS: SNI and the certificate check still use
    the URL's host name. A local TLS receiver stands in for hooks.acme.example."""
    import ssl

    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = True
    cert, key = _self_signed(tmp_path, "hooks.acme.example")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    receiver.server.socket = server_tls.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]
    monkeypatch.setattr(
        egress, "resolve", lambda host, p: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]
    )
    trusting = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), egress._HTTPSHandler(context=ssl.create_default_context(cafile=str(cert)))
    )
    request = urllib.request.Request(f"https://hooks.acme.example:{port}/hooks/idbroker", data=b"{}", method="POST")
    with trusting.open(request, timeout=5) as response:
        assert response.status == 200
    assert receiver.requests[0].headers["host"] == f"hooks.acme.example:{port}"
    wrong = urllib.request.Request(f"https://other.example:{port}/hooks/idbroker", data=b"{}", method="POST")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        trusting.open(wrong, timeout=5)
    assert len(receiver.requests) == 1


def test_an_internationalised_webhook_host_is_looked_up_by_its_ascii_name(hooked, receiver, strict, internet):
    # http.client sends the Host header as Latin-1: a Cyrillic host name raised UnicodeEncodeError on every attempt
    # (under eager tasks, in the request of the person whose verification produced the event).
    internet.answers["xn--e1afmkfd.example"] = [PUBLIC]
    delivery = _hook(hooked.provider, "https://пример.example/idbroker")
    delivery.refresh_from_db()
    assert internet.lookups == ["xn--e1afmkfd.example"] and internet.connects == [(PUBLIC, 443)]
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.last_error == "connection_failed"


@pytest.mark.parametrize("host", ["a" * 64 + ".acme.example", "hooks..acme.example"])
def test_a_webhook_host_with_an_empty_or_over_long_label_fails_the_delivery_cleanly(
    hooked, receiver, strict, internet, host
):
    # Stored before the admin refused it (an update, as an old row): the resolver's UnicodeError escaped _post.
    delivery = _hook(hooked.provider, f"https://{host}/idbroker")
    delivery.refresh_from_db()
    assert internet.lookups == [] and internet.connects == []
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.last_error == "insecure_url"


def test_a_webhook_path_with_non_ascii_characters_is_sent_percent_encoded(hooked, receiver, settings):
    # The admin's URL field takes "…/é"; http.client writes the request line as ASCII and raised on every attempt.
    url = receiver.url + "/é?tenant=ü"
    delivery = _hook(hooked.provider, url)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED, delivery.last_error
    assert receiver.requests[-1].path == "/hooks/idbroker/%C3%A9?tenant=%C3%BC"
