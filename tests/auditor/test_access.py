"""Who may see the auditor dashboard, and what an auditor can reach in the admin."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from auditor.services import GROUP
from tests.conftest import otp_verified

pytestmark = pytest.mark.django_db

PAGES = ["/auditor/", "/auditor/export.json", "/auditor/export.csv"]


@pytest.mark.parametrize("url", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_admin_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/auditor/")


@pytest.mark.parametrize("url", PAGES)
def test_staff_without_the_auditor_permission_get_403(client, url):
    clerk = User.objects.create_user("clerk", password="a long clerk password", is_staff=True)
    assert otp_verified(client, clerk).get(url).status_code == 403


def test_a_signed_in_non_staff_user_with_the_permission_gets_403(client, auditor_user):
    auditor_user.is_staff = False
    auditor_user.save()
    assert otp_verified(client, auditor_user).get("/auditor/").status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_an_auditor_gets_the_dashboard_and_exports(auditor_client, url):
    response = auditor_client.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]


def test_an_auditor_without_the_second_factor_is_sent_back_to_the_login(client, auditor_user, settings):
    settings.IDBROKER_ADMIN_2FA = True
    client.force_login(auditor_user)
    response = client.get("/auditor/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    "url",
    [
        "/admin/attestations/provider/",
        "/admin/attestations/provider/{pk}/change/",
        "/admin/attestations/apikey/",
        "/admin/attestations/signingkey/",
        "/admin/verification/verificationsession/",
        "/admin/auth/user/",
    ],
)
def test_an_auditor_cannot_open_provider_key_or_session_admin_pages(auditor_client, acme, url):
    response = auditor_client.get(url.format(pk=acme.provider.pk))
    assert response.status_code == 403


def test_an_auditor_can_read_the_audit_log_in_the_admin_but_not_edit_it(auditor_client, scenario):
    assert auditor_client.get("/admin/audit/auditevent/").status_code == 200
    assert auditor_client.get("/admin/audit/treehead/").status_code == 200
    assert auditor_client.get("/admin/audit/adminsignin/").status_code == 200
    assert auditor_client.get("/admin/audit/auditevent/add/").status_code == 403


def test_the_admin_index_shows_an_auditor_no_provider_or_key_pages(auditor_client, acme):
    html = auditor_client.get("/admin/").content.decode()
    assert "/admin/attestations/" not in html
    assert acme.provider.api_keys.get().secret_hash not in html


def test_create_auditor_makes_a_staff_user_in_a_group_with_only_read_permissions(db, capsys):
    call_command("create_auditor", user="ines")
    call_command("create_auditor", user="ines")  # idempotent
    user = User.objects.get(username="ines")
    assert user.is_staff and not user.is_superuser
    assert not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == [GROUP]
    perms = sorted(f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=GROUP).permissions.all())
    assert perms == [
        "audit.view_adminsignin",
        "audit.view_auditevent",
        "audit.view_treehead",
        "auditor.view_dashboard",
    ]
    assert "changepassword ines" in capsys.readouterr().out


def test_create_auditor_strips_permissions_added_to_the_group_by_hand(db):
    from django.contrib.auth.models import Permission

    call_command("create_auditor", user="ines")
    group = Group.objects.get(name=GROUP)
    group.permissions.add(Permission.objects.get(codename="change_provider"))
    call_command("create_auditor", user="ines")
    assert not group.permissions.filter(codename="change_provider").exists()


def test_an_auditor_can_run_the_integrity_check_now(auditor_client, scenario):
    from audit.models import IntegrityCheck

    assert auditor_client.get("/auditor/verify").status_code == 405
    response = auditor_client.post("/auditor/verify")
    assert response.status_code == 302 and response["Location"] == "/auditor/"
    assert IntegrityCheck.objects.count() == 1
