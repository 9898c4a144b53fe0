import os
import socket
import time
from pathlib import Path
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


@pytest.fixture(autouse=True)
def private_folders(request, settings, tmp_path):
    """Each test gets its own evidence, vendor and upload-spool folders, so "no file left" means this test's.

    Not for services tests: their Celery worker is another process and reads the folders from the environment.
    """
    if "services" in request.keywords:
        return None
    settings.IDBROKER_EVIDENCE_DIR = tmp_path / "evidence"
    settings.IDBROKER_DEV_VENDOR_DIR = tmp_path / "dev-vendor"
    spool = tmp_path / "upload-spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_caches():
    """Start every test with empty caches.

    The throttle counts calls in the Django cache, and the check API's hot path remembers API keys, published keys
    and revocations per process. A test's rows are rolled back and their ids reused, so a cache entry left by one
    test (provider pk 1 has made 590 calls; status list 1 has no revocations) would otherwise leak into the next.
    """
    from django.core.cache import cache

    from broker import caches

    cache.clear()
    caches.clear_all()  # every per-process cache registers itself (broker/caches.py)


@pytest.fixture(autouse=True)
def rate_limit_windows_start_with_the_test(monkeypatch):
    """Fixed-window limits count per clock window: a test that makes its 11th call just after a minute turned over
    would see a fresh budget (one run in a hundred or so). Each test's rate-limit clock starts one second into an hour,
    so every window up to an hour lasts the whole test. Real time still flows, so Retry-After stays meaningful."""
    import time

    from broker import ratelimit

    start = time.time()
    shift = (start // 3600 + 1) * 3600 + 1 - start
    monkeypatch.setattr(ratelimit, "clock", lambda: time.time() + shift)


@pytest.fixture
def task_calls():
    """Every task invocation (eager mode runs them in-process) as (name, args, kwargs)."""
    from celery.signals import task_prerun

    calls = []

    def record(sender=None, args=None, kwargs=None, **_):
        calls.append((sender.name, list(args or []), dict(kwargs or {})))

    task_prerun.connect(record, weak=False)
    yield calls
    task_prerun.disconnect(record)


@pytest.fixture
def now():
    return timezone.now()


def otp_verified(client, user):
    """Sign `user` in as a finished admin sign-in does: the session holds the user and a verified TOTP device.

    The admin requires a second factor (IDBROKER_ADMIN_2FA, on outside DEBUG), so `force_login` alone no longer
    opens it. This is what `django_otp.login` stores after a correct token.
    """
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin_client, with the second factor verified as well."""
    return otp_verified(client, admin_user)


@pytest.fixture
def public_url(live_server, settings):
    """Make the broker's public URL the live server's, so links, `iss` and the demo provider line up."""
    settings.PUBLIC_URL = live_server.url
    return live_server.url


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


# --- Services pass: a real Celery worker process against the test PostgreSQL database and Redis ------------------


@pytest.fixture(scope="session")
def session_fake_vendors():
    """The four fakes for the whole session: a Celery worker process is pointed at them through its environment."""
    import fakevendors
    from tests.verification.vendors.conftest import API_KEYS, SECRETS

    fakes = FakeVendors()
    for name in fakevendors.FAKES:
        fakes[name] = fakevendors.make(name, api_key=API_KEYS[name], webhook_secrets=SECRETS[name])
        fakes[name].start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, live_server, tmp_path_factory, request, session_fake_vendors):
    """Start `celery worker` as a separate process on the test database; yield its log path.

    The worker signs attestations, so it gets the live server's URL as its issuer (tests set PUBLIC_URL to match).
    """
    import subprocess
    import sys

    from django.db import connection

    if request.config.services_missing or connection.vendor != "postgresql" or not os.environ.get("CELERY_BROKER_URL"):
        reason = request.config.services_missing or "DATABASE_URL is not PostgreSQL"
        if IN_CI:
            pytest.fail(f"services pass needs PostgreSQL, Redis and a worker: {reason}")
        pytest.skip(reason)
    import redis

    broker_url = os.environ["CELERY_BROKER_URL"]
    redis.Redis.from_url(broker_url).flushdb()  # this pass owns its Redis database index
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env["IDBROKER_PUBLIC_URL"] = live_server.url
    for fake in session_fake_vendors.values():
        env.update(fake.environment())
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "broker",
            "worker",
            "-P",
            "solo",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            "test@%h",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from broker.celery import app

    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"celery worker exited: {log_path.read_text()[-2000:]}")
        if app.control.ping(timeout=0.5):
            break
    else:
        proc.terminate()
        pytest.fail("celery worker did not answer ping within 60 s")
    yield log_path
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "celery-worker.log").write_text(log_path.read_text())


def wait_for_worker_idle(timeout: float = 20.0) -> None:
    """Block until the Celery worker has nothing queued or running, so no task of this test writes to the database
    after the test's teardown has emptied it (the next test would find a stray audit entry)."""
    import redis

    from broker.celery import app

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    deadline = time.time() + timeout
    while time.time() < deadline:
        active = app.control.inspect(timeout=0.5).active() or {}
        if client.llen("celery") == 0 and not any(active.values()):
            return
        time.sleep(0.2)
    pytest.fail("the Celery worker did not become idle")


@pytest.fixture(autouse=True)
def worker_idle_before_teardown(request):
    """Services tests: before the database is emptied, let the Celery worker finish what the test enqueued. A task
    still inserting rows while the teardown's TRUNCATE takes its table locks deadlocked now and then."""
    if "services" not in request.keywords or not os.environ.get("CELERY_BROKER_URL"):
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so this teardown runs before its flush
    yield
    from broker.celery import app

    if app.control.ping(timeout=0.5):  # a worker runs (session-scoped, started by an earlier test)
        wait_for_worker_idle()


class FakeVendors(dict):
    """The four fake vendor servers (fakevendors/), running on loopback, with the broker configured to use them."""

    def point_webhooks_at(self, base_url: str) -> None:
        for name, fake in self.items():
            fake.webhook_url = f"{base_url}/webhooks/vendors/{name}"


@pytest.fixture
def worker_fake_vendors(session_fake_vendors, celery_worker_process, live_server, settings):
    """The session's fakes, as the worker sees them, delivering webhooks straight to the live server."""
    for fake in session_fake_vendors.values():
        fake.reset()
    session_fake_vendors.point_webhooks_at(live_server.url)
    settings.IDBROKER_VENDORS = {
        **settings.IDBROKER_VENDORS,
        **{n: f.adapter_settings() for n, f in session_fake_vendors.items()},
    }
    return session_fake_vendors


@pytest.fixture
def fake_vendors(settings):
    import fakevendors
    from tests.verification.vendors.conftest import API_KEYS, SECRETS

    fakes = FakeVendors()
    for name in fakevendors.FAKES:
        fake = fakevendors.make(name, api_key=API_KEYS[name], webhook_secrets=SECRETS[name])
        fake.start()
        fakes[name] = fake
    settings.IDBROKER_VENDORS = {**settings.IDBROKER_VENDORS, **{n: f.adapter_settings() for n, f in fakes.items()}}
    yield fakes
    for fake in fakes.values():
        fake.stop()
