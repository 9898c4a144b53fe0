"""A local fake of Onfido's classic API v3.6 (vendors.md section 2), strict where real integrations go wrong.

- Auth is `Authorization: Token token=<api token>` exactly; anything else is a 401 with Onfido's error shape.
- Uploads are multipart (`/documents` needs `type`; `/live_photos` only the file); a check needs the documents and
  photos its reports read, else a 422 `validation_error`.
- A new check is `in_progress` and its reports are `awaiting_data` with `breakdown: []` and `properties: []`, as the
  real API answers right after creation (pain point 10; the raw JSON is in Expensify App#31237).
- A complete check reflects what the live service does with the broker's placeholder applicant names: the document
  report's `data_comparison` is `consider` (name mismatch), so the document result is `consider`/`caution` even for a
  genuine document, and the check result is `consider`.
- Sandbox tokens (`api_sandbox…`) accept `consider` and `sub_result` on POST /checks and complete such checks on
  their own `sandbox_delay` seconds later (fake clock), with webhooks; live tokens get a 422 for those fields.
- Webhooks are thin (`payload{resource_type, action, object{id, status, completed_at_iso8601, href}}`), one per
  report then one for the check, signed `X-SHA2-Signature` = hex HMAC-SHA256 of the whole body with the token.
- DELETE /applicants/{id} deletes at once without a check; otherwise it archives the applicant (shown with
  `delete_at`, restorable) until the deletion delay ends, then it is gone (404). The real delay is account-configured
  and Onfido suggests at least 20 days; the fake defaults to 3 days so a test can walk it on the fake clock.
A small dashboard page (`/dashboard`) lets a person at a browser decide checks by hand during a demo.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import threading
import uuid
from datetime import UTC, date, datetime

from .base import SCENARIOS, FakeVendor, HttpError, Request, public, route

V = r"/v3\.6"
REPORT_NAMES = ("document", "facial_similarity_photo")
SUB_RESULTS = ("clear", "rejected", "suspected", "caution")
NAME = re.compile(r"[^!#$%*=<>;{}\"]+")  # applicant name pattern (onfido-openapi-spec applicant schema)
DOCUMENT_TYPES = {"passport", "driving_licence", "national_identity_card", "residence_permit", "unknown"}
DAY = 86400
# What the document report reads per approved scenario: (document_type, issuing_country, nationality, age in years).
PEOPLE = {
    "approved": ("passport", "DEU", "DEU", 36),
    "approved_no_nationality": ("driving_licence", "USA", None, 37),
    "approved_minor": ("national_identity_card", "DEU", "DEU", 16),
}
DOCUMENT_BREAKDOWN = ("visual_authenticity", "image_integrity", "data_validation", "data_consistency", "police_record")
FLAGGED = {"suspected": "visual_authenticity", "rejected": "image_integrity", "caution": "data_validation"}
DECIDABLE = [s for s in SCENARIOS if s not in ("retry", "expired")]  # vendors.md table: neither exists for checks
DASHBOARD = """<!doctype html><html lang=en><head><meta charset=utf-8><title>Onfido sandbox</title>
<meta name=viewport content="width=device-width,initial-scale=1"></head><body><h1>Onfido sandbox</h1>
<p>This is a local fake of Onfido's API, for demos and tests: no real check is made and no image is kept.
Sandbox checks complete by themselves after a few seconds; here you can decide a waiting check by hand instead.</p>
<ul>{rows}</ul></body></html>"""


def _error(status: int, kind: str, message: str, fields: dict | None = None) -> HttpError:
    return HttpError(status, {"error": {"type": kind, "message": message, "fields": fields or {}}})


def _body(request: Request) -> dict:
    body = request.json()
    if not isinstance(body, dict):
        raise _error(400, "invalid_request", "The request body must be a JSON object")
    return body


def _years_from(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year + years)
    except ValueError:  # 29 February
        return today.replace(year=today.year + years, day=28)


class FakeOnfido(FakeVendor):
    name = "onfido"
    api_prefix = "/v3.6"
    rate_limit_headers = ()  # vendors.md: no published limit and no rate-limit headers beyond Retry-After

    def __init__(self, *, deletion_delay_days: float = 3, sandbox_delay: float | None = 5.0, **kwargs):
        self.deletion_delay = deletion_delay_days * DAY
        self.sandbox_delay = sandbox_delay
        super().__init__(**kwargs)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.checks: dict[str, dict] = {}
            self.reports: dict[str, dict] = {}

    def environment(self) -> dict[str, str]:
        return {
            "ONFIDO_API_URL": self.url + self.api_prefix,
            "ONFIDO_API_TOKEN": self.api_key,
            "ONFIDO_WEBHOOK_TOKENS": ",".join(self.webhook_secrets),
        }

    def authenticate(self, request: Request) -> None:
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, f"Token token={self.api_key}".encode()):
            raise _error(401, "authorization_error", "Authorization error: please re-check your credentials")

    def sign(self, body: bytes, *, secret: str, timestamp: int) -> dict[str, str]:
        return {"X-SHA2-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}

    def deliver(self, event_type: str, payload: dict, *, stale: bool = False, tamper: bool = False) -> dict:
        """As the base, but compact JSON with raw UTF-8: an adapter that HMACs a re-serialisation of the parsed body
        instead of the raw bytes gets a different digest here, as it would in production (vendors.md pain point 2)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        delivery = {"index": len(self.deliveries), "type": event_type, "body": body, "status": None}
        with self.lock:
            self.deliveries.append(delivery)
        return self._send(delivery, stale=stale, tamper=tamper)

    # --- time-driven state: hard deletion and sandbox completion happen on the fake clock -----------------------
    def dispatch(self, request: Request):
        events = []
        with self.lock:
            now = self.now()
            for session in self.sessions.values():
                if session["archived"] and session["applicant"]["delete_at"] <= self._iso(now):
                    self._purge(session)
            for check in list(self.checks.values()):
                if check["status"] == "in_progress" and check.get("_complete_at", float("inf")) <= now:
                    events += self._complete(check, **check["_sandbox"])
        if events:  # delivered off the request thread, as the real service does, so no lock is held
            threading.Thread(target=lambda: [self.deliver(t, p) for t, p in events], daemon=True).start()
        return super().dispatch(request)

    def _iso(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _purge(self, session: dict) -> None:
        for check in session["checks"]:
            self.checks.pop(check["id"], None)
        for report in session["reports"]:
            self.reports.pop(report["id"], None)
        session.update(archived=False, deleted=True, documents=[], live_photos=[], checks=[], reports=[])
        session["applicant"] = {"id": session["applicant"]["id"]}

    def _live(self, applicant_id: str, *, archived_ok: bool = False) -> dict:
        session = self.sessions.get(applicant_id)
        if session is None or session["deleted"] or (session["archived"] and not archived_ok):
            raise _error(404, "resource_not_found", "The resource could not be found")
        return session

    def _visible(self, store: dict, object_id: str) -> dict:
        found = store.get(object_id)
        applicant_id = found and (
            found.get("applicant_id") or self.checks.get(found["check_id"], {}).get("applicant_id")
        )
        if found is None or applicant_id is None:
            raise _error(404, "resource_not_found", "The resource could not be found")
        self._live(applicant_id)  # an archived applicant's checks and reports are in the archive, not the API
        return {k: v for k, v in found.items() if not k.startswith("_")}

    # --- applicants ----------------------------------------------------------------------------------------------
    @route("POST", V + r"/applicants")
    def create_applicant(self, request: Request):
        body = _body(request)
        bad = {f: ["is invalid"] for f in ("first_name", "last_name") if not NAME.fullmatch(str(body.get(f) or ""))}
        if bad:
            raise _error(422, "validation_error", "There was a validation error on this request", bad)
        applicant_id = str(uuid.uuid4())
        keep = ("first_name", "last_name", "email", "dob", "address", "location", "phone_number")
        applicant = {
            "id": applicant_id,
            "created_at": self._iso(self.now()),
            "delete_at": None,
            "href": f"/v3.6/applicants/{applicant_id}",
            "sandbox": self.api_key.startswith("api_sandbox"),
            **{k: body[k] for k in keep if k in body},
        }
        with self.lock:
            self.sessions[applicant_id] = {
                "applicant": applicant,
                "documents": [],
                "live_photos": [],
                "checks": [],  # the same objects as self.checks/self.reports, which index them by id
                "reports": [],
                "archived": False,
                "deleted": False,
            }
        return 201, applicant

    @route("GET", V + r"/applicants/(?P<applicant_id>[^/]+)")
    def get_applicant(self, request: Request, applicant_id: str):
        with self.lock:
            return dict(self._live(applicant_id, archived_ok=True)["applicant"])

    @route("DELETE", V + r"/applicants/(?P<applicant_id>[^/]+)")
    def delete_applicant(self, request: Request, applicant_id: str):
        with self.lock:
            session = self._live(applicant_id, archived_ok=True)
            if not session["checks"]:
                self._purge(session)  # "an applicant with no check is deleted immediately"
            elif not session["archived"]:
                session["archived"] = True
                session["applicant"]["delete_at"] = self._iso(self.now() + self.deletion_delay)
        return 204, b""

    @route("POST", V + r"/applicants/(?P<applicant_id>[^/]+)/restore")
    def restore_applicant(self, request: Request, applicant_id: str):
        with self.lock:
            session = self._live(applicant_id, archived_ok=True)
            if not session["archived"]:
                raise _error(422, "validation_error", "The applicant is not scheduled for deletion")
            session["archived"] = False
            session["applicant"]["delete_at"] = None
        return 204, b""

    # --- evidence ------------------------------------------------------------------------------------------------
    def _upload(self, parts: dict, kind: str, **fields) -> tuple[int, dict]:
        applicant_id = (parts.get("applicant_id") or (None, b""))[1].decode("utf-8", "replace")
        filename, data = parts.get("file") or (None, b"")
        extension = (filename or "").rpartition(".")[2].lower()
        if not data or extension not in ("jpg", "jpeg", "png", "pdf"):
            raise _error(422, "validation_error", "There was a validation error on this request", {"file": ["bad"]})
        record = {
            "id": str(uuid.uuid4()),
            "created_at": self._iso(self.now()),
            "file_name": filename,
            "file_type": extension,
            "file_size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),  # a fake keeps a digest, never the image
            **fields,
        }
        record["href"] = f"/v3.6/{kind}/{record['id']}"
        record["download_href"] = record["href"] + "/download"
        with self.lock:
            session = self._live(applicant_id)
            session[kind].append(record)
        return 201, record

    @route("POST", V + r"/documents")
    def upload_document(self, request: Request):
        parts = request.multipart()
        value = {k: (parts.get(k) or (None, b""))[1].decode("utf-8", "replace") for k in ("type", "side")}
        country = (parts.get("issuing_country") or (None, b""))[1].decode("utf-8", "replace") or None
        if value["type"] not in DOCUMENT_TYPES or value["side"] not in ("", "front", "back"):
            raise _error(422, "validation_error", "There was a validation error on this request", {"type": ["bad"]})
        return self._upload(parts, "documents", type=value["type"], side=value["side"] or None, issuing_country=country)

    @route("POST", V + r"/live_photos")
    def upload_live_photo(self, request: Request):
        return self._upload(request.multipart(), "live_photos")

    # --- checks and reports --------------------------------------------------------------------------------------
    @route("POST", V + r"/checks")
    def create_check(self, request: Request):
        body = _body(request)
        names = body.get("report_names")
        sandbox = {k: body[k] for k in ("consider", "sub_result") if k in body}
        consider = sandbox.get("consider", [])
        problems = {}
        if not isinstance(names, list) or not names or not all(n in REPORT_NAMES for n in names):
            problems["report_names"] = ["must be a list of supported report names"]
        if sandbox and not self.api_key.startswith("api_sandbox"):
            problems["consider"] = ["is only available in the sandbox"]
        elif not isinstance(consider, list) or not all(n in REPORT_NAMES for n in consider):
            problems["consider"] = ["must be a list of report names"]
        if sandbox.get("sub_result", "clear") not in SUB_RESULTS:
            problems["sub_result"] = ["is invalid"]
        with self.lock:
            session = self._live(str(body.get("applicant_id")))
            names = names if isinstance(names, list) else []
            if ("document" in names and not session["documents"]) or (
                "facial_similarity_photo" in names and not session["live_photos"]
            ):
                problems["applicant"] = [
                    "You must provide the necessary documents to be able to proceed with this check."
                ]
            if problems:
                raise _error(422, "validation_error", "There was a validation error on this request", problems)
            check_id, now = str(uuid.uuid4()), self.now()
            check = {
                "id": check_id,
                "created_at": self._iso(now),
                "status": "in_progress",
                "result": None,
                "applicant_id": session["applicant"]["id"],
                "applicant_provides_data": False,
                "href": f"/v3.6/checks/{check_id}",
                "results_uri": f"{self.url}/dashboard#{check_id}",
                "report_ids": [],
                "tags": body.get("tags") or [],
                "webhook_ids": [],
                "sandbox": self.api_key.startswith("api_sandbox"),
                "paused": False,
                "version": "3.6",
                "_sandbox": sandbox,
            }
            if check["sandbox"] and self.sandbox_delay is not None:
                check["_complete_at"] = now + self.sandbox_delay
            for report_name in names:
                report_id = str(uuid.uuid4())
                self.reports[report_id] = {
                    "id": report_id,
                    "created_at": self._iso(now),
                    "name": report_name,
                    "href": f"/v3.6/reports/{report_id}",
                    "status": "awaiting_data",
                    "result": None,
                    "breakdown": [],
                    "properties": [],
                    "check_id": check_id,
                }
                evidence = "documents" if report_name == "document" else "live_photos"
                self.reports[report_id][evidence] = [{"id": d["id"]} for d in session[evidence][-1:]]
                check["report_ids"].append(report_id)
                session["reports"].append(self.reports[report_id])
            self.checks[check_id] = check
            session["checks"].append(check)
            return 201, self._visible(self.checks, check_id)

    @route("GET", V + r"/checks")
    def list_checks(self, request: Request):
        applicant_id = (request.query.get("applicant_id") or [""])[0]
        with self.lock:
            session = self._live(applicant_id)
            return {"checks": [self._visible(self.checks, c["id"]) for c in reversed(session["checks"])]}

    @route("GET", V + r"/checks/(?P<check_id>[^/]+)")
    def get_check(self, request: Request, check_id: str):
        with self.lock:
            return self._visible(self.checks, check_id)

    @route("GET", V + r"/reports")
    def list_reports(self, request: Request):
        check_id = (request.query.get("check_id") or [""])[0]
        with self.lock:
            check = self._visible(self.checks, check_id)
            return {"reports": [self._visible(self.reports, r) for r in check["report_ids"]]}

    @route("GET", V + r"/reports/(?P<report_id>[^/]+)")
    def get_report(self, request: Request, report_id: str):
        with self.lock:
            return self._visible(self.reports, report_id)

    # --- decisions -----------------------------------------------------------------------------------------------
    def _complete(self, check: dict, *, consider=(), sub_result=None, person="approved") -> list[tuple[str, dict]]:
        """Finish a check the way the service does, and return its webhooks: one per report, then the check's."""
        today = datetime.fromtimestamp(self.now(), UTC).date()
        document_type, country, nationality, age = PEOPLE[person]
        properties = {
            "document_type": document_type,
            "issuing_country": country,
            **({"nationality": nationality} if nationality else {}),  # absent, not null, when the document has none
            "date_of_birth": _years_from(today, -age).isoformat(),
            "date_of_expiry": _years_from(today, 5).isoformat(),
            "first_name": "ERIKA",
            "last_name": "MUSTERMANN",
            "document_numbers": [{"type": "document_number", "value": "C01X00T47"}],
        }
        document_sub = (sub_result or "suspected") if "document" in consider else "clear"
        face = "consider" if "facial_similarity_photo" in consider else "clear"
        doc_breakdown = {name: {"result": "clear"} for name in DOCUMENT_BREAKDOWN}
        # The applicant's placeholder names never match the document: data_comparison is always considered.
        names = {"first_name": {"result": "consider"}, "last_name": {"result": "consider"}}
        doc_breakdown["data_comparison"] = {"result": "consider", "breakdown": names}
        if document_sub in FLAGGED:
            doc_breakdown[FLAGGED[document_sub]] = {"result": "consider"}
        face_breakdown = {
            "face_comparison": {"result": face, "breakdown": {"face_match": {"result": face}}},
            "image_integrity": {"result": "clear"},
            "visual_authenticity": {"result": "clear", "breakdown": {"spoofing_detection": {"result": "clear"}}},
        }
        stamp = self._iso(self.now())
        events = []
        for report_id in check["report_ids"]:
            report = self.reports[report_id]
            if report["name"] == "document":
                sub = "caution" if document_sub == "clear" else document_sub
                report.update(result="consider", sub_result=sub, breakdown=doc_breakdown, properties=properties)
            else:
                report.update(
                    result=face, breakdown=face_breakdown, properties={"score": 0.91 if face == "clear" else 0.1}
                )
            report["status"] = "complete"
            events.append(self._event("report", report_id, stamp))
        check.update(status="complete", result="consider")
        check.pop("_complete_at", None)
        return [*events, self._event("check", check["id"], stamp)]

    def _event(self, resource_type: str, object_id: str, stamp: str) -> tuple[str, dict]:
        action = f"{resource_type}.completed"
        href = f"{self.url}/v3.6/{resource_type}s/{object_id}"
        obj = {"id": object_id, "status": "complete", "completed_at_iso8601": stamp, "href": href}
        return action, {"payload": {"resource_type": resource_type, "action": action, "object": obj}}

    def decide(self, session_id: str, scenario: str) -> list[tuple[str, dict]]:
        if scenario not in DECIDABLE:
            raise HttpError(422, {"error": f"Onfido checks cannot end as {scenario}"})
        session = self._live(session_id)
        if not session["checks"]:
            raise HttpError(409, {"error": "no check yet: the broker has not submitted"})
        check = session["checks"][-1]
        if scenario == "declined":
            return self._complete(check, consider=["document"], sub_result="suspected")
        if scenario == "needs_review":
            return self._complete(check, consider=["document"], sub_result="caution")
        return self._complete(check, person=scenario)

    def withdraw(self, check_id: str) -> None:
        """What an analyst does in the dashboard; there is no API call for it."""
        with self.lock:
            self.checks[check_id].update(status="withdrawn")
            for report_id in self.checks[check_id]["report_ids"]:
                self.reports[report_id].update(status="withdrawn")

    # --- a dashboard for a person at a browser during a demo -----------------------------------------------------
    @public
    @route("GET", r"/(dashboard)?")
    def dashboard(self, request: Request):
        with self.lock:
            pending = [(c["id"], c["created_at"]) for c in self.checks.values() if c["status"] == "in_progress"]
        buttons = "".join(f'<button name=scenario value="{s}">{s.replace("_", " ")}</button>' for s in DECIDABLE)
        rows = "".join(
            f'<li><form method=post action="/dashboard/checks/{html.escape(check_id)}">Check <code>'
            f"{html.escape(check_id[:8])}</code> (created {html.escape(created)}): {buttons}</form></li>"
            for check_id, created in pending
        )
        page = DASHBOARD.format(rows=rows or "<li>No check is waiting for a decision.</li>")
        return 200, page.encode(), {"Content-Type": "text/html; charset=utf-8"}

    @public
    @route("POST", r"/dashboard/checks/(?P<check_id>[^/]+)")
    def dashboard_decide(self, request: Request, check_id: str):
        scenario = (request.form().get("scenario") or [""])[0]
        with self.lock:
            check = self.checks.get(check_id)
            if check is None or check["status"] != "in_progress" or scenario not in DECIDABLE:
                raise HttpError(404, b"Nothing to decide here.", {"Content-Type": "text/plain"})
            events = self.decide(check["applicant_id"], scenario)
        for event_type, payload in events:
            self.deliver(event_type, payload)
        return 303, b"", {"Location": "/dashboard"}
