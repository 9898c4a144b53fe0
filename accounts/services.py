"""Passkey registration and sign-in (WebAuthn Level 3) through py_webauthn; nothing cryptographic by hand.

1. Options carry a fresh random challenge, kept server-side in the browser session and used once.
2. The RP ID is the public URL's host name; the expected origin is the public URL (an IP address is not a valid RP
   ID, so `make run` serves on localhost).
3. Sign-in uses discoverable credentials (no user name typed): the credential id finds the passkey; the signature
   is verified against its stored public key, and a sign counter that goes backwards is refused (a cloned key).
4. User verification (the device's PIN, fingerprint or face) is required at every ceremony: a signed-in session
   always stands for "the person, on their device", which is what adding a passkey or downloading facts needs.
5. An account is made from one verification once (compare-and-swap on `account_claimed_at`), never merged into an
   existing account: adding a passkey to an account takes a signed-in session (`passkey_add`).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from broker.errors import BrokerError

from .models import Account, Passkey

MAX_PASSKEYS = 10
ALREADY_MADE = "An account was already made from this verification. Sign in with its passkey."


class PasskeyError(BrokerError):
    code = "passkey_invalid"
    status = 400
    title = "The passkey could not be used"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rp_id() -> str:
    return urlsplit(settings.PUBLIC_URL).hostname or "localhost"


def registration_options(*, subject: str) -> tuple[str, bytes]:
    """Options JSON for navigator.credentials.create, and the challenge to keep."""
    account = Account.objects.filter(subject=subject).first()
    existing = list(account.passkeys.values_list("credential_id", flat=True)) if account else []
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name="idbroker",
        # The user handle is random and says nothing; the "name" is what the passkey manager shows.
        user_id=(account.id if account else subject).encode(),
        user_name="idbroker verification",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_unb64(c)) for c in existing],
    )
    return options_to_json(options), options.challenge


def _verified_registration(*, credential: dict, challenge: bytes):
    try:
        return verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=settings.PUBLIC_URL,
            require_user_verification=True,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise PasskeyError("The passkey could not be registered. Please try again.") from None


def _store_passkey(*, account: Account, verified, label: str, now: datetime) -> None:
    if account.passkeys.count() >= MAX_PASSKEYS:
        raise PasskeyError(f"An account holds at most {MAX_PASSKEYS} passkeys.")
    try:
        with transaction.atomic():
            Passkey.objects.create(
                account=account,
                credential_id=_b64(verified.credential_id),
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                label=label[:60],
                created_at=now,
            )
    except IntegrityError:
        raise PasskeyError("This passkey is already registered.") from None


def account_claimable(*, session_id: str) -> str | None:
    """The subject an account may still be made for from this (approved) verification, else None."""
    from attestations.models import VerificationRequest
    from verification.models import VerificationSession

    session = VerificationSession.objects.filter(
        pk=session_id,
        request__status=VerificationRequest.Status.COMPLETED,
        status=VerificationSession.Status.APPROVED,
        account_claimed_at__isnull=True,
    ).first()
    if session is None or Account.objects.filter(subject=session.subject).exists():
        return None
    return session.subject


def account_create(*, session_id: str, credential: dict, challenge: bytes, label: str, now: datetime) -> Account:
    """The first passkey, made from a just-approved verification: at most once per verification."""
    from verification.models import VerificationSession

    verified = _verified_registration(credential=credential, challenge=challenge)
    with transaction.atomic():
        subject = account_claimable(session_id=session_id)
        # Compare-and-swap: of two registrations racing for one verification, one wins; a deleted account is not
        # re-made from the same verification.
        if subject is None or not VerificationSession.objects.filter(
            pk=session_id, account_claimed_at__isnull=True
        ).update(account_claimed_at=now):
            raise PasskeyError(ALREADY_MADE)
        try:
            with transaction.atomic():
                account = Account.objects.create(subject=subject, created_at=now)
        except IntegrityError:
            raise PasskeyError(ALREADY_MADE) from None
        _store_passkey(account=account, verified=verified, label=label, now=now)
    return account


def passkey_add(*, account: Account, credential: dict, challenge: bytes, label: str, now: datetime) -> Account:
    """Another passkey for an account; the caller has checked the session is signed in with user verification."""
    verified = _verified_registration(credential=credential, challenge=challenge)
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account.pk)  # one count-then-insert at a time
        _store_passkey(account=account, verified=verified, label=label, now=now)
    return account


def authentication_options() -> tuple[str, bytes]:
    options = generate_authentication_options(rp_id=rp_id(), user_verification=UserVerificationRequirement.REQUIRED)
    return options_to_json(options), options.challenge


def passkey_authenticate(*, credential: dict, challenge: bytes, now: datetime) -> Account:
    passkey = Passkey.objects.select_related("account").filter(credential_id=str(credential.get("rawId", ""))).first()
    if passkey is None:
        raise PasskeyError("This passkey is not known here. Verify again to create an account.")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=settings.PUBLIC_URL,
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        raise PasskeyError("The passkey could not be verified.") from None
    # Compare-and-swap on the counter: two sign-ins racing with the same assertion cannot both win.
    if not Passkey.objects.filter(pk=passkey.pk, sign_count=passkey.sign_count).update(
        sign_count=verified.new_sign_count, last_used_at=now
    ):
        raise PasskeyError("The passkey could not be verified.")
    return passkey.account


def passkey_remove(*, account: Account, passkey_id: int) -> None:
    with transaction.atomic():
        keys = list(Account.objects.select_for_update().get(pk=account.pk).passkeys.values_list("pk", flat=True))
        if passkey_id not in keys:
            raise PasskeyError("No such passkey.")
        if len(keys) == 1:
            raise PasskeyError("This is your only passkey. Add another one before removing it.")
        Passkey.objects.filter(pk=passkey_id).delete()


def parse_credential(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise PasskeyError("The browser sent something unexpected.") from None
    if not isinstance(data, dict):
        raise PasskeyError("The browser sent something unexpected.")
    return data


# --- The person's own data (SPEC 2.3) -----------------------------------------------------------------------------


def shares_of(account: Account):
    from attestations.models import Attestation
    from attestations.services import holder_of

    return (
        Attestation.objects.filter(holder=holder_of(account.subject)).select_related("provider").order_by("-issued_at")
    )


def share_revoke(*, account: Account, attestation_id: int, now: datetime) -> bool:
    from attestations.services import attestation_revoke

    attestation = shares_of(account).filter(pk=attestation_id).first()
    if attestation is None:
        raise PasskeyError("No such share.")
    return attestation_revoke(attestation=attestation, now=now, by_person=True)


def account_export(*, account: Account, now: datetime) -> dict:
    """Everything the broker holds about this person, for them alone: facts decrypted, shares, audit events."""
    from audit.services import audit_entries_naming
    from verification.models import FactRecord, VerificationSession
    from verification.services import facts_read

    records = FactRecord.objects.filter(subject=account.subject).order_by("created_at")
    sessions = list(VerificationSession.objects.filter(subject=account.subject).values_list("pk", "request_id"))
    shares = list(shares_of(account))
    ids = (
        {s for pair in sessions for s in pair}
        | {a.jti for a in shares}
        | {a.request_id for a in shares if a.request_id}
    )
    # Through the audit log's index of the ids each entry names: one query whose cost follows this person's
    # entries, not the size of the log (a walk of 100,000 entries took 39 s and 131 MB).
    events = [{"event": e.event, "at": e.at.isoformat(), "refs": e.refs} for e in audit_entries_naming(ids)]
    return {
        "exported_at": now.isoformat(),
        "account": {"id": account.pk, "created_at": account.created_at.isoformat()},
        "passkeys": [
            {
                "label": p.label,
                "created_at": p.created_at.isoformat(),
                "last_used_at": p.last_used_at.isoformat() if p.last_used_at else None,
            }
            for p in account.passkeys.order_by("created_at")
        ],
        "facts": [
            {
                "verified": r.verified_month,
                "kept_until": r.expires_at.isoformat(),
                "destroyed_at": r.destroyed_at.isoformat() if r.destroyed_at else None,
                "facts": facts_read(r).to_json() if r.destroyed_at is None else None,
            }
            for r in records
        ],
        "shares": [
            {
                "provider": a.provider.name,
                "claims": a.claim_names,
                "issued_at": a.issued_at.isoformat(),
                "expires_at": a.expires_at.isoformat(),
                "revoked_at": a.revoked_at.isoformat() if a.revoked_at else None,
            }
            for a in shares
        ],
        "audit_events": events,
    }


def account_delete_everything(*, account: Account, now: datetime) -> dict:
    """Facts crypto-shredded, every attestation revoked, passkeys and account removed; the audit log keeps a
    record of the deletion that names only the (random) account id."""
    from attestations.services import attestation_revoke
    from audit.services import audit_record
    from verification.models import FactRecord
    from verification.services import facts_destroy

    counts = {"facts": 0, "attestations": 0}
    for record_id in FactRecord.objects.filter(subject=account.subject, destroyed_at__isnull=True).values_list(
        "pk", flat=True
    ):
        counts["facts"] += facts_destroy(record_id=record_id, now=now)
    for attestation in shares_of(account).filter(revoked_at__isnull=True):
        counts["attestations"] += attestation_revoke(attestation=attestation, now=now, by_person=True)
    audit_record(event="account.deleted", account=account.pk, now=now)
    account.delete()
    return counts
