"""One JSON object per log line.

Only the message and a small allow-list of structured fields are emitted: a stray `extra=` holding a payload cannot
reach the log by accident. Exception text is reduced to its type, because messages of third-party exceptions may
quote input (file names, header values).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

ALLOWED_FIELDS = ("event", "session", "vr", "provider", "vendor", "status_code", "code", "count", "task", "kid")
# Verification links carry a one-time bearer secret in the path; log lines that quote a path get it masked.
LINK_SECRET = re.compile(r"/verify/(?:phone/)?(?!consent|document|selfie|waiting|status|result)[A-Za-z0-9_-]{16,}")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": LINK_SECRET.sub("/verify/[link]", record.getMessage()),
        }
        for name in ALLOWED_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out)
