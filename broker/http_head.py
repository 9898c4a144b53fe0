"""HEAD works wherever GET does (RFC 9110 9.3.2: the same answer without the content).

Views say `@require_GET` and DRF views list their methods; each such place refused HEAD with a 405 (JWKS and the
issuer metadata among them, which caches and monitors probe with HEAD). Rather than remember `require_safe` in every
view, the view layer sees a HEAD as the GET it stands for, and the body is dropped here; `Content-Length` keeps
the GET's length, as the RFC allows.
"""

from __future__ import annotations


class HeadAsGetMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "HEAD":
            return self.get_response(request)
        request.method = "GET"
        try:
            response = self.get_response(request)
        finally:
            request.method = "HEAD"
        if response.streaming:
            response.streaming_content = []  # a file being streamed is still closed with the response
        else:
            length = len(response.content)
            response.content = b""
            response["Content-Length"] = str(length)
        return response
