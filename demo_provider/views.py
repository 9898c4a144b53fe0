"""A tiny relying party, "Acme AI signup", that uses idbroker exactly as an outside provider would: the redirect
flow (authorization code + PKCE) or the API flow, with its API key, then offline verification with the
provider-side verifier (clients/python): published keys and the status list, nothing else asked of the broker.
Only installed when IDBROKER_DEMO is on."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
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


def _api(path: str, key: str, body: dict | None = None, *, form: bool = False) -> dict:
    if body is None:
        data, content_type = None, "application/json"
    elif form:
        data, content_type = urllib.parse.urlencode(body).encode(), "application/x-www-form-urlencoded"
    else:
        data, content_type = json.dumps(body).encode(), "application/json"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    return fetch_json(f"{settings.PUBLIC_URL}/api/v1/{path}", headers=headers, data=data)


def _redirect_uri() -> str:
    return f"{settings.PUBLIC_URL}/demo/return"


@require_GET
def home(request):
    return render(request, "demo/home.html", {"ready": _credentials() is not None, "claims": CLAIMS})


@require_POST
def start(request):
    """Redirect flow by default (what an OAuth client library does); `flow=api` shows the API flow instead."""
    creds = _credentials()
    if creds is None:
        return render(request, "demo/home.html", {"ready": False}, status=503)
    nonce = secrets.token_urlsafe(16)
    request.session["demo_nonce"] = nonce
    if request.POST.get("flow") == "api":
        created = _api("verification-requests", creds["api_key"], {"claims": CLAIMS, "nonce": nonce})
        request.session["demo_request"] = created["id"]
        return redirect(created["url"])
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    request.session["demo_pkce"], request.session["demo_state"] = verifier, state
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": creds["client_id"],
            "redirect_uri": _redirect_uri(),
            "claims": " ".join(CLAIMS),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return redirect(f"{settings.PUBLIC_URL}/authorize?{query}")


def _exchange(request, creds) -> tuple[dict, str | None]:
    """Redirect flow return: check `state`, exchange the code with the PKCE verifier."""
    if request.GET.get("state") != request.session.pop("demo_state", None):
        return {}, "The state parameter does not match a signup started here."
    if "error" in request.GET:
        return {"status": "not completed", "error": request.GET["error"]}, None
    try:
        token = _api(
            "token",
            creds["api_key"],
            {
                "grant_type": "authorization_code",
                "code": request.GET.get("code", ""),
                "redirect_uri": _redirect_uri(),
                "code_verifier": request.session.pop("demo_pkce", ""),
            },
            form=True,
        )
    except urllib.error.HTTPError as exc:
        return {}, f"The token exchange was refused ({exc.code})."
    return {"status": "completed", "attestation": token["attestation"], "id": token["verification_request"]}, None


@require_GET
def back(request):
    creds = _credentials()
    if creds is None:
        return render(request, "demo/return.html", {"problem": "Demo data is missing."}, status=503)
    if "state" in request.GET:
        found, problem = _exchange(request, creds)
    else:
        request_id = request.GET.get("verification_request", "")
        if request_id != request.session.get("demo_request"):
            found, problem = {}, "This return does not match a signup started here."
        else:
            try:
                found, problem = _api(f"verification-requests/{request_id}", creds["api_key"]), None
            except urllib.error.HTTPError as exc:
                found, problem = {}, f"The broker answered {exc.code}."
    if problem:
        return render(request, "demo/return.html", {"problem": problem}, status=400)
    context = {"status": found.get("status"), "error": request.GET.get("error") or found.get("error")}
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
