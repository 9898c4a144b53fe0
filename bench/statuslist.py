"""Status list cost for a list of 1,048,576 entries: serving (query, pack, compress, sign) and reading it back."""

from __future__ import annotations

import random
import time


def status_list_bench(provider, *, revoked_share: float = 0.01, rounds: int = 5) -> list[tuple[str, str]]:
    from django.utils import timezone

    from attestations import statuslist
    from attestations.models import Attestation, StatusList

    now = timezone.now()
    size = 1 << 20
    status_list = StatusList.objects.create(size=size)
    picks = random.sample(range(size), int(size * revoked_share))
    Attestation.objects.bulk_create(
        [
            Attestation(
                jti=f"bench-{i}",
                provider=provider,
                claim_names=[],
                kid="k",
                issued_at=now,
                expires_at=now,
                revoked_at=now,
                status_list=status_list,
                status_idx=idx,
            )
            for i, idx in enumerate(picks)
        ],
        batch_size=5000,
    )
    start = time.perf_counter()
    for _ in range(rounds):
        token = statuslist.status_list_token(status_list, now=now)
    serve = (time.perf_counter() - start) / rounds
    import base64
    import json

    lst = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["status_list"]["lst"]
    start = time.perf_counter()
    for _ in range(rounds):
        packed = statuslist.decode(lst)
        assert statuslist.bit(packed, picks[0]) == 1
    decode = (time.perf_counter() - start) / rounds
    return [
        (f"status list, {size:,} entries, {len(picks):,} revoked: token size", f"{len(token):,} bytes"),
        ("status list: serve (query + pack + zlib + sign)", f"{serve * 1000:.1f} ms"),
        ("status list: decode + read one bit", f"{decode * 1000:.1f} ms"),
    ]
