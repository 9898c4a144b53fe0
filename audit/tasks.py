"""Beat tasks of the audit log: sign tree heads, re-verify the log. Thin (STYLE 5).

Until issue 10 this module also took `attestation.checked` entries off the check API's hot path (a Redis list
drained into the log). Checks are now only counted per provider per hour (attestations/checkcounts.py, SPEC 2.4),
so nothing writes a per-token check entry any more, and the deferral path is gone with it.
"""

from __future__ import annotations

from celery import shared_task


@shared_task
def publish_tree_head() -> int:
    """Beat: sign a tree head when the log has grown (SPEC 3.6). Returns the tree size covered."""
    from django.utils import timezone

    from .transparency import tree_head_publish

    head = tree_head_publish(now=timezone.now())
    return head.tree_size if head else 0


@shared_task
def verify_log() -> bool:
    """Beat, hourly: recompute the chain and every tree head; record the result; log an error when it fails, so
    tampering raises an alert without anyone having to look (the dashboard shows the latest result)."""
    from django.utils import timezone

    from .services import log_integrity_check

    return log_integrity_check(now=timezone.now()).ok
