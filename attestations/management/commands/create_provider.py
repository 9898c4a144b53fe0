import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attestations.services import provider_create
from broker.errors import BrokerError


class Command(BaseCommand):
    help = "Register a provider. Prints its client_id and an API key, which is shown this once and stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--redirect-uri",
            action="append",
            required=True,
            dest="redirect_uris",
            help="Exact URI the user returns to; repeat for several.",
        )
        parser.add_argument("--claims", required=True, help="Comma-separated, e.g. age_over_18,eligible_jurisdiction")
        parser.add_argument("--policy", help="Jurisdiction policy slug (needed for eligible_jurisdiction).")
        parser.add_argument("--client-id", help="Fixed client_id (default: random).")
        parser.add_argument(
            "--vendor", default="", help="Identity vendor for this provider (default: IDBROKER_VENDOR)."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")

    def handle(self, *args, **opts):
        try:
            provider, key = provider_create(
                name=opts["name"],
                redirect_uris=opts["redirect_uris"],
                claims=[c.strip() for c in opts["claims"].split(",") if c.strip()],
                policy_slug=opts["policy"],
                client_id=opts["client_id"],
                vendor=opts["vendor"],
                now=timezone.now(),
            )
        except BrokerError as exc:
            raise CommandError(exc.detail) from None
        if opts["json"]:
            self.stdout.write(json.dumps({"client_id": provider.client_id, "api_key": key}))
        else:
            self.stdout.write(
                f"client_id: {provider.client_id}\napi_key:   {key}\nStore the API key now: it is not shown again."
            )
