"""A local fake of Stripe Identity (vendors.md 3): the Verification Sessions API and the hosted verification page.

What it reproduces, because adapters get these wrong (docs.stripe.com/api/identity/verification_sessions):
- `Authorization: Bearer <key>` (or Basic with the key as user name), 401 otherwise; form-encoded bodies, with an
  unknown parameter refused (400) as Stripe does; a malformed `Stripe-Version` refused.
- `Idempotency-Key` on POSTs: for 24 h the saved answer is replayed (`Idempotent-Replayed: true`), including a
  refusal the endpoint reached; the same key with other parameters is an `idempotency_error`. Parameter validation
  errors are not saved (docs.stripe.com/api/idempotent_requests).
- A single-use `url` and `client_secret`, returned only in `requires_input`: a spent or 48 h old link is refused
  by the hosted page, and retrieving the session mints a fresh one (the retry flow).
- Sensitive results (`verified_outputs.dob`, the document's `dob`, `expiration_date`, `number`) only when expanded
  by name, and only for 48 h after processing, like a restricted key without IP restriction
  (docs.stripe.com/identity/access-verification-results). Stripe has no nationality field.
- Redaction allowed in `requires_input` (which cancels the session) or `verified`, refused while `processing`; it
  completes after 3 days on the fake clock, replaces PII by "[redacted]" (dates by 1-1-1), erases metadata and
  sends `identity.verification_session.redacted`.
- Webhooks `Stripe-Signature: t=<unix>,v1=<hex>` with one v1 per configured secret (a secret roll) plus a test-mode
  `v0` that receivers must ignore; bodies are Stripe events whose `data.object` is the session snapshot, without
  the url, client secret or expansions. `created` events are not sent: an endpoint subscribes to the ones it uses.
Test mode lets the person choose the outcome on the hosted page; `decide` maps the contract scenarios onto those
choices. Stripe has no manual review, so `needs_review` is refused (422).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import re
import secrets
from datetime import date, timedelta

from .base import FakeVendor, HttpError, Request, public, route

VERSION = "2025-10-29.clover"
VERSION_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
DAY = 86400
REDACTION_SECONDS = 3 * DAY  # Stripe: "up to four days"
PROCESSING_SECONDS = 60  # the hosted page's "keep it processing" choice
LINK_SECONDS = 2 * DAY  # `url` expires after 48 hours and can be used once
SENSITIVE_SECONDS = 2 * DAY  # restricted keys read sensitive results for 48 hours
IDEMPOTENCY_SECONDS = DAY
ALLOWED_TYPES = ("driving_license", "id_card", "passport")
FLAGS = ("require_matching_selfie", "require_live_capture", "require_id_number")
KNOWN_PARAMS = re.compile(
    r"type|return_url|client_reference_id|verification_flow|related_customer|expand\[\]|metadata\[[^\]]+\]"
    r"|provided_details\[(email|phone)\]|options\[document\]\[(require_matching_selfie|require_live_capture"
    r"|require_id_number|allowed_types\]\[)\]"
)
EXPANDABLE = {
    "verified_outputs",
    "verified_outputs.dob",
    "verified_outputs.id_number",
    "last_verification_report",
    "last_verification_report.document.dob",
    "last_verification_report.document.expiration_date",
    "last_verification_report.document.number",
}
SENSITIVE = {"verified_outputs": ("dob", "id_number"), "document": ("dob", "expiration_date", "number")}

# The hosted page's choices (Stripe test mode lets the tester pick the outcome): label, and the last_error reason.
OUTCOMES = {
    "verified": ("Verified: adult, German passport", None),
    "verified_driving_license": ("Verified: adult, US driving licence", None),
    "verified_minor": ("Verified: 16 years old, German ID card", None),
    "processing": ("Submitted: stays processing for a minute, then verified", None),
    "document_unverified_other": (
        "Not verified: the document could not be read (a new attempt is possible)",
        "The document could not be verified.",
    ),
    "document_expired": ("Not verified: the document has expired", "The document is expired."),
    "selfie_face_mismatch": (
        "Not verified: the selfie does not match the document",
        "The selfie does not match the photo on the document.",
    ),
    "selfie_manipulated": ("Not verified: the selfie was manipulated", "The selfie was manipulated."),
    "under_supported_age": ("Not verified: under the supported age", "The user is under the supported age."),
    "consent_declined": ("Leave: decline consent", "The user declined to be verified."),
    "abandoned": ("Leave without finishing", "The user abandoned the verification."),
}
SCENARIO_OUTCOMES = {
    "approved": "verified",
    "approved_no_nationality": "verified_driving_license",  # Stripe never reports a nationality
    "approved_minor": "verified_minor",
    "declined": "selfie_face_mismatch",
    "retry": "document_unverified_other",
    "expired": "abandoned",
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stripe Identity sandbox</title><style>
body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1a1f36}}
.note{{background:#fff8e1;padding:.75rem 1rem;border-radius:6px}} fieldset{{border:0;padding:0}}
button{{display:block;width:100%;margin:.4rem 0;padding:.6rem .8rem;font:inherit;text-align:left;cursor:pointer;
border:1px solid #635bff;border-radius:6px;background:#fff;color:#1a1f36}}
button:hover,button:focus{{background:#efeeff}}
</style></head><body><main><h1>Stripe Identity sandbox</h1>{body}</main></body></html>"""
NOTE = (
    '<p class="note">This is a local fake of Stripe Identity\'s hosted verification page, for tests and demos. '
    "It collects no document and no photo.</p>"
)


