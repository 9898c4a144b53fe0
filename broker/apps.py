from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BrokerConfig(AppConfig):
    name = "broker"
    default = True  # not BrokerAdminConfig, which INSTALLED_APPS names explicitly

    def ready(self):
        from . import checks  # noqa: F401 - registers the deployment checks
        from .scheduler import start, wanted

        # `make run` has no Celery beat: the development server runs the beat schedule itself (broker/scheduler.py).
        if wanted():
            start()


class BrokerAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site (second factor, audited sign-ins) as the default `admin.site`."""

    default = False
    default_site = "broker.admin_site.BrokerAdminSite"
