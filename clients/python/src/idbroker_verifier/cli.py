"""`idbroker-verify --issuer URL --audience CLIENT_ID [--nonce N] TOKEN|-`

Prints the verified claims as JSON and exits 0, or prints the reason (one word, see REASONS) and exits 1. The
detail, when there is one, goes to standard error. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .verifier import VerificationError, Verifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="idbroker-verify", description="Verify an idbroker attestation offline (signature, claims, revocation)."
    )
    parser.add_argument("--issuer", required=True, help="the broker's public URL, e.g. https://broker.example")
    parser.add_argument("--audience", required=True, help="your client_id")
    parser.add_argument("--nonce", help="the nonce you sent with the request")
    parser.add_argument("--leeway", type=float, default=60, help="clock skew allowed, in seconds (default 60)")
    parser.add_argument("--no-status", action="store_true", help="skip the revocation check (not recommended)")
    parser.add_argument("token", help="the attestation, or - to read it from standard input")
    args = parser.parse_args(argv)
    token = sys.stdin.read() if args.token == "-" else args.token
    verifier = Verifier(args.issuer, args.audience, leeway=args.leeway)
    try:
        claims = verifier.verify(token.strip(), nonce=args.nonce, check_status=not args.no_status)
    except VerificationError as exc:
        print(exc.reason)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    print(json.dumps(claims, indent=2, sort_keys=True))
    return 0
