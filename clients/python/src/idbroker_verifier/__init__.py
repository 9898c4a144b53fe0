"""Provider-side verifier for idbroker attestations. `Verifier(issuer, audience).verify(token, nonce=...)`."""

from ._http import urllib_fetch
from .receipt import verify_receipt
from .verifier import REASONS, STATUS_LIST_TYPE, SUPPORTED_ALGS, TOKEN_TYPE, VerificationError, Verifier

__version__ = "0.2.0"
__all__ = [
    "REASONS",
    "STATUS_LIST_TYPE",
    "SUPPORTED_ALGS",
    "TOKEN_TYPE",
    "VerificationError",
    "Verifier",
    "urllib_fetch",
    "verify_receipt",
]
