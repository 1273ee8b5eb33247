"""compose/ for Docker users, generated from the registry: `python -m asgibench compose` writes
compose/compose.yaml, `--check` fails when the checked-in file differs (tests/test_compose.py too).

What each service gets is computed by the local runner's own code, so the two cannot drift:
  - a row's command line is server.build_command(row, bin_dir="", host="0.0.0.0", port=8000, ...),
    the gunicorn version read from the row's lock file (envs/lock/<env>-py<X.Y>.txt);
  - its environment is server.ServerSpec.environment() (apps.base_env + the row's database settings)
    for the image's interpreter (/usr/local, host paths mapped to /app), the connection strategy
    resolved by policy.resolve_db_conn as `bench` resolves it;
  - PostgreSQL's knobs are database.SETTINGS; the load is `asgibench bench` itself (a --target with
    --remote-workers), the workers loadgen.worker_command's.
Knobs a user may change at `docker compose` time are compose variables whose defaults are exactly
what the local runner would use: `${WORKERS:-2}`, `${DB_CONN:-pool}`, `${PG_MAX_CONNECTIONS:-400}`...

The image (compose/Dockerfile) installs the SAME committed lock files as the local envs.

Inside the runner image, `python -m asgibench.compose locust-master ROW ...` is the locust-master
service: it waits for the row's I/O probe, then runs `asgibench bench ROW --target http://ROW:8000
--remote-workers N ...` (contract check, warm-up, Locust master of the locust-worker containers,
results/<row>/<run-id>/), the same code path as a local distributed run.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from asgibench import ROOT, apps, database, envs, policy, variants
from asgibench.errors import AsgibenchError, RunError, UsageError
from asgibench import server
from asgibench.server import ServerSpec, build_command

COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
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
READY_WAIT_SECONDS = 240.0  # below Locust workers' ~300 s of connection retries


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


# -- a small, deterministic YAML writer (PyYAML cannot write comments) -----------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
WIDTH = 118


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _key(k) -> str:
    return k if _PLAIN_KEY.match(k) else json.dumps(k)


def _flow(items, indent: int, lead: int) -> str:
    """[a, b, ...] wrapped at WIDTH; continuation lines are indented deeper than the key."""
    parts = [_scalar(i) for i in items]
    if not parts:
        return "[]"
    cont = " " * (indent + 4)
    lines, cur, used = [], "[", lead
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else "]")
        fresh = cur in ("[", cont)
        if not fresh and used + len(cur) + 1 + len(piece) > WIDTH:
            lines.append(cur)
            cur, used, fresh = cont, 0, True
        cur += piece if fresh else " " + piece
    lines.append(cur)
    return "\n".join(lines)


def _emit(mapping: dict, indent: int) -> list[str]:
    out = []
    pad = " " * indent
    for k, v in mapping.items():
        head = f"{pad}{_key(k)}:"
        if isinstance(v, dict):
            out += [head + " {}"] if not v else [head] + _emit(v, indent + 2)
        elif isinstance(v, (list, tuple)):
            out.append(f"{head} {_flow(v, indent, len(head) + 1)}")
        else:
            out.append(f"{head} {_scalar(v)}")
    return out


def header(python: str) -> list[str]:
    safe = override_pythons(python)
    text = f"""\
GENERATED by `python -m asgibench compose` (make compose) from the variant registry
(asgibench/variants.py): do not edit by hand. tests/test_compose.py fails when this file and the
registry differ. How to use it: compose/README.md.

  docker compose -f compose/compose.yaml --profile <row> up -d            postgres, migrate + seed, the row
  TARGET=<row> docker compose -f compose/compose.yaml --profile load up   Locust master + workers, results/

