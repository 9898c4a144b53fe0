"""The rendered dashboard and its exports show the scenario's numbers, and nothing personal or secret."""

import csv
import io
import json
import re

import pytest

from audit.models import AuditEvent
from auditor import selectors

pytestmark = pytest.mark.django_db


def metric(html: str, name: str) -> str:
    match = re.search(rf'data-metric="{re.escape(name)}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


def test_the_page_shows_the_scenario_figures(auditor_client, scenario):
    html = auditor_client.get("/auditor/").content.decode()
    assert metric(html, "evidence.count") == "3"
    assert metric(html, "breaches.total") == "1"
    assert metric(html, "vendor.pending") == "2"
    assert metric(html, "vendor.confirmed") == "1"
    assert metric(html, "vendor.failed") == "1"
    assert metric(html, "purges.total") == "3"
    assert metric(html, "integrity.ok") == "Intact"
    assert metric(html, "integrity.tree_size") == str(AuditEvent.objects.count())
    row = re.search(r"<code>acme</code></th><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", html)
    assert row.groups() == ("3", "5", "1")


def test_a_breach_is_announced_loudly_at_the_top(auditor_client, scenario):
    html = auditor_client.get("/auditor/").content.decode()
    assert 'id="breach-alert"' in html
    assert "Deadline breaches: 1." in html


def test_no_breach_means_no_alert(auditor_client, db):
    html = auditor_client.get("/auditor/").content.decode()
    assert 'id="breach-alert"' not in html
    assert metric(html, "breaches.total") == "0"


def test_a_tampered_log_is_shown_as_broken(auditor_client, scenario):
    victim = AuditEvent.objects.filter(event="policy.changed").get()
    AuditEvent.objects.filter(pk=victim.pk).update(refs={"policy": "export-tier1@3"})
    html = auditor_client.get("/auditor/").content.decode()
    assert metric(html, "integrity.ok") == "BROKEN"
    assert 'id="integrity-alert"' in html


def test_the_charts_are_inline_svg_with_no_script_or_outside_resource(auditor_client, scenario):
    html = auditor_client.get("/auditor/").content.decode()
    assert html.count('<svg class="chart"') == 2
    assert "<script" not in html
    assert not re.search(r'(src|href)="https?://', html)


def test_the_json_export_carries_the_same_figures_as_the_selectors(auditor_client, scenario):
    response = auditor_client.get("/auditor/export.json")
    assert response["Content-Type"] == "application/json"
    exported = json.loads(response.content)
    expected = json.loads(json.dumps(selectors.dashboard(now=scenario.now)))
    for section in ("vendor_deletions", "attestations", "keys", "policy_history"):
        assert exported[section] == expected[section], section
    assert exported["evidence"]["count"] == 3
    assert exported["breaches"]["total"] == 1
    assert exported["purges"]["total"] == 3


def test_the_csv_export_matches_the_page(auditor_client, scenario):
    html = auditor_client.get("/auditor/").content.decode()
    response = auditor_client.get("/auditor/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["metric", "value"]
    values = dict(rows[1:])
    assert values["evidence.count"] == metric(html, "evidence.count")
    assert values["breaches.total"] == metric(html, "breaches.total")
    assert values["vendor_deletions.pending"] == metric(html, "vendor.pending")
    assert values["vendor_deletions.failed"] == metric(html, "vendor.failed")
    assert values["purges.total"] == metric(html, "purges.total")
    assert values["attestations.providers.acme.checked"] == "5"
    assert values["integrity.latest_head.tree_size"] == metric(html, "integrity.tree_size")


def test_the_page_and_exports_hold_no_api_key_secret_hash_or_private_key(auditor_client, scenario, acme, signing_key):
    key = acme.provider.api_keys.get()
    bodies = [
        auditor_client.get(url).content.decode() for url in ("/auditor/", "/auditor/export.json", "/auditor/export.csv")
    ]
    for body in bodies:
        assert key.secret_hash not in body
        assert acme.api_key not in body
        assert "private" not in body.lower()


def test_a_retention_misconfiguration_is_shown_on_the_page(auditor_client, settings):
    settings.CELERY_BEAT_SCHEDULE = {
        k: v for k, v in settings.CELERY_BEAT_SCHEDULE.items() if k != "purge-expired-evidence"
    }
    html = auditor_client.get("/auditor/").content.decode()
    assert "The evidence sweeper is not scheduled in beat." in html
    assert "idbroker.E020" in html


def test_the_oldest_item_past_its_deadline_is_said_to_be_late(auditor_client, scenario):
    html = auditor_client.get("/auditor/").content.decode()
    assert re.search(r"30 min \d+ s past its deadline", html)
