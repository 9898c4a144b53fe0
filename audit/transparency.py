"""The audit log as a transparency log (SPEC 3.6, RFC 9162 style): every audit entry is a Merkle leaf, signed tree
heads are published, and anyone can be given an inclusion proof (this entry is in the log) or a consistency proof
(the log only grew between two tree heads). Leaves are the entries' canonical bytes: event type, random ids, a time.

Leaf `i` is the entry with `seq = i + 1`. The tree (leaf hashes and every complete subtree's hash) is kept per
process as the log grows, entries being never changed, so a proof costs O(log² n) hashes; `tree_heads_verify`
recomputes everything from the database, so tampering is found whatever this cache holds.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError

from . import merkle
from .models import AuditEvent, TreeHead
from .services import entry_body

log = logging.getLogger(__name__)
_tree = merkle.Tree()
_lock = threading.Lock()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tree(size: int) -> merkle.Tree:
    """The process's tree, grown to at least the first `size` entries."""
    global _tree
    with _lock:
        if len(_tree) < size:
            rows = AuditEvent.objects.filter(seq__gt=len(_tree), seq__lte=size).order_by("seq")
            for seq, event, refs, at in rows.values_list("seq", "event", "refs", "at").iterator():
                if seq != len(_tree) + 1:
                    raise LogGap(seq)
                _tree.append(merkle.leaf_hash(entry_body(seq, event, refs, at)))
        if len(_tree) < size:
            raise LogGap(len(_tree) + 1)
        return _tree


def forget_leaves() -> None:
    """Tests: the database was emptied under us."""
    global _tree
    with _lock:
        _tree = merkle.Tree()


class LogGap(Exception):
    """An entry the tree needs is missing (deleted rows, or asking beyond the log)."""


def log_size() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def tree_head_publish(*, now: datetime) -> TreeHead | None:
    """Sign and store a tree head over the whole log, unless the newest one already covers it.

    Never signs a fork: the tree must still give the newest head's root for that head's size (a restore that lost
    entries, or a stale per-process cache, would otherwise be signed). The cache is rebuilt once; if the log itself
    contradicts the head, nothing is signed and an error is logged (verify_audit_log names the cause)."""
    from attestations.signing import sign_tree_head

    size = log_size()
    latest = TreeHead.objects.first()
    if size == 0 or (latest and latest.tree_size >= size):
        return latest
    if latest and tree(size).root(latest.tree_size).hex() != latest.root_hash:
        forget_leaves()
        if tree(size).root(latest.tree_size).hex() != latest.root_hash:
            log.error("audit log contradicts its newest tree head: not signing", extra={"code": "audit_tampered"})
            return latest
    root = tree(size).root(size).hex()
    signed = sign_tree_head(
        {"iss": settings.PUBLIC_URL, "tree_size": size, "root_hash": root, "timestamp": int(now.timestamp() * 1000)}
    )
    try:
        return TreeHead.objects.create(tree_size=size, root_hash=root, at=now, token=signed.token, kid=signed.kid)
    except IntegrityError:  # a concurrent publisher signed the same size
        return TreeHead.objects.get(tree_size=size)


def tree_head_latest() -> TreeHead | None:
    return TreeHead.objects.first()


def inclusion(*, index: int, tree_size: int) -> list[str]:
    if not 0 <= index < tree_size:
        raise ValueError("index must be below tree_size")
    return [b64(h) for h in tree(tree_size).inclusion_proof(index, tree_size)]


def consistency(*, first: int, second: int) -> list[str]:
    if not 0 < first <= second:
        raise ValueError("first must be between 1 and second")
    return [b64(h) for h in tree(second).consistency_proof(first, second)]


def receipt(*, seq: int, now: datetime) -> dict:
    """Proof that one entry is in the log: the entry, its inclusion proof, and a signed tree head covering it.
    Checked offline by `idbroker-verify receipt` (clients/python) against the broker's published keys."""
    row = AuditEvent.objects.get(seq=seq)
    head = tree_head_latest()
    if head is None or head.tree_size < seq:
        head = tree_head_publish(now=now)
    return {
        "entry": entry_body(row.seq, row.event, row.refs, row.at).decode(),
        "leaf_index": seq - 1,
        "tree_size": head.tree_size,
        "inclusion_proof": inclusion(index=seq - 1, tree_size=head.tree_size),
        "tree_head": head.token,
    }


@dataclass(frozen=True)
class HeadCheck:
    ok: bool
    checked: int
    bad_tree_size: int | None = None
    reason: str = ""


def tree_heads_verify() -> HeadCheck:
    """Recompute every published tree head from the database as it is now (no cache), and check each head's
    signature: the stored row, its signed token and the entries must all agree. One pass builds the tree; each
    head then costs O(log² n)."""
    from attestations.signing import TokenInvalid, verify_tree_head

    heads = list(TreeHead.objects.order_by("tree_size").values_list("tree_size", "root_hash", "token"))
    if not heads:
        return HeadCheck(True, 0)
    rebuilt = merkle.Tree()
    rows = AuditEvent.objects.filter(seq__lte=heads[-1][0]).order_by("seq")
    for seq, event, refs, at in rows.values_list("seq", "event", "refs", "at").iterator():
        if seq != len(rebuilt) + 1:
            break
        rebuilt.append(merkle.leaf_hash(entry_body(seq, event, refs, at)))
    for size, root, token in heads:
        try:
            signed = verify_tree_head(token)
        except TokenInvalid as exc:
            return HeadCheck(False, len(heads), size, f"the tree head of size {size} has no valid signature ({exc})")
        if (signed.get("tree_size"), signed.get("root_hash")) != (size, root):
            return HeadCheck(False, len(heads), size, f"the tree head of size {size} differs from what was signed")
        if len(rebuilt) < size:
            return HeadCheck(False, len(heads), size, f"entries missing below tree size {size}")
        if rebuilt.root(size).hex() != root:
            return HeadCheck(False, len(heads), size, f"the log no longer matches the tree head of size {size}")
    return HeadCheck(True, len(heads))
