"""System checks for deployments (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


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
