"""`make bench`: side-by-side measurements on this machine, printed as a table.

1. Check API vs. a bare DRF endpoint in the same gunicorn server (2 workers, PostgreSQL), load from wrk in a separate
   process on loopback; the two are run alternately, twice each, and the ratio is of the medians.
2. Issuance (sign) per second, and offline verification (clients/python's `idbroker_verifier`, keys and status list
   cached, as a running provider has them) vs. raw `cryptography` ECDSA verification of the same token, in this
   process.
Absolute numbers depend on the machine; ratios measured in one run are what to compare.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idbroker_bench")
PORT = int(os.environ.get("BENCH_PORT", "8765"))
DURATION = os.environ.get("BENCH_SECONDS", "8")
ENV = {
    "DEBUG": "false",
    "SECRET_KEY": base64.b64encode(os.urandom(48)).decode(),
    "IDBROKER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    "IDBROKER_HASH_KEY": base64.b64encode(os.urandom(32)).decode(),
    "IDBROKER_VAR_DIR": tempfile.mkdtemp(prefix="idbroker-bench-"),
    "IDBROKER_PUBLIC_URL": f"http://127.0.0.1:{PORT}",
    "IDBROKER_BENCH": "true",
    "IDBROKER_ALLOW_DEV_VENDOR": "true",
    "IDBROKER_DEMO": "false",
    "DATABASE_URL": PG_URL,
    # Production shape: tasks go to Redis, and so do the check API's hourly counters (flushed by beat).
    "CELERY_BROKER_URL": os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/13"),
    # and the shared cache (rate limits) in Redis, as production runs it
    "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "rediscache://127.0.0.1:6379/13"),
    "DB_CONN_MAX_AGE": "60",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def prepare() -> tuple[str, str, dict]:
    """A provider, a signing key and one real attestation to check."""
    from django.utils import timezone

    from attestations.models import Provider
    from attestations.policies import StoredFacts
    from attestations.services import provider_create, request_complete, request_create
    from attestations.signing import signing_key_rotate
    from verification.vendors.base import Check

    now = timezone.now()
    signing_key_rotate(alg="ES256", now=now)
    provider, key = provider_create(
        name="Bench", client_id="bench", redirect_uris=["https://bench.example/r"], claims=["age_over_18"], now=now
    )
    Provider.objects.filter(pk=provider.pk).update(rate_limit="100000000/min")
    request, _ = request_create(provider=provider, claims=["age_over_18"], now=now)
    facts = StoredFacts(date(1990, 1, 1), "FR", "FR", "passport", date(2031, 1, 1), Check.PASS, Check.PASS, Check.PASS)
    token = request_complete(request=request, subject="bench-subject", facts=facts, verified_month="2026-11", now=now)
    from attestations.signing import jwks

    return key, token, jwks()


def wrk(path: str, body: str, key: str | None) -> float:
    lua = Path(ENV["IDBROKER_VAR_DIR"]) / "post.lua"
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if key:
        headers += f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{DURATION}s", "-s", str(lua), f"http://127.0.0.1:{PORT}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = [line for line in out.splitlines() if "Non-2xx" in line]
    if non2xx:
        raise SystemExit(f"{path}: {non2xx[0]}\n{out}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


def http_bench(key: str, token: str) -> list[tuple[str, str]]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "broker.wsgi",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ},
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        body = json.dumps({"token": token})
        wrk("/bench/bare", body, None)  # warm-up
        wrk("/api/v1/attestations/check", body, key)
        bare, gated, check = [], [], []
        for _ in range(2):
            bare.append(wrk("/bench/bare", body, None))
            gated.append(wrk("/bench/authenticated", body, key))
            check.append(wrk("/api/v1/attestations/check", body, key))
    finally:
        server.terminate()
        server.wait(10)
    b, g, c = statistics.median(bare), statistics.median(gated), statistics.median(check)
    return [
        ("bare DRF endpoint, requests/s", f"{b:,.0f}"),
        ("DRF endpoint behind API key + rate limit, requests/s", f"{g:,.0f}"),
        ("check API, requests/s", f"{c:,.0f}"),
        ("check API / bare (issue 3 target 0.7)", f"{c / b:.2f}"),
        ("API key + rate limit alone / bare", f"{g / b:.2f}"),
        ("check API / endpoint behind API key + rate limit", f"{c / g:.2f}"),
    ]


def crypto_bench(token: str, keys: dict) -> list[tuple[str, str]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from django.utils import timezone
    from idbroker_verifier import Verifier
    from joserfc.jwk import ECKey

    from attestations import statuslist
    from attestations.models import StatusList
    from attestations.signing import sign_attestation

    payload = {"iss": "x", "aud": "bench", "exp": int(time.time()) + 900, "age_over_18": True}

    def rate(fn, seconds=2.0) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            count += 1
        return count / (time.perf_counter() - start)

    signs = rate(lambda: sign_attestation(payload))
    # The provider-side verifier with its caches warm: the JWKS and the status list are served from memory once,
    # the way a long-running provider holds them between refreshes, so this measures verification, not HTTP.
    issuer = ENV["IDBROKER_PUBLIC_URL"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    list_uri = claims["status"]["status_list"]["uri"]
    status_list = StatusList.objects.get(pk=int(list_uri.rsplit("/", 1)[1]))
    served = {
        f"{issuer}/.well-known/jwks.json": json.dumps(keys).encode(),
        list_uri: statuslist.status_list_token(status_list, now=timezone.now()).encode(),
    }
    fetched = []

    def from_memory(url):
        fetched.append(url)
        return served[url], {"cache-control": "max-age=300"}

    verifier = Verifier(issuer, "bench", http=from_memory)
    verifier.verify(token)  # warm: one JWKS and one status list "fetch"
    offline = rate(lambda: verifier.verify(token))
    if len(fetched) != 2:
        raise SystemExit(f"the verifier fetched during the benchmark: {fetched}")
    jwt_part = token.rstrip("~")
    signing_input, signature = jwt_part.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ECKey.import_key(keys["keys"][-1]).public_key
    raw_rate = rate(lambda: public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return [
        ("issuance (sign ES256), tokens/s", f"{signs:,.0f}"),
        ("offline verify (idbroker_verifier, incl. status bit), tokens/s", f"{offline:,.0f}"),
        ("raw cryptography ECDSA verify, /s", f"{raw_rate:,.0f}"),
        ("offline / raw (target >= 0.5)", f"{offline / raw_rate:.2f}"),
    ]


def main():
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (make bench installs it with apt-get)")
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "DROP DATABASE IF EXISTS idbroker_bench"], check=True
    )
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE idbroker_bench"], check=True)
    setup_django()
    key, token, keys = prepare()
    rows = http_bench(key, token) + crypto_bench(token, keys)
    import redis

    from attestations.checkcounts import PREFIX

    # What the checks left behind: one hourly counter per provider (SPEC 2.4), nothing per token.
    client = redis.Redis.from_url(ENV["CELERY_BROKER_URL"])
    keys = list(client.scan_iter(match=f"{PREFIX}*"))
    counted = sum(int(n) for key in keys for n in client.hgetall(key).values())
    client.flushdb()
    rows.append(("checks counted (hourly counters, no per-token record)", f"{counted:,} in {len(keys)} key(s)"))
    from attestations.models import Provider
    from bench.statuslist import status_list_bench

    rows += status_list_bench(Provider.objects.get(client_id="bench"))
    from bench.transparency import transparency_bench

    rows += transparency_bench()
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure'.ljust(width)}  value\n{'-' * width}  -----")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
