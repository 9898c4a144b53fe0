"""Merkle tree hashing and proofs as Certificate Transparency defines them (RFC 9162 §2.1), over a list of leaf
hashes. Pure functions: the audit app feeds them its leaves. Inclusion is verified by the offline verifier's function
(clients/python, which needs nothing of this code base), imported here so that one implementation is tested and used.

Notation follows the RFC: n leaves D[0:n]; MTH({}) = SHA-256(); leaf hash = SHA-256(0x00 || d);
node hash = SHA-256(0x01 || left || right); k is the largest power of two smaller than n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from idbroker_verifier.receipt import verify_inclusion as _client_verify_inclusion

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, iteratively: combine pairs level by level, an odd last node moving up unchanged, which
    gives the same tree as the RFC's recursive split (left subtrees are always the largest power of two)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1): the audit path of leaf `index` in the tree of these leaves."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError("leaf index outside the tree")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1): shows the tree of the first `old_size` leaves is a prefix of this one."""
    if not 0 < old_size <= len(leaves):
        raise ValueError("old tree size must be between 1 and the tree size")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


# RFC 9162 §2.1.3.2 inclusion verification has one implementation: the one providers and people run to check a
# deletion receipt offline (clients/python). The server's tests and benchmarks check that very function against the
# reference vectors, so what is tested is what verifies receipts.
verify_inclusion = _client_verify_inclusion


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: the tree of `old_size` leaves with `old_root` is a prefix of the one with `new_root`."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Tree:
    """An append-only tree that keeps every complete subtree's hash (level k holds the roots of the aligned
    subtrees of 2**k leaves), so roots and proofs for any size cost O(log² n) hashes instead of O(n).
    Gives the same answers as the functions above (tested against them)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    def __len__(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        k = 0
        while len(self.levels[k]) % 2 == 0:  # a subtree of 2**(k+1) leaves just completed
            if len(self.levels) == k + 1:
                self.levels.append([])
            self.levels[k + 1].append(node_hash(self.levels[k][-2], self.levels[k][-1]))
            k += 1

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges the RFC's recursion visits."""
        size = end - start
        if size & (size - 1) == 0 and start % size == 0:  # a complete, aligned subtree: stored
            return self.levels[size.bit_length() - 1][start // size]
        k = _split(size)
        return node_hash(self._range(start, start + k), self._range(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = len(self) if size is None else size
        if not 0 <= size <= len(self):
            raise ValueError("size beyond the tree")
        return self._range(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size <= len(self):
            raise ValueError("leaf index outside the tree")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:  # walk down from the root, collecting the sibling of each step (RFC order: bottom-up)
            k = _split(end - start)
            if index < start + k:
                proof.append(self._range(start + k, end))
                end = start + k
            else:
                proof.append(self._range(start, start + k))
                start += k
        return proof[::-1]

    def consistency_proof(self, old_size: int, size: int) -> list[bytes]:
        if not 0 < old_size <= size <= len(self):
            raise ValueError("old tree size must be between 1 and the tree size")
        proof: list[bytes] = []
        start, end, m, complete = 0, size, old_size, True
        while True:
            if m == end - start:
                if not complete:
                    proof.append(self._range(start, end))
                break
            k = _split(end - start)
            if m <= k:
                proof.append(self._range(start + k, end))
                end = start + k
            else:
                proof.append(self._range(start, start + k))
                start, m, complete = start + k, m - k, False
        return proof[::-1]
