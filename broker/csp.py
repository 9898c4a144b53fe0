"""Content-Security-Policy on every response (issue 10, item 13): a page may run only our own script files.

Django 5.2 has no CSP of its own; this is the whole mechanism (a header, one policy, one per-view override), so no
django-csp. Decisions:

- `script-src 'self'`: no inline script, no event-handler attributes, no eval. Templates pass data to scripts in
  `data-` attributes (tests/test_csp.py scans templates and rendered pages for anything inline).
- `style-src 'self'`: no inline `<style>` or `style=""` either (a CSS injection can exfiltrate a page's text).
  The hand-off QR code is inline SVG whose colours are presentation attributes, which CSP does not govern.
- `img-src 'self' data: blob:` and `media-src 'self' blob: mediastream:`: the capture page previews the photo from a
  blob and shows the camera's stream (getUserMedia).
- `form-action`: our own origin, plus the vendor-hosted capture pages (Persona, Stripe Identity) the consent and
  hosted pages' forms are redirected to. Chromium applies form-action to the redirects after a form submission, so
  a 302 from our POST to the vendor's page must be allowed here. Extra origins: IDBROKER_CSP_FORM_ACTION.
- `frame-ancestors 'none'`, `base-uri 'none'`, `object-src 'none'`: no framing (as X-Frame-Options: DENY), no
  `<base>` re-pointing relative URLs, no plugins.
- Swagger UI (/api/docs/) needs inline styles (it renders with React style attributes) and runs its start-up script
  from our origin (drf-spectacular's split view), so it alone gets `style-src 'self' 'unsafe-inline'`.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from django.conf import settings

HEADER = "Content-Security-Policy"

# Where vendor-hosted capture sends the user: the hosted page's origin(s) beside the vendor's API origin (which is
# also where the local fakes and sandboxes serve their hosted pages).
VENDOR_HOSTED_ORIGINS = {
    "persona": ("https://withpersona.com", "https://inquiry.withpersona.com"),
    "stripe_identity": ("https://verify.stripe.com",),
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def form_action_sources() -> list[str]:
    sources = ["'self'"]
    extra = [_origin(settings.PUBLIC_URL)]  # the demo provider posts to /authorize on the public URL
    for name, origins in VENDOR_HOSTED_ORIGINS.items():
        config = settings.IDBROKER_VENDORS.get(name)
        if config:
            extra += [*origins, _origin(config.get("api_url", ""))]
    extra += [_origin(u) for u in getattr(settings, "IDBROKER_CSP_FORM_ACTION", [])]
    for origin in extra:
        if origin and origin not in sources:
            sources.append(origin)
    return sources


def directives() -> dict[str, list[str]]:
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:", "mediastream:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": form_action_sources(),
    }


def render(values: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in values.items())


@functools.cache
def _default_policy(_key) -> str:
    return render(directives())


def default_policy() -> str:
    # Cached per configuration (tests change settings; production never does).
    key = (
        settings.PUBLIC_URL,
        tuple((name, str(config.get("api_url", ""))) for name, config in sorted(settings.IDBROKER_VENDORS.items())),
        tuple(getattr(settings, "IDBROKER_CSP_FORM_ACTION", [])),
    )
    return _default_policy(key)


def csp_override(**changes: list[str]):
    """A view decorator: this view's policy is the default with these directives replaced (`style_src=[...]`)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            values = directives()
            values.update({name.replace("_", "-"): sources for name, sources in changes.items()})
            response[HEADER] = render(values)
            return response

        return wrapped

    return decorate


class ContentSecurityPolicyMiddleware:
    """Sets the default policy on every response that has none (JSON too: harmless, and no page is forgotten)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = default_policy()
        return response
