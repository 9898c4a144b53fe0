"""`idbroker-verify --issuer URL --audience CLIENT_ID [--nonce N] TOKEN|-`
`idbroker-verify receipt --issuer URL FILE|-` (a deletion receipt, see receipt.py)

Prints the verified claims as JSON and exits 0, or prints the reason (one word, see REASONS) and exits 1. The
detail, when there is one, goes to standard error. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .verifier import VerificationError, Verifier


def receipt_main(argv: list[str]) -> int:
    """`idbroker-verify receipt --issuer URL FILE|-`: check a deletion receipt against the issuer's keys."""
    from .receipt import verify_receipt

    parser = argparse.ArgumentParser(prog="idbroker-verify receipt", description="Check an idbroker receipt offline.")
    parser.add_argument("--issuer", required=True, help="the broker's public URL, e.g. https://broker.example")
    parser.add_argument("file", help="the receipt JSON file, or - to read it from standard input")
    args = parser.parse_args(argv)
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        entry = verify_receipt(json.loads(text), Verifier(args.issuer, "receipt"))
    except (VerificationError, ValueError, OSError) as exc:
        print(getattr(exc, "reason", "malformed"))
        if getattr(exc, "detail", ""):
            print(exc.detail, file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["receipt"]:
        return receipt_main(argv[1:])
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
