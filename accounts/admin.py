from django.contrib import admin

from broker.admin import ReadOnlyAdmin

from .models import Account, Passkey


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at")
    fields = ("id", "created_at")  # never the subject: it keys every pairwise pseudonym


@admin.register(Passkey)
class PasskeyAdmin(ReadOnlyAdmin):
    list_display = ("pk", "account", "label", "created_at", "last_used_at")
    fields = ("account", "label", "sign_count", "created_at", "last_used_at")
