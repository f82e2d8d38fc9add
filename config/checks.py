"""System checks that `manage.py check --deploy` runs on production settings."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def secrets_from_the_environment(**_kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not settings.SECRET_KEY_FROM_ENV:
        errors.append(Error("SECRET_KEY must come from the environment.", id="config.E001"))
    if settings.CREDENTIAL_KEY == settings.SECRET_KEY and not settings.DEBUG:
        errors.append(
            Error(
                "Set CREDENTIAL_KEY apart from SECRET_KEY: rotating SECRET_KEY would otherwise "
                "invalidate every link and access code already sent to firms.",
                id="config.E002",
            )
        )
    return errors
