"""The development server's access log (`make run`, i.e. `manage.py runserver`) masks secrets (issue 10, item 12).

runserver logs every request line to the `django.server` logger: a provider's link (`/verify/<secret>`), a phone
link (`/verify/phone/<token>`), an OAuth `code` and `state`. Those lines are masked by the same function as the JSON
logs (broker/logging.py). Before, the logger had no handler of ours and 4xx/5xx lines reached Python's last-resort
handler raw.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.servers.basehttp import WSGIRequestHandler

from broker.logging import mask_secrets

ROOT = Path(__file__).resolve().parent.parent


def _secrets() -> dict[str, str]:
    return {
        "link": secrets.token_urlsafe(32),
        "phone": secrets.token_urlsafe(32),
        "code": "code-" + secrets.token_hex(8),
        "state": "state-" + secrets.token_hex(8),
    }


def _request_lines(s: dict[str, str]) -> list[str]:
    return [
        f"GET /verify/{s['link']} HTTP/1.1",
        f"GET /verify/phone/{s['phone']} HTTP/1.1",
        f"GET /authorize?client_id=acme&code={s['code']}&state={s['state']} HTTP/1.1",
        f"GET /demo/return?code={s['code']}&state={s['state']} HTTP/1.1",
    ]


def test_runserver_access_lines_are_masked_by_the_configured_logger():
    """The way django.core.servers.basehttp logs: WSGIRequestHandler.log_message on a 404 (and a 410, a 400, a
    500), formatted by the handler settings.LOGGING gives the `django.server` logger."""
    logger = logging.getLogger("django.server")
    assert logger.handlers and not logger.propagate  # its own handler: never Python's last-resort one
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            captured.append(logger.handlers[0].format(record))  # as the configured handler writes it

    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)  # no socket needed to log
    handler.request, handler.client_address = None, ("127.0.0.1", 50000)
    values = _secrets()
    capture = Capture()
    logger.addHandler(capture)
    try:
        for line, status in zip(_request_lines(values), ("404", "410", "400", "500"), strict=True):
            handler.log_message('"%s" %s %s', line, status, "179")
        # A malformed request line is quoted by the server's own error message (BaseHTTPRequestHandler.send_error).
        handler.log_message("code %d, message %s", 400, f"Bad request syntax ('GET /verify/{values['link']} x y')")
    finally:
        logger.removeHandler(capture)
    text = "\n".join(captured)
    assert len(captured) == 5 and "/verify/[link]" in text and "code=[masked]&state=[masked]" in text
    for name, value in values.items():
        assert value not in text, name


def test_the_json_logs_and_the_access_log_share_one_masking_function():
    from broker import logging as broker_logging

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "Not Found: %s", ("/verify/phone/abc?code=1",), None)
    assert '"msg": "Not Found: /verify/[link]?code=[masked]"' in broker_logging.JsonFormatter().format(record)
    assert mask_secrets("/verify/document?x=1") == "/verify/document?x=[masked]"  # step pages keep their names
    assert mask_secrets("/verify/on-phone/selfie") == "/verify/on-phone/selfie"


def test_masking_a_hostile_request_line_takes_linear_time():
    # runserver logs request lines up to 64 KiB; a line of `?` made the query-value regex backtrack quadratically
    # (about 10 s for this one, 25 s at the limit), on every logged request.
    line = "GET /?" + "?" * 40000 + "&a?b=secret HTTP/1.1"
    started = time.perf_counter()
    masked = mask_secrets(line)
    assert time.perf_counter() - started < 1.0
    assert "secret" not in masked and masked.endswith("b=[masked] HTTP/1.1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, request_line: str) -> None:
    method, target, _ = request_line.split(" ")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        while conn.recv(65536):
            pass


@pytest.mark.timeout(90)
def test_make_run_prints_no_secret_on_its_error_lines(tmp_path):
    """The real `manage.py runserver` in a subprocess, on its own database and port: bad links, a bad phone link and
    OAuth parameters, then its stderr is read. Bounded: the server is stopped by the test, whatever happens."""
    env = {**os.environ, "IDBROKER_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)  # the embedded default: SQLite in tmp_path
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen(
            [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, stderr_path.read_text()
                    time.sleep(0.2)
            values = _secrets()
            for line in _request_lines(values):
                _get(port, line)
        finally:
            server.terminate()
            server.wait(timeout=10)
    text = stderr_path.read_text(errors="replace")
    access = [line for line in text.splitlines() if '"GET /' in line]
    assert len(access) == 4, text[-3000:]
    assert any('"GET /verify/[link] HTTP/1.1" 404' in line for line in access), access  # a bad link: 404
    assert any("code=[masked]&state=[masked]" in line for line in access), access
    for name, value in values.items():
        assert value not in text, name
