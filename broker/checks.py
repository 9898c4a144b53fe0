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
