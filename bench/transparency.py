"""Transparency-log costs (issue 6): appending audit entries, and the Merkle tree at 1,000,000 leaves.

Appends are measured for real (audit_record into PostgreSQL: chain hash, unique seq, one INSERT each) on a sample;
the 1,000,000-leaf figures use the same tree code the broker serves proofs from (audit.merkle.Tree), fed leaf
hashes in memory, because writing a million rows one by one would make the bench take most of an hour.
"""

from __future__ import annotations

import hashlib
import statistics
import time


def transparency_bench(*, appends: int = 2000, leaves: int = 1_000_000, proofs: int = 200) -> list[tuple[str, str]]:
    import random

    from django.utils import timezone

    from audit import merkle
    from audit.services import audit_record

    now = timezone.now()
    start = time.perf_counter()
    for i in range(appends):
        audit_record(event="request.created", request=f"vr_bench_{i}", now=now)
    append_rate = appends / (time.perf_counter() - start)

    tree = merkle.Tree()
    start = time.perf_counter()
    for i in range(leaves):
        tree.append(merkle.leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest()))
    tree_rate = leaves / (time.perf_counter() - start)

    start = time.perf_counter()
    root = tree.root(leaves)
    root_ms = (time.perf_counter() - start) * 1000

    picks = random.sample(range(leaves), proofs)
    timings, sizes = [], []
    for index in picks:
        start = time.perf_counter()
        proof = tree.inclusion_proof(index, leaves)
        timings.append((time.perf_counter() - start) * 1000)
        sizes.append(len(proof))
        assert merkle.verify_inclusion(tree.levels[0][index], index, leaves, proof, root)
    start = time.perf_counter()
    consistency = tree.consistency_proof(leaves // 3, leaves)
    consistency_ms = (time.perf_counter() - start) * 1000
    assert merkle.verify_consistency(leaves // 3, leaves, tree.root(leaves // 3), root, consistency)
    return [
        ("audit append (audit_record, PostgreSQL), entries/s", f"{append_rate:,.0f}"),
        ("Merkle tree append (leaf + stored subtrees), leaves/s", f"{tree_rate:,.0f}"),
        (f"tree root at {leaves:,} leaves", f"{root_ms:.2f} ms"),
        (f"inclusion proof at {leaves:,} leaves, median", f"{statistics.median(timings):.3f} ms"),
        (f"inclusion proof size at {leaves:,} leaves", f"{max(sizes)} hashes ({max(sizes) * 32} bytes)"),
        (f"consistency proof {leaves // 3:,} -> {leaves:,}", f"{consistency_ms:.3f} ms, {len(consistency)} hashes"),
    ]
