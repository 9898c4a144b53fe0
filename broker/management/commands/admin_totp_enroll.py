"""Enrol an operator's authenticator app for the admin's second factor.

Creates a confirmed TOTP device for the user (replacing any earlier one, so a lost phone is re-enrolled by running
this again) and prints the otpauth:// URI and a terminal QR code to scan. The secret goes to this terminal only:
nothing is logged or audited beyond the device row itself.
"""

import io

import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

DEVICE_NAME = "admin"


class Command(BaseCommand):
    help = "Create (or replace) a user's TOTP device for the admin and print the otpauth:// URI and a QR code."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the username of a staff user")

    def handle(self, *args, **opts):
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: opts["user"]}).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}")
        with transaction.atomic():
            TOTPDevice.objects.filter(user=user).delete()
            device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
        uri = device.config_url
        qr = io.StringIO()
        segno.make(uri, error="m").terminal(out=qr, compact=True)
        self.stdout.write(qr.getvalue())
        self.stdout.write(uri)
        self.stdout.write(
            f"Scan this with the authenticator app of {user.get_username()!r} (or enter the URI above). "
            "Any earlier device of this user no longer works. The secret is shown only here: clear the terminal."
        )
        if not user.is_staff:
            self.stderr.write("Note: this user is not staff, so the admin stays closed to them.")
