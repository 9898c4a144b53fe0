"""Providers, their API keys and policies, the requests they make, the keys we sign with, what we issued.

Nothing here stores a personal fact: a request knows which claim *names* were asked, an attestation row knows its
jti, audience and lifetime, never the claim values.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone


def _random_id(prefix: str, nbytes: int = 16) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def new_client_id() -> str:
    return _random_id("cl", 12)


def new_request_id() -> str:
    return _random_id("vr", 16)


class JurisdictionPolicy(models.Model):
    """An operator-defined list of ISO 3166-1 alpha-2 codes, applied to nationality and/or issuing country."""

    class Mode(models.TextChoices):
        ALLOW = "allow", "Allow-list: eligible only if every checked country is listed"
        DENY = "deny", "Deny-list: eligible unless a checked country is listed"

    class AppliesTo(models.TextChoices):
        NATIONALITY = "nationality", "Nationality"
        ISSUING_COUNTRY = "issuing_country", "Issuing country"
        BOTH = "both", "Nationality and issuing country"

    slug = models.SlugField(unique=True, help_text="The name providers see in the attestation, e.g. us-ai-tier1.")
    description = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    applies_to = models.CharField(max_length=16, choices=AppliesTo.choices, default=AppliesTo.BOTH)
    countries = models.JSONField(default=list, help_text="ISO 3166-1 alpha-2 codes, upper case.")
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "jurisdiction policies"

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"


def validate_vendor(name: str) -> None:
    """A provider's vendor must be an adapter with credentials configured (settings.IDBROKER_VENDORS)."""
    from django.conf import settings
    from django.core.exceptions import ValidationError

    if name and name not in settings.IDBROKER_VENDORS:
        configured = ", ".join(sorted(settings.IDBROKER_VENDORS)) or "none"
        raise ValidationError(f"{name!r} is not a configured vendor (configured: {configured}).")


class Provider(models.Model):
    class ClientType(models.TextChoices):
        CONFIDENTIAL = "confidential", "Confidential (server-side, authenticates with its API key)"
        PUBLIC = "public", "Public (browser or app; no secret, PKCE required)"

    client_id = models.CharField(max_length=64, unique=True, default=new_client_id)
    client_type = models.CharField(max_length=12, choices=ClientType.choices, default=ClientType.CONFIDENTIAL)
    name = models.CharField(max_length=120)
    redirect_uris = models.JSONField(default=list, help_text="Exact URIs the user may be sent back to.")
    allowed_claims = models.JSONField(default=list)
    policy = models.ForeignKey(JurisdictionPolicy, null=True, blank=True, on_delete=models.PROTECT)
    attestation_ttl_seconds = models.PositiveIntegerField(default=0, help_text="0 means the broker default.")
    rate_limit = models.CharField(max_length=32, blank=True, help_text="e.g. 120/min; blank means the default.")
    webhook_url = models.URLField(blank=True)
    vendor = models.CharField(
        max_length=32,
        blank=True,
        validators=[validate_vendor],
        help_text="Identity vendor for this provider's users; blank means IDBROKER_VENDOR.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """`idb_<lookup>_<secret>`: the lookup id finds the row, the secret is compared as a keyed hash."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="api_keys")
    lookup = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    label = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"idb_{self.lookup}_…"


class VerificationRequest(models.Model):
    """A provider's question ("is this user over 18?"), answered by a verification or by stored facts."""

    class Status(models.TextChoices):
        PENDING = "pending"  # created, the user has not finished yet
        PROCESSING = "processing"  # evidence submitted, the vendor is deciding
        COMPLETED = "completed"  # attestation available
        DECLINED = "declined"  # the vendor declined the verification
        CANCELED = "canceled"  # the user declined to share
        FAILED = "failed"  # the vendor errored permanently
        EXPIRED = "expired"  # nobody finished in time

    TERMINAL = frozenset({Status.COMPLETED, Status.DECLINED, Status.CANCELED, Status.FAILED, Status.EXPIRED})

    id = models.CharField(primary_key=True, max_length=40, default=new_request_id, editable=False)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="requests")
    claims = models.JSONField()
    nonce = models.CharField(max_length=128, blank=True)
    return_url = models.URLField(max_length=500, blank=True)
    link_hash = models.CharField(max_length=64, unique=True)
    link_opened_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # The signed token handed to the provider. It holds only what the provider asked for (SPEC 3.3).
    token = models.TextField(blank=True)
    # Redirect flow (SPEC 2.1): echoed `state`, and the PKCE S256 challenge the code exchange must answer.
    state = models.CharField(max_length=500, blank=True)
    code_challenge = models.CharField(max_length=64, blank=True)
    flow = models.CharField(max_length=8, default="api", choices=[("api", "API"), ("redirect", "Redirect")])

    class Meta:
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return self.id


class AuthorizationCode(models.Model):
    """A single-use code (≤ 60 s) the provider exchanges at POST /api/v1/token. Stored as a keyed hash."""

    code_hash = models.CharField(max_length=64, unique=True)
    request = models.OneToOneField(VerificationRequest, on_delete=models.CASCADE, related_name="code")
    redirect_uri = models.URLField(max_length=500)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"code for {self.request_id}"


class SigningKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"  # signs new tokens
        RETIRING = "retiring"  # published in JWKS until its last token expires
        RETIRED = "retired"  # gone from JWKS

    kid = models.CharField(max_length=64, unique=True, help_text="RFC 7638 JWK thumbprint")
    alg = models.CharField(max_length=16)
    public_jwk = models.JSONField()
    private_sealed = models.BinaryField()
    private_wrapped_key = models.BinaryField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retire_after = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.alg} {self.kid[:12]}… ({self.status})"


class StatusList(models.Model):
    """An IETF Token Status List (1 bit per token: revoked or not). The bits are derived from
    `Attestation.revoked_at` when the list is served, so there is one source of truth for revocation."""

    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"status list {self.pk}"


class Attestation(models.Model):
    jti = models.CharField(max_length=64, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="attestations")
    request = models.ForeignKey(VerificationRequest, null=True, on_delete=models.SET_NULL)
    claim_names = models.JSONField()
    kid = models.CharField(max_length=64)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Keyed hash of the person's subject: lets their own data page list and revoke what was shared (SPEC 2.3).
    # Never in a token; providers see only their pairwise `sub`.
    holder = models.CharField(max_length=64, blank=True, db_index=True)
    status_list = models.ForeignKey(StatusList, null=True, on_delete=models.PROTECT, related_name="attestations")
    status_idx = models.PositiveIntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["status_list", "status_idx"], name="one_token_per_status_bit")]

    def __str__(self) -> str:
        return self.jti


class CheckCount(models.Model):
    """How many online checks (SPEC 2.4) one provider made in one clock hour. Deliberately nothing finer: which
    token was checked when would be a usage trail of a person (attestations/checkcounts.py)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="check_counts")
    hour = models.DateTimeField(help_text="Start of the clock hour (UTC).")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "hour"], name="one_check_count_per_provider_hour")]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"{self.count} checks"


class IdempotencyRecord(models.Model):
    """A provider's `Idempotency-Key` and the response it got, sealed (it may hold a verification link)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path and body
    status_code = models.PositiveSmallIntegerField(null=True)  # NULL while the first request is in flight
    sealed = models.BinaryField(null=True)
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "key"], name="idempotency_key_once")]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"idempotency key of {self.provider_id}"
