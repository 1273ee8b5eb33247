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
  own_pool    the app holds its own pool (ASGIBENCH_POOL_SIZE per worker): --db-conn does not apply
  python      interpreter constraint, e.g. ">=3.10" ("" = every Python the env group is locked for)
  extra_args  extra server command-line arguments
  env_vars    extra environment for the server process
  notes       what the row shows
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract as bc
from asgibench.errors import UsageError

# admin: /admin/login/ (Django admin); api: /api/clowncollege/ + /api/troupe/; async_api: /async_api/...;
# slowapi: /slowapi/slowapi/ + /slowapi/slowapi/sleep/; slowapi_orm: /slowapi/slowapi/django-async-orm/;
# static: /static/ (collected files)
ENDPOINT_SETS = ("admin", "api", "async_api", "slowapi", "slowapi_orm", "static")
DB_CONN_STRATEGIES = ("per-request", "persistent", "pool")
FAMILIES = ("wsgi", "asgi", "fastapi", "reference")
SERVERS = ("gunicorn", "uvicorn", "hypercorn", "daphne", "granian")

# Measured here: Django's async views under gunicorn's eventlet and gevent workers raise
# SynchronousOnlyOperation (500) on Python 3.8-3.13; DJANGO_ALLOW_ASYNC_UNSAFE only hides the check.
GREEN_NO_ASYNC = "green-thread worker: Django async views raise SynchronousOnlyOperation (500)"
DJANGO_SITE = frozenset({"admin", "api", "static"})


def default_flow_for(serves) -> str:
    """The Locust flow a plain `bench` runs on a row serving `serves` (its endpoint sets): the original
    flow (admin login + API) where Django's admin is served, else the API-only flow. Variant.default_flow
    and the report's row labels (from meta.json's "serves") both ask this."""
    return "original" if "admin" in serves else "api"


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
    own_pool: bool = False
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
        """The Locust flow a plain `bench` runs on this row (see default_flow_for)."""
        return default_flow_for(self.serves)

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


DJANGO_ASYNC_SITE = DJANGO_SITE | {"async_api"}
WSGI, ASGI = "benchproject.wsgi:application", "benchproject.asgi:application"
UVICORN_WORKER = "uvicorn_worker.UvicornWorker"  # the uvicorn-worker package (uvicorn.workers is deprecated)
SLOWAPI = frozenset({"slowapi", "slowapi_orm"})  # the original's slowapi app, mounted beside Django
FASTAPI_ONLY = frozenset({"api", "slowapi"})  # no Django: the API-only flow
PSYCOGREEN_CONF = ("--config", "gunicorn_conf/gevent_psycogreen.py")  # post_fork: psycogreen patch_psycopg()

