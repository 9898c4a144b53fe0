from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attestations.models import Provider
from webhooks.signing import ROTATION_OVERLAP, webhook_secret_create


class Command(BaseCommand):
    help = (
        "Create a provider's webhook signing secret (Standard Webhooks `whsec_…`), printed once. Running it again "
        f"rotates: the old secret keeps signing alongside the new one for {ROTATION_OVERLAP}."
    )

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)

    def handle(self, *args, **opts):
        provider = Provider.objects.filter(client_id=opts["client_id"]).first()
        if provider is None:
            raise CommandError(f"no provider {opts['client_id']!r}")
        self.stdout.write(webhook_secret_create(provider=provider, now=timezone.now()))
        if not provider.webhook_url:
            self.stderr.write("Note: this provider has no webhook URL yet; set it in admin, or nothing is sent.")
