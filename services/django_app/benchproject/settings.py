"""Production settings for the app under test. Everything that varies per run comes from the
environment the runner builds (asgibench.server): the database, the connection strategy, the driver.

  DATABASE_URL           postgresql://user[:password]@host:port/dbname (required)
  ASGIBENCH_DB_CONN      per-request | persistent | pool   (how Django holds PostgreSQL connections)
  ASGIBENCH_POOL_SIZE    max connections of the psycopg 3 pool, per worker process (pool only)
  ASGIBENCH_PG_DRIVER    psycopg (3) | psycopg2: Django picks psycopg 3 whenever it can import it, so
                         psycopg2 rows (eventlet; gevent + psycogreen) hide psycopg 3 from it
  ASGIBENCH_STATIC_ROOT  where `collectstatic` put the static files (one folder per env)
  ASGIBENCH_STATIC_SERVER  whitenoise (default) | django | cling: who serves /static/. WhiteNoise's
                         middleware is only installed for `whitenoise`; `django` is the entry module
                         benchproject.asgi_static (ASGIStaticFilesHandler), `cling` is
                         benchproject.asgi_cling (dj-static), and those entry modules set it themselves
"""
import os
import sys
from urllib.parse import unquote, urlparse

import benchcontract
import django
from django.core.exceptions import ImproperlyConfigured

from benchproject import versions

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "asgibench-not-secret-but-not-debug")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    h for h in os.environ.get("ASGIBENCH_ALLOWED_HOSTS", "").split(",") if h
]

DB_CONN = os.environ.get("ASGIBENCH_DB_CONN", "persistent")
PG_DRIVER = os.environ.get("ASGIBENCH_PG_DRIVER", "psycopg")
POOL_SIZE = int(os.environ.get("ASGIBENCH_POOL_SIZE", "10"))  # the runner always sets it (asgibench.run)
STATIC_SERVER = os.environ.get("ASGIBENCH_STATIC_SERVER", "whitenoise")
if STATIC_SERVER not in ("whitenoise", "django", "cling"):
    raise ImproperlyConfigured(f"ASGIBENCH_STATIC_SERVER must be whitenoise, django or cling, not {STATIC_SERVER!r}")

if not versions.PSYCOPG3:
    PG_DRIVER = "psycopg2"  # Django < 4.2 has only the psycopg2 backend (asgibench records the same)
if PG_DRIVER == "psycopg2":
    # Make `import psycopg` fail so Django's backend falls back to psycopg2.
    sys.modules["psycopg"] = None
elif PG_DRIVER != "psycopg":
    raise ImproperlyConfigured(f"ASGIBENCH_PG_DRIVER must be psycopg or psycopg2, not {PG_DRIVER!r}")


def _database(url):
    if not url:
        raise ImproperlyConfigured("DATABASE_URL is not set (the runner sets it for every server)")
    u = urlparse(url)
    db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": u.path.lstrip("/"),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "127.0.0.1",
        "PORT": str(u.port or 5432),
        "CONN_MAX_AGE": 0,
        "OPTIONS": {},
    }
    if DB_CONN == "per-request":
        pass  # a new PostgreSQL connection for every request: the original study's setting
    elif DB_CONN == "persistent":
        db["CONN_MAX_AGE"] = 60
        db["CONN_HEALTH_CHECKS"] = True  # Django 4.1+; older versions ignore the key
    elif DB_CONN == "pool":
        if not versions.POOL or PG_DRIVER != "psycopg":
            raise ImproperlyConfigured(
                "ASGIBENCH_DB_CONN=pool needs Django >= 5.1 with psycopg 3 "
                f"(this env: Django {django.get_version()}, driver {PG_DRIVER})"
            )
        # Django's psycopg 3 pool: connections are shared by the threads/tasks of one worker process,
        # so ASGI rows stay at POOL_SIZE backends per worker instead of one per request thread.
        db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": POOL_SIZE, "timeout": 30}
    else:
        raise ImproperlyConfigured(f"ASGIBENCH_DB_CONN must be per-request, persistent or pool, not {DB_CONN!r}")
    return db


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "circus",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files in WSGI and ASGI alike; dropped below unless STATIC_SERVER is whitenoise.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if STATIC_SERVER != "whitenoise":
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "benchproject.urls"
WSGI_APPLICATION = "benchproject.wsgi.application"
ASGI_APPLICATION = "benchproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # Cached template loader is Django's default when DEBUG is off.
        },
    }
]

# The admin login in the load flow checks a password on every iteration. Django's default PBKDF2
# (1,000,000 iterations, ~0.3-0.5 s of CPU) would turn the CPU scenario into a key-stretching
# benchmark; the seeded superuser's hash uses this cheaper PBKDF2 instead (documented in README).
PASSWORD_HASHERS = [
    "circus.hashers.BenchPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = benchcontract.STATIC_URL  # "/static/"
# A str, not a Path: dj-static's Cling returns 500 on static files when STATIC_ROOT is a Path.
STATIC_ROOT = os.environ.get("ASGIBENCH_STATIC_ROOT") or os.path.join(os.path.dirname(__file__), "..", "staticfiles")
STATIC_ROOT = os.path.abspath(STATIC_ROOT)

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

REST_FRAMEWORK = {
    "DEFAULT_PAGINATION_CLASS": "circus.pagination.ContractPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
