"""Persona (vendors.md §1): vendor-hosted capture. The broker creates an inquiry, sends the user to a one-time link
on Persona's page, and later re-fetches the inquiry with its verifications. It never sees an image.

API: JSON:API bodies, `Authorization: Bearer`, a dated `Persona-Version`, and `Key-Inflection: kebab` pinned so the
attribute names below hold whatever the key's default is. Webhooks carry the full inquiry, but we use them only as
a nudge to re-fetch (SPEC 5): `Persona-Signature: t=<unix>,v1=<hex HMAC-SHA256 over "t.body">`, two space-separated
sets while a secret rotates.

Sandbox outcomes: `scenarios()` is empty. Persona's sandbox forces pass/fail from the dashboard, and its
`perform-simulate-actions` endpoint drives an inquiry the user never opened; with vendor-hosted capture the user
picks the outcome on the (sandbox or fake) hosted page instead, which exercises the real redirect and webhooks.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

from .base import (
    CaptureMode,
    Check,
    DeletionState,
    Facts,
    Outcome,
    Result,
    StartResult,
    VendorAdapter,
    VendorError,
    WebhookEvent,
    WebhookRejected,
    vendor_config,
)
from .http import VendorHttp, json_object
from .normalize import country_alpha2, iso_date
from .signatures import header, secrets_list, verify_timestamped

log = logging.getLogger(__name__)

INQUIRY_ID = re.compile(r"inq_[A-Za-z0-9]{1,64}")

# Inquiry statuses (vendors.md §1, Statuses and the normalized table). `created`/`pending`: the user has not
# finished Persona's page. `completed` is final only for a template without a review or decision step
# (PERSONA_COMPLETED_IS_FINAL); otherwise approved/declined/needs_review follows it and decides.
STATUSES = {
    "created": Outcome.WAITING_FOR_USER,
    "pending": Outcome.WAITING_FOR_USER,
    "completed": Outcome.PENDING,
    "approved": Outcome.APPROVED,
    "failed": Outcome.DECLINED,
    "declined": Outcome.DECLINED,
    "needs_review": Outcome.NEEDS_REVIEW,
    "expired": Outcome.EXPIRED,
}
ID_CLASSES = {"pp": "passport", "dl": "driving_licence", "id": "id_card", "rp": "residence_permit"}
GOVERNMENT_ID = "verification/government-id"
SELFIE = "verification/selfie"
# Check names from Persona's government-id and selfie verifications (vendors.md §1, Result fields).
AUTHENTICITY_CHECKS = ("id_tamper_detection", "id_fabrication_detection", "id_electronic_replica_detection")
LIVENESS_CHECKS = ("selfie_liveness_detection",)
FACE_MATCH_CHECKS = ("selfie_id_comparison", "id_selfie_comparison")


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _field(fields: object, name: str) -> object:
    """An inquiry field's value: `{"type": .., "value": ..}` in the API, a bare value in older payloads."""
    if not isinstance(fields, dict):
        return None
    value = fields.get(name)
    return value.get("value") if isinstance(value, dict) else value


def _checks(verifications: list[dict], names: tuple[str, ...]) -> Check:
    """FAIL if any of the named checks failed, PASS if one passed and none failed, else UNKNOWN (`not_applicable`,
    or a template that does not run it: we never claim a pass Persona did not report)."""
    statuses = [
        check.get("status")
        for verification in verifications
        for check in (verification.get("attributes") or {}).get("checks") or []
        if isinstance(check, dict) and check.get("name") in names
    ]
    if "failed" in statuses:
        return Check.FAIL
    return Check.PASS if "passed" in statuses else Check.UNKNOWN


def _latest(verifications: list[dict]) -> list[dict]:
    """Newest first: a user may retry inside Persona's flow, and only the last attempt speaks for the inquiry."""

    def when(verification: dict) -> str:
        attributes = verification.get("attributes") or {}
        return str(attributes.get("completed-at") or attributes.get("created-at") or "")

    return sorted(verifications, key=when, reverse=True)


