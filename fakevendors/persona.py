"""A local fake of Persona's inquiry API and hosted flow (vendors.md §1), faithful where adapters go wrong.

- Auth `Authorization: Bearer <key>` (401 otherwise); `Persona-Version` must be a date when sent;
  `Key-Inflection` changes response keys (kebab by default), so an adapter that forgets to pin it breaks here too.
- `POST /inquiries` (JSON:API, `Idempotency-Key` replays the first answer), then
  `POST /inquiries/{id}/generate-one-time-link` → `meta.one-time-link` = `<fake>/verify?code=…`: single use,
  24 h. The page there is the hosted flow: the user picks an outcome and is sent to the `redirect-uri` with
  `?inquiry-id=…&reference-id=…&status=…`.
- `GET /inquiries/{id}` answers `included` verifications only when asked (`include=verifications`).
  Statuses `created` → `pending` → `completed`/`failed`/`expired` → `approved`/`declined`/`needs_review`.
- Webhooks carry the whole inquiry (`data{type:event,id:evt_…,attributes{name,created-at,payload}}`), signed
  `Persona-Signature: t=<unix>,v1=<hex>`, one space-separated set per secret during rotation.
- `DELETE /inquiries/{id}` redacts the inquiry at once (`redacted-at`) and its verifications about an hour later on
  the fake clock (asynchronous child redaction).
- `retry` is refused (422): Persona retries inside its own flow and never hands a retry back to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import string
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from .base import FakeVendor, HttpError, Request, public, route

TEMPLATE_ID = "itmpl_FakeTemplate0001"
VERSION = "2025-10-27"
LINK_TTL = 24 * 3600  # vendors.md §1: one-time links expire after 24 h by default
CHILD_REDACTION_DELAY = 3600
# Attributes `POST /inquiries` accepts; anything else (a `referenceId` typo, say) is refused with a 400.
# fmt: off
CREATE_ATTRIBUTES = {
    "inquiry-template-id", "inquiry-template-version-id", "reference-id", "account-id", "redirect-uri", "fields",
    "note", "tags", "theme-id",
}
# The inquiry attributes the fake renders, and what redaction clears from a verification (vendors.md §1).
INQUIRY_ATTRIBUTES = (
    "status", "reference-id", "created-at", "started-at", "completed-at", "failed-at", "decisioned-at", "expired-at",
    "redacted-at", "name-first", "name-last", "birthdate", "fields",
)
PII = (
    "name-first", "name-middle", "name-last", "birthdate", "identification-number", "nationality", "sex",
    "issue-date", "expiration-date", "country-code",
)
# fmt: on
PAGE_OUTCOMES = {
    "approved": "Approve (German passport)",
    "approved_no_nationality": "Approve (US driving licence, no nationality read)",
    "approved_minor": "Approve (16-year-old, German ID card)",
    "declined": "Decline (document tampering detected)",
    "needs_review": "Send to manual review",
    "expired": "Abandon (inquiry expires)",
}


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def _years(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year + years)
    except ValueError:  # 29 February
        return today.replace(year=today.year + years, day=28)


def _inflect(value, style: str):
    """Persona's Key-Inflection applies to every key of a response (camel, snake; kebab is native here)."""
    if isinstance(value, list):
        return [_inflect(v, style) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if style == "snake":
            key = key.replace("-", "_")
        elif style == "camel":
            key = re.sub(r"-(\w)", lambda m: m.group(1).upper(), key)
        out[key] = _inflect(item, style)
    return out


def _error(status: int, title: str) -> HttpError:
    return HttpError(status, {"errors": [{"title": title}]})


class FakePersona(FakeVendor):
    name = "persona"
    api_prefix = "/api/v1"
    rate_limit_headers = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.links: dict[str, dict] = {}  # one-time link code → {inquiry, expires, used}
            # Persona links every inquiry to an account keyed by its reference-id (vendors.md §1): the account
            # keeps its own copy (e.g. identification numbers) and is redacted separately, asynchronously.
            self.accounts: dict[str, dict] = {}
            self.idempotent: dict[tuple[str, str], tuple[str, int, dict]] = {}

    # --- configuration -------------------------------------------------------------------------------------------
    def adapter_settings(self) -> dict:
        return {**super().adapter_settings(), "template_id": TEMPLATE_ID, "version": VERSION}

    def environment(self) -> dict[str, str]:
        return {
            "PERSONA_API_URL": self.url + self.api_prefix,
            "PERSONA_API_KEY": self.api_key,
            "PERSONA_TEMPLATE_ID": TEMPLATE_ID,
            "PERSONA_VERSION": VERSION,
            "PERSONA_WEBHOOK_SECRETS": ",".join(self.webhook_secrets),
        }

    def authenticate(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            raise _error(401, "Must be authenticated to access this endpoint")
        version = request.headers.get("persona-version")
        if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", version):
            raise _error(400, "Invalid Persona-Version")
        if request.headers.get("key-inflection", "kebab") not in ("kebab", "camel", "snake"):
            raise _error(400, "Invalid Key-Inflection")

    # --- webhook signatures --------------------------------------------------------------------------------------
    def sign(self, body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Persona-Signature": f"t={timestamp},v1={digest}"}

    def signed_headers(self, body: bytes, *, timestamp: int) -> dict[str, str]:
        sets = [self.sign(body, secret=s, timestamp=timestamp)["Persona-Signature"] for s in self.webhook_secrets]
        return {"Persona-Signature": " ".join(sets)}

    # --- JSON:API rendering --------------------------------------------------------------------------------------
    def _iso(self, offset: float = 0.0) -> str:
        return (
            datetime.fromtimestamp(self.now() + offset, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    def _redact_due_children(self, inquiry: dict) -> None:
        for verification in inquiry["verifications"]:
            due = verification.get("redact-due")
            if due is not None and self.now() >= due and not verification["attributes"]["redacted-at"]:
                verification["attributes"].update({k: None for k in PII}, **{"redacted-at": self._iso()})
                verification["attributes"]["checks"] = []

    def _document(self, inquiry: dict, *, include: bool) -> dict:
        self._redact_due_children(inquiry)
        attributes = {k: inquiry[k] for k in INQUIRY_ATTRIBUTES}
        data = {
            "type": "inquiry",
            "id": inquiry["id"],
            "attributes": attributes,
            "relationships": {
                "inquiry-template": {"data": {"type": "inquiry-template", "id": inquiry["inquiry-template-id"]}},
                "verifications": {"data": [{"type": v["type"], "id": v["id"]} for v in inquiry["verifications"]]},
                "account": {"data": {"type": "account", "id": inquiry["account-id"]}},
            },
        }
        document = {"data": data}
        if include:
            document["included"] = [
                {k: v for k, v in ver.items() if k != "redact-due"} for ver in inquiry["verifications"]
            ]
        return document

    def _render(self, request: Request, document: dict, status: int = 200):
        return status, _inflect(document, request.headers.get("key-inflection", "kebab"))

    def _inquiry(self, inquiry_id: str) -> dict:
        inquiry = self.sessions.get(inquiry_id)
        if inquiry is None:
            raise _error(404, "Record not found")
        return inquiry

    def _replay(self, request: Request, produce):
        """Idempotency-Key: the first answer for (path, key) is replayed; the same key with another body is refused."""
        key = request.headers.get("idempotency-key")
        if not key:
            return produce()
        digest = hashlib.sha256(request.body).hexdigest()
        with self.lock:
            seen = self.idempotent.get((request.path, key))
            if seen is not None:
                if seen[0] != digest:
                    raise _error(422, "Idempotency-Key was used with different parameters")
                return seen[1], seen[2]
            status, body = produce()
            self.idempotent[(request.path, key)] = (digest, status, body)
            return status, body

    # --- the API -------------------------------------------------------------------------------------------------
    @route("POST", r"/api/v1/inquiries")
    def create_inquiry(self, request: Request):
        attributes = (request.json().get("data") or {}).get("attributes") or {}
        unknown = set(attributes) - CREATE_ATTRIBUTES
        if unknown:
            raise _error(400, f"Unpermitted attributes: {', '.join(sorted(unknown))}")
        template = attributes.get("inquiry-template-id") or attributes.get("inquiry-template-version-id")
        if template != TEMPLATE_ID:
            raise _error(422, "inquiry-template-id is missing or unknown")

        def produce():
            with self.lock:
                inquiry_id = _id("inq_")
                reference = attributes.get("reference-id")
                account = next(
                    (a for a in self.accounts.values() if reference and a["reference-id"] == reference), None
                )
                if account is None:
                    account = {"id": _id("act_"), "reference-id": reference, "redacted-at": None, "redact-due": None}
                    account["identification-numbers"] = []
                    self.accounts[account["id"]] = account
                self.sessions[inquiry_id] = {
                    "account-id": account["id"],
                    "id": inquiry_id,
                    "inquiry-template-id": template,
                    "status": "created",
                    "reference-id": attributes.get("reference-id"),
                    "redirect-uri": attributes.get("redirect-uri"),
                    "created-at": self._iso(),
                    **dict.fromkeys(("started-at", "completed-at", "failed-at", "decisioned-at", "expired-at")),
                    **dict.fromkeys(("redacted-at", "name-first", "name-last", "birthdate")),
                    "fields": {},
                    "verifications": [],
                    "session-tokens": {},  # hosted-flow session token → redirect-uri
                }
                return self._render(request, self._document(self.sessions[inquiry_id], include=False), 201)

        return self._replay(request, produce)

    @route("GET", r"/api/v1/inquiries/(?P<inquiry_id>[^/]+)")
    def retrieve_inquiry(self, request: Request, inquiry_id: str):
        with self.lock:
            include = "verifications" in ",".join(request.query.get("include", []))
            return self._render(request, self._document(self._inquiry(inquiry_id), include=include))

    @route("POST", r"/api/v1/inquiries/(?P<inquiry_id>[^/]+)/generate-one-time-link")
    def generate_one_time_link(self, request: Request, inquiry_id: str):
        def produce():
            with self.lock:
                inquiry = self._inquiry(inquiry_id)
                if inquiry["status"] not in ("created", "pending") or inquiry["redacted-at"]:
                    raise _error(422, "Inquiry cannot be resumed")
                code = secrets.token_urlsafe(16)
                self.links[code] = {"inquiry": inquiry_id, "expires": self.now() + LINK_TTL, "used": False}
                document = self._document(inquiry, include=False)
                document["meta"] = {"one-time-link": f"{self.url}/verify?code={code}"}
                return self._render(request, document)

        return self._replay(request, produce)

    @route("DELETE", r"/api/v1/inquiries/(?P<inquiry_id>[^/]+)")
    def redact_inquiry(self, request: Request, inquiry_id: str):
        with self.lock:
            inquiry = self._inquiry(inquiry_id)
            if not inquiry["redacted-at"]:
                inquiry.update({"redacted-at": self._iso(), "name-first": None, "name-last": None, "birthdate": None})
                inquiry["fields"] = {}
                for verification in inquiry["verifications"]:
                    verification["redact-due"] = self.now() + CHILD_REDACTION_DELAY
            include = "verifications" in ",".join(request.query.get("include", []))
            return self._render(request, self._document(inquiry, include=include))

    def _account_document(self, account: dict) -> dict:
        due = account["redact-due"]
        if due is not None and self.now() >= due and not account["redacted-at"]:
            account.update({"redacted-at": self._iso(), "identification-numbers": [], "reference-id": None})
        attributes = {k: account[k] for k in ("reference-id", "redacted-at", "identification-numbers")}
        return {"data": {"type": "account", "id": account["id"], "attributes": attributes}}

    @route("GET", r"/api/v1/accounts/(?P<account_id>[^/]+)")
    def retrieve_account(self, request: Request, account_id: str):
        with self.lock:
            if account_id not in self.accounts:
                raise _error(404, "Record not found")
            return self._render(request, self._account_document(self.accounts[account_id]))

    @route("DELETE", r"/api/v1/accounts/(?P<account_id>[^/]+)")
    def redact_account(self, request: Request, account_id: str):
        """Redact an account: cascading and asynchronous (vendors.md §1); the answer comes before it is done."""
        with self.lock:
            account = self.accounts.get(account_id)
            if account is None:
                raise _error(404, "Record not found")
            if account["redact-due"] is None:
                account["redact-due"] = self.now() + CHILD_REDACTION_DELAY
            return self._render(request, self._account_document(account))

    # --- outcomes ------------------------------------------------------------------------------------------------
    def _verification(self, kind: str, status: str, attributes: dict, checks: dict[str, str]) -> dict:
        return {
            "type": f"verification/{kind}",
            "id": _id("ver_"),
            "attributes": {
                "status": status,
                "created-at": self._iso(-60),
                "submitted-at": self._iso(-50),
                "completed-at": self._iso(-40),
                "redacted-at": None,
                **attributes,
                "checks": [
                    {"name": n, "status": s, "reasons": [], "requirement": "required", "metadata": {}}
                    for n, s in checks.items()
                ],
            },
            "redact-due": None,
        }

    def _government_id(self, status: str, scenario: str, tampered: bool = False) -> dict:
        today = datetime.fromtimestamp(self.now(), UTC).date()
        person = {"name-first": "Erika", "name-middle": None, "name-last": "Mustermann", "sex": "Female"}
        document = {"id-class": "pp", "country-code": "DE", "nationality": "DE", "birthdate": "1990-04-12"}
        if scenario == "approved_minor":
            document = {"id-class": "id", "country-code": "DE", "nationality": "DE"}
            document["birthdate"] = _years(today, -16).isoformat()
        if scenario == "approved_no_nationality":  # the real sandbox quirk: nothing but the selected country
            document = {"id-class": "dl", "country-code": None, "nationality": None, "birthdate": "1988-11-21"}
            document["issuing-subdivision"] = "CA"
        checks = {
            "id_tamper_detection": "failed" if tampered else "passed",
            "id_expired_detection": "passed",
            "id_selfie_comparison": "passed",
            "id_barcode_detection": "not_applicable",
        }
        extra = {
            "identification-number": "C01X00T47",
            "issue-date": _years(today, -5).isoformat(),
            "expiration-date": _years(today, 5).isoformat(),
        }
        return self._verification("government-id", status, {**person, **document, **extra}, checks)

    def decide(self, session_id: str, scenario: str) -> list[tuple[str, dict]]:
        if scenario not in PAGE_OUTCOMES:  # `retry`: Persona never hands a retry back (vendors.md table)
            raise _error(422, f"Persona cannot produce {scenario}")
        inquiry = self.sessions[session_id]
        if inquiry["status"] not in ("created", "pending"):
            raise _error(409, f"inquiry is already {inquiry['status']}")
        inquiry["started-at"] = inquiry["started-at"] or self._iso(-120)
        if scenario == "expired":
            inquiry.update({"status": "expired", "expired-at": self._iso()})
            return [self._event(inquiry, "inquiry.expired")]
        country = "US" if scenario == "approved_no_nationality" else "DE"
        inquiry["fields"] = {"selected-country-code": {"type": "string", "value": country}}
        selfie_checks = {"selfie_liveness_detection": "passed", "selfie_id_comparison": "passed"}
        document = self._government_id(
            "failed" if scenario == "declined" else "passed", scenario, scenario == "declined"
        )
        inquiry["verifications"] = [document, self._verification("selfie", "passed", {}, selfie_checks)]
        names = document["attributes"]
        inquiry.update({"name-first": names["name-first"], "name-last": names["name-last"]})
        inquiry["birthdate"] = names["birthdate"]
        account = self.accounts[inquiry["account-id"]]
        account["identification-numbers"].append(
            {
                "identification-class": "pp",
                "identification-number": names.get("identification-number") or "X1234567",
                "issuing-country": country,
            }
        )
        if scenario == "declined":
            inquiry.update({"status": "failed", "failed-at": self._iso()})
            events = [self._event(inquiry, "inquiry.failed")]
            inquiry.update({"status": "declined", "decisioned-at": self._iso()})
            return [*events, self._event(inquiry, "inquiry.declined", offset=0.001)]
        inquiry.update({"status": "completed", "completed-at": self._iso()})
        events = [self._event(inquiry, "inquiry.completed")]
        final = "needs_review" if scenario == "needs_review" else "approved"
        inquiry.update({"status": final, "decisioned-at": self._iso()})
        name = "inquiry.marked-for-review" if final == "needs_review" else "inquiry.approved"
        return [*events, self._event(inquiry, name, offset=0.001)]

    def _event(self, inquiry: dict, name: str, offset: float = 0.0) -> tuple[str, dict]:
        """A snapshot of the inquiry as it was when the event happened (vendors.md: the payload is the object)."""
        document = json.loads(json.dumps(self._document(inquiry, include=True)))  # frozen now, sent later
        payload = {"data": document["data"], "included": document["included"]}
        event = {"type": "event", "id": _id("evt_"), "attributes": {"name": name, "created-at": self._iso(offset)}}
        event["attributes"]["payload"] = payload
        return name, {"data": event}

    # --- the hosted flow (a browser page; no API key) ------------------------------------------------------------
    @public
    @route("GET", r"/verify")
    def hosted_page(self, request: Request):
        code = (request.query.get("code") or [""])[0]
        events = []
        with self.lock:
            link = self.links.get(code)
            if link is None or link["used"] or link["expires"] < self.now():
                return _page(410, "This link has expired", "<p>One-time links work once. Ask for a new link.</p>")
            link["used"] = True
            inquiry = self.sessions[link["inquiry"]]
            token = secrets.token_urlsafe(16)
            # The link's `redirect-uri` (a hosted-flow parameter) wins over the inquiry's; kept server-side.
            redirect = (request.query.get("redirect-uri") or [inquiry["redirect-uri"] or ""])[0]
            inquiry["session-tokens"][token] = redirect
            if inquiry["status"] == "created":
                inquiry.update({"status": "pending", "started-at": self._iso()})
                events.append(self._event(inquiry, "inquiry.started"))
            hidden = {"inquiry-id": inquiry["id"], "session-token": token}
        for event_type, payload in events:
            self.deliver(event_type, payload)
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v, quote=True)}">' for k, v in hidden.items()
        )
        buttons = "".join(
            f'<p><button name="outcome" value="{k}">{html.escape(v)}</button></p>' for k, v in PAGE_OUTCOMES.items()
        )
        body = (
            "<p>This is a <strong>local fake</strong> of Persona's hosted verification page, for development and "
            "demos. No camera, no document, no real check: choose what Persona would decide.</p>"
            f'<form method="post" action="/verify/finish">{fields}{buttons}</form>'
        )
        return _page(200, "Persona sandbox", body)

    @public
    @route("POST", r"/verify/finish")
    def hosted_finish(self, request: Request):
        form = {k: v[0] for k, v in request.form().items()}
        with self.lock:
            inquiry = self.sessions.get(form.get("inquiry-id", ""))
            token = form.get("session-token", "").encode()
            tokens = inquiry["session-tokens"] if inquiry else {}
            redirect = next((r for t, r in tokens.items() if hmac.compare_digest(token, t.encode())), None)
            if redirect is None:
                return _page(403, "Session expired", "<p>This session is no longer valid.</p>")
            inquiry["session-tokens"] = {}
            try:
                events = self.decide(inquiry["id"], form.get("outcome", ""))
            except HttpError as exc:
                return _page(exc.status, "This inquiry cannot continue", f"<p>{html.escape(str(exc.body))}</p>")
            query = {
                "inquiry-id": inquiry["id"],
                "reference-id": inquiry["reference-id"] or "",
                "status": inquiry["status"],
            }
        for event_type, payload in events:
            self.deliver(event_type, payload)
        if not redirect:
            return _page(200, "Done", "<p>Thank you. You can close this window.</p>")
        separator = "&" if "?" in redirect else "?"
        return 303, b"", {"Location": redirect + separator + urlencode(query), "Content-Type": "text/html"}


def _page(status: int, title: str, body: str):
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return status, page.encode(), {"Content-Type": "text/html; charset=utf-8"}
