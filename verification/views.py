"""The user's journey in the browser (SPEC 2.2), and the inbound vendor webhook.

The link in the provider's redirect (`/verify/<secret>`) works once: opening it binds the request to this browser's
session and the secret is never accepted again from another browser. Every later step finds its request through
the session cookie, so no bearer secret sits in page URLs, history or Referer headers.
"""

from __future__ import annotations

import contextlib
import logging

import segno
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from attestations import oauth
from attestations import services as attestation_services
from attestations.models import Attestation, VerificationRequest
from attestations.policies import describe_claim
from broker.errors import BrokerError
from broker.ratelimit import per_client
from broker.readiness import issuing_problem
from broker.request_guard import declared_length, too_large_sentence

from . import services
from .images import ImageRejected
from .models import Evidence, VerificationSession
from .vendors.base import EvidenceKind, UnknownVendor, VendorError, WebhookRejected, get_vendor

log = logging.getLogger(__name__)
SESSION_KEY = "idb_request"  # the journey: only the browser that opened the provider's link holds it
PHONE_KEY = "idb_phone"  # a phone's capture-only capability: {"handoff": id, "session": id, "code": "ABC-DEF"}
S = VerificationSession.Status
MAX_WEBHOOK_BYTES = 256 * 1024

RETRY_HINTS = {
    "blurry": "Your photo was blurry. Hold still, use good light and make sure the text on your ID is sharp.",
    "glare": "There was glare on your ID. Tilt it away from the light and try again.",
    "document_not_visible": "We could not see your whole ID. Make sure all four corners are in the picture.",
    "face_not_visible": "We could not see your face clearly. Face the camera in good light.",
    "other": "The photos could not be checked. Please take them again.",
}


def _error(request, status: int, title: str, message: str, *, next_url: str = "", next_label: str = ""):
    return render(
        request,
        "verification/error.html",
        {"title": title, "message": message, "next_url": next_url, "next_label": next_label},
        status=status,
    )


def _current(request) -> VerificationRequest | None:
    request_id = request.session.get(SESSION_KEY)
    if not request_id:
        return None
    return VerificationRequest.objects.select_related("provider__policy").filter(pk=request_id).first()


def _account(request):
    # Imported here: accounts.views imports this module (SESSION_KEY), so a top-level import would be a cycle.
    # The layering that removes it (accounts above verification, the session key in one leaf) is issue 11.
    from accounts.views import current_account

    return current_account(request)


def _no_journey(request):
    return _error(
        request,
        404,
        "No verification in progress",
        "Open the link you were given by the service that asked you to verify. "
        "If it was already used in another browser, ask that service to start again.",
    )


def _session_of(vr: VerificationRequest) -> VerificationSession | None:
    """The request's verification, once a vendor has opened it (a start that found every vendor down left a row
    without a vendor session: the user is back at consent and may try again)."""
    return VerificationSession.objects.filter(request=vr).exclude(vendor_session_id="").first()


def _step_url(vr: VerificationRequest) -> str:
    """Where this journey stands now."""
    session = _session_of(vr)
    if (
        vr.status in (VerificationRequest.Status.CANCELED, VerificationRequest.Status.EXPIRED)
        or (session and session.status in services.TERMINAL)
        or vr.status == VerificationRequest.Status.COMPLETED
    ):
        return reverse("verify-result")
    if session is None:
        return reverse("verify-consent")
    if session.status == S.STARTED and services.vendor_is_hosted(session):
        return reverse("verify-hosted")
    if session.status == S.STARTED:
        have = set(Evidence.objects.filter(session=session).values_list("kind", flat=True))
        if EvidenceKind.DOCUMENT_FRONT not in have or session.retry_hint:
            return reverse("verify-document")
        return reverse("verify-selfie")
    return reverse("verify-waiting")


