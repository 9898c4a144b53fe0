"""Deletion receipts: check offline that an audit entry (e.g. "your photos were destroyed") is in idbroker's
transparency log, under a tree head the broker signed with its published key.

A receipt is JSON: `format`, `entry` (the entry's canonical text: event type, random ids, a time), `salt`,
`leaf_index`, `tree_size`, `inclusion_proof` (base64 hashes) and `tree_head` (a JWS, `typ: sth+jwt`, whose payload
names `tree_size`, `root_hash` and `leaf_format`). Hashing is RFC 9162 §2.1 over the entry's commitment:

    format 2 (idbroker since issue 10): commitment = SHA-256(salt || entry), salt = 32 bytes (hex in the receipt);
                                        leaf = SHA-256(0x00 || commitment); the head must say `leaf_format: 2`.
    format 1 (older receipts, no `format` or `salt`): leaf = SHA-256(0x00 || entry); the head must have no
                                        `leaf_format` (or 1).
    node = SHA-256(0x01 || left || right).

The public log shows only commitments; the receipt is the opening of the holder's own entry. A receipt of one
format never verifies against a head of the other, so an entry cannot be passed off as a commitment or back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Sequence

from .verifier import MAX_TOKEN_LENGTH, VerificationError, Verifier, _json_object

TREE_HEAD_TYPE = "sth+jwt"
RECEIPT_FORMATS = (1, 2)
SALT_BYTES = 32


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_receipt(receipt: object, verifier: Verifier) -> dict:
    """Return the receipt's entry (parsed) once everything checks; raise VerificationError otherwise.
    `verifier` supplies the issuer's keys (its JWKS cache); its audience plays no part here."""
    if not isinstance(receipt, dict):
        raise VerificationError("malformed", "a receipt is a JSON object")
    fmt = receipt.get("format", 1)
    if type(fmt) is not int or fmt not in RECEIPT_FORMATS:
        raise VerificationError("malformed", f"unknown receipt format {fmt!r}")
    try:
        salt = bytes.fromhex(receipt["salt"]) if fmt == 2 else b""
        entry = receipt["entry"].encode()
        index, size = int(receipt["leaf_index"]), int(receipt["tree_size"])
        proof = [base64.b64decode(p, validate=True) for p in receipt["inclusion_proof"]]
        token = str(receipt["tree_head"])
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        raise VerificationError("malformed", "missing or mistyped receipt fields") from None
    if len(token) > MAX_TOKEN_LENGTH or len(proof) > 64:
        raise VerificationError("malformed", "receipt too large")
    if fmt == 2 and len(salt) != SALT_BYTES:
        raise VerificationError("malformed", f"the salt must be {SALT_BYTES} bytes")
    head = _json_object(verifier._verified_jws(token, TREE_HEAD_TYPE, time.time(), verifier._token_registry).payload)
    if head.get("iss") != verifier.issuer:
        raise VerificationError("wrong_issuer", f"tree head from {head.get('iss')!r}")
    if head.get("tree_size") != size:
        raise VerificationError("not_included", "the proof is for another tree size than the signed head")
    if head.get("leaf_format", 1) != fmt:
        raise VerificationError("not_included", "the signed head's leaves are of another format than this receipt")
    try:
        root = bytes.fromhex(head["root_hash"])
    except (KeyError, TypeError, ValueError):
        raise VerificationError("malformed", "the tree head has no root hash") from None
    data = hashlib.sha256(salt + entry).digest() if fmt == 2 else entry
    if not verify_inclusion(hashlib.sha256(b"\x00" + data).digest(), index, size, proof, root):
        raise VerificationError("not_included", "the entry is not in the signed tree")
    try:
        seq, event, refs, at = json.loads(entry)
    except (ValueError, TypeError):
        raise VerificationError("malformed", "the entry is not an audit entry") from None
    if seq != index + 1:
        raise VerificationError("not_included", "the entry's number does not match its place in the log")
    return {
        "seq": seq,
        "event": event,
        "refs": refs,
        "at": at,
        "tree_size": size,
        "root_hash": head["root_hash"],
        "format": fmt,
        **({"commitment": data.hex()} if fmt == 2 else {}),
    }
