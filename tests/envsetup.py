"""Test environment, set before Django reads its settings (loaded with `-p tests.envsetup`).

Tests run with DEBUG off, as production does, with explicit test secrets. Each run gets its own var/ folder.
"""

import base64
import os
import tempfile

_VAR = tempfile.mkdtemp(prefix="idbroker-test-")

DEFAULTS = {
    "DEBUG": "false",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdef",
    "IDBROKER_MASTER_KEY": base64.b64encode(b"m" * 32).decode(),
    "IDBROKER_HASH_KEY": base64.b64encode(b"h" * 32).decode(),
    "IDBROKER_VAR_DIR": _VAR,
    "IDBROKER_DEMO": "true",
    "IDBROKER_ALLOW_DEV_VENDOR": "true",
    "IDBROKER_DEV_VENDOR_DELAY_SECONDS": "0",
    "IDBROKER_DEV_VENDOR_WEBHOOK_SECRET": "whsec_test_one,whsec_test_two",
    "IDBROKER_PUBLIC_URL": "http://testserver",
    "ALLOWED_HOSTS": "*",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "WHITENOISE_USE_FINDERS": "true",
    "IDBROKER_VENDOR_BACKOFF_SECONDS": "0.01",  # retries against the fake vendors stay fast
    "DJANGO_ALLOW_ASYNC_UNSAFE": "true",  # Playwright's sync API runs an event loop in the test thread
}
for key, value in DEFAULTS.items():
    os.environ.setdefault(key, value)
