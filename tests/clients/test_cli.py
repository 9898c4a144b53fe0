"""`python -m idbroker_verifier` / `idbroker-verify` in a separate process, against the live broker; and the package
stands alone (no Django)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args: str, stdin: str | None = None, command=(sys.executable, "-m", "idbroker_verifier")):
    return subprocess.run([*command, *args], input=stdin, capture_output=True, text=True, timeout=30)


def test_the_cli_prints_the_claims_and_exits_0(public_url, issue):
    token = issue(["age_over_18", "verified_human"], nonce="cli-nonce")
    done = _run("--issuer", public_url, "--audience", "acme", "--nonce", "cli-nonce", token)
    assert done.returncode == 0, done.stderr
    claims = json.loads(done.stdout)
    assert claims["age_over_18"] is True and claims["verified_human"] is True and claims["aud"] == "acme"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--audience", "globex"], "wrong_audience"),
        (["--audience", "acme", "--nonce", "other"], "nonce_mismatch"),
    ],
)
def test_the_cli_prints_the_reason_and_exits_1(public_url, issue, args, reason):
    done = _run("--issuer", public_url, *args, issue())
    assert (done.returncode, done.stdout) == (1, f"{reason}\n")


def test_the_cli_reports_a_revoked_token(public_url, issue, now):
    from attestations.models import Attestation
    from attestations.services import attestation_revoke

    token = issue()
    attestation_revoke(attestation=Attestation.objects.get(), now=now)
    done = _run("--issuer", public_url, "--audience", "acme", token)
    assert (done.returncode, done.stdout) == (1, "revoked\n")
    unchecked = _run("--issuer", public_url, "--audience", "acme", "--no-status", token)
    assert unchecked.returncode == 0


def test_the_console_script_reads_the_token_from_stdin(public_url, issue):
    script = Path(sys.executable).with_name("idbroker-verify")
    assert script.exists(), "pip install ./clients/python installs the idbroker-verify script"
    token = issue()
    done = _run("--issuer", public_url, "--audience", "acme", "-", stdin=token + "\n", command=(str(script),))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["aud"] == "acme"
    garbage = _run("--issuer", public_url, "--audience", "acme", "-", stdin="garbage", command=(str(script),))
    assert (garbage.returncode, garbage.stdout) == (1, "malformed\n")


def test_the_package_imports_without_django():
    # Isolated mode (-I: no PYTHONPATH, no user site, not the working directory) and a clean environment; a
    # `django` entry of None in sys.modules makes any attempt to import it fail.
    code = (
        "import sys; sys.modules['django'] = None\n"
        "import idbroker_verifier, idbroker_verifier.cli\n"
        "assert not [m for m in sys.modules if m.startswith('django.')]\n"
        "print(idbroker_verifier.Verifier.__module__)"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, env={}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "idbroker_verifier.verifier"
