"""Fixtures for the vendor adapters: each real adapter against its local fake server, on a free loopback port."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import fakevendors
from tests.images import face
from verification.vendors import breaker
from verification.vendors.base import CaptureMode, EvidenceKind, VendorAdapter, get_vendor

REAL_VENDORS = ["persona", "onfido", "stripe_identity", "veriff"]
API_KEYS = {
    "persona": "persona_sandbox_0123456789abcdef",
    "onfido": "api_sandbox.0123456789abcdef",
    "stripe_identity": "sk_test_0123456789abcdef",
    "veriff": "veriff-api-key-0123456789",
}
SECRETS = {
    "persona": ["wbhsec_current_0123456789"],
    "onfido": ["onfido-webhook-token-0123456789"],
    "stripe_identity": ["whsec_current_0123456789"],
    "veriff": ["veriff-shared-secret-0123456789"],
}


def jpeg_bytes() -> bytes:
    """A clean JPEG (what the broker uploads after sanitising)."""
    out = io.BytesIO()
    face().save(out, format="JPEG", quality=85)
    return out.getvalue()


class Receiver:
    """A webhook endpoint on loopback that records what the fake vendor delivered (raw headers and body)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Control:
    """The fakes' shared control API (fakevendors/base.py)."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url + "/_fake", timeout=10)

    def post(self, path: str, body: dict | None = None):
        response = self.http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()

    def get(self, path: str):
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def decide(self, session_id: str, scenario: str, *, webhook: bool = True) -> httpx.Response:
        return self.http.post(f"/sessions/{session_id}/decide", json={"scenario": scenario, "webhook": webhook})

    def fault(self, **fault):
        return self.post("/faults", fault)

    def requests(self) -> list[dict]:
        return self.get("/requests")


@dataclass
class VendorUnderTest:
    name: str
    fake: object
    control: Control
    receiver: Receiver
    settings: object
    started: list = field(default_factory=list)

    @property
    def adapter(self) -> VendorAdapter:
        return get_vendor(self.name)

    @property
    def hosted(self) -> bool:
        return self.adapter.capture_mode == CaptureMode.VENDOR_HOSTED

    def configure(self, **changes) -> None:
        """Change this vendor's settings (e.g. webhook secrets during a rotation)."""
        vendors = dict(self.settings.IDBROKER_VENDORS)
        vendors[self.name] = {**vendors[self.name], **changes}
        self.settings.IDBROKER_VENDORS = vendors

    def start(self, reference: str = "vs_contract0001") -> str:
        started = self.adapter.start(
            reference=reference, return_url="http://testserver/verify/return", idempotency_key=f"start-{reference}"
        )
        self.started.append(started)
        return started.vendor_session_id

    def submit_evidence(self, vendor_session_id: str) -> None:
        """Broker-hosted: upload a document photo and a selfie, then submit (a no-op for vendor-hosted)."""
        adapter = self.adapter
        if self.hosted:
            return
        for kind in adapter.evidence_kinds:
            adapter.upload(vendor_session_id=vendor_session_id, kind=kind, data=jpeg_bytes(), mime="image/jpeg")
        adapter.submit(vendor_session_id=vendor_session_id)

    def walk(self, scenario: str, *, webhook: bool = False, reference: str = "vs_contract0001") -> str:
        """A session from start to the vendor's decision `scenario`; returns the vendor session id."""
        vendor_session_id = self.start(reference)
        self.submit_evidence(vendor_session_id)
        response = self.control.decide(vendor_session_id, scenario, webhook=webhook)
        assert response.status_code == 200, response.text
        return vendor_session_id

    def webhooks(self) -> list[tuple[dict, bytes]]:
        return list(self.receiver.received)


@pytest.fixture(params=REAL_VENDORS)
def vendor(request, settings):
    name = request.param
    receiver = Receiver()
    fake = fakevendors.make(name, api_key=API_KEYS[name], webhook_secrets=SECRETS[name], webhook_url=receiver.url)
    fake.start()
    settings.IDBROKER_VENDORS = {**settings.IDBROKER_VENDORS, name: fake.adapter_settings()}
    breaker.reset_all()
    yield VendorUnderTest(name, fake, Control(fake.url), receiver, settings)
    breaker.reset_all()
    fake.stop()
    receiver.stop()


def body_json(delivery: tuple[dict, bytes]) -> dict:
    return json.loads(delivery[1])


__all__ = ["EvidenceKind", "REAL_VENDORS", "VendorUnderTest", "body_json"]
