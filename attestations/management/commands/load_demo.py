import json

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from attestations.models import ApiKey, Provider
from attestations.services import api_key_create, provider_create

DEMO_CLIENT_ID = "acme-demo"


class Command(BaseCommand):
    help = "Demo data for `make run`: a jurisdiction policy, the provider 'Acme AI', a signing key. Idempotent."

    def handle(self, *args, **opts):
        now = timezone.now()
        call_command(
            "create_policy",
            slug="demo-export-tier1",
            mode="deny",
            applies_to="both",
            countries="CU,IR,KP,SY",
            description="Demo export-control deny-list",
            stdout=self.stdout,
        )
        call_command("create_signing_key", stdout=self.stdout)
        provider = Provider.objects.filter(client_id=DEMO_CLIENT_ID).first()
        if provider is None:
            provider, key = provider_create(
                name="Acme AI",
                client_id=DEMO_CLIENT_ID,
                redirect_uris=[f"{settings.PUBLIC_URL}/demo/return"],
                claims=["age_over_18", "age_over_21", "eligible_jurisdiction", "document_valid", "verified_human"],
                policy_slug="demo-export-tier1",
                now=now,
            )
        else:
            # Follow IDBROKER_PUBLIC_URL if `make run` moved to another host or port.
            Provider.objects.filter(pk=provider.pk).update(redirect_uris=[f"{settings.PUBLIC_URL}/demo/return"])
            ApiKey.objects.filter(provider=provider, revoked_at__isnull=True).update(revoked_at=now)
            key = api_key_create(provider=provider, label="demo", now=now)
        path = settings.VAR_DIR / "demo-provider.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"client_id": provider.client_id, "api_key": key}))
        path.chmod(0o600)
        self.stdout.write(f"demo provider {provider.client_id}: API key in {path}")
        # The embedded default runs no beat: sign a first tree head so /transparency/tree-head has one to show.
        from audit.transparency import tree_head_publish

        head = tree_head_publish(now=now)
        self.stdout.write(f"transparency log: tree head over {head.tree_size if head else 0} entries")
