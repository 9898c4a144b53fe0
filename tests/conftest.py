import os
import socket
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from attestations import services as attestation_services
from attestations.signing import signing_key_create
from tests.factories import GlobexFactory, PolicyFactory, ProviderFactory

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    """Services pass: PostgreSQL and Redis must answer. Skip on a laptop without them; fail in CI."""
    config.services_missing = None
    if "not services" in (config.option.markexpr or "") or "services" not in (config.option.markexpr or ""):
        return
    missing = []
    db_url, broker = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not db_url.startswith("postgres") or not _reachable(db_url, 5432):
        missing.append(f"PostgreSQL (DATABASE_URL={db_url or 'unset'})")
    if not broker.startswith("redis") or not _reachable(broker, 6379):
        missing.append(f"Redis (CELERY_BROKER_URL={broker or 'unset'})")
    if missing and IN_CI:
        raise pytest.UsageError(f"CI=true but these services are not reachable: {', '.join(missing)}")
    config.services_missing = ", ".join(missing) or None


def pytest_collection_modifyitems(config, items):
    if config.services_missing:
        skip = pytest.mark.skip(reason=f"services not reachable: {config.services_missing}")
        for item in items:
            if "services" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def signing_key(db, now):
    return signing_key_create(now=now)


@pytest.fixture
def policy(db):
    return PolicyFactory()


class ProviderHandle:
    def __init__(self, provider, api_key):
        self.provider = provider
        self.api_key = api_key
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")

    @property
    def client_id(self):
        return self.provider.client_id


@pytest.fixture
def acme(db, policy, now):
    provider = ProviderFactory(policy=policy)
    return ProviderHandle(provider, attestation_services.api_key_create(provider=provider, now=now))


@pytest.fixture
def globex(db, policy, now):
    provider = GlobexFactory(policy=policy)
    return ProviderHandle(provider, attestation_services.api_key_create(provider=provider, now=now))
