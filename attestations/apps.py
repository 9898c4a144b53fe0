from django.apps import AppConfig


class AttestationsConfig(AppConfig):
    name = "attestations"
