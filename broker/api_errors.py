"""Every API error is an RFC 9457 problem-details document with a stable `code`."""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .errors import BrokerError

_DRF_CODES = {
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "malformed_json",
    exceptions.ValidationError: "invalid_request",
}


def problem(status_code: int, code: str, title: str, detail=None, **extra) -> Response:
    body = {"type": f"https://idbroker.dev/problems/{code}", "title": title, "status": status_code, "code": code}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return Response(body, status=status_code, content_type="application/problem+json")


def problem_details_handler(exc, context):
    if isinstance(exc, BrokerError):
        # OAuth endpoints add RFC 6749 §5.2 members so standard client libraries understand the error too.
        extra = {"error": exc.oauth_error, "error_description": exc.detail} if getattr(exc, "oauth_error", None) else {}
        return problem(exc.status, exc.code, exc.title, exc.detail, **extra)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django's 500 handling (and its logging) take it
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        return problem(response.status_code, code, "The request is not valid", "See `errors`.", errors=exc.detail)
    headers = {k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    out = problem(response.status_code, code, str(exc.detail), None)
    for key, value in headers.items():
        out[key] = value
    return out
