"""Public transparency endpoints: the newest signed tree head, inclusion and consistency proofs, and the leaves'
commitments, so anyone can rebuild the tree and check our heads. Never an entry, an event name, an id or an entry's
time (issue 10): everything here is a commitment or derived from commitments, and stops at the newest signed head,
so what the public sees changes only when a head is signed (audit/transparency.py)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from broker.ratelimit import per_client

from . import transparency

MAX_ENTRIES = 1000


def _problem(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(
        {"type": "about:blank", "title": detail.split(".")[0], "status": status, "code": code, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def _ints(request, *names: str) -> list[int] | None:
    try:
        values = [int(request.GET[name]) for name in names]
    except (KeyError, ValueError):
        return None
    return values if all(0 <= v < 1 << 62 for v in values) else None


@require_GET
def tree_head(request):
    head = transparency.tree_head_latest()
    if head is None:
        return _problem(404, "no_tree_head", "No tree head has been signed yet (beat signs one every minute).")
    response = JsonResponse(
        {
            "tree_size": head.tree_size,
            "root_hash": head.root_hash,
            "leaf_format": head.leaf_format,
            "timestamp": head.at.isoformat(),  # rounded down to the minute when signed
            "token": head.token,
        }
    )
    response["Cache-Control"] = "public, max-age=60"
    return response


@require_GET
@per_client("transparency", limit=120, window=60)
def inclusion_proof(request):
    values = _ints(request, "index", "tree_size")
    if values is None:
        return _problem(400, "invalid_parameters", "Give integer `index` and `tree_size`.")
    index, size = values
    if size > transparency.public_size() or not 0 <= index < size:
        return _problem(
            400, "outside_the_log", "`index` must be below `tree_size`, which must not exceed the newest tree head."
        )
    try:
        proof = transparency.inclusion(index=index, tree_size=size)
    except transparency.LogGap:
        return _problem(409, "log_incomplete", "The log has a gap below this size; see verify_audit_log.")
    return JsonResponse({"index": index, "tree_size": size, "inclusion_proof": proof})


@require_GET
@per_client("transparency", limit=120, window=60)
def consistency_proof(request):
    values = _ints(request, "first", "second")
    if values is None:
        return _problem(400, "invalid_parameters", "Give integer `first` and `second` tree sizes.")
    first, second = values
    if second > transparency.public_size() or not 0 < first <= second:
        return _problem(400, "outside_the_log", "Need 0 < first <= second <= the newest tree head's size.")
    try:
        proof = transparency.consistency(first=first, second=second)
    except transparency.LogGap:
        return _problem(409, "log_incomplete", "The log has a gap below this size; see verify_audit_log.")
    return JsonResponse({"first": first, "second": second, "consistency_proof": proof})


@require_GET
@per_client("transparency", limit=120, window=60)
def entries(request):
    values = _ints(request, "start", "end")
    if values is None or not values[0] < values[1]:
        return _problem(400, "invalid_parameters", "Give integer `start` < `end` (leaf indexes, end exclusive).")
    start, end = values[0], min(values[1], values[0] + MAX_ENTRIES)
    commitments = transparency.public_commitments(start=start, end=end)
    # Leaf i's Merkle leaf hash is SHA-256(0x00 || bytes.fromhex(commitment)).
    return JsonResponse(
        {
            "start": start,
            "leaf_format": transparency.LEAF_FORMAT,
            "entries": [{"index": start + i, "commitment": c} for i, c in enumerate(commitments)],
        }
    )
