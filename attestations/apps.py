from django.apps import AppConfig


class AttestationsConfig(AppConfig):
    name = "attestations"

    def ready(self):
        from . import schema  # noqa: F401 - registers the OpenAPI auth extension
