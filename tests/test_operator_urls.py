"""URLs an operator enters are checked the same way in the admin and on the command line (issue 10, item 13b):
the admin used to store any JSON as redirect URIs (`javascript:` included) and any URLField value as the webhook
URL (plain http to another machine, credentials in the URL)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from attestations.models import Provider

pytestmark = pytest.mark.django_db

BAD = [
    ("javascript:alert(document.cookie)", "must be https"),
    ("http://acme.example/return", "must be https (http only for localhost)"),
    ("https://acme.example/return#frag", "must not have a fragment"),
    ("https://user:pw@acme.example/return", "must not contain a user name or password"),
    ("https://acme.example/re turn", "must not contain spaces"),
    # A browser reads "\\" as "/": this host is evil.example there, "evil.example\\.acme.example" here.
    ("https://evil.example\\.acme.example/return", "must not contain backslashes"),
    ("https:///return", "must be https"),
    # Labels the resolver cannot take: every webhook attempt raised UnicodeError.
    ("https://" + "a" * 64 + ".acme.example/return", "cannot be looked up"),
    ("https://acme..example/return", "cannot be looked up"),
    ("ftp://acme.example/return", "must be https"),
]


def _change(admin_client, provider, **changes):
    """POST the provider's admin change form as it stands, with `changes` applied."""
    url = reverse("admin:attestations_provider_change", args=[provider.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = field.prepare_value(value) if value is not None else ""
        if isinstance(data[name], bool) and not data[name]:
            data.pop(name)  # an unchecked checkbox is absent
    data["redirect_uris"] = json.dumps(provider.redirect_uris)
    data["allowed_claims"] = json.dumps(provider.allowed_claims)
    data.update({"api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0", "_save": "Save"})
    data.update(changes)
    return admin_client.post(url, data)


@pytest.mark.parametrize(("uri", "reason"), BAD)
def test_the_admin_refuses_a_redirect_uri_the_command_line_refuses(admin_client, acme, uri, reason):
    response = _change(admin_client, acme.provider, redirect_uris=json.dumps([uri]))
    assert response.status_code == 200  # the form again, with the error
    assert reason in str(response.context["adminform"].form.errors["redirect_uris"])
    acme.provider.refresh_from_db()
    assert acme.provider.redirect_uris == ["https://acme.example/return"]
    with pytest.raises(CommandError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        # As typed on a shell (a list passed by keyword reaches argparse as its repr, refused whatever it holds).
        call_command("create_provider", "--redirect-uri", uri, name="X", claims="age_over_18")
    assert not Provider.objects.filter(name="X").exists()


@pytest.mark.parametrize(("url", "reason"), BAD)
def test_the_admin_refuses_a_webhook_url_the_command_line_would_refuse(admin_client, acme, url, reason):
    response = _change(admin_client, acme.provider, webhook_url=url)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["webhook_url"]
    acme.provider.refresh_from_db()
    assert acme.provider.webhook_url == ""


def test_the_admin_refuses_redirect_uris_that_are_not_a_list_of_strings(admin_client, acme):
    for value in ('"https://acme.example/return"', "[]", "[1]", '{"a": "b"}'):
        response = _change(admin_client, acme.provider, redirect_uris=value)
        assert response.status_code == 200 and response.context["adminform"].form.errors["redirect_uris"], value


def test_the_admin_saves_good_urls(admin_client, acme):
    response = _change(
        admin_client,
        acme.provider,
        redirect_uris=json.dumps(["https://acme.example/back", "http://localhost:3000/cb"]),
        webhook_url="https://hooks.acme.example/idbroker",
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    acme.provider.refresh_from_db()
    assert acme.provider.redirect_uris == ["https://acme.example/back", "http://localhost:3000/cb"]
    assert acme.provider.webhook_url == "https://hooks.acme.example/idbroker"


def test_the_admin_refuses_a_webhook_url_at_a_private_address_unless_allowed(admin_client, acme, settings):
    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = False
    for url in ("https://10.0.0.7/hook", "https://169.254.169.254/latest", "https://[::1]/hook", "http://127.0.0.1/h"):
        response = _change(admin_client, acme.provider, webhook_url=url)
        assert response.status_code == 200 and response.context["adminform"].form.errors["webhook_url"], url
    settings.IDBROKER_WEBHOOK_ALLOW_PRIVATE = True
    assert _change(admin_client, acme.provider, webhook_url="http://127.0.0.1:9000/h").status_code == 302


def test_a_redirect_uri_spells_its_host_in_ascii(admin_client, acme):
    # Django's redirect percent-encodes a Unicode host into one no browser resolves; the xn-- form works.
    with pytest.raises(CommandError, match="xn--bcher-kva.example"):
        call_command("create_provider", "--redirect-uri", "https://bücher.example/r", name="B", claims="age_over_18")
    page = _change(admin_client, acme.provider, redirect_uris=json.dumps(["https://bücher.example/r"]))
    assert "xn--bcher-kva.example" in str(page.context["adminform"].form.errors["redirect_uris"])
    call_command("create_provider", "--redirect-uri", "https://xn--bcher-kva.example/r", name="B", claims="age_over_18")
    assert Provider.objects.filter(name="B").exists()
