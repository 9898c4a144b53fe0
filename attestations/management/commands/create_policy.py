from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attestations.models import JurisdictionPolicy
from attestations.services import policy_update


class Command(BaseCommand):
    help = "Create or update a jurisdiction policy (an update bumps its version)."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--mode", choices=["allow", "deny"], required=True)
        parser.add_argument("--applies-to", choices=["nationality", "issuing_country", "both"], default="both")
        parser.add_argument("--countries", required=True, help="Comma-separated ISO 3166-1 alpha-2 codes")
        parser.add_argument("--description", default="")

    def handle(self, *args, **opts):
        codes = sorted({c.strip().upper() for c in opts["countries"].split(",") if c.strip()})
        bad = [c for c in codes if len(c) != 2 or not c.isalpha()]
        if bad:
            raise CommandError(f"not ISO 3166-1 alpha-2 codes: {', '.join(bad)}")
        policy = JurisdictionPolicy.objects.filter(slug=opts["slug"]).first()
        fields = {
            "mode": opts["mode"],
            "applies_to": opts["applies_to"],
            "countries": codes,
            "description": opts["description"],
        }
        if policy is None:
            policy = JurisdictionPolicy.objects.create(slug=opts["slug"], **fields)
        else:
            revoked = policy_update(
                policy=policy, mode=fields["mode"], applies_to=fields["applies_to"], countries=codes, now=timezone.now()
            )
            policy.refresh_from_db()
            if revoked:
                self.stdout.write(f"revoked {revoked} attestations answered under the previous version")
        self.stdout.write(f"{policy.slug} v{policy.version}: {policy.mode} {', '.join(policy.countries)}")
