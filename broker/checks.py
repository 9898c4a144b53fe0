"""System checks for deployments (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def dev_vendor_in_deployment(app_configs, **kwargs):
    if settings.IDBROKER_VENDOR == "dev" and not settings.DEBUG:
        return [
            Warning(
                "The dev vendor is active: users choose their own verification outcome.",
                hint="Only for demos and tests. Set IDBROKER_VENDOR to a real vendor adapter in production.",
                id="idbroker.W001",
            )
        ]
    return []


@register()
def vendors_configured(app_configs, **kwargs):
    """The default vendor and every fallback must be an adapter with credentials (a provider's own vendor is checked
    when it is set, in admin and the create_provider command); a real
    vendor without webhook secrets could never authenticate its webhooks (results would arrive only by polling)."""
    from django.core.checks import Error

    from verification.vendors.base import REGISTRY

    problems = []
    configured = settings.IDBROKER_VENDORS
    wanted = {
        "IDBROKER_VENDOR": [settings.IDBROKER_VENDOR],
        "IDBROKER_VENDOR_FALLBACKS": settings.IDBROKER_VENDOR_FALLBACKS,
    }
    for where, names in wanted.items():
        for name in names:
            if name not in REGISTRY:
                problems.append(
                    Error(
                        f"{where} names {name!r}, which is not a vendor adapter.",
                        hint=f"One of: {', '.join(sorted(REGISTRY))}.",
                        id="idbroker.E010",
                    )
                )
            elif name not in configured:
                problems.append(
                    Error(
                        f"{where} names {name!r}, which has no credentials configured.",
                        hint="Set its API key variables (README: Vendors).",
                        id="idbroker.E011",
                    )
                )
    for name, config in configured.items():
        if name != "dev" and not config.get("webhook_secrets"):
            problems.append(
                Warning(
                    f"Vendor {name!r} has no webhook secret: its webhooks will all be refused.",
                    hint="Set its *_WEBHOOK_SECRETS variable (README: Vendors).",
                    id="idbroker.W010",
                )
            )
    return problems


def retention_problems() -> list[tuple[str, str, str]]:
    """Retention misconfiguration (SPEC 3.1, 3.5, 3.6) as (id, message, hint); shown by `check` and the auditor
    dashboard. The hard caps (evidence 1 min to 24 h) are enforced at start-up in settings; these are the ways a
    configuration within the caps still fails to keep the promise."""
    from datetime import timedelta

    problems = []
    schedule = settings.CELERY_BEAT_SCHEDULE
    sweeper = schedule.get("purge-expired-evidence")
    if not sweeper or sweeper.get("task") != "verification.tasks.purge_expired":
        problems.append(("idbroker.E020", "The evidence sweeper is not scheduled in beat.", "Restore it in settings."))
    elif timedelta(seconds=float(sweeper["schedule"])) > settings.IDBROKER_ABANDONED_TTL / 2:
        problems.append(
            (
                "idbroker.E021",
                "The evidence sweeper runs less often than half the shortest deadline: evidence may outlive it.",
                "Run purge_expired at least every IDBROKER_ABANDONED_TTL_MINUTES / 2.",
            )
        )
    if timedelta(days=365) < settings.IDBROKER_FACTS_VALIDITY:
        problems.append(
            (
                "idbroker.W020",
                "Facts are kept longer than the 365-day validity period SPEC 3.5 sets as the default.",
                "Lower IDBROKER_FACTS_VALIDITY_DAYS unless your policy requires more.",
            )
        )
    if "publish-tree-head" not in schedule:
        problems.append(("idbroker.W021", "Signed tree heads are not published by beat.", "Restore it in settings."))
    if not settings.DEBUG and settings.CELERY_TASK_ALWAYS_EAGER:
        problems.append(
            (
                "idbroker.W022",
                "No Celery broker outside DEBUG: no beat runs the sweeper, vendor-deletion polls or tree heads.",
                "Set CELERY_BROKER_URL and run a beat, or cron `manage.py purge_evidence` every few minutes.",
            )
        )
    return problems


@register()
def retention_configured(app_configs, **kwargs):
    from django.core.checks import Error

    return [
        (Error if code.split(".")[1].startswith("E") else Warning)(message, hint=hint, id=code)
        for code, message, hint in retention_problems()
    ]


@register(Tags.security, deploy=True)
def proxies_counted(app_configs, **kwargs):
    """Behind a proxy with no trusted hops, every request carries the proxy's address: per-client limits then share
    one bucket, and one client can lock everyone out (broker/proxies.py)."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not settings.IDBROKER_TRUSTED_PROXIES:
        return [
            Warning(
                "BEHIND_PROXY is on but IDBROKER_TRUSTED_PROXIES is 0: every client shares the proxy's rate limits.",
                hint="Set IDBROKER_TRUSTED_PROXIES to the number of proxies that append to X-Forwarded-For.",
                id="idbroker.W030",
            )
        ]
    return []


def _migrations_pending(connection) -> bool:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


@register(deploy=True)
def signing_key_active(app_configs, databases=None, **kwargs):
    """No active signing key: every verification would fail at the end, after the person gave their photos
    (issue 10, item 14). `manage.py setup` creates one. An Error outside DEBUG, a Warning in it.

    A deployment check (`check --deploy`, which `setup` runs): an Error among the checks every management command
    runs first stopped all of them outside DEBUG, `create_signing_key` (the remedy the hint names), `createsuperuser`
    and `create_provider` included, until a key existed.

    Checks run before `migrate` too: on a fresh database, or with migrations still to apply, there is nothing to
    judge yet and `migrate` must stay runnable, so the check stays silent; likewise when no database answers (an
    image build running `check --deploy`)."""
    from django.db import DatabaseError, connection

    from broker.readiness import issuing_problem

    try:
        if "attestations_signingkey" not in connection.introspection.table_names() or _migrations_pending(connection):
            return []
        problem = issuing_problem()
    except DatabaseError:
        return []
    if problem is None:
        return []
    level, code = (Warning, "idbroker.W040") if settings.DEBUG else (Error, "idbroker.E040")
    return [
        level(
            "No active signing key: verifications would fail after the person has given their photos.",
            hint="Run `manage.py setup` (README: Production, first run), or `manage.py create_signing_key`.",
            id=code,
        )
    ]
