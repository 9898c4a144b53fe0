"""A provider's webhook endpoint, for real: an HTTP server on 127.0.0.1 in a thread that records what it receives,
checks each signature with the `standardwebhooks` library (not our code), and answers as told."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from attestations.models import Provider
from webhooks.signing import webhook_secret_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # the signature checked out with the secret the receiver was given, at arrival

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """Answers each POST with the next scripted action, else `default`. An action is a status code, a
    (status, headers) pair, ("sleep", seconds) to answer 200 only after that long, or ("gate", Event) to hold the
    request until the event is set."""

    def __init__(self):
        self.requests: list[Received] = []
        self.script: list = []
        self.default = 200
        self.secrets: list[str] = []
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/idbroker"

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, receiver._verify(body, headers)))
                    action = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.arrived.set()
                status, extra = action, {}
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    status = 200
                elif isinstance(action, tuple) and action[0] == "gate":
                    action[1].wait(10)
                    status = 200
                elif isinstance(action, tuple):
                    status, extra = action
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting (timeout tests)

            def log_message(self, *args):
                pass

        return Handler

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    # The receiver is on 127.0.0.1, which webhooks refuse unless allowed (webhooks/egress.py; test_ssrf.py plays
    # the refusal).
    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def hooked(acme, receiver):
    """acme with its webhook URL at the receiver and a signing secret the receiver knows."""
    Provider.objects.filter(pk=acme.provider.pk).update(webhook_url=receiver.url)
    acme.provider.refresh_from_db()
    receiver.secrets.append(webhook_secret_create(provider=acme.provider, now=timezone.now()))
    return acme