@require_GET
@per_client("link", limit=20, window=60)
def open_link(request, link: str):
    now = timezone.now()
    try:
        vr = attestation_services.request_by_link(link, now=now)
    except attestation_services.LinkExpired:
        return _error(
            request,
            410,
            "This link has expired",
            "Verification links work for a limited time. Go back to the service that sent you and start again.",
        )
    except attestation_services.LinkInvalid:
        return _error(
            request,
            404,
            "This link is not valid",
            "Check that you copied the whole link, or go back to the service that sent you.",
        )
    if request.session.get(SESSION_KEY) == vr.pk:
        return redirect(_step_url(vr))
    # First opening wins; a replay from another browser is refused (compare-and-swap on link_opened_at).
    if not VerificationRequest.objects.filter(pk=vr.pk, link_opened_at__isnull=True).update(link_opened_at=now):
        return _error(
            request,
            410,
            "This link was already used",
            "For your privacy a verification link works in one browser only. "
            "Go back to the service that sent you to get a new one.",
        )
    request.session.cycle_key()
    request.session[SESSION_KEY] = vr.pk
    return redirect(_step_url(vr))


@require_http_methods(["GET", "POST"])
def handoff(request):
    """Desktop: show a QR code that continues this verification on a phone, then follow along."""
    vr = _current(request)
    if vr is None:
        return _no_journey(request)
    session = _session_of(vr)
    if session is None or session.status != S.STARTED:
        return redirect(_step_url(vr))
    link = services.handoff_create(session=session, now=timezone.now())
    qr = segno.make(link.url, error="m")
    return render(
        request,
        "verification/handoff.html",
        {
            "vr": vr,
            "provider": vr.provider,
            "url": link.url,
            "code": link.code,
            "step": "document",
            "qr_svg": qr.svg_inline(scale=6, dark="#1b1f24", omitsize=False, title="QR code for your phone"),
        },
    )


@require_GET
@per_client("link", limit=20, window=60)
def phone(request, token: str):
    """Phone: spend the one-time link. This browser may then take the photos for that verification and nothing
    else: it never holds the journey (SESSION_KEY), so it cannot see the result, continue to the provider, fetch a
    receipt or make an account, whoever scanned the code."""
    try:
        handoff = services.handoff_use(token=token, now=timezone.now())
    except services.HandoffInvalid:
        return _error(
            request,
            410,
            "This phone link cannot be used",
            "It was already used, has expired, or the verification has moved on. "
            "On your computer, choose “Continue on your phone” again to get a new code.",
        )
    request.session.cycle_key()
    request.session[PHONE_KEY] = {"handoff": handoff.pk, "session": handoff.session_id, "code": handoff.code}
    return redirect(_phone_step_url(handoff.session))


def _phone_step_url(session: VerificationSession | None) -> str:
    if session is None:
        return reverse("verify-phone-done")
    have = set(Evidence.objects.filter(session=session).values_list("kind", flat=True))
    if EvidenceKind.DOCUMENT_FRONT not in have or session.retry_hint:
        return reverse("verify-phone-document")
    return reverse("verify-phone-selfie")


def _phone_session(request) -> VerificationSession | None:
    """The verification this phone may still add photos to, or None (never opened, submitted, or timed out)."""
    grant = request.session.get(PHONE_KEY)
    if not isinstance(grant, dict):
        return None
    return services.handoff_capture_session(handoff_id=grant.get("handoff"), now=timezone.now())


def _phone_capture(request, kind: EvidenceKind, template_step: str):
    session = _phone_session(request)
    if request.session.get(PHONE_KEY) is None:
        return _no_journey(request)
    target = _phone_step_url(session)
    if (
        session is None
        or (target == reverse("verify-phone-done"))
        or (kind == EvidenceKind.SELFIE and target != reverse("verify-phone-selfie"))
    ):
        return redirect(target)
    return _capture(request, kind, template_step, vr=session.request, session=session, phone=True)


@require_http_methods(["GET", "POST"])
@per_client("capture", limit=60, window=60)
def phone_document(request):
    return _phone_capture(request, EvidenceKind.DOCUMENT_FRONT, "document")


@require_http_methods(["GET", "POST"])
@per_client("capture", limit=60, window=60)
def phone_selfie(request):
    return _phone_capture(request, EvidenceKind.SELFIE, "selfie")


@require_GET
def phone_done(request):
    """The phone's last page: go back to the computer. It says nothing of the outcome."""
    grant = request.session.get(PHONE_KEY)
    if not isinstance(grant, dict):
        return _no_journey(request)
    if _phone_session(request) is not None:  # photos still to take
        return redirect(_phone_step_url(_phone_session(request)))
    session = VerificationSession.objects.select_related("request__provider").filter(pk=grant.get("session")).first()
    return render(
        request,
        "verification/phone_done.html",
        {"provider": session.request.provider if session else None, "code": grant.get("code", "")},
    )


