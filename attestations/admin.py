"""Operator admin. Secrets never render: API keys show their lookup prefix only, signing keys their public half."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from broker.admin import ListActionsOnly, ReadOnlyAdmin
from broker.validators import validate_operator_url
from webhooks import egress

from . import services
from .models import ApiKey, Attestation, JurisdictionPolicy, Provider, SigningKey, VerificationRequest


@admin.register(JurisdictionPolicy)
class JurisdictionPolicyAdmin(admin.ModelAdmin):
    list_display = ("slug", "mode", "applies_to", "version", "updated_at")
    readonly_fields = ("version",)

    def save_model(self, request, obj, form, change):
        rule = {"mode": obj.mode, "applies_to": obj.applies_to, "countries": obj.countries}
        if not change:
            obj.countries = sorted({c.strip().upper() for c in obj.countries})
            super().save_model(request, obj, form, change)
            return
        obj.description = form.cleaned_data.get("description", obj.description)
        JurisdictionPolicy.objects.filter(pk=obj.pk).update(description=obj.description)
        # A changed rule is a new version, and the answers given under the old one are revoked.
        stored = JurisdictionPolicy.objects.get(pk=obj.pk)
        revoked = services.policy_update(policy=stored, now=timezone.now(), **rule)
        if revoked:
            self.message_user(request, f"New policy version; {revoked} attestations revoked.", messages.WARNING)


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("prefix", "label", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # keys are created by `manage.py create_api_key`, which shows the secret once

    @admin.display(description="key")
    def prefix(self, obj):
        return str(obj)


class ProviderForm(forms.ModelForm):
    """The admin checks URLs with the command line's rule (broker/validators.py), not just "is it a URL"."""

    class Meta:
        model = Provider
        fields = "__all__"  # noqa: DJ007 - the admin shows every column; readonly_fields guards the fixed ones

    def clean_redirect_uris(self):
        uris = self.cleaned_data.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise forms.ValidationError('A list of URIs, e.g. ["https://app.example/callback"].')
        return [validate_operator_url(u, what="redirect URI", ascii_host=True) for u in uris]

    def clean_webhook_url(self):
        url = self.cleaned_data.get("webhook_url") or ""
        if url and egress.literal_forbidden(validate_operator_url(url, what="webhook URL")):
            raise forms.ValidationError("webhook URL points at a private, loopback or link-local address.")
        return url


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "client_id", "policy", "vendor", "is_active", "created_at")
    readonly_fields = ("client_id", "created_at")
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(ListActionsOnly, ReadOnlyAdmin):
    list_display = ("__str__", "provider", "label", "created_at", "last_used_at", "revoked_at")
    fields = list_display
    actions = ["revoke"]

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset.select_related("provider"):
            services.api_key_revoke(key=key, now=timezone.now())
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(VerificationRequest)
class VerificationRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "provider", "status", "claims", "created_at", "completed_at")
    list_filter = ("status", "provider")
    fields = ("id", "provider", "status", "claims", "created_at", "expires_at", "completed_at")


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("kid", "alg", "status", "created_at", "retire_after")
    fields = ("kid", "alg", "status", "public_jwk", "created_at", "retire_after")


@admin.register(Attestation)
class AttestationAdmin(ListActionsOnly, ReadOnlyAdmin):
    list_display = ("jti", "provider", "claim_names", "issued_at", "expires_at", "revoked_at")
    list_filter = ("provider",)
    fields = list_display
    actions = ["revoke"]

    @admin.action(description="Revoke selected attestations")
    def revoke(self, request, queryset):
        count = sum(
            services.attestation_revoke(attestation=a, now=timezone.now()) for a in queryset.select_related("provider")
        )
        self.message_user(request, f"Revoked {count}.", messages.SUCCESS)
