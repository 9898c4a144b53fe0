"""HEAD works wherever GET does (RFC 9110 9.3.2: the same answer without the content).

Views say `@require_GET` and DRF views list their methods; each such place refused HEAD with a 405 (JWKS and the
issuer metadata among them, which caches and monitors probe with HEAD). Rather than remember `require_safe` in every
view, the view layer sees a HEAD as the GET it stands for, and the body is dropped here; `Content-Length` keeps
the GET's length, as the RFC allows.

Except where a GET does something. Opening a verification link or a phone link spends it (first opening wins),
`/verify/continue` mints the provider's single-use code, `/authorize` starts a request, the hand-off page makes a
phone link, and the return page records the return. (`/verify/status` only asks the vendor for a due result, as the
waiting page's poll does: it stays HEAD-able.) Link previews, mail scanners and prefetchers probe
links with HEAD; answered as a GET, a HEAD would burn the person's one-time link before they click it. Those views
keep refusing HEAD (405, as before), and nothing is run for it.
"""

from __future__ import annotations

from django.http import HttpResponseNotAllowed

# URL names whose GET changes state. A new GET view with an effect belongs here (tests/test_head.py plays each).
GET_WITH_EFFECTS = frozenset(
    {
        "authorize",
        "verify-link",
        "verify-phone",
        "verify-continue",
        "verify-handoff",
        "verify-return",
    }
)


class HeadAsGetMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "HEAD":
            return self.get_response(request)
        request.method = "GET"
        request.head_as_get = True
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

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = getattr(request, "resolver_match", None)
        if getattr(request, "head_as_get", False) and match is not None and match.view_name in GET_WITH_EFFECTS:
            return HttpResponseNotAllowed(["GET"])
        return None
