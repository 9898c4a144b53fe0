from django.core.management.base import BaseCommand

from auditor.services import auditor_grant


class Command(BaseCommand):
    help = "Make a user an auditor: staff, in the read-only 'auditors' group (created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username; created without a password if new")

    def handle(self, *args, user: str, **options):
        account, created = auditor_grant(username=user)
        self.stdout.write(f"{account.get_username()} is an auditor; sign in at /admin/login/?next=/auditor/")
        if created:
            self.stdout.write(f"New user: set a password with `manage.py changepassword {account.get_username()}`.")
