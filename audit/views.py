"""Public transparency endpoints: the newest signed tree head, inclusion and consistency proofs, and the entries
themselves (event types, random ids and times only), so anyone can rebuild the tree and check our heads."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from broker.ratelimit import per_client

from . import transparency
from .models import AuditEvent
from .services import entry_body

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
            "timestamp": head.at.isoformat(),
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
    if size > transparency.log_size() or not 0 <= index < size:
        return _problem(400, "outside_the_log", "`index` must be below `tree_size`, which must not exceed the log.")
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
    if second > transparency.log_size() or not 0 < first <= second:
        return _problem(400, "outside_the_log", "Need 0 < first <= second <= the log's size.")
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
    rows = AuditEvent.objects.filter(seq__gt=start, seq__lte=end).order_by("seq")
    return JsonResponse(
        {
            "start": start,
            "entries": [entry_body(*r).decode() for r in rows.values_list("seq", "event", "refs", "at")],
        }
    )
