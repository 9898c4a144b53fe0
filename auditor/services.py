"""Granting the auditor role. The "auditors" group holds read-only permissions and nothing else."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

GROUP = "auditors"
# The dashboard, plus the audit log, its tree heads and the admin sign-ins in the admin (all read-only there). No
# provider, key, request, session or fact model: an auditor sees aggregates and random ids, never secrets or
# personal data.
PERMISSIONS = (
    ("auditor", "view_dashboard"),
    ("audit", "view_auditevent"),
    ("audit", "view_treehead"),
    ("audit", "view_adminsignin"),
)


def auditors_group_ensure() -> Group:
    """Create or repair the group so it holds exactly PERMISSIONS (an operator may have widened it by hand)."""
    group, _ = Group.objects.get_or_create(name=GROUP)
    perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in PERMISSIONS]
    group.permissions.set(perms)
    return group


@transaction.atomic
def auditor_grant(*, username: str):
    """Make `username` an auditor: staff (so the admin login admits them) and in the auditors group only.

    Returns (user, created). A new user gets an unusable password; set one with `manage.py changepassword`.
    """
    group = auditors_group_ensure()
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
    user.is_staff = True
    user.save()
    user.groups.add(group)
    return user, created
