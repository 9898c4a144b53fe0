from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify
from audit.transparency import tree_heads_verify


class Command(BaseCommand):
    help = "Recompute the audit hash chain and every signed tree head's Merkle root; name the first bad entry."

    def handle(self, *args, **options):
        result = audit_verify()
        if not result.ok:
            raise CommandError(f"audit log broken at entry {result.first_bad_seq}: {result.reason}")
        heads = tree_heads_verify()
        if not heads.ok:
            raise CommandError(f"audit log does not match a published tree head: {heads.reason}")
        self.stdout.write(f"audit log intact: {result.entries} entries, {heads.checked} signed tree heads match")
