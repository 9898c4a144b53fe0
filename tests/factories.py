"""Factories with named personas: the provider "acme" and its rival "globex"."""

import factory
from django.utils import timezone

from attestations.models import JurisdictionPolicy, Provider

ALL_CLAIMS = ["age_over_18", "age_over_21", "eligible_jurisdiction", "document_valid", "verified_human"]


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JurisdictionPolicy
        django_get_or_create = ("slug",)

    slug = "export-tier1"
    mode = JurisdictionPolicy.Mode.DENY
    applies_to = JurisdictionPolicy.AppliesTo.BOTH
    countries = ["CU", "IR", "KP", "SY"]


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("client_id",)

    client_id = "acme"
    name = "Acme AI"
    redirect_uris = ["https://acme.example/return"]
    allowed_claims = ALL_CLAIMS
    policy = factory.SubFactory(PolicyFactory)
    created_at = factory.LazyFunction(timezone.now)


class GlobexFactory(ProviderFactory):
    client_id = "globex"
    name = "Globex Chat"
    redirect_uris = ["https://globex.example/back"]
