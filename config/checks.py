"""System checks that `manage.py check --deploy` runs on production settings."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


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


@register()
def letter_font(**_kwargs: Any) -> list[CheckMessage]:
    """The printed letters need a Korean font; say so at start-up rather than at the click."""
    missing = [
        p for p in (settings.LETTER_FONT, settings.LETTER_FONT_BOLD) if not Path(p).is_file()
    ]
    if not missing:
        return []
    return [
        Warning(
            f"The Korean font of the printed letters is missing: {', '.join(missing)}.",
            hint="apt-get install fonts-nanum, or set LETTER_FONT and LETTER_FONT_BOLD.",
            id="config.W001",
        )
    ]
