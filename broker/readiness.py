"""Can this broker finish a verification it starts? Asked before anyone gives a photo (issue 10, item 14).

A verification ends in a signed attestation; without an active signing key it would fail at the very end, after
the person photographed their document and face. The browser flow asks here before the consent page, and the
system check (broker/checks.py) asks at start-up.
"""

from __future__ import annotations


def issuing_problem() -> str | None:
    """A stable code when attestations cannot be issued now, else None."""
    from attestations.models import SigningKey

    if not SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists():
        return "no_signing_key"
    return None
