from django.apps import AppConfig


class BrokerConfig(AppConfig):
    name = "broker"

    def ready(self):
        from . import checks  # noqa: F401 - registers the deployment checks
