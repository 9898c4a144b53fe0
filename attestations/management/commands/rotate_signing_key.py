from django.core.management.base import BaseCommand
from django.utils import timezone

from attestations.signing import signing_key_rotate


class Command(BaseCommand):
    help = "Make a new signing key active; the old one stays in the JWKS until its last token expires."

    def add_arguments(self, parser):
        parser.add_argument("--alg", choices=["ES256", "Ed25519"])

    def handle(self, *args, **opts):
        key = signing_key_rotate(alg=opts["alg"], now=timezone.now())
        self.stdout.write(f"active key is now {key.alg} {key.kid}")