def _error(kind: str, message: str, **more) -> dict:
    return {"error": {"type": kind, "message": message, **more}}


def _ymd(day: date) -> dict:
    return {"day": day.day, "month": day.month, "year": day.year}


def _years(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year + years)
    except ValueError:  # 29 February
        return today.replace(year=today.year + years, day=28)


class Refused(HttpError):
    """The endpoint ran and refused (e.g. redacting a processing session): Stripe saves this answer for the key."""


class FakeStripeIdentity(FakeVendor):
    name = "stripe_identity"
    api_prefix = "/v1"
    rate_limit_headers = ()  # Stripe's 429 carries no RateLimit-* headers (docs.stripe.com/rate-limits)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.idempotency: dict[str, dict] = {}
            self.links: dict[str, str] = {}  # hosted-page token → session id

    def adapter_settings(self) -> dict:
        return {**super().adapter_settings(), "version": VERSION}

    def environment(self) -> dict[str, str]:
        return {
            "STRIPE_API_URL": self.url + self.api_prefix,
            "STRIPE_SECRET_KEY": self.api_key,
            "STRIPE_VERSION": VERSION,
            "STRIPE_WEBHOOK_SECRETS": ",".join(self.webhook_secrets),
        }

    def authenticate(self, request: Request) -> None:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":  # curl -u sk_test_…: sends the key as the user name
            try:
                credential = base64.b64decode(credential).decode().partition(":")[0]
            except ValueError:
                credential = ""
        elif scheme.lower() != "bearer":
            credential = ""
        if not credential:
            raise HttpError(401, _error("invalid_request_error", "You did not provide an API key."))
        if not hmac.compare_digest(credential.encode(), self.api_key.encode()):
            masked = f"{credential[:8]}****{credential[-4:]}"
            raise HttpError(401, _error("invalid_request_error", f"Invalid API Key provided: {masked}"))
        version = request.headers.get("stripe-version")
        if version is not None and not VERSION_FORMAT.fullmatch(version):
            raise HttpError(400, _error("invalid_request_error", f"Invalid Stripe API version: {version}"))

    # --- webhooks ------------------------------------------------------------------------------------------------
    @staticmethod
    def _hmac(secret: str, timestamp: int, body: bytes) -> str:
        return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

    def sign(self, body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
        return {"Stripe-Signature": f"t={timestamp},v1={self._hmac(secret, timestamp, body)}"}

    def signed_headers(self, body: bytes, *, timestamp: int) -> dict[str, str]:
        v1 = ",".join(f"v1={self._hmac(secret, timestamp, body)}" for secret in self.webhook_secrets)
        v0 = self._hmac("whsec_test_mode_v0", timestamp, body)  # test mode's legacy scheme; must be ignored
        return {"Stripe-Signature": f"t={timestamp},{v1},v0={v0}"}

    def _event(self, kind: str, session: dict) -> tuple[str, dict]:
        event_type = f"identity.verification_session.{kind}"
        return event_type, {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": VERSION,
            "created": int(self.now()),
            "data": {"object": self._render(session, links=False)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def _deliver_all(self, events: list[tuple[str, dict]]) -> None:
        for event_type, payload in events:
            self.deliver(event_type, payload)

    # --- time: processing and redaction finish by the (fake) clock ----------------------------------------------
    def dispatch(self, request: Request):
        self._deliver_all(self._tick())
        return super().dispatch(request)

    def _tick(self) -> list[tuple[str, dict]]:
        events = []
        with self.lock:
            now = self.now()
            for session in self.sessions.values():
                obj = session["object"]
                if obj["status"] == "processing" and session.get("completes_at") and session["completes_at"] <= now:
                    session["completes_at"] = None
                    events += self._finish(session, "verified")
                redaction = obj["redaction"]
                if redaction and redaction["status"] == "processing" and session["redact_at"] <= now:
                    self._scrub(session)
                    redaction["status"] = "redacted"
                    events.append(self._event("redacted", session))
        return events

    # --- sessions ------------------------------------------------------------------------------------------------
    def _session(self, session_id: str) -> dict:
        if session_id not in self.sessions:
            message = f"No such verification_session: '{session_id}'"
            raise HttpError(404, _error("invalid_request_error", message, code="resource_missing", param="session"))
        return self.sessions[session_id]

    def _refresh_link(self, session: dict) -> None:
        if session.get("link_spent") or session.get("link_expires", 0) <= self.now():
            token = "test_" + secrets.token_urlsafe(24).replace("-", "").replace("_", "")
            self.links[token] = session["object"]["id"]
            session.update(
                link=token,
                link_spent=False,
                link_expires=self.now() + LINK_SECONDS,
                client_secret=f"{session['object']['id']}_secret_{secrets.token_urlsafe(18)}",
            )

    def _render(self, session: dict, expand: tuple[str, ...] = (), *, links: bool = True) -> dict:
        obj = copy.deepcopy(session["object"])
        if links and obj["status"] == "requires_input" and obj["redaction"] is None:
            self._refresh_link(session)
            obj.update(url=f"{self.url}/start/{session['link']}", client_secret=session["client_secret"])
        decided = session.get("decided_at") or self.now()
        readable = obj["redaction"] is not None or self.now() - decided <= SENSITIVE_SECONDS
        if any(e.split(".")[0] == "verified_outputs" for e in expand):
            outputs = copy.deepcopy(session.get("verified_outputs"))
            for field in SENSITIVE["verified_outputs"] if outputs else ():
                if not (readable and f"verified_outputs.{field}" in expand):
                    outputs[field] = None
            obj["verified_outputs"] = outputs
        if session.get("report") and any(e.split(".")[0] == "last_verification_report" for e in expand):
            report = copy.deepcopy(session["report"])
            for field in SENSITIVE["document"]:
                if not (readable and f"last_verification_report.document.{field}" in expand):
                    report["document"][field] = None
            obj["last_verification_report"] = report
        return obj

    def _write(self, request: Request, action) -> tuple:
        """A POST the Stripe way: replay the saved answer for a known Idempotency-Key, else run and save."""
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(request.path.encode() + b"?" + request.body).hexdigest()
        headers = {"Idempotency-Key": key} if key else {}
        with self.lock:
            saved = self.idempotency.get(key) if key else None
            if saved and self.now() - saved["at"] < IDEMPOTENCY_SECONDS:
                if saved["fingerprint"] != fingerprint:
                    message = f"Keys for idempotent requests can only be used with the same parameters: '{key}'"
                    raise HttpError(400, _error("idempotency_error", message))
                if saved["status"] != 200:
                    raise HttpError(saved["status"], saved["body"], {**headers, "Idempotent-Replayed": "true"})
                return 200, saved["body"], {**headers, "Idempotent-Replayed": "true"}
            try:
                status, (body, events) = 200, action()
            except Refused as refused:
                status, body, events = refused.status, refused.body, []
            if key:
                self.idempotency[key] = {"at": self.now(), "fingerprint": fingerprint, "status": status, "body": body}
        self._deliver_all(events)
        if status != 200:
            raise HttpError(status, body, headers)
        return 200, body, headers

    @staticmethod
    def _form(request: Request) -> dict[str, list[str]]:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {}  # Stripe reads form parameters only: a JSON body is no parameters at all
        form = request.form()
        for name in form:
            if not KNOWN_PARAMS.fullmatch(name):
                raise HttpError(400, _error("invalid_request_error", f"Received unknown parameter: {name}", param=name))
        return form

    @route("POST", r"/v1/identity/verification_sessions")
    def create(self, request: Request):
        form = self._form(request)
        one = {name: values[-1] for name, values in form.items()}
        if one.get("type") not in ("document", "id_number"):
            raise HttpError(400, _error("invalid_request_error", "Missing required param: type.", param="type"))
        document = {"allowed_types": form.get("options[document][allowed_types][]", list(ALLOWED_TYPES))}
        if not set(document["allowed_types"]) <= set(ALLOWED_TYPES):
            raise HttpError(400, _error("invalid_request_error", "Invalid allowed_types", param="options[document]"))
        for flag in FLAGS:
            value = one.get(f"options[document][{flag}]")
            if value not in (None, "true", "false"):
                raise HttpError(400, _error("invalid_request_error", f"Invalid boolean: {value}", param=flag))
            if value is not None:
                document[flag] = value == "true"
        return_url = one.get("return_url")
        if return_url is not None and not return_url.startswith(("http://", "https://")):
            raise HttpError(400, _error("invalid_request_error", "Not a valid URL", param="return_url"))

        def action():
            session_id = "vs_" + secrets.token_hex(12)
            session = self.sessions[session_id] = {
                "object": {
                    "id": session_id,
                    "object": "identity.verification_session",
                    "client_reference_id": one.get("client_reference_id"),
                    "client_secret": None,
                    "created": int(self.now()),
                    "last_error": None,
                    "last_verification_report": None,
                    "livemode": False,
                    "metadata": {k[9:-1]: v for k, v in one.items() if k.startswith("metadata[")},
                    "options": {"document": document},
                    "redaction": None,
                    "status": "requires_input",
                    "type": one["type"],
                    "url": None,
                },
                "return_url": return_url,
            }
            return self._render(session), []

        return self._write(request, action)

    @route("GET", r"/v1/identity/verification_sessions/(?P<session_id>[^/]+)")
    def retrieve(self, request: Request, session_id: str):
        expand = tuple(request.query.get("expand[]", []))
        for path in expand:
            if path not in EXPANDABLE:
                message = f"This property cannot be expanded ({path})."
                raise HttpError(400, _error("invalid_request_error", message, param="expand"))
        with self.lock:
            return self._render(self._session(session_id), expand)

    @route("POST", r"/v1/identity/verification_sessions/(?P<session_id>[^/]+)/cancel")
    def cancel(self, request: Request, session_id: str):
        def action():
            session = self._session(session_id)
            obj = session["object"]
            if obj["status"] != "requires_input" or obj["redaction"]:
                message = f"This VerificationSession cannot be canceled because it has status `{obj['status']}`."
                raise Refused(400, _error("invalid_request_error", message))
            obj["status"] = "canceled"
            return self._render(session), [self._event("canceled", session)]

        return self._write(request, action)

    @route("POST", r"/v1/identity/verification_sessions/(?P<session_id>[^/]+)/redact")
    def redact(self, request: Request, session_id: str):
        def action():
            session = self._session(session_id)
            obj, events = session["object"], []
            if obj["redaction"] is None:
                if obj["status"] not in ("requires_input", "verified"):
                    message = "Only a VerificationSession in `requires_input` or `verified` status can be redacted."
                    raise Refused(400, _error("invalid_request_error", message))
                if obj["status"] == "requires_input":  # "Redacting … automatically cancels it"
                    obj["status"] = "canceled"
                    events.append(self._event("canceled", session))
                obj.update(redaction={"status": "processing"}, metadata={})
                session["redact_at"] = self.now() + REDACTION_SECONDS
            return self._render(session), events

        return self._write(request, action)

    def _scrub(self, session: dict) -> None:
        placeholder = {"day": 1, "month": 1, "year": 1}
        for holder in (session.get("verified_outputs"), (session.get("report") or {}).get("document")):
            for field in ("first_name", "last_name", "number", "id_number", "address"):
                if holder and holder.get(field) is not None:
                    holder[field] = "[redacted]"
            for field in ("dob", "expiration_date", "issued_date"):
                if holder and holder.get(field) is not None:
                    holder[field] = dict(placeholder)

    # --- the person finishes Stripe's page -----------------------------------------------------------------------
    def decide(self, session_id: str, scenario: str) -> list[tuple[str, dict]]:
        if scenario not in SCENARIO_OUTCOMES:
            raise HttpError(422, {"error": f"Stripe Identity cannot produce {scenario}: it has no manual review"})
        return self._submit(self.sessions[session_id], SCENARIO_OUTCOMES[scenario])

    def _submit(self, session: dict, outcome: str) -> list[tuple[str, dict]]:
        obj = session["object"]
        if obj["status"] != "requires_input" or obj["redaction"]:
            raise HttpError(409, {"error": f"session is {obj['status']}, not requires_input"})
        session["link_spent"] = True
        if outcome in ("consent_declined", "abandoned"):  # nothing was submitted: no processing step
            obj["last_error"] = {"code": outcome, "reason": OUTCOMES[outcome][1]}
            return [self._event("requires_input", session)]
        obj.update(status="processing", last_error=None)
        events = [self._event("processing", session)]
        if outcome == "processing":
            session["completes_at"] = self.now() + PROCESSING_SECONDS
            return events
        return events + self._finish(session, outcome)

    def _finish(self, session: dict, outcome: str) -> list[tuple[str, dict]]:
        obj, today = session["object"], date.today()
        first, last, dob, kind, country, expiry = {
            "verified_driving_license": ("Jenny", "Rosen", date(1988, 11, 21), "driving_license", "US", 4),
            "verified_minor": ("Lena", "Beispiel", _years(today, -16), "id_card", "DE", 6),
        }.get(outcome, ("Erika", "Mustermann", date(1990, 4, 12), "passport", "DE", 5))
        expires = today - timedelta(days=30) if outcome == "document_expired" else _years(today, expiry)
        unreadable = outcome == "document_unverified_other"
        document_error = outcome if outcome in ("document_unverified_other", "document_expired") else None
        selfie_error = outcome if outcome.startswith("selfie_") else None
        verified = outcome.startswith("verified")
        report_id = "vr_" + secrets.token_hex(12)
        session["report"] = {
            "id": report_id,
            "object": "identity.verification_report",
            "client_reference_id": obj["client_reference_id"],
            "created": int(self.now()),
            "livemode": False,
            "options": obj["options"],
            "type": "document",
            "verification_session": obj["id"],
            "document": {
                "status": "unverified" if document_error else "verified",
                "error": {"code": document_error, "reason": OUTCOMES[document_error][1]} if document_error else None,
                "type": None if unreadable else kind,
                "issuing_country": None if unreadable else country,
                "first_name": None if unreadable else first,
                "last_name": None if unreadable else last,
                "dob": None if unreadable else _ymd(dob),
                "expiration_date": None if unreadable else _ymd(expires),
                "issued_date": None if unreadable else _ymd(_years(expires, -10)),
                "number": None if unreadable else "T22000129",
                "address": None,
                "files": ["file_" + secrets.token_hex(8), "file_" + secrets.token_hex(8)],
            },
            "selfie": {
                "status": "unverified" if selfie_error or document_error else "verified",
                "error": {"code": selfie_error, "reason": OUTCOMES[selfie_error][1]} if selfie_error else None,
                "document": "file_" + secrets.token_hex(8),
                "selfie": "file_" + secrets.token_hex(8),
            },
        }
        session["decided_at"] = self.now()
        obj["last_verification_report"] = report_id
        if verified:
            session["verified_outputs"] = {
                "first_name": first,
                "last_name": last,
                "dob": _ymd(dob),
                "address": None,
                "id_number": None,
                "id_number_type": None,
            }
            obj.update(status="verified", last_error=None)
            return [self._event("verified", session)]
        session["verified_outputs"] = None
        obj.update(status="requires_input", last_error={"code": outcome, "reason": OUTCOMES[outcome][1]})
        return [self._event("requires_input", session)]

    # --- the hosted page (public: the user's browser has no API key) ---------------------------------------------
    def _link_session(self, token: str) -> dict | None:
        session = self.sessions.get(self.links.get(token, ""))
        if (
            session is None
            or session.get("link") != token
            or session.get("link_spent")
            or session.get("link_expires", 0) <= self.now()
            or session["object"]["status"] != "requires_input"
            or session["object"]["redaction"]
        ):
            return None
        return session

    @staticmethod
    def _page(body: str, status: int = 200, headers: dict | None = None) -> tuple:
        return status, PAGE.format(body=body).encode(), {"Content-Type": "text/html; charset=utf-8", **(headers or {})}

    @public
    @route("GET", r"/start/(?P<token>[A-Za-z0-9_]+)")
    def hosted_page(self, request: Request, token: str):
        with self.lock:
            if self._link_session(token) is None:
                return self._expired_page()
        buttons = "".join(
            f'<button type="submit" name="outcome" value="{name}">{html.escape(label)}</button>'
            for name, (label, _) in OUTCOMES.items()
        )
        return self._page(
            f"{NOTE}<p>In Stripe's test mode you choose how the verification ends. Pick an outcome; you will then "
            f'be sent back to the site that asked.</p><form method="post"><fieldset><legend>Outcome</legend>'
            f"{buttons}</fieldset></form>"
        )

    @public
    @route("POST", r"/start/(?P<token>[A-Za-z0-9_]+)")
    def hosted_submit(self, request: Request, token: str):
        outcome = (request.form().get("outcome") or [""])[0]
        if outcome not in OUTCOMES:
            return self._page(f"{NOTE}<p>Unknown outcome. Go back and pick one of the buttons.</p>", 400)
        with self.lock:
            session = self._link_session(token)
            if session is None:
                return self._expired_page()
            events = self._submit(session, outcome)
            return_url = session["return_url"]
        self._deliver_all(events)
        if return_url:
            return self._page("<p>Returning you to the site…</p>", 303, {"Location": return_url})
        return self._page(f"{NOTE}<p>Done. You can close this page.</p>")

    def _expired_page(self) -> tuple:
        return self._page(
            f"{NOTE}<p>This verification link has expired or was already used. Go back to the site that sent you "
            "here to get a fresh one.</p>",
            410,
        )
