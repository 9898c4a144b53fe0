"""The audit log as a transparency log (SPEC 3.6, RFC 9162 style): every audit entry is a Merkle leaf, signed tree
heads are published, and anyone can be given an inclusion proof (this entry is in the log) or a consistency proof
(the log only grew between two tree heads).

What the public sees (issue 10): the leaves are the entries' salted *commitments*, SHA-256(salt || entry)
(audit/services.py `entry_commitment`), never the entries. A commitment says nothing about its entry (not the
event, not an id, not the time), so nobody outside the auditors can join two entries about one person, or tell
an issuance from its use. The person an entry is about gets its opening (the entry and its salt) in a receipt and
can check, offline, that it is in a tree the broker signed. What the public can see of the log changes only when
a head is signed (beat: once a minute; `receipt`: at once, for an entry no head covers yet): head timestamps are
rounded down to the minute, and entries and proofs are served only up to the newest signed head.

`leaf_format` 2 marks heads over commitments (it is in the signed payload); heads signed before issue 10 are over
the entries themselves (`leaf_format` 1): they are kept and still checked by `tree_heads_verify`, but no proof
links them to format-2 heads (see the README, *Transparency log*).

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

from broker import caches

from . import merkle
from .models import AuditEvent, TreeHead
from .services import entry_body, entry_commitment

log = logging.getLogger(__name__)
_tree = merkle.Tree()
_lock = threading.Lock()

LEAF_FORMAT = 2  # leaves are salted commitments; 1 = the entries' canonical bytes (heads signed before issue 10)
RECEIPT_FORMAT = 2  # a receipt carries the entry *and* its salt (the opening of its commitment)
_COLUMNS = ("seq", "event", "refs", "at", "salt")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def commitment(seq: int, event: str, refs: dict, at: datetime, salt: str) -> bytes:
    return entry_commitment(salt, entry_body(seq, event, refs, at))


def _leaf(seq, event, refs, at, salt, leaf_format: int = LEAF_FORMAT) -> bytes:
    body = entry_body(seq, event, refs, at)
    return merkle.leaf_hash(entry_commitment(salt, body) if leaf_format == 2 else body)


def tree(size: int) -> merkle.Tree:
    """The process's tree (format 2), grown to at least the first `size` entries."""
    global _tree
    with _lock:
        if len(_tree) < size:
            rows = AuditEvent.objects.filter(seq__gt=len(_tree), seq__lte=size).order_by("seq")
            for row in rows.values_list(*_COLUMNS).iterator():
                if row[0] != len(_tree) + 1:
                    raise LogGap(row[0])
                _tree.append(_leaf(*row))
        if len(_tree) < size:
            raise LogGap(len(_tree) + 1)
        return _tree


def _rebuilt(sizes: dict[int, int]) -> dict[int, merkle.Tree]:
    """Fresh trees from the database as it is now (no cache): for each leaf format, over its first `size` entries
    (fewer when entries are missing)."""
    trees = {fmt: merkle.Tree() for fmt in sizes}
    rows = AuditEvent.objects.filter(seq__lte=max(sizes.values(), default=0)).order_by("seq")
    for count, row in enumerate(rows.values_list(*_COLUMNS).iterator(), start=1):
        if row[0] != count:
            break
        for fmt, built in trees.items():
            if len(built) < sizes[fmt]:
                built.append(_leaf(*row, leaf_format=fmt))
    return trees


def forget_leaves() -> None:
    """Tests: the database was emptied under us."""
    global _tree
    with _lock:
        _tree = merkle.Tree()


caches.register("audit.merkle_tree", forget_leaves)


class LogGap(Exception):
    """An entry the tree needs is missing (deleted rows, or asking beyond the log)."""


