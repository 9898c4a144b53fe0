"""URLs an operator enters: a provider's redirect URIs and its webhook URL, from the admin or the command line.

One rule for both doors (the admin used to store whatever was typed, `javascript:` included):
https, or http only for this machine (development); a host; no user:password part (it would travel in every
request and sit in logs); no fragment (RFC 6749 3.1.2: a redirection endpoint must not have one); no whitespace,
control characters or backslashes (a URL that parses one way here and another way in a browser: WHATWG URL parsing
reads "\\" as "/", so "https://evil.example\\.acme.example/" goes to evil.example).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_LENGTH = 2000


def validate_operator_url(url: str, *, what: str = "URL", ascii_host: bool = False) -> str:
    """Return `url` unchanged if it may be stored; raise ValidationError (code `invalid_url`) naming `what`.
    `ascii_host`: the URL goes into our redirects, where Django would percent-encode a Unicode host into one no
    browser resolves (outbound webhooks send the IDNA form themselves, webhooks/egress.py)."""

    def refuse(reason: str):
        return ValidationError(f"{what} {reason}", code="invalid_url")

    if not isinstance(url, str) or not url:
        raise refuse("must not be empty")
    if len(url) > MAX_LENGTH:
        raise refuse(f"must be at most {MAX_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise refuse("must not contain spaces or control characters")
    if "\\" in url:
        raise refuse("must not contain backslashes")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise refuse("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise refuse(f"must be https (http only for localhost): {url}")
    try:
        # What the resolver and TLS will be given: an empty or over-long label, or a name IDNA cannot spell, made
        # every webhook attempt raise UnicodeError (not OSError) past the delivery's error handling.
        host.encode("idna")
    except UnicodeError:
        raise refuse("has a host name that cannot be looked up (an empty or over-long label?)") from None
    if ascii_host and not host.isascii():
        raise refuse(f"must spell its host name in ASCII (the xn-- form): {host.encode('idna').decode()}")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise refuse(f"must be https (http only for localhost): {url}")
    if parts.username is not None or parts.password is not None:
        raise refuse("must not contain a user name or password")
    if parts.fragment or url.endswith("#"):
        raise refuse("must not have a fragment")
    return url
