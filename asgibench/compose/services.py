"""What each compose/compose.yaml service runs, computed by the local runner's own code so the two
cannot drift: the row's command line (server.build_command, the gunicorn version read from the
row's lock file), its environment (server.ServerSpec.environment() for the image's interpreter, host
paths mapped to /app, the connection strategy resolved by policy.resolve_db_conn as `bench` resolves
it), PostgreSQL's knobs (database.SETTINGS), the Locust workers (loadgen.worker_command).

Knobs a user may change at `docker compose` time are compose variables whose defaults are exactly
what the local runner would use: `${WORKERS:-2}`, `${DB_CONN:-pool}`, `${PG_MAX_CONNECTIONS:-400}`...
A new service is one function returning its mapping and one entry in services(); a new knob, a
var(...) where its value is written.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from types import SimpleNamespace

from asgibench import ROOT, apps, database, envs, loadgen, policy, variants
from asgibench.errors import UsageError
from asgibench.server import ServerSpec, build_command

DOCKERFILE = "compose/Dockerfile"  # relative to the build context, the repository root (`context: ..`)

DEFAULT_PYTHON = "3.11"  # the Dockerfile's PYTHON_VERSION default; the design's default interpreter
DEFAULT_WORKERS = 2  # rows whose workers = CPU count: compose cannot count CPUs (override: WORKERS=N)
DEFAULT_TARGET = "gunicorn-eventlet"  # the load's default row: the README's main job
DEFAULT_LOCUST_WORKERS = 2
RUNNER_GROUP = "runner"
MIGRATE_GROUP = "django"  # migrations and the seed run in the django group, as database.prepare does

CONTAINER_ROOT = "/app"  # the repository's files in the image (services/, locustfiles/, asgibench/, envs/lock/)
IMAGE_PREFIX = "/usr/local"  # `uv pip sync --system` installs into the image's interpreter
PORT = 8000
PG_SERVICE = "postgres"
PG_IMAGE = "postgres:15"
DATABASE_URL = f"postgresql://{database.DB_USER}@{PG_SERVICE}:5432/{database.DB_NAME}"
LOAD_PROFILE = "load"
# Set by the image's interpreter and PATH, not by a variable: dropped from base_env's output.
HOST_ONLY_ENV = ("PATH", "VIRTUAL_ENV")

MASTER_PORT = 5557  # Locust's default, inside the compose network only


def var(name: str, default) -> str:
    """A compose variable with its default: `${NAME:-default}`."""
    return f"${{{name}:-{default}}}"


def pg_var(setting: str) -> str:
    return "PG_" + setting.upper()


# -- what the local runner would do, for the image --------------------------------------------------

@functools.cache
def lock_packages(group: str, python: str) -> dict:
    """name -> version from the committed lock file (what `uv pip sync` installs). Read-only."""
    out = {}
    for line in envs.lock_file(group, python).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            out[envs._norm(m.group(1))] = m.group(2)
    return out


def image_env(group: str, python: str) -> envs.Env:
    """The env a container of this image runs: the image's interpreter, the lock's packages."""
    return envs.Env(group, python, Path(IMAGE_PREFIX), lock_packages(group, python))


def to_container(env: dict) -> dict:
    """base_env's output for the image: host paths of the checkout -> /app, PATH/VIRTUAL_ENV dropped."""
    out = {k: str(v).replace(str(ROOT), CONTAINER_ROOT) for k, v in env.items() if k not in HOST_ONLY_ENV}
    leaked = [k for k, v in out.items() if str(ROOT) in v]
    if leaked:  # pragma: no cover - a host path the mapping missed would break the container
        raise RuntimeError(f"host paths left in {leaked}")
    return out


def image_environment(group: str = MIGRATE_GROUP, python: str = DEFAULT_PYTHON) -> dict:
    """What every container of the image gets from base_env (the Dockerfile's ENV lines)."""
    env = to_container(apps.base_env(image_env(group, python), database_url=DATABASE_URL))
    env.pop("DATABASE_URL")
    return env


def allowed(row: variants.Variant, python: str) -> bool:
    try:
        policy.python_allowed(row, python)
        envs.lock_file(row.env, python)
        envs.lock_file(MIGRATE_GROUP, python)
    except UsageError:
        return False
    return True


