"""The auditor role: one permission, carried by a table-less model so it has a content type to hang on."""

from django.db import models


class Dashboard(models.Model):
    class Meta:
        managed = False  # no table: this model exists only to own the permission below
        default_permissions = ()
        permissions = [("view_dashboard", "Can view the retention and integrity dashboard")]

    def __str__(self) -> str:
        return "auditor dashboard"
