"""Shared machinery of the local fake vendor servers: a real HTTP server on loopback, routing, fault injection,
a request log, signed webhook delivery and a controllable clock. Standard library only.

Each fake (`fakevendors/<vendor>.py`) subclasses `FakeVendor`, declares its documented API routes with `@route`,
and implements `decide()` (what the vendor does when a session reaches an outcome) and `sign()` (its webhook
signature scheme). The control API below is the same for every fake, so the adapter contract tests drive all four
vendors the same way. Control paths start with `/_fake/` and are not part of any vendor's API.

Control API (JSON in, JSON out):
- `POST /_fake/reset`: forget sessions, faults, logs and clock offset.
- `POST /_fake/faults` `{"status": 503, "count": 2, "path": "/checks", "method": "POST", "retry_after": 1}` or
  `{"delay": 3, "count": 1}`: the next `count` matching requests fail with `status` (with `Retry-After` and the
  vendor's rate-limit headers when given) or stall `delay` seconds before being answered (a timeout).
- `GET /_fake/requests`: every API request received: method, path, lower-case headers, and the body (JSON/form as
  text; multipart uploads only as size and SHA-256: a fake has no reason to hold a face).
- `POST /_fake/sessions/{id}/decide` `{"scenario": "approved", "webhook": true}`: the vendor reaches that outcome
  (for vendor-hosted capture: the user finished the vendor's page that way). Scenarios: `approved`,
  `approved_no_nationality`, `approved_minor`, `declined`, `retry`, `needs_review`, `expired`. A fake answers 422
  for a scenario its vendor cannot produce. With `webhook`, the vendor's events are delivered to the webhook URL.
- `GET /_fake/sessions/{id}`: the fake's state of that session (for assertions: deletion, redaction, uploads).
- `GET /_fake/webhooks`: deliveries made so far `[{index, type, status}]`.
- `POST /_fake/webhooks/{index}/redeliver` `{"stale": false, "tamper": false}`: send that delivery again
  (a duplicate), signed now, or with a timestamp 10 minutes old (`stale`), or with a flipped body byte (`tamper`).
- `POST /_fake/clock` `{"advance": 3600}`: move the fake's clock (asynchronous redaction and deletion complete by it).
- `POST /_fake/config` `{"webhook_url": "...", "webhook_secrets": ["..."]}`: change where and how webhooks go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SCENARIOS = (
    "approved",
    "approved_no_nationality",
    "approved_minor",
    "declined",
    "retry",
    "needs_review",
    "expired",
)


class Request:
    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HttpError(400, {"error": "invalid JSON"}) from None

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def multipart(self) -> dict[str, tuple[str | None, bytes]]:
        """name → (filename, bytes) for a multipart/form-data body (the email package parses MIME for us)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise HttpError(415, {"error": "expected multipart/form-data"})
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + self.body
        )
        parts = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            parts[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return parts


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def route(method: str, pattern: str):
    """Mark a FakeVendor method as the handler of `method` + `pattern` (a regex on the path, fully matched)."""

    def mark(fn):
        fn._route = (method, re.compile(pattern))
        return fn

    return mark


class FakeVendor:
    name = "fake"
    #: Response headers a 429 carries at this vendor (besides Retry-After), e.g. Persona's RateLimit-*.
    rate_limit_headers: tuple[str, ...] = ()

    def __init__(self, *, api_key: str, webhook_secrets: list[str], webhook_url: str = ""):
        self.api_key = api_key
        self.webhook_secrets = list(webhook_secrets)
        self.webhook_url = webhook_url
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.url = ""
        self.reset()
        self._routes = [
            getattr(self, n)._route + (getattr(self, n),) for n in dir(self) if hasattr(getattr(self, n), "_route")
        ]

    # --- state ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.sessions: dict[str, dict] = {}
            self.faults: list[dict] = []
            self.requests: list[dict] = []
            self.deliveries: list[dict] = []
            self.clock_offset = 0.0

    def now(self) -> float:
        return time.time() + self.clock_offset

    # --- to implement --------------------------------------------------------------------------------------------
    #: Where the vendor's API lives under the server root ("/v1", "/api/v1", "/v3.6").
    api_prefix = ""

    def adapter_settings(self) -> dict:
        """This fake as an entry of settings.IDBROKER_VENDORS (what the environment variables would give)."""
        return {"api_url": self.url + self.api_prefix, "api_key": self.api_key, "webhook_secrets": self.webhook_secrets}

    def environment(self) -> dict[str, str]:
        """The same, as the environment variables `make run` sets (README: vendors)."""
        raise NotImplementedError

    def authenticate(self, request: Request) -> None:
        """Raise HttpError(401) unless the request carries the vendor's credential the vendor's way."""
        raise NotImplementedError

    def decide(self, session_id: str, scenario: str) -> list[tuple[str, dict]]:
        """Move a session to `scenario`'s outcome. Return the webhook events to deliver, as (type, body)."""
        raise NotImplementedError

    def sign(self, body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
        """The headers that authenticate a webhook body, the vendor's way."""
        raise NotImplementedError

    def state(self, session_id: str) -> dict:
        with self.lock:
            if session_id not in self.sessions:
                raise HttpError(404, {"error": "no such session"})
            return self.sessions[session_id]

    # --- webhooks ------------------------------------------------------------------------------------------------
    def signed_headers(self, body: bytes, *, timestamp: int) -> dict[str, str]:
        """Headers for a delivery. With several secrets (rotation) a vendor signs with all of them; subclasses
        whose scheme carries several signatures merge them (Stripe `v1=..,v1=..`, Persona space-separated)."""
        return self.sign(body, secret=self.webhook_secrets[0], timestamp=timestamp)

    def deliver(self, event_type: str, payload: dict, *, stale: bool = False, tamper: bool = False) -> dict:
        body = json.dumps(payload).encode()
        delivery = {"index": len(self.deliveries), "type": event_type, "body": body, "status": None}
        with self.lock:
            self.deliveries.append(delivery)
        return self._send(delivery, stale=stale, tamper=tamper)

    def _send(self, delivery: dict, *, stale: bool = False, tamper: bool = False) -> dict:
        body = delivery["body"]
        timestamp = int(self.now()) - (600 if stale else 0)
        headers = {"Content-Type": "application/json", **self.signed_headers(body, timestamp=timestamp)}
        if tamper:
            body = body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
        if not self.webhook_url:
            delivery["status"] = 0
            return delivery
        req = urllib.request.Request(self.webhook_url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 (loopback, test fake)
                delivery["status"] = response.status
        except urllib.error.HTTPError as exc:
            delivery["status"] = exc.code
        except OSError:
            delivery["status"] = 0
        return delivery

    # --- serving -------------------------------------------------------------------------------------------------
    def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: tests read /_fake/requests instead
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = Request(
                    self.command,
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                status, payload, headers = fake.dispatch(request)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                # The client may have given up (a `delay` fault outlasting its timeout): expected, not an error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    content_type = headers.pop("Content-Type", "application/json")
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(raw)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"fake-{self.name}"
        ).start()
        return self.url

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def dispatch(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        try:
            if request.path.startswith("/_fake/"):
                return 200, self._control(request), {}
            self._log(request)
            self._inject_fault(request)
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(request.path)
                if match and method == request.method:
                    if not getattr(handler, "_public", False):
                        self.authenticate(request)
                    result = handler(request, **match.groupdict())
                    if isinstance(result, tuple):
                        return result[0], result[1], dict(result[2]) if len(result) > 2 else {}
                    return 200, result, {}
            raise HttpError(404, {"error": "not found"})
        except HttpError as exc:
            return exc.status, exc.body, dict(exc.headers)

    def _log(self, request: Request) -> None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            body = {"size": len(request.body), "sha256": hashlib.sha256(request.body).hexdigest()}
        else:
            body = request.body.decode("utf-8", "replace")
        with self.lock:
            self.requests.append(
                {"method": request.method, "path": request.path, "headers": request.headers, "body": body}
            )

    def _inject_fault(self, request: Request) -> None:
        with self.lock:
            fault = next(
                (
                    f
                    for f in self.faults
                    if f["count"] > 0
                    and request.path.startswith(f.get("path", ""))
                    and f.get("method", request.method) == request.method
                ),
                None,
            )
            if fault is None:
                return
            fault["count"] -= 1
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
            return
        headers = {}
        if fault.get("retry_after") is not None:
            headers["Retry-After"] = str(fault["retry_after"])
            for name in self.rate_limit_headers:
                headers[name] = str(fault["retry_after"]) if name.lower().endswith("reset") else "0"
        raise HttpError(int(fault.get("status", 503)), {"error": "injected fault"}, headers)

    def _control(self, request: Request) -> Any:
        parts = request.path.strip("/").split("/")[1:]
        body = request.json() if request.method == "POST" else {}
        if parts == ["reset"]:
            self.reset()
            return {"ok": True}
        if parts == ["faults"]:
            with self.lock:
                self.faults.append({"count": 1, **body})
            return {"ok": True}
        if parts == ["requests"]:
            with self.lock:
                return list(self.requests)
        if parts == ["clock"]:
            self.clock_offset += float(body.get("advance", 0))
            return {"now": self.now()}
        if parts == ["config"]:
            self.webhook_url = body.get("webhook_url", self.webhook_url)
            self.webhook_secrets = body.get("webhook_secrets", self.webhook_secrets)
            return {"ok": True}
        if parts == ["webhooks"]:
            return [{k: v for k, v in d.items() if k != "body"} for d in self.deliveries]
        if len(parts) == 3 and parts[0] == "webhooks" and parts[2] == "redeliver":
            delivery = self.deliveries[int(parts[1])]
            sent = self._send(delivery, stale=bool(body.get("stale")), tamper=bool(body.get("tamper")))
            return {k: v for k, v in sent.items() if k != "body"}
        if len(parts) >= 2 and parts[0] == "sessions":
            session_id = parts[1]
            if len(parts) == 2:
                return self.state(session_id)
            if parts[2] == "decide":
                scenario = body.get("scenario", "approved")
                if scenario not in SCENARIOS:
                    raise HttpError(422, {"error": f"unknown scenario {scenario}"})
                with self.lock:
                    self.state(session_id)
                    events = self.decide(session_id, scenario)
                delivered = [self.deliver(t, p) for t, p in events] if body.get("webhook", True) else []
                return {"events": [t for t, _ in events], "delivered": [d["status"] for d in delivered]}
        raise HttpError(404, {"error": "unknown control path"})


def public(fn: Callable) -> Callable:
    """A route the vendor serves without API credentials (its hosted pages for the user's browser)."""
    fn._public = True
    return fn
