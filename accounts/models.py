"""Accounts identified only by passkeys (SPEC 2.3): no email, no phone, no password.

An account is a handle on one person's `subject` (the random id their verification produced, which keys the
pairwise `sub`), so a returning user answers providers from the same facts.
"""

import secrets

from django.db import models


def new_account_id() -> str:
    return f"acct_{secrets.token_urlsafe(16)}"


class Account(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_account_id, editable=False)
    subject = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.id


class Passkey(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="passkeys")
    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url")
    public_key = models.BinaryField()
    sign_count = models.PositiveBigIntegerField(default=0)
    label = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.label or f"passkey {self.pk}"
