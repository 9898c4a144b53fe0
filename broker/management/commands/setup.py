"""`manage.py setup`: every first-run step of an installation, safe to run again on every deploy.

1. Apply migrations (the same as `migrate --noinput`).
2. Create the first signing key, unless an active one exists (never rotates: that is `rotate_signing_key`).
3. Open the first status list, unless one exists (revocation bits of the attestations to come).
4. Sign the first transparency tree head over what the log holds (the key's creation), so
   /transparency/tree-head has something to show before beat's first run.
5. Run the system checks, deployment checks included outside DEBUG, and fail on an error.

What it does not do, because it needs a person: create the admin (`createsuperuser`, then `admin_totp_enroll`),
register providers (`create_provider`), and collect static files (a build step: `collectstatic`).
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone


class Command(BaseCommand):
    help = "First-run steps, idempotent: migrate, first signing key, status list, first tree head, checks."
    requires_system_checks = []  # step 5 runs them once the database is ready; before it they could only fail

    def add_arguments(self, parser):
        parser.add_argument("--alg", choices=["ES256", "Ed25519"], help="Algorithm of a newly created signing key.")

    def handle(self, *args, **opts):
        from attestations import statuslist
        from audit.transparency import tree_head_publish

        verbosity = opts["verbosity"]
        self.stdout.write("1. migrations")
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0), stdout=self.stdout)
        self.stdout.write("2. signing key")
        call_command("create_signing_key", alg=opts["alg"], stdout=self.stdout)
        self.stdout.write("3. status list")
        current = statuslist.current_list()
        self.stdout.write(f"status list {current.pk}")
        self.stdout.write("4. transparency tree head")
        head = tree_head_publish(now=timezone.now())
        self.stdout.write(f"tree head over {head.tree_size if head else 0} entries")
        self.stdout.write("5. system checks")
        call_command("check", deploy=not settings.DEBUG, fail_level="ERROR", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("ready: idbroker can issue attestations."))
