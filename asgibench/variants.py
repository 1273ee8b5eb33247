"""The variant registry: every way of serving the app is one declarative row.

Everything else derives from this table: Makefile targets (`bench-<name>`, `ui-<name>`), the CLI's
list, the contract check's endpoints, the Locust flow, compose services, the report's groups and the
tests' parametrisation. Adding a server or ORM = one row here (+ one app module if it is new).

Fields of a row (see `Variant`):
  name        the original study's name where it had one (its users recognise them)
  family      report group: wsgi | asgi | fastapi | reference
  server      gunicorn | uvicorn | hypercorn | daphne | granian (how server.py builds the command)
  app         module:attribute, importable with PYTHONPATH=services:services/django_app
  interface   wsgi | asgi (what `app` is)
  env         env group (envs/<group>.in, locked per Python in envs/lock/)
  worker      gunicorn worker class (-k), for gunicorn rows
  workers     default worker processes; None = the CPU count
  serves      endpoint sets: admin, api, async_api, slowapi, static (the contract check covers exactly these)
  io_probe    path of the I/O probe (SELECT pg_sleep(S)) this row serves
  db_conn     default database connection strategy: per-request | persistent | pool
  pg_driver   psycopg (3) | psycopg2 — for the Django app (psycopg 3 blocks under eventlet)
  no_async    why /async_api/ is not served (shown by `list` and the report), or ""
  python      interpreter constraint, e.g. ">=3.10" ("" = every Python the env group is locked for)
  extra_args  extra server command-line arguments
  env_vars    extra environment for the server process
  notes       what the row shows
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from asgibench.errors import UsageError

ENDPOINT_SETS = ("admin", "api", "async_api", "slowapi", "static")
DB_CONN_STRATEGIES = ("per-request", "persistent", "pool")
FAMILIES = ("wsgi", "asgi", "fastapi", "reference")
SERVERS = ("gunicorn", "uvicorn", "hypercorn", "daphne", "granian")

# Measured here: Django's async views under gunicorn's eventlet and gevent workers raise
# SynchronousOnlyOperation (500) on Python 3.8-3.13; DJANGO_ALLOW_ASYNC_UNSAFE only hides the check.
GREEN_NO_ASYNC = "green-thread worker: Django async views raise SynchronousOnlyOperation (500)"
DJANGO_SITE = frozenset({"admin", "api", "static"})


@dataclass(frozen=True)
class Variant:
    name: str
    family: str
    server: str
    app: str
    interface: str
    env: str
    serves: frozenset
    io_probe: str
    db_conn: str
    notes: str
    worker: str = ""
    workers: int | None = None
    pg_driver: str = "psycopg"
    no_async: str = ""
    python: str = ""
    extra_args: tuple = ()
    env_vars: dict = field(default_factory=dict)

    def __post_init__(self):
        assert self.family in FAMILIES, self.name
        assert self.server in SERVERS, self.name
        assert self.interface in ("wsgi", "asgi"), self.name
        assert self.db_conn in DB_CONN_STRATEGIES, self.name
        assert self.pg_driver in ("psycopg", "psycopg2"), self.name
        assert set(self.serves) <= set(ENDPOINT_SETS), self.name
        assert self.io_probe.startswith("/") and self.io_probe.endswith("/"), self.name

    @property
    def default_flow(self) -> str:
        """The Locust flow a plain `bench` runs: the original (admin login + API) where Django's
        admin is served, else the API-only flow."""
        return "original" if "admin" in self.serves else "api"

    def effective_workers(self, override: int | None = None) -> int:
        if override is not None:
            return override
        return self.workers if self.workers is not None else (os.cpu_count() or 1)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["serves"] = sorted(self.serves)
        d["extra_args"] = list(self.extra_args)
        return d


def _row(**kw) -> Variant:
    kw["serves"] = frozenset(kw["serves"])
    return Variant(**kw)


VARIANTS: tuple[Variant, ...] = (
    # ---- WSGI: Django's get_wsgi_application -------------------------------------------------------
    _row(
        name="gunicorn-eventlet",
        family="wsgi",
        server="gunicorn",
        worker="eventlet",
        workers=1,
        app="benchproject.wsgi:application",
        interface="wsgi",
        env="eventlet",
        serves=DJANGO_SITE,
        io_probe="/io/sleep/",
        db_conn="persistent",
        pg_driver="psycopg2",
        no_async=GREEN_NO_ASYNC,
        notes="the original study's production setup: 1 eventlet worker, psycopg2 (cooperative under eventlet)",
    ),
)

BY_NAME = {v.name: v for v in VARIANTS}


def get(name: str) -> Variant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown variant {name!r} (see `asgibench list`)") from None
