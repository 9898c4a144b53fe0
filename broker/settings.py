"""idbroker settings: one flat module, driven by the environment.

The embedded default (no environment at all, plus DEBUG=true from `make run`) is SQLite, eager Celery, keys and
evidence in ./var, and the deterministic `dev` vendor. Production sets DATABASE_URL, CELERY_BROKER_URL and the
secrets below; a missing secret outside DEBUG is an ImproperlyConfigured at start-up, never a silent default.
Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv also reads NAME_FILE (a path whose content is the value): Docker/Kubernetes secrets.
env = environ.FileAwareEnv()

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})


def env_bool(name: str, *, default: bool) -> bool:
    """A boolean variable (or NAME_FILE), parsed strictly: django-environ's env.bool reads every unknown word as
    False, so `IDBROKER_ADMIN_2FA=ture` silently turned the second factor off. An unknown value stops start-up."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (or 1/0, yes/no, on/off); got {raw[:20]!r}.")


DEBUG = env_bool("DEBUG", default=False)
VAR_DIR = Path(env.str("IDBROKER_VAR_DIR", default=str(BASE_DIR / "var")))


def _dev_secret(name: str, nbytes: int = 32) -> str:
    """A development-only secret, generated once and kept in var/ so restarts keep working."""
    path = VAR_DIR / "dev-secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(secrets.token_bytes(nbytes)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def secret(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return _dev_secret(name)
    raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when DEBUG is off.")


SECRET_KEY = secret("SECRET_KEY")
# Wraps every per-verification data key, the stored facts and the signing keys (HKDF sub-keys per purpose).
IDBROKER_MASTER_KEY = secret("IDBROKER_MASTER_KEY")
# Keys the pairwise pseudonyms and the API-key hashes; rotating it changes every `sub` and voids every API key.
IDBROKER_HASH_KEY = secret("IDBROKER_HASH_KEY")

# Passkeys need a host name (WebAuthn RP ID), not an IP address: hence localhost.
PUBLIC_URL = env.str("IDBROKER_PUBLIC_URL", default="http://localhost:8000").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "verification.views.csrf_failure"

INSTALLED_APPS = [
    "broker.apps.BrokerAdminConfig",  # django.contrib.admin with the second-factor site (broker/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files: no CDN
    "django_otp",
    "django_otp.plugins.otp_totp",
    "broker",
    "audit",
    "attestations",
    "webhooks",
    "verification",
    "accounts",
    "auditor",
]
IDBROKER_DEMO = env_bool("IDBROKER_DEMO", default=DEBUG)
# The admin asks for a TOTP token after the password (django-otp); operators enrol with `admin_totp_enroll`.
IDBROKER_ADMIN_2FA = env_bool("IDBROKER_ADMIN_2FA", default=not DEBUG)
OTP_TOTP_ISSUER = "idbroker"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a TOTP device's key
IDBROKER_BENCH = env_bool("IDBROKER_BENCH", default=False)  # mounts /bench/bare for `make bench` only
if IDBROKER_DEMO:
    INSTALLED_APPS.append("demo_provider")

MIDDLEWARE = [
    "broker.proxies.TrustedProxyMiddleware",  # first: everything after it sees the client's own address
    "django.middleware.security.SecurityMiddleware",
    "broker.csp.ContentSecurityPolicyMiddleware",  # every response: our own scripts only (broker/csp.py)
    "broker.request_guard.RequestGuardMiddleware",  # before anything reads a body: Content-Length and body size
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the admin's second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "broker.http_head.HeadAsGetMiddleware",  # innermost: views answer HEAD as GET, the body is dropped
]

ROOT_URLCONF = "broker.urls"
WSGI_APPLICATION = "broker.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'idbroker.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://idbroker")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", default=DEBUG)

# --- Security headers and cookies -----------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60  # a verification is a short journey; nothing long-lived rides on this cookie
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", default=False) else None
# How many reverse proxies stand in front of gunicorn; the client's address is taken from the header they append
# (broker/proxies.py). 0: the header is never read, so a client cannot choose its own rate-limit bucket.
IDBROKER_TRUSTED_PROXIES = env.int("IDBROKER_TRUSTED_PROXIES", default=0)
if not 0 <= IDBROKER_TRUSTED_PROXIES <= 5:
    raise ImproperlyConfigured("IDBROKER_TRUSTED_PROXIES must be between 0 and 5 (the number of proxies in front).")
