from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_started


class PlatformConfig(AppConfig):
    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the deploy checks)

        # A restarted web process resumes waiting work (queued emails, say) by itself.
        request_started.connect(_start_background, dispatch_uid="background-tasks")


def _start_background(**_kwargs: Any) -> None:
    if settings.TASKS_IN_BACKGROUND:
        from . import background

        background.start()
