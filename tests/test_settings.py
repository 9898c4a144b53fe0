"""Start-up configuration (STYLE 3): secrets required outside DEBUG, retention caps enforced, deploy check clean."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": base64.b64encode(bytes(range(64))).decode(),
    "IDBROKER_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
    "IDBROKER_HASH_KEY": base64.b64encode(b"x" * 32).decode(),
    "ALLOWED_HOSTS": "broker.example",
    "IDBROKER_PUBLIC_URL": "https://broker.example",
}


def manage(*args, env_extra=None, drop=()):
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION and not k.startswith(("IDBROKER_", "SECURE_"))}
    drop_too = ("ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE", "WHITENOISE_USE_FINDERS")
    base = {k: v for k, v in base.items() if not k.endswith("_COOKIE_SECURE") and k not in drop_too}
    env = {**base, **PRODUCTION, "IDBROKER_VAR_DIR": os.environ["IDBROKER_VAR_DIR"], **(env_extra or {})}
    for key in drop:
        env.pop(key, None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_defaults_pass_the_deploy_check_but_for_the_dev_vendor_warning():
    result = manage("check", "--deploy", "--fail-level", "ERROR", env_extra={"IDBROKER_ALLOW_DEV_VENDOR": "true"})
    assert result.returncode == 0, result.stderr + result.stdout
    output = result.stderr + result.stdout
    assert "idbroker.W001" in output
    assert "security." not in output  # HSTS, secure cookies, SSL redirect, SECRET_KEY are all production-grade


def test_the_dev_vendor_refuses_to_start_unless_allowed():
    result = manage("check")
    assert result.returncode != 0
    assert "lets users choose their own outcome" in result.stderr


def test_a_missing_secret_stops_start_up_outside_debug():
    result = manage("check", env_extra={"IDBROKER_ALLOW_DEV_VENDOR": "true"}, drop=("IDBROKER_MASTER_KEY",))
    assert result.returncode != 0
    assert "IDBROKER_MASTER_KEY (or IDBROKER_MASTER_KEY_FILE) must be set" in result.stderr
    assert result.stderr.startswith("Configuration error:")  # not Django's unrelated "Models aren't loaded yet"
    assert "Traceback" not in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret_file = tmp_path / "master"
    secret_file.write_text(base64.b64encode(b"f" * 32).decode())
    result = manage(
        "check",
        env_extra={"IDBROKER_MASTER_KEY_FILE": str(secret_file), "IDBROKER_ALLOW_DEV_VENDOR": "true"},
        drop=("IDBROKER_MASTER_KEY",),
    )
    assert result.returncode == 0, result.stderr


def test_evidence_retention_cannot_be_extended_past_24_hours():
    result = manage(
        "check", env_extra={"IDBROKER_EVIDENCE_TTL_MINUTES": str(24 * 60 + 1), "IDBROKER_ALLOW_DEV_VENDOR": "1"}
    )
    assert result.returncode != 0
    assert "IDBROKER_EVIDENCE_TTL_MINUTES must be between 1 and 1440" in result.stderr


def test_a_real_vendor_is_configured_from_the_environment_with_file_secrets(tmp_path):
    key_file = tmp_path / "stripe-key"
    key_file.write_text("rk_live_from_a_mounted_secret")
    hooks_file = tmp_path / "stripe-hooks"
    hooks_file.write_text("whsec_old,whsec_new")
    env = {
        "IDBROKER_VENDOR": "stripe_identity",
        "STRIPE_SECRET_KEY_FILE": str(key_file),
        "STRIPE_WEBHOOK_SECRETS_FILE": str(hooks_file),
    }
    code = (
        "from django.conf import settings; c = settings.IDBROKER_VENDORS['stripe_identity']; "
        "print(c['api_key'], c['webhook_secrets'], sorted(settings.IDBROKER_VENDORS))"
    )
    result = manage("shell", "-c", code, env_extra=env)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1]
        == "rk_live_from_a_mounted_secret ['whsec_old', 'whsec_new'] ['stripe_identity']"
    )
    assert manage("check", env_extra=env).returncode == 0


def test_a_default_vendor_without_credentials_is_a_configuration_error():
    result = manage("check", env_extra={"IDBROKER_VENDOR": "onfido"})
    assert result.returncode != 0
    assert "idbroker.E011" in result.stderr + result.stdout


def test_a_vendor_without_webhook_secrets_is_flagged():
    result = manage("check", env_extra={"IDBROKER_VENDOR": "veriff", "VERIFF_API_KEY": "k"})
    assert "idbroker.W010" in result.stderr + result.stdout


def test_retention_checks_flag_a_configuration_that_breaks_the_promise(settings):
    from datetime import timedelta

    from broker.checks import retention_problems

    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert retention_problems() == []
    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "purge-expired-evidence": {"task": "verification.tasks.purge_expired", "schedule": 3600.0},
    }
    settings.IDBROKER_FACTS_VALIDITY = timedelta(days=800)
    codes = [code for code, *_ in retention_problems()]
    assert codes == ["idbroker.E021", "idbroker.W020"]
    del settings.CELERY_BEAT_SCHEDULE["publish-tree-head"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert [code for code, *_ in retention_problems()][-2:] == ["idbroker.W021", "idbroker.W022"]


def test_facts_kept_too_long_are_a_warning_at_start_up():
    result = manage("check", env_extra={"IDBROKER_ALLOW_DEV_VENDOR": "true", "IDBROKER_FACTS_VALIDITY_DAYS": "800"})
    assert "idbroker.W020" in result.stderr + result.stdout


# --- Booleans are parsed strictly (issue 10, item 13d) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("IDBROKER_ADMIN_2FA", "ture"), ("SESSION_COOKIE_SECURE", "flase"), ("DEBUG", "yes please")],
)
def test_a_typo_in_a_boolean_stops_start_up_naming_the_variable(name, value):
    result = manage("check", env_extra={"IDBROKER_ALLOW_DEV_VENDOR": "true", name: value})
    assert result.returncode != 0
    assert result.stderr.startswith("Configuration error:")
    assert f"{name} must be true or false" in result.stderr and repr(value) in result.stderr
    assert "Traceback" not in result.stderr


def test_the_usual_spellings_of_a_boolean_are_accepted():
    show = "from django.conf import settings as s; print(s.IDBROKER_ADMIN_2FA, s.IDBROKER_WEBHOOK_ALLOW_PRIVATE)"
    for value, expected in (("TRUE", "True"), ("yes", "True"), ("1", "True"), ("off", "False"), ("0", "False")):
        result = manage(
            "shell",
            "-c",
            show,
            env_extra={
                "IDBROKER_ALLOW_DEV_VENDOR": "on",
                "IDBROKER_ADMIN_2FA": value,
                "IDBROKER_WEBHOOK_ALLOW_PRIVATE": value,
            },
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-2:] == [expected, expected], value
    # Unset or empty: the default (on outside DEBUG for the second factor, off for private webhook targets).
    result = manage("shell", "-c", show, env_extra={"IDBROKER_ALLOW_DEV_VENDOR": "1", "IDBROKER_ADMIN_2FA": ""})
    assert result.stdout.split()[-2:] == ["True", "False"], result.stderr


def test_every_boolean_setting_goes_through_the_strict_parser():
    source = (ROOT / "broker" / "settings.py").read_text()
    assert "env.bool(" not in source  # django-environ's reads any unknown word as False
    assert source.count("env_bool(") >= 12
