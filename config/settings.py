"""One settings module, driven by environment variables.

Unset DATABASE_URL means the embedded SQLite file; unset REDIS_URL means Celery tasks run
in-process after commit. Production sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS and HTTPS=1.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# The fallback key only ever serves development and tests; `check --deploy` refuses it.
SECRET_KEY_FROM_ENV = "SECRET_KEY" in os.environ
SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-do-not-use-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "config",
    "surveys",
    "respondents",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.LanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    {
        # The respondents' pages, the busiest of the platform: templates/jinja2/respondent/.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "config.jinja2.environment", "extensions": ["jinja2.ext.i18n"]},
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 600), conn_health_checks=True
        )
    }
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # JIT compilation costs more than it saves on this application's short queries.
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # WAL lets pages read while the background sender writes; with it, NORMAL
            # syncs at checkpoints rather than at every commit (still crash-safe). A page
            # cache of 64 MB and memory-mapped reads keep a census's tables in memory.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    "PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
                ),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "smartsurvey"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Sessions live in the database: a respondent keeps answering while Redis is down.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Celery: without a broker, tasks run in-process (they are only ever enqueued after commit).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# ... in a background thread of the web process (config/background.py), so that no request
# waits for a wave of emails or a recompute.
TASKS_IN_BACKGROUND = env_bool("TASKS_IN_BACKGROUND", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # A dead or frozen Redis must cost a submitting firm seconds, not a hung request: the
    # outbox row is already committed and the sweep sends the task later.
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "max_retries": 0,
}
CELERY_TIMEZONE = "Asia/Seoul"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
# Sweeps pick up work whose task was lost (broker down at commit time, worker killed).
CELERY_BEAT_SCHEDULE = {
    "sweep-recomputes": {"task": "analytics.tasks.sweep", "schedule": 30.0},
    "sweep-messages": {"task": "respondents.tasks.sweep", "schedule": 60.0},
    "heartbeat": {"task": "config.tasks.heartbeat", "schedule": 30.0},
    "sweep-exports": {"task": "analytics.tasks.sweep_exports", "schedule": 300.0},
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Staff login lockout (django-axes): per username and client address.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_HOURS", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Behind the load balancer the client is the address it appended, not the balancer's.
AXES_CLIENT_IP_CALLABLE = "config.http.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Korean for everyone, whatever the browser asks for; English once picked with the switcher,
# remembered for a year in the language cookie (config.middleware.LanguageMiddleware).
LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"]
# Front-end packages come from the npm registry (package.json); only their dist folders
# are served.
NODE_MODULES = BASE_DIR / "node_modules"
for _prefix, _folder in [
    ("vendor/bootstrap", "bootstrap/dist"),
    ("vendor/chart.js", "chart.js/dist"),
    ("vendor/axe-core", "axe-core"),
]:
    if (NODE_MODULES / _folder).is_dir():
        STATICFILES_DIRS.append((_prefix, NODE_MODULES / _folder))  # type: ignore[arg-type]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# A respondent page post is a few kilobytes; anything far larger is refused with a message.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 512 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 200 * 1024 * 1024)
# An XLSForm is refused before parsing beyond these (a zip bomb: surveys/xlsform.py), and one
# that unpacks to more than FORM_INLINE_BYTES is loaded by the worker, not in the request.
MAX_FORM_EXPANDED_BYTES = env_int("MAX_FORM_EXPANDED_BYTES", 30 * 1024 * 1024)
MAX_FORM_ROWS = env_int("MAX_FORM_ROWS", 20_000)
FORM_INLINE_BYTES = env_int("FORM_INLINE_BYTES", 2 * 1024 * 1024)

# Email: SMTP when EMAIL_HOST is set, otherwise files under var/mail for the demo.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "survey@smartsurvey.example")

# Production hardening: HTTPS=1 behind a TLS-terminating load balancer.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)

# LOG_FORMAT=json (production) writes one JSON object per line for the log collector.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}

# --- Survey platform settings -------------------------------------------------------------
# Respondent access: wrong access codes per client address and per business ID.
ACCESS_CODE_MAX_FAILURES = env_int("ACCESS_CODE_MAX_FAILURES", 5)
ACCESS_CODE_WINDOW_SECONDS = env_int("ACCESS_CODE_WINDOW_SECONDS", 900)
ACCESS_CODE_MAX_FAILURES_PER_CLIENT = env_int("ACCESS_CODE_MAX_FAILURES_PER_CLIENT", 20)
# Autosave debounce in the respondent's browser (milliseconds).
AUTOSAVE_DELAY_MS = env_int("AUTOSAVE_DELAY_MS", 1200)
# Submitted responses: complete at 80 % of applicable items, partial at 50 % (sec. C).
COMPLETE_THRESHOLD = env_float("COMPLETE_THRESHOLD", 0.8)
PARTIAL_THRESHOLD = env_float("PARTIAL_THRESHOLD", 0.5)
# Link tokens and access codes are derived from this key (see Case.derive_credentials).
CREDENTIAL_KEY = env_str("CREDENTIAL_KEY", SECRET_KEY)
# Invitations and reminders: emails per second from one sending worker.
EMAIL_RATE_PER_SECOND = env_float("EMAIL_RATE_PER_SECOND", 5.0)
EMAIL_RETRY_BACKOFF_SECONDS = env_int("EMAIL_RETRY_BACKOFF_SECONDS", 30)
# A message claimed this long ago without a result is not resent: it is marked uncertain.
EMAIL_CLAIM_TIMEOUT_SECONDS = env_int("EMAIL_CLAIM_TIMEOUT_SECONDS", 600)
SURVEY_HELP_DESK = env_str("SURVEY_HELP_DESK", "1588-0000")
# A Korean TrueType font for the printed letters (Debian's fonts-nanum by default).
LETTER_FONT = env_str("LETTER_FONT", "/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
LETTER_FONT_BOLD = env_str(
    "LETTER_FONT_BOLD", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"
)
# Estimates: runs are at least this far apart while changes keep coming (bursts coalesce);
# a run still marked running after RECOMPUTE_STALE_SECONDS was abandoned by its worker.
RECOMPUTE_MIN_INTERVAL_SECONDS = env_float("RECOMPUTE_MIN_INTERVAL_SECONDS", 15.0)
RECOMPUTE_STALE_SECONDS = env_int("RECOMPUTE_STALE_SECONDS", 900)

# Read-only results API (analytics/api.py): JSON only, OpenAPI 3 schema. Its views name their
# own authentication (API tokens); any other DRF view is closed by default, and no session
# cookie ever authenticates an API call.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# Throttling (analytics/api.py), counted in the cache (Redis in production, shared by every web
# process): per token, and per client address before the token is even checked, so that a
# flood of bad tokens is refused too. DRF's syntax: "120/minute", "5/second".
API_RATE_PER_TOKEN = env_str("API_RATE_PER_TOKEN", "120/minute")
API_RATE_PER_ADDRESS = env_str("API_RATE_PER_ADDRESS", "300/minute")
SPECTACULAR_SETTINGS = {
    "TITLE": "Smart manufacturing survey results API",
    "DESCRIPTION": "Published, population-weighted estimates and fieldwork status. "
    "Suppressed cells never carry values.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}
