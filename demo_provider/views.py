"""A tiny relying party, "Acme AI signup", that uses idbroker exactly as an outside provider would: the REST API
with its API key, then offline verification with the provider-side verifier (clients/python): published keys and
the status list, nothing else asked of the broker. Only installed when IDBROKER_DEMO is on."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

from django.conf import settings
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from idbroker_verifier import VerificationError, Verifier

CLAIMS = ["age_over_18", "eligible_jurisdiction", "verified_human"]


def fetch_json(url: str, *, headers: dict | None = None, data: bytes | None = None, timeout: float = 5.0) -> dict:
    if not url.startswith(("https://", "http://")):
        raise ValueError("only http(s) URLs")
    req = urllib.request.Request(url, data=data, headers={"Accept": "application/json", **(headers or {})})  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        return json.loads(response.read())


def _credentials() -> dict | None:
    path = settings.VAR_DIR / "demo-provider.json"
    return json.loads(path.read_text()) if path.exists() else None


def _api(path: str, key: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return fetch_json(f"{settings.PUBLIC_URL}/api/v1/{path}", headers=headers, data=data)


@require_GET
def home(request):
    return render(request, "demo/home.html", {"ready": _credentials() is not None, "claims": CLAIMS})


@require_POST
def start(request):
    creds = _credentials()
    if creds is None:
        return render(request, "demo/home.html", {"ready": False}, status=503)
    nonce = secrets.token_urlsafe(16)
    created = _api("verification-requests", creds["api_key"], {"claims": CLAIMS, "nonce": nonce})
    request.session["demo_nonce"] = nonce
    request.session["demo_request"] = created["id"]
    return redirect(created["url"])


@require_GET
def back(request):
    creds = _credentials()
    request_id = request.GET.get("verification_request", "")
    if creds is None or request_id != request.session.get("demo_request"):
        return render(
            request, "demo/return.html", {"problem": "This return does not match a signup started here."}, status=400
        )
    try:
        found = _api(f"verification-requests/{request_id}", creds["api_key"])
    except urllib.error.HTTPError as exc:
        return render(request, "demo/return.html", {"problem": f"The broker answered {exc.code}."}, status=502)
    context = {"status": found["status"], "error": request.GET.get("error"), "request_id": request_id}
    if found.get("attestation"):
        token = found["attestation"]
        # A real provider keeps one Verifier per process (it caches keys and status lists); the demo makes one per
        # return so that resetting the demo database (new keys, new lists under the same URLs) never meets a cache.
        verifier = Verifier(settings.PUBLIC_URL, creds["client_id"])
        try:
            claims = verifier.verify(token, nonce=request.session.get("demo_nonce"))
            context["claims"] = {k: json.dumps(v) for k, v in claims.items()}
            context["verified"] = True
        except VerificationError as exc:
            context["problem"] = f"Offline verification failed: {exc.reason}"
        context["token"] = token
    return render(request, "demo/return.html", context)
