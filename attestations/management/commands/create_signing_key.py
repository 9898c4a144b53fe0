from django.core.management.base import BaseCommand
from django.utils import timezone

from attestations.models import SigningKey
from attestations.signing import signing_key_create


class Command(BaseCommand):
    help = "Create the first signing key (does nothing if an active key exists; use rotate_signing_key)."

    def add_arguments(self, parser):
        parser.add_argument("--alg", choices=["ES256", "Ed25519"])

    def handle(self, *args, **opts):
        active = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
        if active:
            self.stdout.write(f"active key exists: {active.kid}")
            return
        key = signing_key_create(alg=opts["alg"], now=timezone.now())
        self.stdout.write(f"created {key.alg} key {key.kid}")
