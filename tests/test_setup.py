"""A production install that cannot issue (issue 10, item 14): without `load_demo` nothing created a signing key, and
the first person to finish a verification met an error after giving their photos. Now a system check reports the
missing key, `manage.py setup` does every first-run step (idempotently), and the browser flow refuses to start a
verification it could not finish, before any photo."""

import pytest
from django.utils import timezone

from attestations.models import SigningKey
from attestations.signing import signing_key_create
from tests import journey
from tests.test_settings import manage as _manage
from verification.models import VerificationSession


def manage(*args, env_extra):
    # The embedded default: SQLite in the given IDBROKER_VAR_DIR, whatever database the suite itself runs on.
    return _manage(*args, env_extra=env_extra, drop=("DATABASE_URL", "CELERY_BROKER_URL"))


COUNT = (
    "from attestations.models import SigningKey, StatusList; from audit.models import TreeHead; "
    "print(SigningKey.objects.filter(status='active').count(), StatusList.objects.count(), TreeHead.objects.count())"
)


def test_a_fresh_install_migrates_is_told_it_cannot_issue_and_setup_fixes_it(tmp_path):
    env = {"IDBROKER_ALLOW_DEV_VENDOR": "true", "IDBROKER_VAR_DIR": str(tmp_path)}
    fresh = manage("check", "--deploy", env_extra=env)  # no tables yet: nothing to judge
    assert fresh.returncode == 0 and "idbroker.E040" not in fresh.stderr + fresh.stdout, fresh.stderr

    migrated = manage("migrate", "--noinput", env_extra=env)
    assert migrated.returncode == 0, migrated.stderr

    refused = manage("check", "--deploy", env_extra=env)
    assert refused.returncode != 0
    assert "idbroker.E040" in refused.stderr and "No active signing key" in refused.stderr
    assert "manage.py setup" in refused.stderr

    first = manage("setup", env_extra=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "ready: idbroker can issue attestations." in first.stdout
    again = manage("setup", env_extra=env)  # every deploy may run it: nothing is created twice
    assert again.returncode == 0 and "active key exists" in again.stdout, again.stderr
    counts = manage("shell", "-c", COUNT, env_extra=env)
    assert counts.stdout.split()[-3:] == ["1", "1", "1"], counts.stderr

    fixed = manage("check", "--deploy", env_extra=env)
    assert fixed.returncode == 0 and "idbroker.E040" not in fixed.stderr + fixed.stdout


def test_without_a_key_the_commands_that_make_one_still_run_outside_debug(tmp_path):
    # The missing key was an Error among the checks every command runs first: `create_signing_key`, the remedy
    # the check's hint names, refused to run with it (as did createsuperuser and create_provider).
    env = {"IDBROKER_ALLOW_DEV_VENDOR": "true", "IDBROKER_VAR_DIR": str(tmp_path)}
    assert manage("migrate", "--noinput", env_extra=env).returncode == 0
    created = manage("create_signing_key", env_extra=env)
    assert created.returncode == 0, created.stderr
    counts = manage("shell", "-c", COUNT, env_extra=env)
    assert counts.stdout.split()[-3:][0] == "1", counts.stderr


def test_setup_on_an_empty_database_does_everything_in_one_go(tmp_path):
    env = {"IDBROKER_ALLOW_DEV_VENDOR": "true", "IDBROKER_VAR_DIR": str(tmp_path)}
    result = manage("setup", env_extra=env)
    assert result.returncode == 0, result.stderr + result.stdout
    counts = manage("shell", "-c", COUNT, env_extra=env)
    assert counts.stdout.split()[-3:] == ["1", "1", "1"], counts.stderr


def test_in_debug_a_missing_key_is_a_warning_that_does_not_stop_the_server(tmp_path):
    env = {"DEBUG": "true", "IDBROKER_VAR_DIR": str(tmp_path)}
    assert manage("migrate", "--noinput", env_extra=env).returncode == 0
    result = manage("check", "--deploy", env_extra=env)
    assert result.returncode == 0
    assert "idbroker.W040" in result.stderr + result.stdout


@pytest.mark.django_db
def test_without_a_signing_key_a_verification_is_refused_before_any_photo(acme):
    assert not SigningKey.objects.exists()
    trip = journey.start(acme, ["age_over_18"])
    assert trip.browser.get(trip.link_path).status_code == 302
    page = trip.browser.get("/verify/consent")
    assert page.status_code == 503
    text = page.content.decode()
    assert "Verification is not available right now" in text and "no photo was taken" in text
    attempt = trip.browser.post("/verify/consent", {"action": "continue"})
    assert attempt.status_code == 503
    assert trip.browser.get("/verify/document").status_code != 200  # the capture page is not reachable
    assert not VerificationSession.objects.exists()  # nothing was started at the vendor either


@pytest.mark.django_db
def test_declining_still_works_and_a_key_lets_the_verification_start(acme, signing_key):
    SigningKey.objects.all().delete()
    declined = journey.start(acme, ["age_over_18"])
    declined.browser.get(declined.link_path)
    answer = declined.browser.post("/verify/consent", {"action": "decline"})
    assert answer.status_code == 302 and answer["Location"] == "/verify/result"

    signing_key_create(now=timezone.now())
    trip = journey.start(acme, ["age_over_18"])
    trip.browser.get(trip.link_path)
    assert trip.browser.get("/verify/consent").status_code == 200
    started = trip.browser.post("/verify/consent", {"action": "continue"})
    assert started.status_code == 302 and started["Location"] == "/verify/document"
