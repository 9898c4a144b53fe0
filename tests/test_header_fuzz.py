"""Malformed headers at every URL an outsider can reach never cause a 5xx (issue 10, item 10).

Every URL pattern is taken from the resolver (so a new view is fuzzed without anyone remembering to add it): the
public ones, and those that check authentication in the view (the account pages, the auditor's, the admin's), since
an outsider reaches those too. Each gets GET and POST with one hostile header at a time: Content-Length, Content-Type
(bad boundary, bad charset), Authorization, Cookie, Idempotency-Key, every vendor's signature headers, Host,
X-Forwarded-For, Range, If-None-Match, Accept-Language and more, in over-long, non-ASCII, control-character and
structurally wrong forms. The cases are a fixed list, not random, so a failure replays exactly.

The test client cannot carry every malformation through a real server's parsing (it builds the WSGI environ
itself), so the Content-Length cases are also sent byte for byte over a socket to `live_server`: the same
wsgiref-based server as `manage.py runserver`, the WSGI path a deployment takes.
"""

from __future__ import annotations

import logging
import re
import socket

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests import journey

LONG = "A" * 9000
LATIN1 = "\u00e9\u00ff\u00b2"  # what a raw non-ASCII byte becomes in a WSGI environ (decoded as Latin-1)
CONTROL = "\x00\x01\x1b[2J\x7f"
MULTIPART_BODY = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n\r\nxx\r\n--b--\r\n'
SIGNATURE_HEADERS = [
    "DEV_SIGNATURE",
    "PERSONA_SIGNATURE",
    "STRIPE_SIGNATURE",
    "X_SHA2_SIGNATURE",
    "X_AUTH_CLIENT",
    "X_HMAC_SIGNATURE",
    "WEBHOOK_ID",
    "WEBHOOK_TIMESTAMP",
    "WEBHOOK_SIGNATURE",
]


def _hostile(*extra: str) -> list[str]:
    return [LONG, LATIN1, CONTROL, "", " ", "=" * 500, ",;" * 500, *extra]


# (META key, value): one hostile header per request. CONTENT_LENGTH and CONTENT_TYPE are WSGI keys without HTTP_.
CASES: list[tuple[str, str]] = [
    *[("CONTENT_LENGTH", v) for v in ["abc", "-1", "1e3", "0x10", "+5", " 12 ", "\u00b2", "99999999999999999999"]],
    *[("CONTENT_LENGTH", str(v)) for v in [10**12, 2**63, 50 * 1024 * 1024]],
    *[
        ("CONTENT_TYPE", v)
        for v in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=" + "b" * 300,
            "multipart/form-data; boundary=\u00e9",
            "multipart/form-data; boundary=b; charset=utf-42",
            "application/x-www-form-urlencoded; charset=nonsense",
            "application/x-www-form-urlencoded; charset=utf-16",
            "application/json; charset=\u00e9",
            "text/plain; charset=" + "x" * 500,
            LONG,
            CONTROL,
        ]
    ],
    *[("HTTP_AUTHORIZATION", v) for v in _hostile("Bearer", "Bearer " + LONG, "Bearer idb_" + LATIN1, "Basic ::")],
    *[("HTTP_COOKIE", v) for v in _hostile("sessionid=" + LONG, "sessionid=" + LATIN1, "csrftoken=\x00", "=;" * 500)],
    *[("HTTP_IDEMPOTENCY_KEY", v) for v in _hostile()],
    *[(f"HTTP_{name}", v) for name in SIGNATURE_HEADERS for v in _hostile("t=" + "9" * 5000 + ",v1=00")],
    *[("HTTP_HOST", v) for v in [LONG, LATIN1, "evil.example", "localhost:99999999999", "[::1", "a..b", CONTROL]],
    *[("HTTP_X_FORWARDED_FOR", v) for v in _hostile("1.2.3.4, " * 2000, "999.999.1.1", "[::1]:80, [fe80::1%eth0]")],
    *[("HTTP_X_FORWARDED_PROTO", v) for v in [LONG, LATIN1, "https, http"]],
    *[("HTTP_RANGE", v) for v in _hostile("bytes=0-99999999999999999999", "bytes=-", "bytes=5-1", "bytes=0-1," * 900)],
    *[("HTTP_IF_NONE_MATCH", v) for v in _hostile('"' * 3000, "W/", "*")],
    *[("HTTP_IF_MODIFIED_SINCE", v) for v in _hostile("Mon, 99 Foo 99999 99:99:99 GMT")],
    *[("HTTP_ACCEPT_LANGUAGE", v) for v in _hostile("en;q=abc", "*;q=1e999", "de-" + "x" * 300)],
    *[("HTTP_ACCEPT", v) for v in _hostile("application/json;q=NaN", "*/*;q=\u00e9")],
    *[("HTTP_ORIGIN", v) for v in _hostile("null", "http://[::1", "http://\u00e9.example")],
    *[("HTTP_REFERER", v) for v in _hostile("http://[::1", "https://\u00e9.example/verify/x")],
    *[("HTTP_X_CSRFTOKEN", v) for v in _hostile()],
    *[("HTTP_USER_AGENT", v) for v in [LONG, LATIN1, CONTROL]],
]
SAMPLE_ARGS = {"link": "L" * 43, "token": "T" * 43, "vendor": "dev", "request_id": "vr_" + "x" * 20}
CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")


def _sample(converter: str | None, name: str) -> str:
    return {"int": "1", "path": "1"}.get(converter or "", SAMPLE_ARGS.get(name, "x"))


