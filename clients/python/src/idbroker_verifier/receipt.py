"""Deletion receipts: check offline that an audit entry (e.g. "your photos were destroyed") is in idbroker's
transparency log, under a tree head the broker signed with its published key.

A receipt is JSON: `entry` (the entry's canonical text: event type, random ids, a time), `leaf_index`, `tree_size`,
`inclusion_proof` (base64 hashes) and `tree_head` (a JWS, `typ: sth+jwt`, whose payload names `tree_size` and
`root_hash`). Hashing is RFC 9162 §2.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right).
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
    try:
        entry = receipt["entry"].encode()
        index, size = int(receipt["leaf_index"]), int(receipt["tree_size"])
        proof = [base64.b64decode(p, validate=True) for p in receipt["inclusion_proof"]]
        token = str(receipt["tree_head"])
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        raise VerificationError("malformed", "missing or mistyped receipt fields") from None
    if len(token) > MAX_TOKEN_LENGTH or len(proof) > 64:
        raise VerificationError("malformed", "receipt too large")
    head = _json_object(verifier._verified_jws(token, TREE_HEAD_TYPE, time.time(), verifier._token_registry).payload)
    if head.get("iss") != verifier.issuer:
        raise VerificationError("wrong_issuer", f"tree head from {head.get('iss')!r}")
    if head.get("tree_size") != size:
        raise VerificationError("not_included", "the proof is for another tree size than the signed head")
    try:
        root = bytes.fromhex(head["root_hash"])
    except (KeyError, TypeError, ValueError):
        raise VerificationError("malformed", "the tree head has no root hash") from None
    if not verify_inclusion(hashlib.sha256(b"\x00" + entry).digest(), index, size, proof, root):
        raise VerificationError("not_included", "the entry is not in the signed tree")
    try:
        seq, event, refs, at = json.loads(entry)
    except (ValueError, TypeError):
        raise VerificationError("malformed", "the entry is not an audit entry") from None
    if seq != index + 1:
        raise VerificationError("not_included", "the entry's number does not match its place in the log")
    return {"seq": seq, "event": event, "refs": refs, "at": at, "tree_size": size, "root_hash": head["root_hash"]}
