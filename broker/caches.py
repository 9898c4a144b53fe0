"""Every per-process cache, in one registry (issue 11: "the registry of per-process caches").

A few hot paths remember things per process (verified API keys, published signing keys, revocations, the Merkle
tree, circuit breakers, Redis clients). Each module registers how to forget its cache when it defines it, so one
call empties them all: tests between cases (a rolled-back database reuses ids), and anything that must not trust
what a process remembered. `clear_all` never touches shared state (the Django cache, Redis, the database).
"""

from __future__ import annotations

from collections.abc import Callable

_clearers: dict[str, Callable[[], None]] = {}


def register(name: str, clear: Callable[[], None]) -> None:
    """Name a per-process cache and how to empty it (called at import by the module that owns the cache)."""
    _clearers[name] = clear


def names() -> list[str]:
    return sorted(_clearers)


def clear_all() -> None:
    for clear in list(_clearers.values()):
        clear()
