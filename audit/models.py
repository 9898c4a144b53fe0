"""Append-only, hash-chained audit log (SPEC 3.6). Rows hold event types, random ids and times, nothing else.

Only auditors read entries. The public transparency log (audit/transparency.py) shows each entry as a salted
commitment, SHA-256(salt || entry), which reveals nothing about it; the person an entry is about can be handed the
opening (the entry and its salt) in a receipt.
"""

from django.db import models


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True)
    event = models.CharField(max_length=40)
    refs = models.JSONField(default=dict, help_text="Random ids only (request, session, provider client_id, jti).")
    at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    salt = models.CharField(
        max_length=64, help_text="32 random bytes (hex): the opening of this entry's public commitment. Never public."
    )

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event}"


class AuditRef(models.Model):
    """An index of the ids each entry names (one row per ref), so a person's own entries are found with an index
    lookup on their ids (account export, receipts) instead of a walk through the whole log. Derived data, written
    with its entry: not part of the chain or the tree, and no database constraint ties it to the entry, so the
    tamper tests (raw SQL on the log) and the integrity check see the log exactly as it is."""

    entry = models.ForeignKey(
        AuditEvent, to_field="seq", db_column="seq", on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="ref_index",
    )  # fmt: skip
    key = models.CharField(max_length=40)
    value = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return f"#{self.entry_id} {self.key}"


class AdminSignIn(models.Model):
    """An admin sign-in attempt (broker/admin_site.py). Auditors read these in the admin; they are not audit
    entries, so they are never leaves of the public transparency log: how often operators sign in, and when, is
    nobody else's business, and a failure must not tell the public which usernames exist."""

    class Outcome(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        NO_SECOND_FACTOR = "no_second_factor"

    at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    user_id = models.PositiveIntegerField(null=True, blank=True, help_text="Only on success: the user's numeric id.")

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"admin sign-in {self.at:%Y-%m-%d %H:%M} {self.outcome}"


class TreeHead(models.Model):
    """A signed tree head (RFC 9162 §4.10 in spirit): the Merkle root over the first `tree_size` audit entries,
    signed by the broker's attestation key as a JWS (`typ: sth+jwt`). Published periodically; never edited.

    `leaf_format` says what the leaves are: 1 = the entries' canonical bytes (heads signed before issue 10, kept and
    still checked), 2 = the entries' salted commitments (signed as `leaf_format` in the payload)."""

    tree_size = models.PositiveBigIntegerField()
    leaf_format = models.PositiveSmallIntegerField(default=2)
    root_hash = models.CharField(max_length=64)
    at = models.DateTimeField()
    token = models.TextField()
    kid = models.CharField(max_length=64, blank=True, help_text="The key that signed it stays published for good.")

    class Meta:
        ordering = ["-tree_size", "-leaf_format"]
        constraints = [models.UniqueConstraint(fields=["leaf_format", "tree_size"], name="tree_head_format_size")]

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
