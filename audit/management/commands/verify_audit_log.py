from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify


class Command(BaseCommand):
    help = "Recompute the audit hash chain and name the first bad entry."

    def handle(self, *args, **options):
        result = audit_verify()
        if not result.ok:
            raise CommandError(f"audit log broken at entry {result.first_bad_seq}: {result.reason}")
        self.stdout.write(f"audit log intact: {result.entries} entries")
