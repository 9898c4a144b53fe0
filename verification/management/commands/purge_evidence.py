import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from verification.services import purge_expired


class Command(BaseCommand):
    help = "Destroy evidence, abandoned sessions and facts past their deadlines (what the beat sweeper runs)."

    def handle(self, *args, **opts):
        self.stdout.write(json.dumps(purge_expired(now=timezone.now())))
