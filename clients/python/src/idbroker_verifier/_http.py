"""The default way to fetch a JWKS or a status list: urllib, http(s) only, a timeout, a size cap.

Any callable `(url) -> (body bytes, headers mapping)` can replace it (a shared session, a proxy, a test counter).
It must raise on failure (network error, non-2xx status); the verifier turns any exception into a stable reason.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

Fetch = Callable[[str], tuple[bytes, Mapping[str, str]]]

ALLOWED_SCHEMES = ("http", "https")
# A JWKS is a few hundred bytes and a status list of a million entries compresses to kilobytes; anything near
# this size is not what we asked for.
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
ACCEPT = "application/statuslist+jwt, application/jwk-set+json, application/json;q=0.9"


def _require_http(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"only http(s) URLs are fetched, not {scheme or 'a relative URL'}")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp: too; a verifier must not be steered off http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _require_http(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    # Built by hand rather than with build_opener(): no file:, ftp: or data: handlers at all.
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _HttpOnlyRedirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


_OPENER = _opener()


def urllib_fetch(url: str, *, timeout: float = 5.0, max_bytes: int = MAX_RESPONSE_BYTES) -> tuple[bytes, dict]:
    """GET `url`; return the body and the response headers (names lower-cased). Raises on any failure."""
    _require_http(url)
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": "idbroker-verifier"})  # noqa: S310
    with _OPENER.open(request, timeout=timeout) as response:
        body = response.read(max_bytes + 1)
        headers = {name.lower(): value for name, value in response.headers.items()}
    if len(body) > max_bytes:
        raise ValueError(f"response from {url} is larger than {max_bytes} bytes")
    return body, headers


def header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive lookup, so an injected fetch may return any mapping."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def max_age(headers: Mapping[str, str]) -> int | None:
    """`Cache-Control: max-age=N` (RFC 9111 5.2.2.1) in seconds; 0 for no-store/no-cache; None when absent."""
    found = None
    for directive in header(headers, "cache-control").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.lower()
        if name in ("no-store", "no-cache"):
            return 0
        if name == "max-age":
            try:
                found = max(0, int(value.strip().strip('"')))
            except ValueError:
                return 0  # RFC 9111 4.2.1: an invalid max-age means stale
    return found


__all__ = ["Fetch", "urllib_fetch", "header", "max_age"]
