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