IDBROKER_FORWARDED_FOR_HEADER = env.str("IDBROKER_FORWARDED_FOR_HEADER", default="X-Forwarded-For")
# Not "no-referrer": Chromium then sends `Origin: null` on form POSTs, which CSRF protection rightly refuses.
# "same-origin" still keeps the verification link (a bearer secret in the path) from leaking to other sites.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

# --- Uploads --------------------------------------------------------------------------------------------------
# Images above this size are refused before they are read (413). Small files stay in memory, larger ones spool
# to a temporary file that Django deletes at the end of the request; neither ever reaches storage unencrypted.
IDBROKER_MAX_UPLOAD_BYTES = env.int("IDBROKER_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
IDBROKER_MAX_IMAGE_PIXELS = env.int("IDBROKER_MAX_IMAGE_PIXELS", default=40_000_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "verification.uploads.SizeCappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
# The capture form is one `photo` and a few fields; every other file part is refused unread (verification/uploads.py)
# and the whole body is capped at the photo limit plus the form around it (broker/request_guard.py).
DATA_UPLOAD_MAX_NUMBER_FILES = 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# --- Retention (SPEC 3.1, 3.5) ---------------------------------------------------------------------------------
_MAX_EVIDENCE_MINUTES = 24 * 60
IDBROKER_EVIDENCE_TTL = timedelta(minutes=env.int("IDBROKER_EVIDENCE_TTL_MINUTES", default=60))
IDBROKER_ABANDONED_TTL = timedelta(minutes=env.int("IDBROKER_ABANDONED_TTL_MINUTES", default=30))
IDBROKER_FACTS_VALIDITY = timedelta(days=env.int("IDBROKER_FACTS_VALIDITY_DAYS", default=365))
for _name, _value in (("EVIDENCE", IDBROKER_EVIDENCE_TTL), ("ABANDONED", IDBROKER_ABANDONED_TTL)):
    if not timedelta(minutes=1) <= _value <= timedelta(minutes=_MAX_EVIDENCE_MINUTES):
        raise ImproperlyConfigured(
            f"IDBROKER_{_name}_TTL_MINUTES must be between 1 and {_MAX_EVIDENCE_MINUTES} (SPEC 3.1 caps it at 24 h)."
        )
IDBROKER_REQUEST_TTL = timedelta(minutes=env.int("IDBROKER_REQUEST_TTL_MINUTES", default=60))
IDBROKER_MAX_ATTEMPTS = env.int("IDBROKER_MAX_ATTEMPTS", default=3)

# --- Attestations (SPEC 4) --------------------------------------------------------------------------------------
IDBROKER_SIGNING_ALG = env.str("IDBROKER_SIGNING_ALG", default="ES256")
IDBROKER_ATTESTATION_TTL = timedelta(seconds=env.int("IDBROKER_ATTESTATION_TTL_SECONDS", default=15 * 60))
IDBROKER_ATTESTATION_MAX_TTL = timedelta(days=30)
IDBROKER_AGE_THRESHOLDS = tuple(sorted(env.list("IDBROKER_AGE_THRESHOLDS", cast=int, default=[13, 16, 18, 21, 25])))
IDBROKER_STATUS_LIST_SIZE = env.int("IDBROKER_STATUS_LIST_SIZE", default=1 << 20)  # bits; a multiple of 8
IDBROKER_STATUS_LIST_TTL_SECONDS = env.int("IDBROKER_STATUS_LIST_TTL_SECONDS", default=300)
# A person's own revocations (one share, "delete everything") reach each provider's webhook at an independent random
# time within this window, so providers cannot join their users by comparing notice times (attestations/services.py).
IDBROKER_REVOCATION_NOTICE_JITTER = timedelta(minutes=env.int("IDBROKER_REVOCATION_NOTICE_JITTER_MINUTES", default=60))
IDBROKER_VCT = env.str("IDBROKER_VCT", default="")  # empty: <public URL>/vct/attestation/v1

# --- Evidence storage and vendors (SPEC 5) ---------------------------------------------------------------------
IDBROKER_EVIDENCE_DIR = Path(env.str("IDBROKER_EVIDENCE_DIR", default=str(VAR_DIR / "evidence")))
IDBROKER_VENDOR = env.str("IDBROKER_VENDOR", default="dev")
# The dev vendor lets the user pick the outcome: anyone could get an attestation. Off unless explicitly allowed.
IDBROKER_ALLOW_DEV_VENDOR = env_bool("IDBROKER_ALLOW_DEV_VENDOR", default=DEBUG)
if IDBROKER_VENDOR == "dev" and not IDBROKER_ALLOW_DEV_VENDOR:
    raise ImproperlyConfigured(
        "IDBROKER_VENDOR is 'dev', which lets users choose their own outcome. Configure a real vendor, or set "
        "IDBROKER_ALLOW_DEV_VENDOR=true for a demo or test deployment."
    )
IDBROKER_DEV_VENDOR_DIR = Path(env.str("IDBROKER_DEV_VENDOR_DIR", default=str(VAR_DIR / "dev-vendor")))
IDBROKER_DEV_VENDOR_DELAY_SECONDS = env.float("IDBROKER_DEV_VENDOR_DELAY_SECONDS", default=2.0)
IDBROKER_DEV_VENDOR_WEBHOOK_SECRET = env.str("IDBROKER_DEV_VENDOR_WEBHOOK_SECRET", default="") or (
    _dev_secret("IDBROKER_DEV_VENDOR_WEBHOOK_SECRET") if IDBROKER_ALLOW_DEV_VENDOR else ""
)
IDBROKER_RESULT_POLL_SECONDS = env.int("IDBROKER_RESULT_POLL_SECONDS", default=3)
# Ordered vendors to fall back on while the primary's circuit breaker is open (SPEC 5).
IDBROKER_VENDOR_FALLBACKS = env.list("IDBROKER_VENDOR_FALLBACKS", default=[])
IDBROKER_VENDOR_TIMEOUT_SECONDS = env.float("IDBROKER_VENDOR_TIMEOUT_SECONDS", default=10.0)
IDBROKER_VENDOR_RETRIES = env.int("IDBROKER_VENDOR_RETRIES", default=2)  # within one call, before Celery's retries
IDBROKER_VENDOR_BACKOFF_SECONDS = env.float("IDBROKER_VENDOR_BACKOFF_SECONDS", default=0.25)  # doubles per retry
IDBROKER_VENDOR_BREAKER_FAILURES = env.int("IDBROKER_VENDOR_BREAKER_FAILURES", default=5)
IDBROKER_VENDOR_BREAKER_RESET_SECONDS = env.int("IDBROKER_VENDOR_BREAKER_RESET_SECONDS", default=60)


def _secrets_list(name: str) -> list[str]:
    """Webhook secrets: comma-separated, several while one rotates (NAME or NAME_FILE)."""
    return [v.strip() for v in env.str(name, default="").split(",") if v.strip()]


# Real vendors (vendors.md). A vendor is available once its API credential is set; URLs default to the vendor's
# production API and point at the local fakes (`python -m fakevendors`) in demos and tests.
IDBROKER_VENDORS = {
    name: config
    for name, config in {
        "dev": {"enabled": True} if IDBROKER_ALLOW_DEV_VENDOR else {},
        "persona": {
            "api_url": env.str("PERSONA_API_URL", default="https://api.withpersona.com/api/v1"),
            "api_key": env.str("PERSONA_API_KEY", default=""),
            "template_id": env.str("PERSONA_TEMPLATE_ID", default=""),
            "version": env.str("PERSONA_VERSION", default="2025-10-27"),
            # Only for a template without a review or decision step: then `completed` is the approval.
            "completed_is_final": env_bool("PERSONA_COMPLETED_IS_FINAL", default=False),
            "webhook_secrets": _secrets_list("PERSONA_WEBHOOK_SECRETS"),
        },
        "onfido": {
            "api_url": env.str("ONFIDO_API_URL", default="https://api.eu.onfido.com/v3.6"),
            "api_key": env.str("ONFIDO_API_TOKEN", default=""),
            "webhook_secrets": _secrets_list("ONFIDO_WEBHOOK_TOKENS"),
        },
        # A restricted key (rk_...) with "Access recent sensitive verification results: Read": birth date and
        # document expiry are only returned to such keys, expanded by name (verification/vendors/stripe_identity.py).
        "stripe_identity": {
            "api_url": env.str("STRIPE_API_URL", default="https://api.stripe.com/v1"),
            "api_key": env.str("STRIPE_SECRET_KEY", default=""),
            "version": env.str("STRIPE_VERSION", default="2025-10-29.clover"),
            "webhook_secrets": _secrets_list("STRIPE_WEBHOOK_SECRETS"),
        },
        "veriff": {
            "api_url": env.str("VERIFF_API_URL", default="https://stationapi.veriff.com/v1"),
            "api_key": env.str("VERIFF_API_KEY", default=""),
            # Veriff signs requests and webhooks with the integration's shared secret (several while rotating).
            "webhook_secrets": _secrets_list("VERIFF_SHARED_SECRETS"),
        },
    }.items()
    if config.get("enabled") or config.get("api_key")
}

# --- Celery ------------------------------------------------------------------------------------------------------
# No broker configured means eager tasks: the embedded default runs everything in the web process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Without a broker, `runserver` runs this schedule in-process (broker/scheduler.py); off: nothing runs it.
IDBROKER_EMBEDDED_SCHEDULER = env_bool("IDBROKER_EMBEDDED_SCHEDULER", default=True)
CELERY_BEAT_SCHEDULE = {
    "purge-expired-evidence": {"task": "verification.tasks.purge_expired", "schedule": 60.0},
    "poll-pending-results": {"task": "verification.tasks.poll_pending", "schedule": 30.0},
    "flush-check-counts": {"task": "attestations.tasks.flush_check_counts", "schedule": 60.0},
    "deliver-due-webhooks": {"task": "webhooks.tasks.deliver_due", "schedule": 15.0},
    "poll-vendor-deletions": {"task": "verification.tasks.poll_vendor_deletions", "schedule": 300.0},
    "publish-tree-head": {"task": "audit.tasks.publish_tree_head", "schedule": 60.0},
    "verify-audit-log": {"task": "audit.tasks.verify_log", "schedule": 3600.0},
}

# --- API ---------------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["attestations.authentication.ApiKeyAuthentication"],
    # Fail closed: a view that forgets to declare permissions still demands a provider.
    "DEFAULT_PERMISSION_CLASSES": ["attestations.authentication.IsProvider"],
    "DEFAULT_THROTTLE_CLASSES": ["attestations.authentication.ProviderRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "broker.api_errors.problem_details_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
IDBROKER_DEFAULT_RATE_LIMIT = env.str("IDBROKER_DEFAULT_RATE_LIMIT", default="600/min")
# Outbound webhooks reach public addresses only (webhooks/egress.py); private, loopback and link-local targets
# (this machine, its network, cloud metadata) only when allowed: development, or a receiver on this machine.
IDBROKER_WEBHOOK_ALLOW_PRIVATE = env_bool("IDBROKER_WEBHOOK_ALLOW_PRIVATE", default=DEBUG)
# Origins, beyond ours and the configured vendors' hosted pages, that forms may be submitted (and redirected) to.
IDBROKER_CSP_FORM_ACTION = env.list("IDBROKER_CSP_FORM_ACTION", default=[])
SPECTACULAR_SETTINGS = {
    "TITLE": "idbroker provider API",
    "DESCRIPTION": "Ask for a verified fact about a user; receive a minimal signed attestation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "deepLinking": True},  # no calls to the online validator
}

# --- Logging: structured, one JSON object a line, never a payload ------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "broker.logging.JsonFormatter"},
        "server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"},
    },
    "filters": {"mask_secrets": {"()": "broker.logging.MaskSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
        "server": {"class": "logging.StreamHandler", "formatter": "server", "filters": ["mask_secrets"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # runserver's access lines (`make run`) quote the request line: link secrets, phone tokens, `?code=` and
        # `state` are masked by the same function as the JSON logs (broker/logging.py). Without its own handler
        # here the logger kept Django's propagate=False and fell through to Python's last-resort handler, which
        # printed 4xx and 5xx lines raw.
        "django.server": {"level": "INFO", "handlers": ["server"], "filters": ["mask_secrets"], "propagate": False},
        "django.request": {"level": "ERROR"},
        # Pillow's debug output quotes image metadata (EXIF text, PNG chunks): evidence. Never below WARNING.
        "PIL": {"level": "WARNING"},
        # httpx logs every vendor URL at INFO; our own vendor logging says what failed, with codes only.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
