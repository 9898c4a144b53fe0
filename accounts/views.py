"""Passkey pages: create one after a successful verification, sign in, list and remove (SPEC 2.3)."""

from __future__ import annotations

import base64
import logging
import time

from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from attestations.models import VerificationRequest
from broker.ratelimit import per_client
from verification.models import VerificationSession
from verification.views import SESSION_KEY

from . import services
from .models import Account

log = logging.getLogger(__name__)
ACCOUNT_KEY = "idb_account"
CHALLENGE_KEY = "idb_webauthn_challenge"
VERIFIED_AT_KEY = "idb_uv_at"  # when this browser last proved the person with a passkey (user verification)
# Adding a passkey changes who can open the account: it takes a passkey ceremony this recent (a stolen or
# forgotten signed-in browser is not enough).
ADD_PASSKEY_WINDOW_SECONDS = 10 * 60


def current_account(request) -> Account | None:
    account_id = request.session.get(ACCOUNT_KEY)
    return Account.objects.filter(pk=account_id).first() if account_id else None


def _registration_target(request) -> tuple[str, Account | str] | tuple[None, str]:
    """Who a new passkey is for: ("add", account) for a signed-in person who proved themselves with a passkey
    recently; ("create", session id) for the browser that opened the provider's link and holds a just-approved
    verification no account was made from; else (None, why). A phone that only took photos holds neither."""
    account = current_account(request)
    if account is not None:
        verified_at = request.session.get(VERIFIED_AT_KEY) or 0
        if time.time() - verified_at > ADD_PASSKEY_WINDOW_SECONDS:
            return None, "Sign in again with one of your passkeys, then add the new one."
        return "add", account
    request_id = request.session.get(SESSION_KEY)
    session = (
        VerificationSession.objects.filter(request_id=request_id, request__status=VerificationRequest.Status.COMPLETED)
        .values_list("pk", flat=True)
        .first()
        if request_id
        else None
    )
    if session is None or services.account_claimable(session_id=session) is None:
        return None, "Verify first, or sign in."
    return "create", session


def _keep_challenge(request, challenge: bytes) -> None:
    request.session[CHALLENGE_KEY] = base64.b64encode(challenge).decode()


def _take_challenge(request) -> bytes:
    value = request.session.pop(CHALLENGE_KEY, None)  # single use
    if not value:
        raise services.PasskeyError("This sign-in took too long. Please try again.")
    return base64.b64decode(value)


def _sign_in(request, account: Account) -> None:
    request.session.cycle_key()  # a new session id at every privilege change
    request.session[ACCOUNT_KEY] = account.pk
    request.session[VERIFIED_AT_KEY] = int(time.time())  # every ceremony requires user verification


def _fail(exc: services.PasskeyError) -> JsonResponse:
    return JsonResponse({"code": exc.code, "detail": exc.detail}, status=exc.status)


@require_POST
@per_client("passkey-register", limit=10, window=60)
def register_options(request):
    mode, target = _registration_target(request)
    if mode is None:
        return JsonResponse({"code": "not_allowed", "detail": target}, status=403)
    subject = target.subject if mode == "add" else services.account_claimable(session_id=target)
    options, challenge = services.registration_options(subject=subject)
    _keep_challenge(request, challenge)
    return HttpResponse(options, content_type="application/json")  # already JSON (py_webauthn options_to_json)


@require_POST
@per_client("passkey-register", limit=10, window=60)
def register(request):
    mode, target = _registration_target(request)
    if mode is None:
        return JsonResponse({"code": "not_allowed", "detail": target}, status=403)
    # Created from the result page: go back there, where the way back to the provider is.
    after = reverse("account-home") if mode == "add" else reverse("verify-result")
    try:
        ceremony = {
            "credential": services.parse_credential(request.body),
            "challenge": _take_challenge(request),
            "label": request.headers.get("X-Passkey-Label", "Passkey"),
            "now": timezone.now(),
        }
        if mode == "add":
            account = services.passkey_add(account=target, **ceremony)
        else:
            account = services.account_create(session_id=target, **ceremony)
    except services.PasskeyError as exc:
        return _fail(exc)
    _sign_in(request, account)
    return JsonResponse({"next": after})


@require_GET
def signin(request):
    return render(request, "accounts/signin.html")


@require_POST
@per_client("passkey-signin", limit=10, window=60)
def signin_options(request):
    options, challenge = services.authentication_options()
    _keep_challenge(request, challenge)
    return HttpResponse(options, content_type="application/json")  # already JSON (py_webauthn options_to_json)


@require_POST
@per_client("passkey-signin", limit=10, window=60)
def signin_finish(request):
    try:
        account = services.passkey_authenticate(
            credential=services.parse_credential(request.body), challenge=_take_challenge(request), now=timezone.now()
        )
    except services.PasskeyError as exc:
        log.info("passkey sign-in refused", extra={"event": "passkey.signin", "code": exc.code})
        return _fail(exc)
    log.info("passkey sign-in", extra={"event": "passkey.signin", "code": "ok"})
    _sign_in(request, account)
    return JsonResponse({"next": reverse("account-home")})


@require_GET
def home(request):
    account = current_account(request)
    if account is None:
        return redirect(reverse("account-signin"))
    return _home(request, account)


def _home(request, account, *, error: str = "", status: int = 200):
    now = timezone.now()
    shares = [
        {"row": a, "state": "revoked" if a.revoked_at else ("valid" if a.expires_at > now else "expired")}
        for a in services.shares_of(account)
    ]
    return render(
        request,
        "accounts/home.html",
        {"account": account, "passkeys": account.passkeys.order_by("created_at"), "shares": shares, "error": error},
        status=status,
    )


@require_POST
def revoke_share(request, attestation_id: int):
    account = current_account(request)
    if account is None:
        return redirect(reverse("account-signin"))
    try:
        services.share_revoke(account=account, attestation_id=attestation_id, now=timezone.now())
    except services.PasskeyError as exc:
        return _home(request, account, error=exc.detail, status=404)
    return redirect(reverse("account-home"))


@require_GET
def export(request):
    account = current_account(request)
    if account is None:
        return redirect(reverse("account-signin"))
    data = services.account_export(account=account, now=timezone.now())
    response = JsonResponse(data, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="idbroker-my-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def delete_everything(request):
    account = current_account(request)
    if account is None:
        return redirect(reverse("account-signin"))
    if request.POST.get("confirm") != "yes":
        return _home(request, account, error="Tick the box to confirm that everything should be deleted.", status=400)
    services.account_delete_everything(account=account, now=timezone.now())
    request.session.flush()
    return render(request, "accounts/deleted.html")


@require_POST
def remove_passkey(request, passkey_id: int):
    account = current_account(request)
    if account is None:
        return redirect(reverse("account-signin"))
    try:
        services.passkey_remove(account=account, passkey_id=passkey_id)
    except services.PasskeyError as exc:
        return _home(request, account, error=exc.detail, status=400)
    return redirect(reverse("account-home"))


@require_POST
def signout(request):
    request.session.flush()
    return redirect(reverse("account-signin"))
