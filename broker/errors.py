"""Errors are data: domain exceptions carry a stable `code` and an HTTP status (STYLE 7).

Kept free of DRF imports so services can raise them without loading the API stack; `broker.api_errors` renders
them as problem details.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base for domain errors. `code` is stable and documented; `status` is the HTTP status for the API."""

    code = "error"
    status = 400
    title = "Request failed"

    def __init__(self, detail: str | None = None, *, code: str | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code


class NotFound(BrokerError):
    code = "not_found"
    status = 404
    title = "Not found"
