"""The auditor dashboard and its exports: thin views over auditor.selectors, behind one permission check."""

from __future__ import annotations

import csv
import functools
from datetime import datetime

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from broker.admin_site import second_factor_required

from . import selectors
from .charts import bar_chart

PERMISSION = "auditor.view_dashboard"


def auditor_required(view):
    """Not signed in through the admin (or its second factor not given): to the admin login, where auditors sign
    in. Signed in without the permission: 403.

    The admin site's own rule (active, staff and, when IDBROKER_ADMIN_2FA is on, a verified TOTP device) comes
    first, so the dashboard is never easier to reach than the admin, and a permission granted to a non-staff
    account by mistake opens nothing.
    """

    @functools.wraps(view)
    @never_cache
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated or (second_factor_required() and not user.is_verified()):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (admin.site.has_permission(request) and user.has_perm(PERMISSION)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    if seconds < 3600:
        return f"{sign}{seconds // 60} min {seconds % 60} s"
    return f"{sign}{seconds // 3600} h {seconds % 3600 // 60} min"


@auditor_required
def dashboard(request):
    now = timezone.now()
    data = selectors.dashboard(now=now)
    purge_bars = [(datetime.fromisoformat(h["hour"]).strftime("%H:00"), h["count"]) for h in data["purges"]["hours"]]
    latency_bars = [(b["label"], b["count"]) for b in data["destruction_latency"]["buckets"]]
    evidence = data["evidence"]
    context = {
        "d": data,
        "as_of": now.strftime("%Y-%m-%d %H:%M:%S"),
        "oldest_age": _duration(evidence["oldest_age_seconds"]),
        "oldest_late": (evidence["oldest_seconds_to_deadline"] or 0) < 0,
        "oldest_to_deadline": _duration(abs(evidence["oldest_seconds_to_deadline"] or 0)),
        "latency_median": _duration(data["destruction_latency"]["median_seconds"]),
        "latency_max": _duration(data["destruction_latency"]["max_seconds"]),
        "purge_chart": bar_chart(purge_bars, title="Evidence purges per hour, last 24 hours", label_every=3),
        "latency_chart": bar_chart(latency_bars, title="Destruction latency after a decision", height=150),
    }
    return render(request, "auditor/dashboard.html", context)


@auditor_required
def verify_now(request):
    """POST: run the full integrity check now (it is recorded like the hourly one), then back to the dashboard."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    selectors.log_integrity(now=timezone.now(), fresh=True)
    return HttpResponseRedirect(reverse("auditor:dashboard"))


@auditor_required
def export_json(request):
    response = JsonResponse(selectors.dashboard(now=timezone.now()), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="idbroker-audit.json"'
    return response


def _cell(value):
    """Neutralise spreadsheet formulas (OWASP CSV injection) in the few text cells, e.g. a provider's client_id."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@auditor_required
def export_csv(request):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="idbroker-audit.csv"'
    writer = csv.writer(response)
    writer.writerow(["metric", "value"])
    writer.writerows(
        (metric, _cell(value)) for metric, value in selectors.flatten(selectors.dashboard(now=timezone.now()))
    )
    return response
