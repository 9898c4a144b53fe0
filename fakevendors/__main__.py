"""`python -m fakevendors`: serve the four fake vendors on loopback for a demo, and write the broker's environment.

    python -m fakevendors --broker http://localhost:8000 --env-file var/fakevendors.env

Each fake listens on its own port (persona 8101, onfido 8102, stripe_identity 8103, veriff 8104 by default),
delivers its webhooks to `<broker>/webhooks/vendors/<name>`, and the env file holds the variables that point the
broker at them (API URLs, keys, webhook secrets). `make run VENDOR=<name>` does all of this.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import threading
from pathlib import Path

from . import FAKES, make

PORTS = {"persona": 8101, "onfido": 8102, "stripe_identity": 8103, "veriff": 8104}
KEYS = {
    "persona": lambda: "persona_sandbox_" + secrets.token_hex(12),
    "onfido": lambda: "api_sandbox." + secrets.token_hex(12),
    "stripe_identity": lambda: "sk_test_" + secrets.token_hex(12),
    "veriff": lambda: secrets.token_hex(16),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fakevendors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="http://localhost:8000", help="The broker's public URL (webhooks go there)")
    parser.add_argument("--env-file", default="var/fakevendors.env", help="Where to write the broker's environment")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    lines = []
    for name in FAKES:
        fake = make(
            name,
            api_key=KEYS[name](),
            webhook_secrets=[secrets.token_hex(16)],
            webhook_url=f"{args.broker.rstrip('/')}/webhooks/vendors/{name}",
        )
        url = fake.start(port=PORTS[name], host=args.host)
        print(f"{name:16} {url}", flush=True)
        lines += [f"{key}={value}" for key, value in fake.environment().items()]
    env_file = Path(args.env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    print(f"environment for the broker: {env_file}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


if __name__ == "__main__":
    main()
