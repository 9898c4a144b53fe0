"""Logs: one JSON object per line, and the development server's access lines, both with secrets masked.

Only the message and a small allow-list of structured fields are emitted: a stray `extra=` holding a payload cannot
reach the log by accident. Exception text is reduced to its type, because messages of third-party exceptions may
quote input (file names, header values).

`mask_secrets` is the one place that knows what in a logged path or query is a bearer secret. The JSON formatter
applies it to every message; `MaskSecrets` applies it to the `django.server` logger, whose lines (`manage.py
runserver`, i.e. `make run`) quote the whole request line, query string included.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

ALLOWED_FIELDS = ("event", "session", "vr", "provider", "vendor", "status_code", "code", "count", "task", "kid")
# The journey's own pages under /verify/ (broker/urls.py); any other segment there is a one-time link secret (the
# provider's `/verify/<secret>`, the phone's `/verify/phone/<token>`), however long and in whatever alphabet.
VERIFY_STEPS = "consent|document|selfie|waiting|status|result|hosted|return|receipt|continue|handoff|on-phone"
LINK_SECRET = re.compile(rf"/verify/(?:phone/)?(?!(?:{VERIFY_STEPS})(?:[/?#\s\"']|$))[^/?#\s\"']+")
# Every query value: `code`, `state`, `nonce`, `code_verifier`, `redirect_uri` (which may carry the provider's own
# state) and whatever a client adds. The names stay, so a log still says what kind of request it was. A name stops
# at the next `?` too: otherwise a line of 60,000 `?` (runserver reads request lines that long) took the regex
# quadratic time, half a minute of CPU per logged request.
QUERY_VALUE = re.compile(r"([?&][^=&?#\s\"']*=)[^&#\s\"']+")


def mask_secrets(text: str) -> str:
    """`text` with link secrets and phone tokens in /verify/ paths, and all query values, replaced."""
    return QUERY_VALUE.sub(r"\1[masked]", LINK_SECRET.sub("/verify/[link]", text))


class MaskSecrets(logging.Filter):
    """Rewrites a record's message to its masked form before any handler formats it (logger or handler filter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_secrets(record.getMessage()),
        }
        for name in ALLOWED_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out)
