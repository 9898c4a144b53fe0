"""The admin: a second factor outside DEBUG, audited sign-ins, and audit rows nobody can edit through it."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent, TreeHead
from audit.services import audit_record
from tests.conftest import otp_verified

PASSWORD = "correct horse battery staple"
LOGIN = "/admin/login/?next=/admin/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def second_factor_on(settings):
    settings.IDBROKER_ADMIN_2FA = True


@pytest.fixture
def operator():
    return get_user_model().objects.create_superuser("night-operator", password=PASSWORD)


@pytest.fixture
def device(operator):
    call_command("admin_totp_enroll", user=operator.username, stdout=StringIO())
    return TOTPDevice.objects.get(user=operator)


def token_for(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def wrong_token_for(device) -> str:
    return f"{(int(token_for(device)) + 1) % 10**device.digits:0{device.digits}d}"


def sign_in(client, token=None, password=PASSWORD, username="night-operator"):
    data = {"username": username, "password": password}
    if token is not None:
        data["otp_token"] = token
    return client.post(LOGIN, data)


def signins():
    """Admin sign-ins as auditors read them (AdminSignIn rows, issue 10: never entries of the public log)."""
    from audit.models import AdminSignIn

    rows = AdminSignIn.objects.order_by("pk")
    return [{**({"user": str(r.user_id)} if r.user_id else {}), "outcome": r.outcome} for r in rows]


def test_tests_run_with_the_second_factor_on_as_production_does():
    from broker import settings as loaded  # the settings module as read from this run's environment

    assert loaded.DEBUG is False and loaded.IDBROKER_ADMIN_2FA is True


def test_the_admin_login_page_asks_for_the_token(client):
    page = client.get(LOGIN)
    assert page.status_code == 200
    assert 'name="otp_token"' in page.content.decode()


def test_the_right_password_without_a_token_does_not_open_the_admin(client, device):
    response = sign_in(client)
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/").url.startswith("/admin/login/")


def test_a_staff_user_without_a_device_cannot_get_in_even_signed_in_by_password(client, operator):
    assert sign_in(client, token="123456").status_code == 200
    client.force_login(operator)  # a session from the password alone
    response = client.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_a_valid_totp_token_opens_the_admin(client, device):
    response = sign_in(client, token=token_for(device))
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200


def test_a_wrong_token_is_refused(client, device):
    response = sign_in(client, token=wrong_token_for(device))
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_with_the_second_factor_off_the_password_alone_opens_the_admin(client, operator, settings):
    settings.IDBROKER_ADMIN_2FA = False
    response = sign_in(client)
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_sign_ins_are_audited_with_an_outcome_and_the_user_id_only_on_success(client, device, operator):
    sign_in(client, password="not the password")
    sign_in(client, username="nobody-by-that-name")
    sign_in(client)
    wrong = wrong_token_for(device)
    sign_in(client, token=wrong)
    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None  # let the right token through
    device.save()
    right = token_for(device)
    sign_in(client, token=right)

    # A failure must not say which usernames exist.
    assert signins() == [
        {"outcome": "failed"},
        {"outcome": "failed"},
        {"outcome": "no_second_factor"},
        {"outcome": "failed"},
        {"user": str(operator.pk), "outcome": "ok"},
    ]
    text = str(signins())
    for secret in ("night-operator", "nobody-by-that-name", PASSWORD, "not the password", wrong, right):
        assert secret not in text


def test_a_password_only_sign_in_without_any_device_is_audited_as_no_second_factor(client, operator):
    sign_in(client, token="123456")
    assert signins() == [{"outcome": "no_second_factor"}]


def test_the_enroll_command_prints_an_otpauth_uri_and_keeps_exactly_one_confirmed_device(operator):
    first, second = StringIO(), StringIO()
    call_command("admin_totp_enroll", user=operator.username, stdout=first)
    old_key = TOTPDevice.objects.get(user=operator).key
    call_command("admin_totp_enroll", user=operator.username, stdout=second)

    devices = TOTPDevice.objects.filter(user=operator)
    assert devices.count() == 1 and devices.get().confirmed
    assert devices.get().key != old_key  # re-running replaces the device
    assert "otpauth://totp/" in second.getvalue() and "scan" in second.getvalue().lower()
    assert devices.get().config_url in second.getvalue()


def test_the_enroll_command_refuses_an_unknown_user():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("admin_totp_enroll", user="nobody", stdout=StringIO())


@pytest.mark.parametrize("model", [AuditEvent, TreeHead])
def test_audit_rows_cannot_be_added_changed_or_deleted_through_the_admin(client, operator, model):
    now = timezone.now()
    if model is AuditEvent:
        row = audit_record(event="policy.changed", now=now, policy="pol_1")
    else:
        row = TreeHead.objects.create(tree_size=1, root_hash="a" * 64, at=now, token="header.payload.sig")
    before = model.objects.values().get(pk=row.pk)
    otp_verified(client, operator)
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"

    assert client.get(reverse(f"{name}_changelist")).status_code == 200
    change = client.post(reverse(f"{name}_change", args=[row.pk]), {"refs": "{}", "root_hash": "b" * 64})
    assert change.status_code == 403
    assert client.post(reverse(f"{name}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse(f"{name}_add"), {}).status_code == 403
    changelist = reverse(f"{name}_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert model.objects.values().get(pk=row.pk) == before


def test_admin_sign_in_attempts_are_paced_per_client(client, operator, monkeypatch):
    monkeypatch.setattr("broker.admin_site.ADMIN_LOGIN_LIMIT", 2)  # a small limit: three attempts within a second
    codes = [sign_in(client, password="not the password").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert len(signins()) == 2  # the refused attempt did not reach the (public, permanent) log