def row_python(row: variants.Variant, python: str) -> str:
    """The chosen Python, or (a row whose constraint excludes it) the lowest locked one it allows."""
    if allowed(row, python):
        return python
    for v in envs.locked_pythons(row.env):
        if allowed(row, v):
            return v
    raise UsageError(f"{row.name}: no locked Python satisfies {row.python!r}")


def default_workers(row: variants.Variant) -> int:
    return row.workers if row.workers is not None else DEFAULT_WORKERS


def row_command(row: variants.Variant, python: str) -> list:
    """THE command line (server.build_command, as the local runner), with ${WORKERS:-N}."""
    env = image_env(row.env, python)
    return build_command(row, bin_dir="", host="0.0.0.0", port=PORT, workers=var("WORKERS", default_workers(row)),
                         gunicorn_version=env.version("gunicorn"))


def row_environment(row: variants.Variant, python: str) -> dict:
    """ServerSpec.environment() for the image, plus the service name as an allowed host."""
    env = image_env(row.env, python)
    db_conn, _ = policy.resolve_db_conn(row, SimpleNamespace(db_conn=None), env)
    spec = ServerSpec(row, env, port=PORT, workers=default_workers(row), db_conn=var("DB_CONN", db_conn),
                      pool_size=var("POOL_SIZE", policy.DEFAULT_POOL_SIZE), database_url=DATABASE_URL)
    out = to_container(spec.environment())
    # Locust sends Host: <row>:8000; settings.py adds ASGIBENCH_ALLOWED_HOSTS to its loopback list.
    out["ASGIBENCH_ALLOWED_HOSTS"] = f"{row.name},{var('ALLOWED_HOSTS', '')}"
    return out


def probe_url(row: variants.Variant, host: str = "127.0.0.1", port: int = PORT) -> str:
    return f"http://{host}:{port}{row.io_probe}?seconds=0"


def override_pythons(python: str = DEFAULT_PYTHON) -> list[str]:
    """PYTHON_VERSION values a user may pass to this file unchanged: every row that follows the
    variable is allowed there and gets the same command line and environment as for `python`."""
    rows = [r for r in variants.VARIANTS if row_python(r, python) == python]
    candidates = sorted({v for r in rows for v in envs.locked_pythons(r.env)},
                        key=lambda v: tuple(map(int, v.split("."))))
    out = []
    for v in candidates:
        if all(allowed(r, v) and row_command(r, v) == row_command(r, python)
               and row_environment(r, v) == row_environment(r, python) for r in rows):
            out.append(v)
    return out


def runner_python(python: str) -> str:
    return python if python in envs.locked_pythons(RUNNER_GROUP) else DEFAULT_PYTHON


# -- the compose model ----------------------------------------------------------------------------


def build(group: str, python_arg: str) -> dict:
    args = {"PYTHON_VERSION": python_arg, "ENV_GROUP": group}
    if group == RUNNER_GROUP:  # Locust writes into the bind-mounted results/ as this uid
        args["APP_UID"] = var("APP_UID", 1000)
    return {"context": "..", "dockerfile": DOCKERFILE, "args": args}


def image(group: str, python_arg: str) -> str:
    return f"asgibench-{group}:py{python_arg}"


def _postgres() -> dict:
    command = ["postgres"]
    for k, v in database.SETTINGS.items():
        command += ["-c", f"{k}={var(pg_var(k), v)}"]
    user, db = database.DB_USER, database.DB_NAME
    return {
        "image": PG_IMAGE,
        "command": command,
        "environment": {"POSTGRES_USER": user, "POSTGRES_DB": db, "POSTGRES_HOST_AUTH_METHOD": "trust"},
        "shm_size": "256mb",
        "ports": [f"127.0.0.1:{var('PG_PORT', 55432)}:5432"],
        "volumes": ["pgdata:/var/lib/postgresql/data"],
        # -h 127.0.0.1: the image's init phase runs a socket-only server that must not count as ready
        "healthcheck": {"test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", user, "-d", db],
                        "interval": "2s", "timeout": "5s", "retries": 30, "start_period": "60s"},
    }


def _migrate(python: str) -> dict:
    arg = var("PYTHON_VERSION", python)
    script = ("python manage.py migrate --noinput -v 0 && "
              f"python manage.py populate_test_db --scale {var('SCALE', 1)}")  # database.prepare's two steps
    return {
        "profiles": [r.name for r in variants.VARIANTS],
        "build": build(MIGRATE_GROUP, arg),
        "image": image(MIGRATE_GROUP, arg),
        "environment": {"DATABASE_URL": DATABASE_URL},
        "command": ["sh", "-c", script],
        "depends_on": {PG_SERVICE: {"condition": "service_healthy"}},
    }


