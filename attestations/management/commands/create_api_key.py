from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attestations.models import Provider
from attestations.services import api_key_create


class Command(BaseCommand):
    help = "Issue another API key for a provider (for rotation). Shown once."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--label", default="")

    def handle(self, *args, **opts):
        provider = Provider.objects.filter(client_id=opts["client_id"]).first()
        if provider is None:
            raise CommandError(f"no provider {opts['client_id']!r}")
        self.stdout.write(api_key_create(provider=provider, label=opts["label"], now=timezone.now()))
