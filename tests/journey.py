"""Drive the user journey through Django's test client (no browser): provider request → consent → photos."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests import images


@dataclass
class Journey:
    request_id: str
    link_path: str
    browser: Client
    responses: list


def start(provider, claims, *, nonce="nonce-123", return_url=None) -> Journey:
    body = {"claims": claims, "nonce": nonce}
    if return_url:
        body["return_url"] = return_url
    created = provider.client.post("/api/v1/verification-requests", body, format="json")
    assert created.status_code == 201, created.content
    browser = Client()
    path = urlsplit(created.json()["url"]).path
    return Journey(created.json()["id"], path, browser, [created])


def open_and_consent(journey: Journey) -> None:
    opened = journey.browser.get(journey.link_path)
    assert opened.status_code == 302 and opened["Location"] == "/verify/consent", opened
    consent = journey.browser.post("/verify/consent", {"action": "continue"})
    assert consent.status_code == 302 and consent["Location"] == "/verify/document", consent
    journey.responses += [opened, consent]


def upload(journey: Journey, step: str, data: bytes, name: str, content_type: str, **extra):
    response = journey.browser.post(
        f"/verify/{step}", {"photo": SimpleUploadedFile(name, data, content_type=content_type), **extra}
    )
    journey.responses.append(response)
    return response


def complete(provider, claims, *, scenario="approved", nonce="nonce-123") -> tuple[Journey, dict]:
    """The whole journey; returns the journey and the provider's final view of the request."""
    journey = start(provider, claims, nonce=nonce)
    open_and_consent(journey)
    doc = upload(journey, "document", images.document_png(), "id.png", "image/png")
    assert doc.status_code == 302 and doc["Location"] == "/verify/selfie", doc
    selfie = upload(journey, "selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg", dev_scenario=scenario)
    assert selfie.status_code == 302, selfie
    for page in ("/verify/status", "/verify/result"):
        journey.responses.append(journey.browser.get(page))
    final = provider.client.get(f"/api/v1/verification-requests/{journey.request_id}")
    journey.responses.append(final)
    return journey, final.json()
