"""A local fake of Veriff's API-only flow (vendors.md section 4), strict where adapters go wrong.

- Every API request needs `X-AUTH-CLIENT` (the API key) and `X-HMAC-SIGNATURE`: hex HMAC-SHA256 with the shared
  secret over the raw body (POST/PATCH) or the session id (GET/DELETE); anything else is a 401. While a secret
  rotates, requests signed with the old or the new one are accepted; webhooks are signed with the new one.
- `POST /v1/sessions` -> `verification{id, url, vendorData, host, status: created, sessionToken}` (201).
- `POST /v1/sessions/{id}/media`: one image per request as base64 (a data URI is fine); longer side over 1920 px,
  or not an image, is a 400; after the attempt is submitted a 409. Only size and SHA-256 are kept and logged.
- `PATCH /v1/sessions/{id}` `{verification:{status:"submitted"}}`; again on a submitted session: 409.
- `GET /v1/sessions/{id}/decision`: `verification: null` until decided, then the latest of the session's decisions
  (a history: resubmission, new attempt, then approval). Up to 9 resubmissions; a 10th retry declines with 539.
- Event webhooks (7001 started, 7002 submitted) go out on a background queue, in order, as Veriff sends them
  after answering; decision webhooks carry the full decision, signed `x-auth-client` + `x-hmac-signature`.
- `DELETE /v1/sessions/{id}`: 403 unless `deletion_enabled` (Veriff: off until enabled); only in created, started,
  resubmission_requested (these first get an expired/abandoned decision webhook) or decided states, else 400;
  5 an hour and 10 a day, else 429 with `Retry-After`. The session is a 404 at once; its data is purged 12 h
  later on the fake clock (visible only in the fake's own state and portal, as at Veriff).
- `GET /_portal`: the Customer Portal stand-in, where a human decides test sessions (Veriff test integrations never
  decide by themselves). `GET /v/{token}`: the hosted-flow link a session carries, unused by API-only integrations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import io
import json
import math
import queue
import re
import secrets
import threading
import uuid
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, quote, urlencode

from PIL import Image, UnidentifiedImageError

from .base import SCENARIOS, FakeVendor, HttpError, Request, public, route

MAX_LONG_SIDE = 1920
MAX_CONTENT = 24 * 1024 * 1024  # base64 characters (apidocs v1sessionsidmedia-3)
CONTEXTS = {"document-front", "document-back", "face"}
OPEN = ("created", "started", "resubmission_requested")  # an attempt can take media and be submitted
DELETABLE = (*OPEN, "approved", "declined", "expired", "abandoned")
QUOTAS = ((3600, 5), (86400, 10))  # (window seconds, deletions allowed)
PURGE_AFTER = 12 * 3600
MAX_RESUBMISSIONS = 9
# Codes follow the status-codes table; the status string is what adapters must read (vendors.md section 4).
CODES = {
    "approved": 9001,
    "declined": 9102,
    "resubmission_requested": 9103,
    "expired": 9104,
    "abandoned": 9104,
    "review": 9121,
}
PORTAL_LABELS = {
    "approved": "Approve (German passport)",
    "approved_no_nationality": "Approve (US driving licence, no nationality)",
    "approved_minor": "Approve (16-year-old, German ID card)",
    "declined": "Decline (face does not match)",
    "retry": "Request resubmission (poor image quality)",
    "needs_review": "Send to review",
    "expired": "Expire the session",
}


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _fail(status: int, message: str, headers: dict[str, str] | None = None) -> HttpError:
    return HttpError(status, {"status": "fail", "message": message}, headers)


def _page(title: str, body: str) -> tuple[int, bytes, dict[str, str]]:
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "td,th{padding:.3rem .6rem;text-align:left;vertical-align:top}button{margin:.1rem}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return 200, page.encode(), {"Content-Type": "text/html; charset=utf-8"}


class FakeVeriff(FakeVendor):
    name = "veriff"
    api_prefix = "/v1"

    def __init__(self, *, deletion_enabled: bool = True, **kwargs):
        self.deletion_enabled = deletion_enabled
        self._outbox: queue.Queue = queue.Queue()
        super().__init__(**kwargs)
        threading.Thread(target=self._deliver_queued, daemon=True, name="fake-veriff-webhooks").start()

    # --- configuration, state and clock ----------------------------------------------------------------------
    @property
    def webhook_secrets(self) -> list[str]:
        return self._signing_secrets

    @webhook_secrets.setter
    def webhook_secrets(self, value: list[str]) -> None:
        # Rotation: new webhooks are signed with the new secret; requests signed with an earlier one still pass.
        self._signing_secrets = list(value)
        self._request_secrets = [*getattr(self, "_request_secrets", []), *value]

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.deletions: list[float] = []

    def environment(self) -> dict[str, str]:
        return {
            "VERIFF_API_URL": self.url + self.api_prefix,
            "VERIFF_API_KEY": self.api_key,
            "VERIFF_SHARED_SECRETS": ",".join(self.webhook_secrets),
        }

    def state(self, session_id: str) -> dict:
        with self.lock:
            session = super().state(session_id)
            deleted_at = session["deleted_at"]
            if deleted_at is not None and session["data"] == "held" and self.now() >= deleted_at + PURGE_AFTER:
                session.update(data="purged", decisions=[], attempts=[], vendorData="", callback="")
            return session

    def _live(self, session_id: str) -> dict:
        """A session as the API sees it: deleted ones are gone at once (apidocs v1sessionsid-3)."""
        session = self.state(session_id) if session_id in self.sessions else None
        if session is None or session["deleted_at"] is not None:
            raise _fail(404, "Session not found")
        return session

    def _control(self, request: Request):
        if request.path == "/_fake/config" and "deletion_enabled" in request.json():
            self.deletion_enabled = bool(request.json()["deletion_enabled"])
        if request.path.endswith("/decide"):
            self._outbox.join()  # events already sent go out before the decision, and without our lock held
        return super()._control(request)

    # --- authentication and signatures -----------------------------------------------------------------------
    @staticmethod
    def _hmac(secret: str, payload: bytes) -> str:
        return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()

    def authenticate(self, request: Request) -> None:
        if request.method in ("POST", "PATCH"):
            payload = request.body
        else:
            match = re.match(rf"{self.api_prefix}/sessions/([^/]+)", request.path)
            payload = match.group(1).encode() if match else b""
        client = request.headers.get("x-auth-client", "").encode()
        signature = request.headers.get("x-hmac-signature", "").lower().encode()
        client_ok = hmac.compare_digest(client, self.api_key.encode())
        signed = any([hmac.compare_digest(self._hmac(s, payload).encode(), signature) for s in self._request_secrets])
        if not client_ok:
            raise _fail(401, "Mandatory X-AUTH-CLIENT header containing the API key is missing or wrong.")
        if not signed:
            raise _fail(401, "Signature x-hmac-signature does not match the signed payload and shared secret.")

    def sign(self, body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
        return {"X-AUTH-CLIENT": self.api_key, "X-HMAC-SIGNATURE": self._hmac(secret, body)}

    def _log(self, request: Request) -> None:
        """Uploads are JSON with base64 inside: log their size and digest only, as the base does for multipart."""
        if request.path.endswith("/media"):
            try:
                body = json.loads(request.body)
                content = body["image"]["content"].encode()
                body["image"]["content"] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            except (ValueError, KeyError, TypeError, AttributeError):
                body = {"size": len(request.body), "sha256": hashlib.sha256(request.body).hexdigest()}
            request = Request(request.method, request.path, request.query, request.headers, json.dumps(body).encode())
        super()._log(request)

    # --- webhooks --------------------------------------------------------------------------------------------
    def _enqueue(self, event_type: str, payload: dict) -> None:
        with self.lock:
            delivery = {"index": len(self.deliveries), "type": event_type, "body": json.dumps(payload).encode()}
            delivery["status"] = None
            self.deliveries.append(delivery)
        self._outbox.put(delivery)

    def _deliver_queued(self) -> None:
        while (delivery := self._outbox.get()) is not None:
            try:
                self._send(delivery)
            except Exception:  # a bad webhook URL must not kill the queue
                delivery["status"] = 0
            finally:
                self._outbox.task_done()

    def stop(self) -> None:
        self._outbox.put(None)
        super().stop()

    def _event(self, session: dict, code: int, action: str) -> None:
        payload = {
            "id": session["id"],
            "attemptId": session["attempts"][-1]["id"],
            "feature": "selfid",
            "code": code,
            "action": action,
            "vendorData": session["vendorData"],
            "endUserId": None,
        }
        self._enqueue(f"event.{action}", payload)

    # --- decisions -------------------------------------------------------------------------------------------
    def _extracted(self, scenario: str) -> tuple[dict, dict]:
        today = datetime.fromtimestamp(self.now(), UTC).date()
        person = {"firstName": "ERIKA", "lastName": "MUSTERMANN", "dateOfBirth": "1990-04-12", "gender": "F"}
        person.update(nationality="DE", citizenship=None, idNumber=None)
        document = {"type": "PASSPORT", "number": "C01X00T47", "country": "DE"}
        if scenario == "approved_no_nationality":
            person.update(firstName="JOHN", lastName="SAMPLE", dateOfBirth="1988-11-21", gender="M", nationality=None)
            document.update(type="DRIVERS_LICENSE", number="D1234567", country="US")
        elif scenario == "approved_minor":
            person.update(firstName="MIA", dateOfBirth=_years(today, -16).isoformat())
            document.update(type="ID_CARD", number="L01X00T47")
        document.update(validFrom=_years(today, -2).isoformat(), validUntil=_years(today, 5).isoformat())
        return person, document

    def decide(self, session_id: str, scenario: str) -> list[tuple[str, dict]]:
        session = self._live(session_id)
        attempt = session["attempts"][-1]
        if scenario != "expired" and not attempt["submitted"]:
            raise HttpError(409, {"error": "nothing submitted to decide: upload media and PATCH submitted first"})
        person, document = self._extracted(scenario)
        reason_code = reason = None
        if scenario.startswith("approved"):
            status = "approved"
        elif scenario == "declined":
            status, reason_code, reason = "declined", 103, "Person showing the document does not match document photo"
        elif scenario == "needs_review":
            status = "review"
        elif scenario == "retry" and len(session["attempts"]) > MAX_RESUBMISSIONS:
            status, reason_code, reason = "declined", 539, "Resubmission limit reached"
        elif scenario == "retry":
            status, reason_code, reason = "resubmission_requested", 204, "Poor image quality"
        else:  # expired, or "abandoned" when the user started (media arrived) but never submitted
            status = "abandoned" if attempt["media"] and not attempt["submitted"] else "expired"
        if status in ("resubmission_requested", "expired", "abandoned"):
            person, document = dict.fromkeys(person), dict.fromkeys(document)
        return [("decision", self._record_decision(session, status, reason_code, reason, person, document))]

    def _record_decision(self, session, status, reason_code, reason, person=None, document=None) -> dict:
        verification = {
            "id": session["id"],
            "attemptId": session["attempts"][-1]["id"],
            "vendorData": session["vendorData"],
            "endUserId": None,
            "status": status,
            "code": CODES[status],
            "reason": reason,
            "reasonCode": reason_code,
            "decisionTime": _iso(self.now()),
            "acceptanceTime": _iso(session["created_at"]),
            "person": person or {},
            "document": document or {},
            "additionalVerifiedData": {},
            "riskLabels": [],
            "comments": [],
        }
        session["decisions"].append(verification)
        session["status"] = status
        if status == "resubmission_requested":  # the next upload starts a new attempt of the same session
            session["attempts"].append({"id": str(uuid.uuid4()), "media": [], "submitted": False})
        return {"status": "success", "verification": verification, "technicalData": {"ip": None}}

    # --- the API ---------------------------------------------------------------------------------------------
    @route("POST", r"/v1/sessions")
    def create_session(self, request: Request):
        verification = request.json().get("verification")
        if not isinstance(verification, dict):
            raise _fail(400, "verification object is required")
        vendor_data = verification.get("vendorData") or ""
        if not isinstance(vendor_data, str) or len(vendor_data) > 1000:
            raise _fail(400, "vendorData must be a string of at most 1000 characters")
        session_id, token = str(uuid.uuid4()), secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[session_id] = {
                "id": session_id,
                "vendorData": vendor_data,
                "callback": str(verification.get("callback") or ""),
                "token": token,
                "status": "created",
                "created_at": self.now(),
                "attempts": [{"id": str(uuid.uuid4()), "media": [], "submitted": False}],
                "decisions": [],
                "deleted_at": None,
                "data": "held",
            }
        created = {"id": session_id, "url": f"{self.url}/v/{token}", "vendorData": vendor_data, "host": self.url}
        return 201, {"status": "success", "verification": {**created, "status": "created", "sessionToken": token}}

    @route("POST", r"/v1/sessions/(?P<session_id>[^/]+)/media")
    def upload_media(self, request: Request, session_id: str):
        image = request.json().get("image")
        if not isinstance(image, dict) or image.get("context") not in CONTEXTS:
            raise _fail(400, "image.context must be one of " + ", ".join(sorted(CONTEXTS)))
        content = image.get("content")
        if not isinstance(content, str) or not content or len(content) > MAX_CONTENT:
            raise _fail(400, "image.content must be a base64 image under 24 MB")
        try:
            raw = base64.b64decode(content.split(",", 1)[1] if content.startswith("data:") else content, validate=True)
            with Image.open(io.BytesIO(raw)) as img:
                size, mimetype = img.size, img.get_format_mimetype()
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
            raise _fail(400, "image.content is not a readable image") from None
        if max(size) > MAX_LONG_SIDE:
            raise _fail(400, f"image is {size[0]}x{size[1]}: the longer side must be at most {MAX_LONG_SIDE} px")
        with self.lock:
            session = self._live(session_id)
            attempt = session["attempts"][-1]
            if session["status"] not in OPEN or attempt["submitted"]:
                raise _fail(409, "Session has been submitted: media can no longer be added")
            media = {"id": str(uuid.uuid4()), "context": image["context"], "size": len(raw)}
            media.update(sha256=hashlib.sha256(raw).hexdigest(), timestamp=image.get("timestamp"))
            attempt["media"].append(media)
            if session["status"] != "started":
                session["status"] = "started"
                self._event(session, 7001, "started")
        uploaded = {**media, "name": image["context"], "mimetype": mimetype, "url": f"/v1/media/{media['id']}"}
        return 200, {"status": "success", "image": uploaded}

    @route("PATCH", r"/v1/sessions/(?P<session_id>[^/]+)")
    def update_session(self, request: Request, session_id: str):
        verification = request.json().get("verification")
        if not isinstance(verification, dict) or verification.get("status") != "submitted":
            raise _fail(400, 'verification.status must be "submitted"')
        with self.lock:
            session = self._live(session_id)
            if session["status"] not in OPEN:
                raise _fail(409, "Session cannot be updated after it has been submitted")
            session["status"] = "submitted"
            session["attempts"][-1]["submitted"] = True
            self._event(session, 7002, "submitted")
            return 200, {"status": "success", "verification": {"id": session_id, "status": "submitted"}}

    @route("GET", r"/v1/sessions/(?P<session_id>[^/]+)/decision")
    def decision(self, request: Request, session_id: str):
        with self.lock:
            decisions = self._live(session_id)["decisions"]
            latest = json.loads(json.dumps(decisions[-1])) if decisions else None
        return 200, {"status": "success", "verification": latest, "technicalData": {"ip": None}}

    @route("DELETE", r"/v1/sessions/(?P<session_id>[^/]+)")
    def delete_session(self, request: Request, session_id: str):
        if not self.deletion_enabled:
            raise _fail(403, "Session deletion is not enabled for this integration")
        with self.lock:
            session = self._live(session_id)
            if session["status"] not in DELETABLE:
                raise _fail(400, "Session is not in a completed status.")
            now = self.now()
            waits = []
            for window, allowed in QUOTAS:
                recent = sorted(t for t in self.deletions if now - t < window)
                if len(recent) >= allowed:
                    waits.append(recent[-allowed] + window - now)
            if waits:
                raise _fail(429, "Session deletion rate limit reached", {"Retry-After": str(math.ceil(max(waits)))})
            if session["status"] in OPEN:  # Veriff closes the session first and says so by decision webhook
                closed = "abandoned" if session["status"] != "created" else "expired"
                self._enqueue("decision", self._record_decision(session, closed, None, None))
            self.deletions.append(now)
            session["deleted_at"] = now
        return 200, {"status": "success"}

    # --- pages for a human -----------------------------------------------------------------------------------
    @public
    @route("GET", r"/v/(?P<token>[A-Za-z0-9_-]+)")
    def hosted_flow(self, request: Request, token: str):
        with self.lock:
            session = next((s for s in self.sessions.values() if s["token"] == token), None)
        if session is None or session["deleted_at"] is not None:
            raise HttpError(404, b"Session not found", {"Content-Type": "text/plain"})
        back = html.escape(session["callback"], quote=True)
        return _page(
            "Veriff sandbox",
            "<p>This is a local fake of Veriff, not Veriff. This integration sends its photos through the API, "
            "so there is nothing to capture on this page. Test decisions are made in the "
            '<a href="/_portal">portal</a>.</p>' + (f'<p><a href="{back}">Back to the site</a></p>' if back else ""),
        )

    @public
    @route("GET", r"/_portal")
    def portal(self, request: Request):
        message = request.query.get("message", [""])[0]
        with self.lock:
            sessions = [self.state(session_id) for session_id in self.sessions]
        rows = []
        for s in sorted(sessions, key=lambda s: -s["created_at"]):
            sid = html.escape(s["id"])
            if s["deleted_at"] is not None:
                actions = f"deleted ({html.escape(s['data'])})"
            else:
                buttons = "".join(
                    f'<button name="scenario" value="{k}">{html.escape(v)}</button>' for k, v in PORTAL_LABELS.items()
                )
                actions = f'<form method="post" action="/_portal/sessions/{sid}/decide">{buttons}</form>'
            rows.append(
                f"<tr><td><code>{sid[:8]}</code></td><td><code>{html.escape(s['vendorData'])}</code></td>"
                f"<td>{html.escape(s['status'])}</td><td>{len(s['attempts'])}</td><td>{actions}</td></tr>"
            )
        table = "".join(rows) or '<tr><td colspan="5">No sessions yet.</td></tr>'
        return _page(
            "Veriff sandbox: Customer Portal",
            "<p>A local fake of Veriff for tests and demos. Test integrations at Veriff never decide on their own: "
            "you set each decision in the Customer Portal. Here, a button does it and the decision webhook goes "
            "to the broker.</p>"
            + (f"<p><strong>{html.escape(message)}</strong></p>" if message else "")
            + "<table><tr><th>Session</th><th>vendorData</th><th>Status</th><th>Attempts</th><th>Decide</th></tr>"
            + f"{table}</table>",
        )

    @public
    @route("POST", r"/_portal/sessions/(?P<session_id>[^/]+)/decide")
    def portal_decide(self, request: Request, session_id: str):
        scenario = parse_qs(request.body.decode("utf-8", "replace")).get("scenario", [""])[0]
        self._outbox.join()
        try:
            if scenario not in SCENARIOS:
                raise HttpError(422, {"error": "unknown scenario"})
            with self.lock:
                events = self.decide(session_id, scenario)
            for event_type, payload in events:
                self.deliver(event_type, payload)
            message = f"Session {session_id[:8]}: {PORTAL_LABELS[scenario].lower()}."
        except HttpError as refused:
            message = f"Session {session_id[:8]}: refused ({refused.body})."
        return 303, b"", {"Location": "/_portal?" + urlencode({"message": message}, quote_via=quote)}
