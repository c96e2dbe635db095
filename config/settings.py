"""Candor settings: one module, driven by environment variables.

Embedded default (a fresh laptop): SQLite under CANDOR_DATA_DIR. Production and CI: DATABASE_URL
pointing at PostgreSQL. With DEBUG off there is no default SECRET_KEY: the process refuses to start.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def envsecret(name: str) -> str | None:
    """A secret from NAME_FILE (docker/k8s secrets) or NAME; a named file that is missing is an error."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name} cannot be read: {exc}") from exc
    return os.environ.get(name)


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-DEBUG"  # noqa: S105 - never used with DEBUG off

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# Model artifacts, generated notices and exports live here.
CANDOR_DATA_DIR = Path(os.environ.get("CANDOR_DATA_DIR", BASE_DIR / "var")).resolve()
CANDOR_MODEL_DIR = CANDOR_DATA_DIR / "models"
# Extra product specs a lender adds (besides the shipped scoring/products/*.toml).
CANDOR_PRODUCTS_DIR = Path(os.environ.get("CANDOR_PRODUCTS_DIR", CANDOR_DATA_DIR / "products")).resolve()
CANDOR_SHARED_DATA = Path(os.environ.get("CANDOR_SHARED_DATA", BASE_DIR.parent / "shared" / "data")).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "audit",
    "lending",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{CANDOR_DATA_DIR / 'candor.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", _default_sqlite),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the timeout waits out a busy writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Keep connections open (DATABASE_CONN_MAX_AGE): closing SQLite's only connection checkpoints and
    # deletes the WAL file, which cost ~15 ms a request (bench/scoring_latency.py).
    # Tests that run a real worker process need a test database the worker can open too: a file.
    # One per test process, so two test runs on one machine never share a file.
    DATABASES["default"]["TEST"] = {"NAME": str(CANDOR_DATA_DIR / f"test-candor-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = CANDOR_DATA_DIR / "static"

# Security headers and cookies. Secure cookies need HTTPS; the embedded demo runs on plain localhost.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_TLS_PROXY", False) else None

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "notices@candor.example")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(CANDOR_DATA_DIR / "mail"))  # the file backend's folder
CANDOR_PUBLIC_URL = os.environ.get("CANDOR_PUBLIC_URL", "http://127.0.0.1:8000")  # customer links in e-mails

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Celery -----------------------------------------------------------------------------------------
# Redis in production and CI. Without CELERY_BROKER_URL, Kombu's filesystem transport under
# CANDOR_DATA_DIR: no server needed, and still a real worker process.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
_queue_dir = Path(os.environ.get("CELERY_FILESYSTEM_DIR", CANDOR_DATA_DIR / "broker"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("in", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "in"),
        "data_folder_out": str(_queue_dir / "in"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task not acknowledged within this time is redelivered (acks_late + a killed worker).
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 600),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
# JSON only: tasks carry ids, never pickled objects.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Results live in our own tables (Explanation, ...), not in a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Acknowledge after the task has run, and requeue when the worker process dies mid-task: tasks are
# idempotent, so a redelivery never duplicates work.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# No task may run forever: a soft limit raises inside the task, the hard limit kills it.
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 180)
# Publishing happens after a decision commits; if the broker is down we must not hang the request:
# fail fast and let the outbox sweep publish later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
# The outbox sweep: publishes explanation requests that were never published (broker down at commit).
CELERY_BEAT_SCHEDULE = {
    "explanation-outbox-sweep": {"task": "audit.tasks.explanation_outbox_sweep",
                                 "schedule": float(os.environ.get("CANDOR_OUTBOX_SWEEP_SECONDS", "10"))},
    # Denials whose notice is still to do (Reg B 1002.9(a): 30 days) are caught up every few minutes.
    "adverse-action-sweep": {"task": "audit.tasks.adverse_action_sweep",
                             "schedule": float(os.environ.get("CANDOR_ADVERSE_SWEEP_SECONDS", "300"))},
    # A batch whose chunk message was lost (a worker killed at the wrong moment) gets it published again.
    "explanation-batch-sweep": {"task": "audit.tasks.explanation_batch_sweep",
                                "schedule": float(os.environ.get("CANDOR_BATCH_SWEEP_SECONDS", "60"))},
    # Language-model readings whose evidence task was lost get it measured (issue 6).
    "extraction-evidence-sweep": {"task": "audit.tasks.extraction_evidence_sweep",
                                  "schedule": float(os.environ.get("CANDOR_EVIDENCE_SWEEP_SECONDS", "300"))},
}
# How long a running batch may go without storing a chunk before the sweep publishes what it lacks again
# (longer than a chunk waits in a busy queue; a duplicate is harmless, only wasted work).
CANDOR_BATCH_STALL_SECONDS = envint("CANDOR_BATCH_STALL_SECONDS", 300)
CELERY_BEAT_SCHEDULE_FILENAME = str(CANDOR_DATA_DIR / "celerybeat-schedule")
