"""The client's address behind trusted reverse proxies (issue 10 item 4).

Per-client limits (passkeys, photos, links, `/authorize`, admin sign-in) key on the client's address. Behind the
documented TLS proxy, `REMOTE_ADDR` is the proxy's, so without this every person would share one bucket and anyone
could lock everyone out.

1. `IDBROKER_TRUSTED_PROXIES` says how many proxies stand in front of gunicorn (0 by default: no header is read at
   all, so nobody can choose their own address by sending `X-Forwarded-For`).
2. Each proxy appends the address it received the connection from to `X-Forwarded-For` (nginx
   `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`, cloud load balancers). With N trusted proxies the
   last N entries were written by them; the N-th from the right is the address the outermost one saw: the
   client. Everything further left came from the client and is ignored (MDN "X-Forwarded-For", "Selecting an IP
   address"; werkzeug's ProxyFix takes the same entry).
3. That entry replaces `REMOTE_ADDR` for the rest of the request, so rate limits, logs and the admin's pacing all
   see one and the same address. A request with fewer entries than proxies (a health check sent to gunicorn
   directly) keeps its `REMOTE_ADDR`.

Why not django-ipware: its `proxy_count` counts proxies *inside* the header and falls back to the left-most,
client-written entry when the chain is shorter or holds junk (checked with django-ipware 8.0.0:
`"1.2.3.4, 203.0.113.5"` with one proxy and `proxy_count=0` gives the forged `1.2.3.4`), which is the bypass this
module exists to prevent.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

MAX_HEADER_CHARS = 4096  # a client may pad the header; only its right end matters


def _address(entry: str) -> str | None:
    """An entry as a bare IP address ("[2001:db8::1]:443" and "192.0.2.1:443" keep only the address), or None."""
    entry = entry.strip()
    if entry.startswith("["):
        entry = entry[1 : entry.find("]")] if "]" in entry else ""
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def client_address(meta, *, hops: int, header: str) -> str:
    """The client's address given `hops` trusted proxies that append to `header` (a META key)."""
    remote = meta.get("REMOTE_ADDR", "")
    if hops <= 0:
        return remote
    raw = meta.get(header, "")
    if not isinstance(raw, str):
        return remote
    entries = raw[-MAX_HEADER_CHARS:].split(",")
    if len(raw) > MAX_HEADER_CHARS:
        entries = entries[1:]  # the first one was cut
    if len(entries) < hops:
        return remote
    return _address(entries[-hops]) or remote


class TrustedProxyMiddleware:
    """Sets `REMOTE_ADDR` to the client's address per `IDBROKER_TRUSTED_PROXIES`; first in MIDDLEWARE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        hops = settings.IDBROKER_TRUSTED_PROXIES
        if hops:
            header = "HTTP_" + settings.IDBROKER_FORWARDED_FOR_HEADER.upper().replace("-", "_")
            request.META["REMOTE_ADDR"] = client_address(request.META, hops=hops, header=header)
        return self.get_response(request)