def _row(r: variants.Variant, python: str) -> tuple[list[str], dict]:
    rpy = row_python(r, python)
    arg = var("PYTHON_VERSION", python) if rpy == python else rpy
    comment = [f"{r.family} | {r.server}{' ' + r.worker if r.worker else ''} | env {r.env} | {r.notes}"]
    if r.no_async:
        comment.append(f"no /async_api/: {r.no_async}")
    if rpy != python:
        comment.append(f"Python {rpy}: this row needs Python {r.python}")
    probe = f"import urllib.request; urllib.request.urlopen({probe_url(r)!r}, timeout=5)"
    return comment, {
        "profiles": [r.name],
        "build": build(r.env, arg),
        "image": image(r.env, arg),
        "init": True,
        "environment": row_environment(r, rpy),
        "command": row_command(r, rpy),
        "ports": [f"127.0.0.1:{var('SERVER_PORT', PORT)}:{PORT}"],
        "healthcheck": {"test": ["CMD", "python", "-c", probe],
                        "interval": "5s", "timeout": "10s", "retries": 3, "start_period": "120s"},
        "depends_on": {"migrate": {"condition": "service_completed_successfully"}},
    }


def _locust(python: str, command: list, **extra) -> dict:
    rpy = runner_python(python)
    return {
        "profiles": [LOAD_PROFILE],
        "build": build(RUNNER_GROUP, rpy),
        "image": image(RUNNER_GROUP, rpy),
        "init": True,
        "working_dir": CONTAINER_ROOT,
        "command": command,
        "volumes": ["../results:/app/results"],
        **extra,
    }


def services(python: str = DEFAULT_PYTHON) -> dict:
    """name -> (comment lines, service mapping), in file order."""
    workers = var("LOCUST_WORKERS", DEFAULT_LOCUST_WORKERS)
    master = ["python", "-m", "asgibench.compose", "locust-master", var("TARGET", DEFAULT_TARGET),
              "--expect-workers", workers,
              "--load-args=" + var("LOAD_ARGS", "")]  # with "=": a value such as "--async" is not an option
    out = {
        PG_SERVICE: (["PostgreSQL with database.SETTINGS as PG_* variables (the original's shared_buffers and",
                      "max_connections knobs), on 127.0.0.1:PG_PORT for the local runner too (DATABASE_URL)."],
                     _postgres()),
        "migrate": (["One-shot: Django's migrations and the deterministic seed (SCALE = `bench --scale`), in every",
                     "row's profile but not in `load`, so starting the load never reseeds under a running server."],
                    _migrate(python)),
    }
    for r in variants.VARIANTS:
        out[r.name] = _row(r, python)
    out["locust-master"] = (
        ["The load: waits for the row, then `asgibench bench TARGET --target http://TARGET:8000 --remote-workers",
         "LOCUST_WORKERS LOAD_ARGS` as Locust master: contract check against the database, warm-up, the row's",
         "flow, results/<row>/<run-id>/ (meta.json, Locust's CSVs and report, exact timings)."],
        _locust(python, master, environment={"DATABASE_URL": DATABASE_URL}, stop_grace_period="30s",
                depends_on={PG_SERVICE: {"condition": "service_healthy"}}))
    out["locust-worker"] = (
        ["LOCUST_WORKERS Locust workers (LOCUST_WORKERS also sizes --scale locust-worker=N): the master sends",
         "them the run's options; they write timings.worker<i>.bin into its run folder."],
        _locust(python, worker_command(), deploy={"replicas": workers},
                depends_on={"locust-master": {"condition": "service_started"}}))
    return out


def worker_command() -> list[str]:
    """loadgen.worker_command for the image: both locust files (the master's scenario may be a ramp)."""
    plan = loadgen.LoadPlan(scenario=loadgen.DEFAULT_SCENARIO, flow="api", master_port=MASTER_PORT)
    assert plan.is_shape  # a ramp: shapes.py is loaded too
    cmd = loadgen.worker_command(plan, "locust-master")
    return ["locust"] + [str(c).replace(str(ROOT), CONTAINER_ROOT) for c in cmd[1:]]