class PersonaVendor(VendorAdapter):
    name = "persona"
    capture_mode = CaptureMode.VENDOR_HOSTED
    evidence_kinds = ()

    # --- plumbing ------------------------------------------------------------------------------------------------
    def _http(self) -> VendorHttp:
        config = vendor_config(self.name)  # read per call: keys and secrets may change at run time
        headers = {
            "Authorization": f"Bearer {config['api_key']}",
            "Key-Inflection": "kebab",
            "Accept": "application/json",
        }
        if config.get("version"):
            headers["Persona-Version"] = config["version"]
        return VendorHttp(self.name, config["api_url"], headers=headers)

    @staticmethod
    def _path(vendor_session_id: str) -> str:
        if not INQUIRY_ID.fullmatch(vendor_session_id or ""):
            raise VendorError("unknown_session", permanent=True)
        return "/inquiries/" + quote(vendor_session_id, safe="")

    def _one_time_link(self, vendor_session_id: str, return_url: str, idempotency_key: str) -> str:
        """A fresh single-use link (vendors.md §1: 24 h, one use). `redirect-uri` is also a documented query
        parameter of the hosted flow, so the link names the return URL even if the inquiry's copy differs."""
        response = self._http().request(
            "POST", self._path(vendor_session_id) + "/generate-one-time-link", json={}, idempotency_key=idempotency_key
        )
        link = (json_object(response).get("meta") or {}).get("one-time-link")
        if not isinstance(link, str) or urlsplit(link).scheme not in ("http", "https"):
            raise VendorError("unparseable_response")
        return link + ("&" if "?" in link else "?") + urlencode({"redirect-uri": return_url})

    # --- the interface -------------------------------------------------------------------------------------------
    def start(self, *, reference: str, return_url: str, idempotency_key: str) -> StartResult:
        template = vendor_config(self.name).get("template_id") or ""
        if not template:
            raise VendorError("not_configured", permanent=True)
        template_key = "inquiry-template-version-id" if template.startswith("itmplv_") else "inquiry-template-id"
        # Only the opaque reference travels (SPEC 5): no name, no birth date, no prefilled `fields`.
        attributes = {template_key: template, "reference-id": reference, "redirect-uri": return_url}
        response = self._http().request(
            "POST", "/inquiries", json={"data": {"attributes": attributes}}, idempotency_key=idempotency_key
        )
        inquiry_id = (json_object(response).get("data") or {}).get("id")
        if not isinstance(inquiry_id, str) or not INQUIRY_ID.fullmatch(inquiry_id):
            raise VendorError("unparseable_response")
        # The same key for the link: a retried start gets the same link instead of minting another bearer URL.
        link = self._one_time_link(inquiry_id, return_url, f"{idempotency_key}:one-time-link")
        return StartResult(vendor_session_id=inquiry_id, redirect_url=link)

    def resume_url(self, *, vendor_session_id: str, return_url: str) -> str:
        return self._one_time_link(vendor_session_id, return_url, "resume-" + secrets.token_urlsafe(16))

    def fetch_result(self, *, vendor_session_id: str) -> Result:
        response = self._http().request("GET", self._path(vendor_session_id), params={"include": "verifications"})
        return self._result(json_object(response))

    def _result(self, body: dict) -> Result:
        inquiry = body.get("data") or {}
        attributes = inquiry.get("attributes") or {}
        status = attributes.get("status")
        outcome = STATUSES.get(status) if isinstance(status, str) else None
        if status == "completed" and vendor_config(self.name).get("completed_is_final"):
            outcome = Outcome.APPROVED
        if outcome is None:
            log.warning("persona: unknown inquiry status", extra={"vendor": self.name, "status": str(status)[:32]})
            return Result(Outcome.ERROR)
        if attributes.get("redacted-at"):  # a late re-fetch after deletion: what is left answers nothing
            raise VendorError("session_redacted", permanent=True)
        if outcome in (Outcome.PENDING, Outcome.WAITING_FOR_USER):
            return Result(outcome)
        linked = {
            (ref.get("type"), ref.get("id"))
            for ref in ((inquiry.get("relationships") or {}).get("verifications") or {}).get("data") or []
            if isinstance(ref, dict)
        }
        included = [
            item
            for item in body.get("included") or []
            if isinstance(item, dict) and (not linked or (item.get("type"), item.get("id")) in linked)
        ]
        documents = _latest([v for v in included if v.get("type") == GOVERNMENT_ID])
        selfies = _latest([v for v in included if v.get("type") == SELFIE])
        # Checks speak for the attempt that decided: the newest passed one, else the newest of any status.
        document = next((v for v in documents if (v.get("attributes") or {}).get("status") == "passed"), None)
        document = document or (documents[0] if documents else None)
        selfie = next((v for v in selfies if (v.get("attributes") or {}).get("status") == "passed"), None)
        selfie = selfie or (selfies[0] if selfies else None)
        deciding = [v for v in (document, selfie) if v]
        facts = None
        if outcome == Outcome.APPROVED and document is not None:
            facts = self._facts(document.get("attributes") or {}, attributes.get("fields"))
        return Result(
            outcome,
            facts=facts,
            document_authentic=_checks(deciding, AUTHENTICITY_CHECKS),
            liveness=_checks(deciding, LIVENESS_CHECKS),
            face_match=_checks(deciding, FACE_MATCH_CHECKS),
        )

    @staticmethod
    def _facts(document: dict, fields: object) -> Facts:
        # A US driving licence came back with null nationality and country-code in a real sandbox payload; the
        # issuing country was only in the country the user selected in the flow (vendors.md §1, Result fields).
        # That is the document's issuer, so it may stand in for the issuing country, never for nationality.
        issuing = country_alpha2(document.get("country-code")) or country_alpha2(
            _field(fields, "selected-country-code")
        )
        id_class = document.get("id-class")
        return Facts(
            date_of_birth=iso_date(document.get("birthdate")),
            nationality=country_alpha2(document.get("nationality")),
            issuing_country=issuing,
            document_type=ID_CLASSES.get(id_class.lower(), "other") if isinstance(id_class, str) else "other",
            document_expiry=iso_date(document.get("expiration-date")),
        )

    # --- deletion ------------------------------------------------------------------------------------------------
    def delete(self, *, vendor_session_id: str) -> DeletionState:
        """Redact the inquiry (vendors.md §1, Redaction): irreversible, answered at once with `redacted-at`, while
        the child verifications are redacted asynchronously. The account Persona linked to the inquiry keeps its own
        copy (identification numbers), so it is redacted too (`DELETE /accounts/{id}`, cascading, async).
        Repeating either is harmless."""
        response = self._http().request(
            "DELETE", self._path(vendor_session_id), params={"include": "verifications"}, ok=(200, 202, 204, 404)
        )
        account = self._account_id(response)
        if account:
            self._http().request("DELETE", f"/accounts/{account}", ok=(200, 202, 204, 404))
        return self._deletion_state(response)

    def deletion_status(self, *, vendor_session_id: str) -> DeletionState:
        response = self._http().request(
            "GET", self._path(vendor_session_id), params={"include": "verifications"}, ok=(200, 404)
        )
        state = self._deletion_state(response)
        account = self._account_id(response)
        if state == DeletionState.DONE and account:
            answer = self._http().request("GET", f"/accounts/{account}", ok=(200, 404))
            if answer.status_code == 200 and not ((json_object(answer).get("data") or {}).get("attributes") or {}).get(
                "redacted-at"
            ):
                return DeletionState.IN_PROGRESS
        return state

    @staticmethod
    def _account_id(response) -> str:
        if response.status_code != 200 or not response.content:
            return ""
        linked = (((json_object(response).get("data") or {}).get("relationships") or {}).get("account") or {}).get(
            "data"
        )
        account = linked.get("id") if isinstance(linked, dict) else None
        return account if isinstance(account, str) and re.fullmatch(r"act_[A-Za-z0-9]{1,64}", account) else ""

    def _deletion_state(self, response) -> DeletionState:
        if response.status_code == 404:  # Persona holds nothing under this id any more
            return DeletionState.DONE
        if response.status_code == 204 or not response.content:
            return DeletionState.REQUESTED  # accepted without a body: the next poll tells
        body = json_object(response)
        data = body.get("data") or {}
        if not (data.get("attributes") or {}).get("redacted-at"):
            return DeletionState.REQUESTED
        # Every verification the inquiry links to must be present and redacted (an empty `included` proves nothing).
        linked = ((data.get("relationships") or {}).get("verifications") or {}).get("data") or []
        wanted = {item.get("id") for item in linked if isinstance(item, dict)}
        redacted = {
            child.get("id")
            for child in body.get("included") or []
            if isinstance(child, dict) and (child.get("attributes") or {}).get("redacted-at")
        }
        return DeletionState.DONE if wanted <= redacted else DeletionState.IN_PROGRESS

    # --- webhooks ------------------------------------------------------------------------------------------------
    def verify_webhook(self, *, headers: dict[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """`t=..,v1=..` sets, space-separated during rotation (one per secret); a set without `t` and `v1` (e.g.
        the `s=` some implementations send, vendors.md pain point 11) is not Persona's scheme and is skipped.
        Persona states no tolerance; third-party guides use 300 s (vendors.md section 1, Webhook)."""
        verify_timestamped(
            header(headers, "persona-signature"),
            body=body,
            secrets=secrets_list(vendor_config(self.name).get("webhook_secrets")),
            now=now,
            several=True,
        )
        return self._event(body)

    @staticmethod
    def _event(body: bytes) -> WebhookEvent:
        """Routing facts only (SPEC 5): the event id (stable across redeliveries), its name and time, and the
        inquiry it is about. The inquiry in the payload is never read for a result."""
        try:
            event = json.loads(body)
            data = event["data"]
            attributes = data["attributes"]
            subject = attributes["payload"]["data"]
            if data.get("type") != "event" or not isinstance(data["id"], str) or not data["id"]:
                raise ValueError
            if subject.get("type") == "inquiry":
                inquiry_id = subject["id"]
            else:  # a verification/report event names its inquiry as a relationship
                inquiry_id = subject["relationships"]["inquiry"]["data"]["id"]
            if not isinstance(inquiry_id, str) or not INQUIRY_ID.fullmatch(inquiry_id):
                raise ValueError
            name = attributes.get("name")
            if not isinstance(name, str):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise WebhookRejected("malformed_body") from None
        return WebhookEvent(
            dedupe_key=data["id"],
            vendor_session_id=inquiry_id,
            type=name,
            occurred_at=_timestamp(attributes.get("created-at")),
        )