def _concrete(route: str) -> str:
    """A request path for a route (`<int:id>` → 1; regex groups → their first literal alternative)."""
    route = CONVERTER.sub(lambda m: _sample(m.group(1), m.group(2)), route)
    route = NAMED_GROUP.sub(lambda m: m.group(2).split("|")[0] if re.fullmatch(r"[\w|]+", m.group(2)) else "x", route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\Z", "")


def every_path() -> list[str]:
    def walk(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield _concrete(prefix + str(pattern.pattern))

    return sorted(set(walk(get_resolver()))) + ["/static/idbroker/app.css", "/no/such/page"]


# Where a body or a signature is parsed first: every case. Elsewhere each header gets one value per URL, rotating,
# so every value still reaches many URLs and every URL sees every header, in bounded time.
EVERY_CASE = {"/webhooks/vendors/dev", "/verify/document", "/api/v1/token"}
BY_HEADER: dict[str, list[str]] = {}
for _key, _value in CASES:
    BY_HEADER.setdefault(_key, []).append(_value)


def _cases_for(path: str, index: int) -> list[tuple[str, str]]:
    if path in EVERY_CASE:
        return CASES
    if path.startswith("/admin/") and path.count("/") > 3:
        # The admin's model pages all pass the same `admin_view` sign-in check first: a few headers each.
        keys = sorted(BY_HEADER)[index % len(BY_HEADER) :][:3]
    else:
        keys = sorted(BY_HEADER)
    return [(key, BY_HEADER[key][index % len(BY_HEADER[key])]) for key in keys]


def _send(client: Client, method: str, path: str, key: str, value: str):
    extra = {key: value}
    if method == "GET":
        return client.get(path, **extra)
    content_type = value if key == "CONTENT_TYPE" else "multipart/form-data; boundary=b"
    extra.pop("CONTENT_TYPE", None)
    return client.generic("POST", path, MULTIPART_BODY, content_type, **extra)


@pytest.fixture
def fuzz_settings(settings):
    settings.ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]  # so a forged Host takes the refusal path
    settings.IDBROKER_TRUSTED_PROXIES = 1  # so X-Forwarded-For is parsed at all
    return settings


@pytest.mark.django_db
def test_no_malformed_header_at_any_url_causes_a_server_error(fuzz_settings, acme, signing_key):
    paths = every_path()
    assert len(paths) > 100 and "/webhooks/vendors/dev" in paths and "/verify/document" in paths
    # A browser mid-journey as well as a stranger: the capture, consent and status views then run past their
    # "no journey" early exits and parse what they were sent.
    midway = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(midway)
    browsers = {"stranger": Client(enforce_csrf_checks=True), "midway": midway.browser}
    midway.browser.handler.enforce_csrf_checks = True

    failures, sent = [], 0
    logging.disable(logging.CRITICAL)  # thousands of refusals are logged; formatting them is most of the run time
    try:
        for index, path in enumerate(paths):
            who = "midway" if path.startswith("/verify/") else "stranger"
            for method in ("GET", "POST"):
                # What this URL answers without a hostile header: a 503 it already gives (the demo provider's pages
                # without demo data) is not the header's doing. A 500 never is acceptable.
                baseline = _send(browsers[who], method, path, "HTTP_X_NOTHING", "").status_code
                if baseline == 500:
                    failures.append((method, path, "no hostile header", "", baseline))
                for key, value in _cases_for(path, index):
                    if who == "midway" and key == "HTTP_COOKIE":
                        continue  # would replace the journey's session cookie; the stranger's pass covers it
                    sent += 1
                    try:
                        status = _send(browsers[who], method, path, key, value).status_code
                    except Exception as exc:  # the test client re-raises what became a 500
                        status = f"{type(exc).__name__}: {str(exc)[:80]}"
                    if not isinstance(status, int) or (status >= 500 and status != baseline):
                        failures.append((method, path, key, repr(value)[:40], status))
    finally:
        logging.disable(logging.NOTSET)
    assert not failures, f"{len(failures)} of {sent} requests failed, e.g. {failures[:10]}"
    assert sent < 6000  # bounded work (about 30 s on a laptop core), so the suite stays quick


# --- The real WSGI path: bytes over a socket ------------------------------------------------------------------------


def _raw(live_server, request: bytes, *, body: bytes = b"") -> int:
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(request + body)
        conn.shutdown(socket.SHUT_WR)  # no more body is coming: the server's own read ends here
        reply = b""
        while b"\r\n" not in reply:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match, reply[:200]
    return int(match.group(1))


RAW_PATHS = [
    "/webhooks/vendors/dev",
    "/verify/document",
    "/verify/" + "L" * 43,
    "/api/v1/token",
    "/api/v1/attestations/check",
    "/authorize",
    "/account/signin/finish",
    "/healthz",
]
MALFORMED_LENGTHS = [b"abc", b"-1", b"1e3", b"0x10", b"\xb2", b"12, 12", b"99999999999999999999"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", RAW_PATHS)
def test_a_malformed_content_length_is_a_400_on_the_real_server(live_server, fuzz_settings, path):
    for length in MALFORMED_LENGTHS:
        for method in (b"POST", b"GET"):
            head = (
                method + b" " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: " + length + b"\r\nConnection: close\r\n\r\n"
            )
            assert _raw(live_server, head, body=b"{}") == 400, (method, path, length)


@pytest.mark.django_db(transaction=True)
def test_a_huge_declared_body_is_refused_on_the_real_server(live_server, fuzz_settings):
    head = (
        b"POST /verify/document HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 50000000\r\nConnection: close\r\n\r\n"
    )
    assert _raw(live_server, head, body=MULTIPART_BODY) == 413
