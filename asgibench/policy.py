"""What a row can serve and run: every refusal of a request that makes no sense for the chosen row,
its Python, its env or its database, with the reason, before (or as soon as) it can be known.

  check_request    the request against the row (async views, slowapi, admin, --db-conn, workers)
                   and every number against bounds.BOUNDS
  capability       the row on (Python, Django): its lock, and the packages its fields need in it
                   (variants.requirements: ASGI needs Django >= 3.0, -k asgi gunicorn >= 24, ...),
                   the row as it runs there (no /async_api/ before 3.1, psycopg2 before 4.2)
  row_django       the --django a row's env gets (None for rows that do not use Django)
  migration_cells  the `make migration` preset: the study's path, each Django step on the oldest
                   Python that runs all of its rows (derived from capability)
  python_allowed   the row's Python constraint
  resolve_db_conn  the connection strategy a server gets, and why (Django's pool needs >= 5.1)
  pool_size_for    the pool per worker process (DEFAULT_POOL_SIZE, the io scenario's users)
  check_db_pinning --pin db=... needs a PostgreSQL asgibench runs
  PLACEMENT_DEFAULT the documented CPU placement when nothing is pinned

A new rule about what a row can run goes here (a UsageError with a one-line reason), called from
check_request when it needs only the request, or from the pipeline step that first knows its input.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import benchcontract as bc
from asgibench import bounds, envs, loadgen, variants
from asgibench.errors import UsageError

# Per worker process; the default users (10) never wait for a connection. Measured: with a pool of 4,
# 10 users of the I/O probe reached ~3.7 req/s instead of ~10: the pool, not the server, was measured.
DEFAULT_POOL_SIZE = 10

# The documented default: no pinning. On 2 cores, giving Locust a core of its own takes half the
# machine from server + PostgreSQL; we measure the generator instead and flag saturated runs. On
# larger machines, --pin server=0-N,db=...,locust=M isolates them (the README shows how).
PLACEMENT_DEFAULT = "server, PostgreSQL and Locust share every CPU; generator CPU is measured and flagged"


def pool_size_for(io_users: int) -> int:
    """The I/O scenario measures the server's concurrency, not the pool's: with fewer pooled
    connections than waiting users, requests queue for a connection (measured: 8 x 0.5 s took 1.03 s
    with a pool of 4, 0.55 s with 10)."""
    return min(max(io_users, DEFAULT_POOL_SIZE), 100)


def check_request(variant, opts) -> None:
    """Refuse, with the reason, what a row cannot serve (before anything starts). `opts` is an
    options.BenchOptions."""
    plan = opts.plan
    if plan.api_prefix == bc.ASYNC_API_PREFIX and "async_api" not in variant.serves:
        why = variant.no_async or "this row does not serve Django's async views"
        raise UsageError(f"{variant.name} does not serve /async_api/: {why}")
    # the slowapi steps are /slowapi/slowapi/ and /slowapi/slowapi/django-async-orm/ (locustfiles/workload.py)
    if (plan.with_slowapi or plan.only_slowapi) and not {"slowapi", "slowapi_orm"} <= variant.serves:
        raise UsageError(f"{variant.name} does not serve the slowapi app with Django's async ORM "
                         "(choose a *-slowapi* or *mounted* row)")
    if plan.flow == "original" and "admin" not in variant.serves:
        raise UsageError(f"{variant.name} serves no Django admin: use the api flow")
    if opts.db_conn and opts.db_conn not in variants.DB_CONN_STRATEGIES:
        raise UsageError(f"--db-conn must be one of {', '.join(variants.DB_CONN_STRATEGIES)}")
    if opts.db_conn and variant.own_pool:
        raise UsageError(f"{variant.name} holds its own pool (size: --pool-size); --db-conn does not apply")
    if opts.db_conn == "pool" and variant.pg_driver == "psycopg2":
        raise UsageError(f"{variant.name} uses psycopg2, which has no Django pool: use persistent or per-request")
    if opts.workers not in (None, 1) and variant.server == "daphne":
        raise UsageError(f"{variant.name}: daphne runs one process and has no workers option")
    for name, value in (("workers", opts.workers), ("port", opts.port), ("pool_size", opts.pool_size),
                        ("scale", opts.scale), ("trials", opts.trials), ("warmup", opts.warmup)):
        bounds.check(name, value)
    loadgen.validate(plan)


@dataclasses.dataclass(frozen=True)
class Fit:
    """A row on (Python, Django): the lock its env is built from and the row as it runs there."""

    variant: variants.Variant  # serves / pg_driver / no_async as on this Django
    python: str
    lock: Path
    packages: dict
    django: str | None  # the locked Django version ("2.2.28"); None: the row does not use Django

    def django_record(self, requested: str | None) -> dict:
        """meta.json's "django" (contract: {"requested", "version"})."""
        return {"requested": requested, "version": self.django}


