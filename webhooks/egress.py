"""Where outbound webhooks may connect: public addresses only, checked at connection time (SSRF).

A provider's webhook URL is typed by an operator, but the host name's DNS belongs to whoever controls that domain:
it can point at the broker's own machine (127.0.0.1, ::1), its private network (10/8, fc00::/7), or a cloud
metadata service (169.254.169.254), and a POST there from the broker is a request from inside. So:

1. The host is resolved once, here.
2. Every resolved address must be public (not private, loopback, link-local, shared, reserved or multicast; an
   IPv4 address carried inside IPv6, such as ::ffff:127.0.0.1 or 64:ff9b::a00:1, is judged as that IPv4 address).
   One bad address refuses the whole host: a name that answers both ways is an attack, not a mistake.
3. The socket connects to one of the addresses just checked, never to the name: a second DNS answer (rebinding)
   is never asked for. TLS still checks the certificate against the host name.

`IDBROKER_WEBHOOK_ALLOW_PRIVATE` (on by default only with DEBUG) lifts step 2 for development and for tests that
run a receiver on 127.0.0.1. Proxy variables (HTTPS_PROXY, ...) are ignored: a proxy would make the check moot.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.request

from django.conf import settings

# The NAT64 well-known prefix (RFC 6052) and 6to4 (RFC 3056) carry an IPv4 address a gateway will reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class ForbiddenAddress(OSError):
    """The host resolves to an address webhooks may not reach. Carries no address: it goes to logs as a code."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of the address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.teredo is not None:
            return False  # a tunnel whose far end we cannot judge
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or getattr(ip, "is_site_local", False))


def literal_forbidden(url: str) -> bool:
    """A URL whose host is an IP address webhooks may not reach (caught when an operator enters it; names are only
    judged when resolved, at each attempt)."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        return not _allow_private() and not is_public(host)
    except ValueError:
        return False  # a name, not an address


def ascii_url(url: str) -> str:
    """`url` as http.client can send it: an internationalised host in its IDNA (ASCII) form, and any other
    non-ASCII character percent-encoded as UTF-8. http.client writes the request line as ASCII and the Host header
    as Latin-1, so "https://пример.example/" or ".../hook/é" raised UnicodeEncodeError (not an OSError) on every
    attempt, past the delivery's error handling. The validator has already checked that the host has an IDNA form
    (broker/validators.py)."""
    from urllib.parse import urlsplit, urlunsplit

    from django.utils.encoding import iri_to_uri

    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.isascii():
        netloc = host.encode("idna").decode("ascii") + (f":{parts.port}" if parts.port is not None else "")
        parts = parts._replace(netloc=netloc)
    return iri_to_uri(urlunsplit(parts))


def resolve(host: str, port: int) -> list[tuple]:
    """getaddrinfo for a TCP connection; its own function so tests can answer for a name without real DNS."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def connect(family: int, sockaddr: tuple, timeout: float | None) -> socket.socket:
    """Open a TCP connection to one checked address (the edge of the world; tests replace it to record attempts)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if timeout is not None:
            sock.settimeout(timeout)
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def checked_connection(address: tuple[str, int], timeout=None, source_address=None, *, allow_private: bool):
    """http.client's `_create_connection`, with steps 1-3 of the module docstring."""
    host, port = address
    infos = resolve(host, port)
    if not infos:
        raise OSError("no address")
    if not allow_private and not all(is_public(info[4][0]) for info in infos):
        raise ForbiddenAddress("forbidden_address")
    error: OSError | None = None
    for family, _type, _proto, _canon, sockaddr in infos:
        try:
            return connect(family, sockaddr, timeout)
        except OSError as exc:
            error = exc
    raise error


def _allow_private() -> bool:
    return bool(getattr(settings, "IDBROKER_WEBHOOK_ALLOW_PRIVATE", False))


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # http.client sets this per instance in __init__, so it is replaced here rather than overridden.
        self._create_connection = functools.partial(checked_connection, allow_private=_allow_private())


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(checked_connection, allow_private=_allow_private())


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_CheckedHTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_CheckedHTTPSConnection, req, context=self._context)


def build_opener(*handlers) -> urllib.request.OpenerDirector:
    """A urllib opener whose every connection goes through `checked_connection`, with no proxy."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _HTTPHandler, _HTTPSHandler, *handlers)
