"""Passkey pages: create one after a successful verification, sign in, list and remove (SPEC 2.3)."""

from __future__ import annotations

import base64
import logging

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


def current_account(request) -> Account | None:
    account_id = request.session.get(ACCOUNT_KEY)
    return Account.objects.filter(pk=account_id).first() if account_id else None


def _subject_for_registration(request) -> str | None:
    """A signed-in account adds a passkey to itself; otherwise this browser's just-approved verification."""
    account = current_account(request)
    if account:
        return account.subject
    request_id = request.session.get(SESSION_KEY)
    if not request_id:
        return None
    session = VerificationSession.objects.filter(
        request_id=request_id,
        request__status=VerificationRequest.Status.COMPLETED,
        status=VerificationSession.Status.APPROVED,
    ).first()
    return session.subject if session else None


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


def _fail(exc: services.PasskeyError) -> JsonResponse:
    return JsonResponse({"code": exc.code, "detail": exc.detail}, status=exc.status)


@require_POST
@per_client("passkey-register", limit=10, window=60)
def register_options(request):
    subject = _subject_for_registration(request)
    if subject is None:
        return JsonResponse({"code": "not_allowed", "detail": "Verify first, or sign in."}, status=403)
    options, challenge = services.registration_options(subject=subject)
    _keep_challenge(request, challenge)
    return HttpResponse(options, content_type="application/json")  # already JSON (py_webauthn options_to_json)


@require_POST
@per_client("passkey-register", limit=10, window=60)
def register(request):
    subject = _subject_for_registration(request)
    if subject is None:
        return JsonResponse({"code": "not_allowed", "detail": "Verify first, or sign in."}, status=403)
    # Created from the result page: go back there, where the way back to the provider is.
    after = reverse("account-home") if current_account(request) else reverse("verify-result")
    try:
        account = services.passkey_register(
            subject=subject,
            credential=services.parse_credential(request.body),
            challenge=_take_challenge(request),
            label=request.headers.get("X-Passkey-Label", "Passkey"),
            now=timezone.now(),
        )
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