@require_GET
def resume(request):
    vr = _current(request)
    return redirect(_step_url(vr)) if vr else _no_journey(request)


@require_http_methods(["GET", "POST"])
def consent(request):
    vr = _current(request)
    if vr is None:
        return _no_journey(request)
    now = timezone.now()
    # Refuse here, before anyone gives a photo, when the verification could not end in an attestation (no signing
    # key: issue 10, item 14). Declining still works.
    fresh = vr.status == VerificationRequest.Status.PENDING and not _session_of(vr)
    problem = fresh and request.POST.get("action") != "decline" and issuing_problem()
    if problem:
        log.error("cannot issue: verification not started", extra={"code": problem})
        return _error(
            request,
            503,
            "Verification is not available right now",
            "Nothing has been asked of you yet and no photo was taken. Please try again later.",
        )
    account = _account(request)
    reusable = account is not None and services.facts_current(subject=account.subject, now=now) is not None
    if request.method == "POST" and vr.status == VerificationRequest.Status.PENDING and not _session_of(vr):
        if request.POST.get("action") == "decline":
            services.request_decline(request=vr, now=now)
            return redirect(reverse("verify-result"))
        if request.POST.get("action") == "approve":
            if reusable:  # else the facts expired meanwhile (or the form was forged): show the page again
                services.request_answer_from_facts(request=vr, subject=account.subject, now=now)
                vr.refresh_from_db()
            return redirect(_step_url(vr))
        try:
            session = services.session_start(request=vr, now=now)
        except services.SessionError as exc:
            return _error(request, 409, "This request is closed", exc.detail)
        except services.NoVendorAvailable as exc:
            return _error(
                request,
                503,
                "Please try again in a few minutes",
                exc.detail,
                next_url=reverse("verify-resume"),
                next_label="Try again",
            )
        if getattr(session, "redirect_url", None):  # vendor-hosted capture: straight to the vendor's page
            return HttpResponseRedirect(session.redirect_url)
        return redirect(_step_url(vr))
    if _session_of(vr) or vr.status != VerificationRequest.Status.PENDING:
        return redirect(_step_url(vr))
    policy = vr.provider.policy
    return render(
        request,
        "verification/consent.html",
        {
            "vr": vr,
            "provider": vr.provider,
            "claims": [describe_claim(c, policy) for c in vr.claims],
            "evidence_minutes": int(services.settings.IDBROKER_EVIDENCE_TTL.total_seconds() // 60),
            "reusable": reusable,
        },
    )


def _capture(request, kind: EvidenceKind, template_step: str, *, vr=None, session=None, phone: bool = False):
    """A photo step, for the browser that holds the journey or (`phone`) for a phone holding a capture grant."""
    if not phone:
        vr = _current(request)
        if vr is None:
            return _no_journey(request)
        session = _session_of(vr)
        if session is None or session.status != S.STARTED:
            return redirect(_step_url(vr))
    now = timezone.now()
    error = None
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("photo")
        if getattr(request, "upload_too_large", False):
            error, status = too_large_sentence(), 413
        elif upload is None:
            error, status = "Please take a photo or choose a file.", 400
        else:
            try:
                services.evidence_store(
                    session=session, kind=kind, fileobj=upload, declared_type=upload.content_type or "", now=now
                )
            except ImageRejected as exc:
                error, status = exc.detail, 415 if exc.code == "unsupported_type" else 400
            except services.SessionError:
                return redirect(_phone_step_url(_phone_session(request)) if phone else _step_url(vr))
            else:
                if not phone:
                    services.handoff_end(session=session)
                if kind == EvidenceKind.DOCUMENT_FRONT:
                    if session.retry_hint:
                        VerificationSession.objects.filter(pk=session.pk).update(retry_hint="")
                    return redirect(reverse("verify-phone-selfie" if phone else "verify-selfie"))
                # BrokerError: already submitted (double click) or a photo went missing; the next step says which.
                with contextlib.suppress(BrokerError):
                    services.session_submit(session=session, scenario=request.POST.get("dev_scenario") or None, now=now)
                if phone:
                    return redirect(_phone_step_url(_phone_session(request)))
                return redirect(_step_url(vr))
    vendor = get_vendor(session.vendor)
    return render(
        request,
        "verification/capture.html",
        {
            "vr": vr,
            "provider": vr.provider,
            "step": template_step,
            "kind": str(kind),
            "error": error,
            "retry_message": RETRY_HINTS.get(session.retry_hint) if kind == EvidenceKind.DOCUMENT_FRONT else None,
            "scenarios": vendor.scenarios() if kind == EvidenceKind.SELFIE else {},
            "max_mb": services.settings.IDBROKER_MAX_UPLOAD_BYTES // (1024 * 1024),
            "phone_code": request.session.get(PHONE_KEY, {}).get("code") if phone else None,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@per_client("capture", limit=60, window=60)
def document(request):
    return _capture(request, EvidenceKind.DOCUMENT_FRONT, "document")


@require_http_methods(["GET", "POST"])
@per_client("capture", limit=60, window=60)
def selfie(request):
    return _capture(request, EvidenceKind.SELFIE, "selfie")


@require_http_methods(["GET", "POST"])
def hosted(request):
    """Vendor-hosted capture (Persona, Stripe Identity): the photos are taken on the vendor's page, never here.
    GET explains where the user is going (after a retry, or on coming back to this tab); POST gets a fresh link."""
    vr, elsewhere = _at_step(request, "verify-hosted")
    if vr is None:
        return elsewhere
    session = _session_of(vr)
    if request.method == "POST":
        try:
            return HttpResponseRedirect(services.hosted_url(session=session))
        except VendorError:
            return _error(
                request,
                503,
                "Please try again in a few minutes",
                "Our identity checking partner is not reachable right now.",
                next_url=reverse("verify-hosted"),
                next_label="Try again",
            )
    return render(
        request,
        "verification/hosted.html",
        {"vr": vr, "provider": vr.provider, "retry_message": RETRY_HINTS.get(session.retry_hint)},
    )


@require_GET
def vendor_return(request):
    """The vendor's page sent the user back. Whatever its query string says is ignored: the vendor is asked."""
    vr = _current(request)
    if vr is None:
        return _no_journey(request)
    session = _session_of(vr)
    if session is not None:
        services.session_returned(session=session, now=timezone.now())
    return redirect(_step_url(vr))


def _at_step(request, name: str):
    """(request, None) when this browser's journey stands at step `name`; else (None, where to go instead)."""
    vr = _current(request)
    if vr is None:
        return None, _no_journey(request)
    target = _step_url(vr)
    if target != reverse(name):
        return None, redirect(target)
    return vr, None


@require_GET
def waiting(request):
    vr, elsewhere = _at_step(request, "verify-waiting")
    if vr is None:
        return elsewhere
    session = _session_of(vr)
    return render(
        request,
        "verification/waiting.html",
        {"vr": vr, "provider": vr.provider, "in_review": session.status == S.IN_REVIEW},
    )


@require_GET
def status(request):
    """Polled by the waiting page. Also nudges a result fetch when one is due, so a decision shows up even
    without a webhook or beat running."""
    vr = _current(request)
    if vr is None:
        return JsonResponse({"state": "gone"}, status=404)
    session = _session_of(vr)
    if session is not None:
        services.session_nudge(session=session, now=timezone.now())
        vr.refresh_from_db()
    target = _step_url(vr)
    body = {"state": "waiting" if target == reverse("verify-waiting") else "done", "next": target}
    joined = services.handoff_joined(session=session) if session is not None and session.status == S.STARTED else None
    if joined is not None:  # the computer shows which phone is taking the photos (its code)
        body["phone"] = {"code": joined.code}
    return JsonResponse(body)


@require_GET
def result(request):
    vr, elsewhere = _at_step(request, "verify-result")
    if vr is None:
        return elsewhere
    R = VerificationRequest.Status
    outcome = {R.CANCELED: "canceled", R.COMPLETED: "approved", R.EXPIRED: "expired", R.FAILED: "failed"}.get(
        vr.status, "declined"
    )
    back = reverse("verify-continue") if vr.return_url else ""
    # What the token really states: a claim needing a fact the vendor did not report is left out (policies.py).
    issued = Attestation.objects.filter(request=vr).order_by("-issued_at").values_list("claim_names", flat=True)
    answered = set(issued.first() or []) if outcome == "approved" else set(vr.claims)
    return render(
        request,
        "verification/result.html",
        {
            "vr": vr,
            "provider": vr.provider,
            "outcome": outcome,
            "back": back,
            "claims": [describe_claim(c, vr.provider.policy) for c in vr.claims if c in answered],
            "unanswered": [describe_claim(c, vr.provider.policy) for c in vr.claims if c not in answered],
            # An account is made once per verification (accounts/services.py); afterwards, signing in is the way.
            "offer_account": outcome == "approved"
            and not request.session.get("idb_account")
            and VerificationSession.objects.filter(request=vr, account_claimed_at__isnull=True).exists(),
            "reused": _session_of(vr) is None,
            "receipt": _destroyed(_session_of(vr)),
            "hosted": bool(_session_of(vr)) and services.vendor_is_hosted(_session_of(vr)),
        },
    )


def _destruction_entry(session: VerificationSession | None):
    """The audit entry recording that this session's photos are gone: the last destruction (a retry destroys the
    first photos, then new ones are taken), and only once nothing is held any more."""
    from audit.models import AuditEvent

    if session is None or session.wrapped_data_key or Evidence.objects.filter(session=session).exists():
        return None
    # Through the audit log's ref index (audit.AuditRef): a lookup, not a scan of every destruction ever logged.
    return (
        AuditEvent.objects.filter(event="evidence.destroyed", ref_index__key="session", ref_index__value=session.pk)
        .order_by("-seq")
        .first()
    )


def _destroyed(session: VerificationSession | None) -> bool:
    return _destruction_entry(session) is not None


@require_GET
def deletion_receipt(request):
    """The user's proof that their photos were destroyed: the audit entry, its inclusion proof and a signed tree
    head, as a JSON file anyone can check offline (`idbroker-verify receipt`). It names only random ids."""
    from audit.transparency import LogGap, receipt

    vr = _current(request)
    entry = _destruction_entry(_session_of(vr) if vr else None)
    if entry is None:
        return _error(request, 404, "No receipt yet", "A receipt exists once your photos have been destroyed.")
    try:
        body = receipt(seq=entry.seq, now=timezone.now())
    except (LogGap, RuntimeError):  # a gap in the log, or no signing key: nothing trustworthy to hand out
        log.error("deletion receipt unavailable", extra={"code": "receipt_unavailable"})
        return _error(
            request, 503, "Receipt not available right now", "Please try again later. Your photos are deleted."
        )
    response = JsonResponse(body, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="idbroker-deletion-receipt.json"'
    return response


@require_GET
def continue_to_provider(request):
    """Leave for the provider: the redirect flow mints its single-use code now, so the 60 s start here."""
    vr, elsewhere = _at_step(request, "verify-result")
    if vr is None:
        return elsewhere
    location = oauth.return_location(request=vr, now=timezone.now())
    return HttpResponseRedirect(location) if location else redirect(reverse("verify-result"))


@csrf_exempt
@require_POST
def vendor_webhook(request, vendor: str):
    """Inbound vendor webhook: authenticated on the raw body (never `request.POST`), answered fast."""
    if declared_length(request) > MAX_WEBHOOK_BYTES:  # a malformed Content-Length is a 400, never int()'s 500
        return JsonResponse({"code": "too_large"}, status=413)
    try:
        outcome = services.webhook_receive(
            vendor_name=vendor,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.body,
            now=timezone.now(),
        )
    except UnknownVendor:
        return JsonResponse({"code": "unknown_vendor"}, status=404)
    except WebhookRejected as exc:
        log.warning("webhook rejected", extra={"vendor": vendor, "code": exc.code})
        return JsonResponse({"code": exc.code}, status=401 if exc.code != "malformed_body" else 400)
    return JsonResponse({"status": outcome}, status=200)


def csrf_failure(request, reason=""):
    return _error(
        request,
        403,
        "Please try again",
        "Your session may have expired or the page was open too long. Go back and try again.",
    )


def bad_request(request, exception=None):
    return _error(
        request,
        400,
        "Something was wrong with that upload",
        "The browser sent something we could not read. Go back and choose the photo again.",
    )


def page_not_found(request, exception=None):
    return _error(request, 404, "Page not found", "There is nothing at this address.")


def server_error(request):
    return HttpResponse(
        "Something went wrong on our side. Nothing was shared. Please try again later.",
        status=500,
        content_type="text/plain",
    )