Variables (all optional; the defaults are what `asgibench bench` uses):
  PYTHON_VERSION {python} (valid here: {", ".join(safe)}, same command lines and environment; for another
    Python generate a file: `python -m asgibench compose --python X.Y`)
  WORKERS (the row's workers; {DEFAULT_WORKERS} where the row says "CPU count"), DB_CONN, POOL_SIZE,
    SCALE 1, SERVER_PORT 8000, ALLOWED_HOSTS
  PG_PORT 55432, {", ".join(f"{pg_var(k)} {v}" for k, v in database.SETTINGS.items())}
  TARGET {DEFAULT_TARGET}, LOAD_ARGS (bench's load options, e.g. "--scenario io --users 20"),
    LOCUST_WORKERS {DEFAULT_LOCUST_WORKERS}, APP_UID 1000 (owner of what Locust writes to results/)"""
    out = []
    for line in text.splitlines():
        out += _wrap_comment(line, "")
    return out


def _wrap_comment(text: str, pad: str) -> list[str]:
    if len(pad) + 2 + len(text) <= WIDTH or not text.strip():
        return [f"{pad}# {text}".rstrip()]
    lead = text[: len(text) - len(text.lstrip())]
    words, lines, cur = text.split(), [], lead
    for w in words:
        if cur.strip() and len(pad) + 2 + len(cur) + 1 + len(w) > WIDTH:
            lines.append(cur)
            cur = lead + "  " + w
        else:
            cur = (cur + " " + w) if cur.strip() else cur + w
    lines.append(cur)
    return [f"{pad}# {ln}" for ln in lines]


def render(python: str = DEFAULT_PYTHON) -> str:
    """compose/compose.yaml's text: deterministic (no clock, host or CPU count in it)."""
    python = envs.parse_python(python)
    envs.lock_file(MIGRATE_GROUP, python)  # a Python the django group is locked for (migrations, seed)
    lines = header(python) + ["", "name: asgibench", "", "services:"]
    for name, (comment, svc) in services(python).items():
        for c in comment:
            lines += _wrap_comment(c, "  ")
        lines += _emit({name: svc}, 2) + [""]
    lines += ["volumes:", "  pgdata: {}"]
    return "\n".join(lines) + "\n"


# -- the locust-master service (runs inside the runner image) --------------------------------------

def wait_ready(url: str, timeout: float) -> None:
    """Until the row answers its I/O probe: `up` of both profiles starts the master with the row."""
    problem = server.wait_ready(url, timeout, waiting=lambda last: print(f"asgibench: waiting for {url} ({last})",
                                                                         flush=True))
    if problem:
        raise RunError(f"{url} did not answer within {timeout:.0f}s ({problem}): is the row up? "
                       "`docker compose -f compose/compose.yaml --profile <row> up -d`")


def master_argv(row: str, load_args: str, expect_workers: int, *, host: str | None = None, port: int = PORT,
                master_bind: str = "0.0.0.0", master_port: int = MASTER_PORT) -> list[str]:
    """The `asgibench bench` command line of the locust-master container: the row's server is an
    external --target (the service <row>:8000), the workers are the locust-worker containers."""
    variant = variants.get(row)
    return ["bench", variant.name, "--target", f"http://{host or variant.name}:{port}", "--allow-remote",
            "--remote-workers", str(expect_workers), "--master-bind", master_bind, "--master-port", str(master_port),
            *shlex.split(load_args)]


def worker_command() -> list[str]:
    """loadgen.worker_command for the image: both locust files (the master's scenario may be a ramp)."""
    from asgibench import loadgen

    plan = loadgen.LoadPlan(scenario=loadgen.DEFAULT_SCENARIO, flow="api", master_port=MASTER_PORT)
    assert plan.is_shape  # a ramp: shapes.py is loaded too
    cmd = loadgen.worker_command(plan, "locust-master")
    return ["locust"] + [str(c).replace(str(ROOT), CONTAINER_ROOT) for c in cmd[1:]]


def locust_master(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m asgibench.compose locust-master")
    p.add_argument("row")
    p.add_argument("--expect-workers", type=int, default=DEFAULT_LOCUST_WORKERS)
    p.add_argument("--load-args", default="", help="`bench`'s load options as one string")
    p.add_argument("--host", help="the row's server host (default: its service name)")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--master-bind", default="0.0.0.0")
    p.add_argument("--master-port", type=int, default=MASTER_PORT)
    p.add_argument("--wait", type=float, default=READY_WAIT_SECONDS, help="seconds to wait for the row")
    a = p.parse_args(argv)
    try:
        bench = master_argv(a.row, a.load_args, a.expect_workers, host=a.host, port=a.port,
                            master_bind=a.master_bind, master_port=a.master_port)
        variant = variants.get(a.row)
        wait_ready(f"{bench[3]}{variant.io_probe}?seconds=0", a.wait)
    except AsgibenchError as e:
        print(f"asgibench: error: {e}", file=sys.stderr)
        return e.exit_code
    except ValueError as e:  # shlex: unbalanced quotes in LOAD_ARGS
        print(f"asgibench: error: LOAD_ARGS: {e}", file=sys.stderr)
        return 2
    from asgibench import cli

    print(f"asgibench: {' '.join(bench)}", flush=True)
    return cli.main(bench)


# -- entry point -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`asgibench compose [--check] [--python X.Y] [--output FILE]` (and, inside the runner image,
    `locust-master ROW ...`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["locust-master"]:
        return locust_master(argv[1:])
    p = argparse.ArgumentParser(prog="asgibench compose", description="write compose/compose.yaml from the registry")
    p.add_argument("--check", action="store_true", help="exit 1 if the checked-in file differs from the registry")
    p.add_argument("--python", default=DEFAULT_PYTHON, help=f"the rows' Python (default {DEFAULT_PYTHON})")
    p.add_argument("--output", "-o", help="file to write (default compose/compose.yaml, or compose/compose-pyX.Y.yaml)")
    a = p.parse_args(argv)
    try:
        python = envs.parse_python(a.python)
        text = render(python)
    except AsgibenchError as e:
        print(f"asgibench: {e}", file=sys.stderr)
        return 2
    default = COMPOSE_FILE if python == DEFAULT_PYTHON else COMPOSE_DIR / f"compose-py{python}.yaml"
    path = Path(a.output) if a.output else default
    if a.check:
        current = path.read_text() if path.exists() else None
        if current != text:
            print(f"asgibench: {_rel(path)} is out of date with the registry: run `python -m asgibench compose`",
                  file=sys.stderr)
            return 1
        print(f"asgibench: {_rel(path)} matches the registry")
        return 0
    path.write_text(text)
    print(f"asgibench: wrote {_rel(path)} ({len(variants.VARIANTS)} row services, Python {python})")
    return 0


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
