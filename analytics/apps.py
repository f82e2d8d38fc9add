from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Estimates and results")

    def ready(self) -> None:
        from config.roles import ensure_roles

        # After every app's permissions exist (the analytics app migrates last).
        post_migrate.connect(ensure_roles, sender=self)
