"""One JSON object per log line.

Only the message and a small allow-list of structured fields are emitted: a stray `extra=` holding a payload cannot
reach the log by accident. Exception text is reduced to its type, because messages of third-party exceptions may
quote input (file names, header values).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

ALLOWED_FIELDS = ("event", "session", "request", "provider", "vendor", "status", "code", "count", "task", "kid")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in ALLOWED_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out)