def log_size() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def tree_head_publish(*, now: datetime) -> TreeHead | None:
    """Sign and store a tree head over the whole log, unless the newest one already covers it.

    Never signs a fork: the tree must still give the newest head's root for that head's size (a restore that lost
    entries, or a stale per-process cache, would otherwise be signed); the first head over commitments checks the
    newest head over entries the same way. The cache is rebuilt once; if the log itself contradicts the head,
    nothing is signed and an error is logged (verify_audit_log names the cause).

    The time is rounded down to the minute, in the signed `timestamp` and in the row: a head only says the log had
    this size in that minute."""
    from attestations.signing import sign_tree_head

    size = log_size()
    latest = tree_head_latest()
    if size == 0 or (latest and latest.tree_size >= size):
        return latest
    if latest and tree(size).root(latest.tree_size).hex() != latest.root_hash:
        forget_leaves()
        if tree(size).root(latest.tree_size).hex() != latest.root_hash:
            log.error("audit log contradicts its newest tree head: not signing", extra={"code": "audit_tampered"})
            return latest
    if latest is None:
        older = TreeHead.objects.filter(leaf_format=1).order_by("-tree_size").first()
        rebuilt = _rebuilt({1: older.tree_size})[1] if older else None
        # Entries missing below the old head (a truncated log) contradict it as surely as a changed one.
        if older and (len(rebuilt) < older.tree_size or rebuilt.root(older.tree_size).hex() != older.root_hash):
            log.error("audit log contradicts its newest tree head: not signing", extra={"code": "audit_tampered"})
            return None
    root = tree(size).root(size).hex()
    at = _minute(now)
    signed = sign_tree_head(
        {
            "iss": settings.PUBLIC_URL,
            "tree_size": size,
            "root_hash": root,
            "leaf_format": LEAF_FORMAT,
            "timestamp": int(at.timestamp()) * 1000,
        }
    )
    try:
        return TreeHead.objects.create(
            tree_size=size, leaf_format=LEAF_FORMAT, root_hash=root, at=at, token=signed.token, kid=signed.kid
        )
    except IntegrityError:  # a concurrent publisher signed the same size
        return TreeHead.objects.get(tree_size=size, leaf_format=LEAF_FORMAT)


def tree_head_latest() -> TreeHead | None:
    """The newest head over commitments: the only kind the public endpoints serve and prove against."""
    return TreeHead.objects.filter(leaf_format=LEAF_FORMAT).order_by("-tree_size").first()


def public_size() -> int:
    """How much of the log the public may see: the newest signed head's size (entries and proofs stop there)."""
    head = tree_head_latest()
    return head.tree_size if head else 0


def public_commitments(*, start: int, end: int) -> list[str]:
    """The commitments (hex) of leaves start..end-1, end capped at the newest signed head."""
    rows = AuditEvent.objects.filter(seq__gt=start, seq__lte=min(end, public_size())).order_by("seq")
    return [commitment(*row).hex() for row in rows.values_list(*_COLUMNS)]


def inclusion(*, index: int, tree_size: int) -> list[str]:
    if not 0 <= index < tree_size:
        raise ValueError("index must be below tree_size")
    return [b64(h) for h in tree(tree_size).inclusion_proof(index, tree_size)]


def consistency(*, first: int, second: int) -> list[str]:
    if not 0 < first <= second:
        raise ValueError("first must be between 1 and second")
    return [b64(h) for h in tree(second).consistency_proof(first, second)]


def receipt(*, seq: int, now: datetime) -> dict:
    """Proof that one entry is in the log, for the person it is about: the entry and its salt (the opening of its
    public commitment), its inclusion proof, and a signed tree head covering it. Checked offline by
    `idbroker-verify receipt` (clients/python) against the broker's published keys. Raises LogGap when no head
    covering the entry can be signed (a gap in the log, or a log that contradicts its heads)."""
    row = AuditEvent.objects.get(seq=seq)
    head = tree_head_latest()
    if head is None or head.tree_size < seq:
        head = tree_head_publish(now=now)
    if head is None or head.tree_size < seq:
        raise LogGap(seq)
    return {
        "format": RECEIPT_FORMAT,
        "entry": entry_body(row.seq, row.event, row.refs, row.at).decode(),
        "salt": row.salt,
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
    """Recompute every published tree head, of either leaf format, from the database as it is now (no cache), and
    check each head's signature: the stored row, its signed token and the entries must all agree. One pass builds
    the trees; each head then costs O(log² n)."""
    from attestations.signing import TokenInvalid, verify_tree_head

    heads = list(
        TreeHead.objects.order_by("tree_size", "leaf_format").values_list(
            "tree_size", "leaf_format", "root_hash", "token"
        )
    )
    if not heads:
        return HeadCheck(True, 0)
    sizes: dict[int, int] = {}
    for size, fmt, _, _ in heads:
        if fmt not in (1, 2):
            return HeadCheck(False, len(heads), size, f"the tree head of size {size} has an unknown leaf format")
        sizes[fmt] = max(size, sizes.get(fmt, 0))
    rebuilt = _rebuilt(sizes)
    for size, fmt, root, token in heads:
        try:
            signed = verify_tree_head(token)
        except TokenInvalid as exc:
            return HeadCheck(False, len(heads), size, f"the tree head of size {size} has no valid signature ({exc})")
        if (signed.get("tree_size"), signed.get("root_hash"), signed.get("leaf_format", 1)) != (size, root, fmt):
            return HeadCheck(False, len(heads), size, f"the tree head of size {size} differs from what was signed")
        if fmt not in rebuilt or len(rebuilt[fmt]) < size:
            return HeadCheck(False, len(heads), size, f"entries missing below tree size {size}")
        if rebuilt[fmt].root(size).hex() != root:
            return HeadCheck(False, len(heads), size, f"the log no longer matches the tree head of size {size}")
    return HeadCheck(True, len(heads))
