#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load settings now
    except ImproperlyConfigured as exc:
        # Django would swallow this and fail later with an unrelated "Models aren't loaded yet".
        sys.exit(f"Configuration error: {exc}\nFor local development, prefix the command with DEBUG=true.")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
