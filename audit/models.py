"""Append-only, hash-chained audit log (SPEC 3.6). Rows hold event types, random ids and times, nothing else."""

from django.db import models


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True)
    event = models.CharField(max_length=40)
    refs = models.JSONField(default=dict, help_text="Random ids only (request, session, provider client_id, jti).")
    at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event}"


class TreeHead(models.Model):
    """A signed tree head (RFC 9162 §4.10 in spirit): the Merkle root over the first `tree_size` audit entries,
    signed by the broker's attestation key as a JWS (`typ: sth+jwt`). Published periodically; never edited."""

    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    at = models.DateTimeField()
    token = models.TextField()
    kid = models.CharField(max_length=64, blank=True, help_text="The key that signed it stays published for good.")

    class Meta:
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"tree head {self.tree_size}"


class IntegrityCheck(models.Model):
    """The result of one full verification of the log (chain and every tree head), kept so the auditor dashboard
    and alerting read the latest without walking millions of entries on every page view."""

    at = models.DateTimeField()
    ok = models.BooleanField()
    entries = models.PositiveBigIntegerField()
    chain_ok = models.BooleanField()
    first_bad_seq = models.PositiveBigIntegerField(null=True, blank=True)
    chain_reason = models.CharField(max_length=200, blank=True)
    tree_heads_ok = models.BooleanField()
    tree_heads_checked = models.PositiveIntegerField()
    bad_tree_size = models.PositiveBigIntegerField(null=True, blank=True)
    tree_heads_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"integrity check {self.at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'FAILED'}"