VARIANTS: tuple[Variant, ...] = (
    # ---- WSGI: Django's get_wsgi_application -------------------------------------------------------
    _row(name="gunicorn-sync", family="wsgi", server="gunicorn", worker="sync", app=WSGI, interface="wsgi",
         env="django", serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="persistent",
         notes="the plain baseline: one request at a time per process, one persistent connection each"),
    _row(name="gunicorn-gthread", family="wsgi", server="gunicorn", worker="gthread", app=WSGI, interface="wsgi",
         env="django", serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool",
         extra_args=("--threads", "8"),
         notes="threads per process (8), like TechEmpower's Django entry; psycopg 3 pool shared by the threads"),
    _row(name="gunicorn-eventlet", family="wsgi", server="gunicorn", worker="eventlet", workers=1, app=WSGI,
         interface="wsgi", env="eventlet", serves=DJANGO_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="persistent",
         pg_driver="psycopg2", no_async=GREEN_NO_ASYNC,
         notes="the original study's production setup: 1 eventlet worker, psycopg2 (cooperative under eventlet)"),
    _row(name="gunicorn-gevent", family="wsgi", server="gunicorn", worker="gevent", workers=1, app=WSGI,
         interface="wsgi", env="django", serves=DJANGO_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="persistent",
         pg_driver="psycopg2", no_async=GREEN_NO_ASYNC, extra_args=PSYCOGREEN_CONF,
         notes="1 gevent worker (as eventlet); psycopg2 made cooperative by psycogreen in gunicorn's post_fork"),
    _row(name="gunicorn-eventlet-slowapi-wsgi", family="wsgi", server="gunicorn", worker="eventlet", workers=1,
         app="benchproject.wsgi_slowapi:application", interface="wsgi", env="eventlet",
         serves=DJANGO_SITE | SLOWAPI, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="persistent",
         pg_driver="psycopg2", no_async=GREEN_NO_ASYNC,
         notes="the original's 'keep the WSGI app, mount FastAPI at /slowapi' (werkzeug dispatcher + a2wsgi)"),
    _row(name="gunicorn-eventlet-slowapi-wsgi-w2", family="wsgi", server="gunicorn", worker="eventlet", workers=2,
         app="benchproject.wsgi_slowapi:application", interface="wsgi", env="eventlet",
         serves=DJANGO_SITE | SLOWAPI, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="persistent",
         pg_driver="psycopg2", no_async=GREEN_NO_ASYNC, notes="the same with 2 eventlet workers, as the original"),
    _row(name="gunicorn-gevent-slowapi-wsgi-psycogreen", family="wsgi", server="gunicorn", worker="gevent", workers=1,
         app="benchproject.wsgi_slowapi:application", interface="wsgi", env="django",
         serves=DJANGO_SITE | SLOWAPI, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="persistent",
         pg_driver="psycopg2", no_async=GREEN_NO_ASYNC, extra_args=PSYCOGREEN_CONF,
         notes="the slowapi mount under gevent, psycopg2 patched by psycogreen"),
    _row(name="granian-wsgi", family="wsgi", server="granian", app=WSGI, interface="wsgi", env="django",
         serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool",
         notes="granian's Rust HTTP server driving the WSGI app on its blocking threads; psycopg 3 pool"),
    # ---- ASGI: Django's get_asgi_application -------------------------------------------------------
    _row(name="uvicorn", family="asgi", server="uvicorn", app=ASGI, interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool",
         notes="uvicorn's own --workers (uvloop, httptools); Django's psycopg 3 pool keeps backends bounded"),
    _row(name="gunicorn-uvicornworker", family="asgi", server="gunicorn", worker=UVICORN_WORKER, app=ASGI,
         interface="asgi", env="django", serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool",
         notes="gunicorn managing uvicorn workers (uvicorn-worker package)"),
    _row(name="gunicorn-asgi", family="asgi", server="gunicorn", worker="asgi", app=ASGI, interface="asgi",
         env="django", serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool", python=">=3.10",
         notes="gunicorn's own asgi worker (gunicorn >= 24; the 3.8/3.9 pins have gunicorn 23)"),
    _row(name="asgi-with-static", family="asgi", server="gunicorn", worker=UVICORN_WORKER,
         app="benchproject.asgi_static:application", interface="asgi", env="django", serves=DJANGO_ASYNC_SITE,
         io_probe=bc.IO_SLEEP_PATH, db_conn="pool", env_vars={"ASGIBENCH_STATIC_SERVER": "django"},
         notes="the original's: Django's ASGIStaticFilesHandler serves /static/ under gunicorn + UvicornWorker"),
    _row(name="asgi-with-static-gunicorn-w18", family="asgi", server="gunicorn", worker=UVICORN_WORKER, workers=18,
         app="benchproject.asgi_static:application", interface="asgi", env="django", serves=DJANGO_ASYNC_SITE,
         io_probe=bc.IO_SLEEP_PATH, db_conn="pool", env_vars={"ASGIBENCH_STATIC_SERVER": "django"},
         notes="the same with 18 workers, as the original ran in production (oversubscribed on small machines)"),
    _row(name="uvicorn-wsgimiddleware-with-cling", family="asgi", server="gunicorn", worker=UVICORN_WORKER,
         app="benchproject.asgi_cling:application", interface="asgi", env="django", serves=DJANGO_ASYNC_SITE,
         io_probe=bc.IO_SLEEP_PATH, db_conn="pool", env_vars={"ASGIBENCH_STATIC_SERVER": "cling"},
         notes="the original's: the WSGI app wrapped by dj-static's Cling, through a2wsgi's WSGIMiddleware"),
    _row(name="hypercorn", family="asgi", server="hypercorn", app=ASGI, interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool", notes="hypercorn's --workers (asyncio)"),
    _row(name="daphne", family="asgi", server="daphne", workers=1, app=ASGI, interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool",
         notes="Channels' server: one process, it has no workers option (WORKERS=N is refused)"),
    _row(name="granian-asgi", family="asgi", server="granian", app=ASGI, interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE, io_probe=bc.IO_SLEEP_PATH, db_conn="pool", notes="granian's Rust HTTP server, ASGI"),
    # ---- FastAPI beside and instead of Django (same tables, same JSON) ---------------------------------
    _row(name="fastapi-with-django-mounted-asgi", family="fastapi", server="gunicorn", worker=UVICORN_WORKER,
         app="benchproject.fastapi_mounts_django:app", interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE | SLOWAPI, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         notes="the original's: a FastAPI app with Django's ASGI app mounted at /, gunicorn + UvicornWorker"),
    _row(name="django-with-fastapi-mounted-asgi", family="fastapi", server="uvicorn",
         app="benchproject.asgi_slowapi:application", interface="asgi", env="django",
         serves=DJANGO_ASYNC_SITE | SLOWAPI, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         notes="the reverse: an ASGI router sends /slowapi to FastAPI, the rest to Django"),
    _row(name="fastapi-sync", family="fastapi", server="uvicorn", app="fastapi_app.sync_psycopg:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True,
         notes="plain def endpoints on FastAPI's threadpool, psycopg 3 ConnectionPool (waits when exhausted)"),
    _row(name="fastapi-asyncpg", family="fastapi", server="uvicorn", app="fastapi_app.fastapi_asyncpg:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True, notes="FastAPI + raw asyncpg queries: what the framework costs over the raw ceiling"),
    _row(name="fastapi-sqlalchemy-async", family="fastapi", server="uvicorn", app="fastapi_app.sqlalchemy_async:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True, notes="SQLAlchemy 2 asyncio + asyncpg, AsyncSession, eager loading (selectinload/joinedload)"),
    _row(name="fastapi-tortoise", family="fastapi", server="uvicorn", app="fastapi_app.tortoise_app:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True, python=">=3.10", notes="Tortoise ORM models mapped onto the Django tables (Python >= 3.10)"),
    _row(name="fastapi-gino", family="fastapi", server="uvicorn", app="fastapi_app.gino_app:app", interface="asgi",
         env="gino", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool", own_pool=True,
         notes="GINO 1.0.1 on SQLAlchemy 1.3 (its own env group), no gino-starlette"),
    _row(name="fastapi-django-orm", family="fastapi", server="uvicorn", app="fastapi_app.django_orm:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY | {"slowapi_orm"}, io_probe=bc.SLOWAPI_SLEEP_PATH,
         db_conn="pool", notes="FastAPI endpoints reading through Django's native async ORM (what slowapi tried)"),
    # ---- reference: no framework, the ceiling a Python stack reaches on these queries ------------------
    _row(name="raw-asgi-asyncpg", family="reference", server="uvicorn", app="fastapi_app.raw_asyncpg:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True,
         notes="ceiling: a bare ASGI callable + asyncpg pool + orjson under uvicorn (uvloop, httptools)"),
    _row(name="raw-asgi-asyncpg-granian", family="reference", server="granian", app="fastapi_app.raw_asyncpg:app",
         interface="asgi", env="django", serves=FASTAPI_ONLY, io_probe=bc.SLOWAPI_SLEEP_PATH, db_conn="pool",
         own_pool=True, notes="the same ceiling app under granian"),
)

BY_NAME = {v.name: v for v in VARIANTS}


# ---- capability: what a row needs of its env, derived from its fields and its app's imports ---------
# policy.capability checks these against the env's locked packages (envs.locked_packages), so a new row
# needs no hand-written list of the Djangos / Pythons it runs on. A requirement is (package, minimum
# version, why); () = any version.
SERVICES = Path(__file__).resolve().parent.parent / "services"
APP_DIRS = (SERVICES, SERVICES / "django_app")
IMPORT_DIST = {"dj_static": "dj-static", "tortoise": "tortoise-orm", "psycopg2": "psycopg2-binary",
               "psycopg_pool": "psycopg-pool", "rest_framework": "djangorestframework",
               "uvicorn_worker": "uvicorn-worker"}
WORKER_PACKAGE = {"eventlet": "eventlet", "gevent": "gevent", UVICORN_WORKER: "uvicorn"}
ASGI_DJANGO = (3, 0)       # Django 3.0: django.core.asgi
ASYNC_VIEWS_DJANGO = (3, 1)  # Django 3.1: async views (/async_api/)
ASYNC_ORM_DJANGO = (4, 1)  # Django 4.1: QuerySet.acount(), async for
PSYCOPG3_DJANGO = (4, 2)   # Django 4.2: the psycopg 3 backend
GUNICORN_ASGI = (24,)      # gunicorn 24.0: its own -k asgi worker


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for base in APP_DIRS:
        for cand in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
            if cand.exists():
                return cand
    return None


def _guarded(node, parents) -> bool:
    return any(isinstance(p, (ast.If, ast.Try)) for p in parents.get(node, ()))


def app_imports(module: str) -> frozenset:
    """The third-party distributions `module` (an app module under services/) imports, following the
    project's own modules; imports under an `if` or `try` are version guards, not requirements."""
    return _closure(module)[0]


def app_files(module: str) -> frozenset:
    """The project's own files `module` imports (itself included): what its env's Python must parse."""
    return _closure(module)[1]


@functools.lru_cache(maxsize=None)
def _closure(module: str) -> tuple:
    seen, dists, todo, files = set(), set(), [module], set()
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    while todo:
        mod = todo.pop()
        path = _module_file(mod)
        if mod in seen or path is None:
            continue
        seen.add(mod)
        files.add(path)
        tree = ast.parse(path.read_text())
        parents = {}
        stack = [(tree, [])]
        while stack:  # each node with its ancestors, to tell guarded imports apart
            node, anc = stack.pop()
            for child in ast.iter_child_nodes(node):
                parents[child] = anc + [node]
                stack.append((child, anc + [node]))
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in parents:
            if _guarded(node, parents):
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1])
                    names = [f"{base}.{node.module}" if node.module else f"{base}.{a.name}" for a in node.names]
                else:
                    names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if _module_file(top) is not None:
                    todo.append(name)
                elif top not in stdlib and top != "__future__":
                    dists.add(IMPORT_DIST.get(top, top.replace("_", "-")))
    return frozenset(dists), frozenset(files)


def uses_django(v: Variant) -> bool:
    """Whether Django serves or reads anything on this row (its app imports Django)."""
    return "django" in app_imports(v.app.split(":")[0])


def native_async_orm(v: Variant) -> bool:
    """The FastAPI row reading through Django's async ORM itself (not through a benchproject entry module,
    whose slowapi app falls back to sync_to_async before 4.1)."""
    return "slowapi_orm" in v.serves and not v.app.startswith("benchproject.")


def requirements(v: Variant) -> list[tuple[str, tuple, str]]:
    """(package, minimum version, why) this row needs in its env, derived from its fields (Django's
    first: on an old Django, that is the reason a row cannot run)."""
    out = []
    if uses_django(v):
        out.append(("django", (), "the Django app"))
        if v.interface == "asgi":
            out.append(("django", ASGI_DJANGO, "ASGI: django.core.asgi"))
        if native_async_orm(v):
            out.append(("django", ASYNC_ORM_DJANGO, "Django's async ORM: acount, async for"))
    out.append((v.server, (), f"the {v.server} server"))
    if v.worker in WORKER_PACKAGE:
        out.append((WORKER_PACKAGE[v.worker], (), f"gunicorn's {v.worker} worker"))
    if v.worker == "asgi":
        out.append(("gunicorn", GUNICORN_ASGI, "gunicorn's own -k asgi worker"))
    if PSYCOGREEN_CONF[1] in v.extra_args:
        out.append(("psycogreen", (), "psycogreen in post_fork"))
    if v.pg_driver == "psycopg2":
        out.append(("psycopg2-binary", (), "the psycopg2 driver"))
    for dist in sorted(app_imports(v.app.split(":")[0]) - {"django"}):
        out.append((dist, (), f"{v.app.split(':')[0]} imports it"))
    return out


def served_on(v: Variant, django_version: tuple) -> frozenset:
    """The endpoint sets the row serves on that Django: no /async_api/ before async views (3.1)."""
    if uses_django(v) and django_version and django_version < ASYNC_VIEWS_DJANGO:
        return v.serves - {"async_api"}
    return v.serves


def pg_driver_on(v: Variant, django_version: tuple) -> str:
    """The driver the Django app really uses: psycopg2 before Django's psycopg 3 backend (4.2)."""
    if uses_django(v) and django_version and django_version < PSYCOPG3_DJANGO:
        return "psycopg2"
    return v.pg_driver


def get(name: str) -> Variant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown variant {name!r} (see `asgibench list`)") from None
