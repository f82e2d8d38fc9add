from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the deploy checks)
