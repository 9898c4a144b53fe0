"""A request's framing is checked before anything reads its body (issue 10, items 9 and 10).

1. `Content-Length` must be absent or plain decimal digits. WSGI servers pass the header through as written
   (runserver does; gunicorn refuses some forms itself), and Django reads a malformed one as 0, but any code that
   calls `int()` on it would raise: a 500 an outsider can trigger at will. Here it is a 400 for every URL at once.
2. A body larger than one photo at the upload limit plus its form (`max_request_bytes`) is refused with a 413 before
   the first byte is read. Without it, Django's multipart parser spools every file part of any POST (the CSRF check
   alone reads `request.POST`) to temporary files: about 1 GB of disk per request. The upload handler
   (verification/uploads.py) then keeps what remains to the one `photo` field.

Placed early in MIDDLEWARE: before the session, CSRF and authentication middleware, which may read the body.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import BadRequest
from django.shortcuts import render

CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")  # a petabyte, minus one byte: a larger number is not a real body
# Room for the capture form around the photo: the CSRF token, a scenario field, part headers and boundaries.
FORM_OVERHEAD_BYTES = 64 * 1024


def max_request_bytes() -> int:
    return settings.IDBROKER_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def too_large_sentence() -> str:
    """What a person is told about a photo over the limit (the capture page says the same)."""
    limit = settings.IDBROKER_MAX_UPLOAD_BYTES // (1024 * 1024)
    return f"This file is larger than {limit} MB. Please choose a smaller photo."


def declared_length(request) -> int:
    """The request's Content-Length as an int (0 when absent); BadRequest (a 400 page) when it is not digits."""
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw:
        return 0
    if not isinstance(raw, str) or not CONTENT_LENGTH.fullmatch(raw.strip()):
        raise BadRequest("malformed Content-Length")  # the handler400 page; the value itself is not logged
    return int(raw)


class RequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if declared_length(request) > max_request_bytes():
            return render(
                request,
                "verification/error.html",
                {"title": "This file is too large", "message": too_large_sentence()},
                status=413,
            )
        return self.get_response(request)
