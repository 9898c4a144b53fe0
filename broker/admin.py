from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages only: nothing is added, edited or deleted through the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ListActionsOnly:
    """Mixin: the list and its own actions (revoke, retry, re-enable), never an edit form, and only for staff
    holding the model's change permission (`obj is None` alone opened them to every staff user, auditors too)."""

    def has_change_permission(self, request, obj=None):
        return obj is None and admin.ModelAdmin.has_change_permission(self, request)