def _vtuple(version: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def row_django(variant, django: str | None, python: str) -> str | None:
    """The Django asked of a row's env (--django, else the Python's default: envs.default_django);
    None for rows that do not use Django: they are unaffected (their group's default lock)."""
    if not variants.uses_django(variant):
        return None
    return envs.parse_django(django) or envs.default_django(python)


def _marker_note(lock: Path, package: str) -> str:
    """Where the .in the lock came from installs `package` only under a marker, that marker."""
    m = re.search(r"uv pip compile (\S+\.in)", lock.read_text())
    ins = [Path(envs.ROOT / m.group(1))] if m else []
    for path in ins:
        text = path.read_text() if path.exists() else ""
        ins += [path.parent / r for r in re.findall(r"^-r\s+(\S+)", text, re.M)]
        hit = re.search(rf"^{re.escape(package)}\b[^;\n]*;\s*([^#\n]+)", text, re.M)
        if hit:
            return f" (envs/{path.name} installs it where {hit.group(1).strip()})"
    return ""


def capability(variant, python: str, django: str | None = None) -> Fit:
    """The row on Python `python` with Django `django` (None: that Python's default), or a UsageError
    (one line) saying why it cannot run there: no lock, Django not on that Python, or a package its fields
    need missing or too old in the lock (derived: variants.requirements)."""
    dj = row_django(variant, django, python)
    lock = envs.lock_file(variant.env, python, dj)
    pkgs = envs.locked_packages(lock)
    for package, minimum, why in variants.requirements(variant):
        have = pkgs.get(package)
        if have is None:
            raise UsageError(f"{variant.name} needs {package} ({why}); {lock.name} has none"
                             f"{_marker_note(lock, package)}")
        if minimum and _vtuple(have) < minimum:
            need = ".".join(map(str, minimum))
            raise UsageError(f"{variant.name} needs {package} >= {need} ({why}); {lock.name} has {have}")
    python_allowed(variant, python)
    version = pkgs.get("django") if variants.uses_django(variant) else None
    vt = _vtuple(version) if version else ()
    served = variants.served_on(variant, vt)
    no_async = variant.no_async
    if "async_api" in variant.serves and "async_api" not in served:
        no_async = f"Django {version} has no async views (3.1+)"
    fitted = dataclasses.replace(variant, serves=served, pg_driver=variants.pg_driver_on(variant, vt),
                                 no_async=no_async)
    return Fit(fitted, python, lock, pkgs, version)


# The study's path: where the team starts (Django 2.2, WSGI, gunicorn + eventlet), its target on 3.2 (ASGI,
# async views, FastAPI beside Django), then the same rows on each later LTS and the current release.
MIGRATION_TARGET_ROWS = ("gunicorn-eventlet", "gunicorn-uvicornworker", "uvicorn", "uvicorn+async",
                         "asgi-with-static", "fastapi-with-django-mounted-asgi")
MIGRATION_PATH = (("2.2", ("gunicorn-eventlet", "gunicorn-sync")),) + tuple(
    (dj, MIGRATION_TARGET_ROWS) for dj in ("3.2", "4.2", "5.2", "6.1"))
ASYNC_SUFFIX = "+async"  # a cell running the row's API steps on /async_api/ (--async)


def cell(row: str, django: str, python: str) -> str:
    """A matrix cell: ROW[+async]@DJANGO/PYTHON (a row on one step of the migration)."""
    return f"{row}@{django}/{python}"


def parse_cell(text: str) -> tuple[str, bool, str | None, str | None]:
    """(row, async views?, Django or None, Python or None) of a matrix cell or a plain row name."""
    name, _, at = text.partition("@")
    django, _, python = at.partition("/")
    row = name[:-len(ASYNC_SUFFIX)] if name.endswith(ASYNC_SUFFIX) else name
    return row, name.endswith(ASYNC_SUFFIX), django or None, python or None


def migration_cells(python: str | None = None) -> list[str]:
    """The `make migration` cells: each step's rows on `python` if given, else on the oldest Python of
    that Django on which every row of the step runs (policy.capability); a step none fits is refused."""
    out = []
    for django, rows in MIGRATION_PATH:
        pythons = [python] if python else list(envs.DJANGO_PYTHONS[django])
        why = ""
        for py in pythons:
            try:
                for r in rows:
                    capability(variants.get(parse_cell(r)[0]), py, django)
            except UsageError as e:
                why = str(e)
                continue
            out += [cell(r, django, py) for r in rows]
            break
        else:
            raise UsageError(f"migration step Django {django}: no Python runs all its rows ({why})")
    return out


def python_allowed(variant, version: str) -> None:
    spec = variant.python
    if spec.startswith(">="):
        need = tuple(map(int, spec[2:].split(".")))
        if tuple(map(int, version.split("."))) < need:
            raise UsageError(f"{variant.name} needs Python {spec}, asked for {version}")


def resolve_db_conn(variant, opts, env) -> tuple[str, str]:
    """(strategy, why): the row's default unless overridden; Django's pool needs Django >= 5.1."""
    if opts.db_conn == "pool" and variant.pg_driver == "psycopg2":
        raise UsageError(f"{variant.name} uses psycopg2 here, which has no Django pool: use persistent or per-request")
    if variant.db_conn == "pool" and variant.pg_driver == "psycopg2" and not variant.own_pool and not opts.db_conn:
        return "persistent", "row default pool needs psycopg 3 (Django >= 4.2 and >= 5.1 for the pool): persistent"
    if opts.db_conn:
        if opts.db_conn == "pool" and env.has("django") and env.version("django") < (5, 1):
            raise UsageError(f"--db-conn pool needs Django >= 5.1; this env has Django {env.packages['django']}")
        return opts.db_conn, "--db-conn"
    if variant.db_conn == "pool" and env.has("django") and env.version("django") < (5, 1):
        return "persistent", f"row default pool needs Django >= 5.1 (env has {env.packages['django']}): persistent"
    return variant.db_conn, "row default"


def check_db_pinning(cpus: dict, db) -> None:
    """`db` is the database.Database the run opened: only the embedded cluster can be pinned."""
    if cpus.get("db") and not db.embedded:
        raise UsageError("--pin db=... needs the embedded PostgreSQL (asgibench cannot pin a DATABASE_URL server)")
