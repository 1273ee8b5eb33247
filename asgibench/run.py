"""The data path of one benchmark run, as a straight line:

  registry row -> env ready -> PostgreSQL ready (migrated, seeded) -> server started, ready
  -> contract verified -> warm-up (excluded) -> Locust headless -> server stopped
  -> results/<variant>/<run-id>/ (CSVs, meta.json, logs) -> summary

Each arrow is one module (variants, envs, database, server, contract, loadgen, results); this module
only calls them in order and guarantees that whatever was started is stopped, on success, failure,
server death and Ctrl-C.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from asgibench import contract, database, envs, loadgen, procs, results, variants
from asgibench.errors import RunError, UsageError
from asgibench.measure import TreeCpu
from asgibench.server import Server, ServerSpec

# Per worker process; the default users (10) never wait for a connection. Measured: with a pool of 4,
# 10 users of the I/O probe reached ~3.7 req/s instead of ~10: the pool, not the server, was measured.
DEFAULT_POOL_SIZE = 10


def pool_size_for(io_users: int) -> int:
    """The I/O scenario measures the server's concurrency, not the pool's: with fewer pooled
    connections than waiting users, requests queue for a connection (measured: 8 x 0.5 s took 1.03 s
    with a pool of 4, 0.55 s with 10)."""
    return min(max(io_users, DEFAULT_POOL_SIZE), 100)


@dataclass
class BenchOptions:
    variant: str
    plan: loadgen.LoadPlan
    python: str | None = None
    workers: int | None = None
    db_conn: str | None = None
    pool_size: int = DEFAULT_POOL_SIZE
    scale: int = 1
    warmup: float = 10.0
    keep_db: bool = False
    port: int | None = None  # server port; default a free one
    target: str | None = None  # --target: an external server (contract check + load only)
    results_root: Path | None = None
    cpus: dict = field(default_factory=dict)  # {"server": {0}, "locust": {1}, "db": {0}}
    quiet: bool = False
    trials: int = 1


def _say(opts, msg: str) -> None:
    if not opts.quiet:
        print(f"asgibench: {msg}", file=sys.stderr, flush=True)


def check_request(variant, opts: BenchOptions) -> None:
    """Refuse, with the reason, what a row cannot serve (before anything starts)."""
    plan = opts.plan
    if plan.api_prefix == "/async_api/" and "async_api" not in variant.serves:
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
    if opts.workers is not None and not (1 <= opts.workers <= 256):
        raise UsageError(f"workers must be between 1 and 256, got {opts.workers}")
    if opts.port is not None and not (1024 <= opts.port <= 65535):
        raise UsageError(f"port must be between 1024 and 65535, got {opts.port}")
    if not (1 <= opts.pool_size <= 100):
        raise UsageError(f"pool size must be between 1 and 100, got {opts.pool_size}")
    if not (1 <= opts.scale <= 1000):
        raise UsageError(f"scale must be between 1 and 1000, got {opts.scale}")
    if not (1 <= opts.trials <= 100):
        raise UsageError(f"trials must be between 1 and 100, got {opts.trials}")
    if opts.warmup < 0 or opts.warmup > 600:
        raise UsageError(f"warm-up must be between 0 and 600 seconds, got {opts.warmup}")
    loadgen.validate(plan)


def python_allowed(variant, version: str) -> None:
    spec = variant.python
    if spec.startswith(">="):
        need = tuple(map(int, spec[2:].split(".")))
        if tuple(map(int, version.split("."))) < need:
            raise UsageError(f"{variant.name} needs Python {spec}, asked for {version}")


def resolve_db_conn(variant, opts: BenchOptions, env) -> tuple[str, str]:
    """(strategy, why): the row's default unless overridden; Django's pool needs Django >= 5.1."""
    if opts.db_conn:
        if opts.db_conn == "pool" and env.has("django") and env.version("django") < (5, 1):
            raise UsageError(f"--db-conn pool needs Django >= 5.1; this env has Django {env.packages['django']}")
        return opts.db_conn, "--db-conn"
    if variant.db_conn == "pool" and env.has("django") and env.version("django") < (5, 1):
        return "persistent", f"row default pool needs Django >= 5.1 (env has {env.packages['django']}): persistent"
    return variant.db_conn, "row default"


@dataclass
class Stack:
    """A verified server on a prepared database, ready for load (shared by bench, ui and verify).
    For --target, the server is someone else's: env and spec are None."""

    variant: variants.Variant
    env: envs.Env | None
    db: database.Database
    server: "Server | ExternalServer"
    spec: ServerSpec | None
    seed: dict | None
    db_conn_why: str
    contract: contract.ContractReport

    @property
    def base_url(self) -> str:
        return self.spec.base_url if self.spec else self.server.base_url


class ExternalServer:
    """A server asgibench did not start (--target): alive while it accepts connections."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        u = urlsplit(self.base_url)
        self.host, self.port = u.hostname, u.port or 80

    def alive(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        return []

    def log_tail(self) -> str:
        return f"{self.base_url} stopped accepting connections"


def check_target(target: str, allow_remote: bool) -> str:
    u = urlsplit(target)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError(f"--target must be a URL like http://127.0.0.1:8000, got {target!r}")
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(u.hostname)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback and not allow_remote:
        raise UsageError(f"--target {u.hostname} is not a loopback address: add --allow-remote to load another host")
    return target.rstrip("/")


def validate(opts: BenchOptions) -> tuple[variants.Variant, str]:
    """Everything that can be refused before anything starts: (row, Python version)."""
    variant = variants.get(opts.variant)
    python = envs.parse_python(opts.python)
    python_allowed(variant, python)
    envs.lock_file(variant.env, python)
    envs.lock_file("django", python)  # migrations and the seed run in the django group
    check_request(variant, opts)
    return variant, python


def bring_up(opts: BenchOptions, stack: ExitStack, server_log: Path) -> Stack:
    variant, python = validate(opts)
    if opts.target:
        return _external(opts, variant)
    _say(opts, f"env: {variant.env} on Python {python}")
    env = envs.ensure(variant.env, python)
    django_env = env if variant.env == "django" else envs.ensure("django", python)
    db_conn, why = resolve_db_conn(variant, opts, env)
    _say(opts, "database: starting / checking PostgreSQL")
    db = database.open_database()
    stack.callback(lambda: None if opts.keep_db else db.stop_if_started())
    seed = database.prepare(db, django_env, opts.scale)
    if opts.cpus.get("db") and not db.embedded:
        raise UsageError("--pin db=... needs the embedded PostgreSQL (asgibench cannot pin a DATABASE_URL server)")
    if db.embedded:  # a kept cluster may still carry an earlier run's pinning: always set it
        procs.pin_tree(db.embedded.pid(), opts.cpus.get("db") or range(os.cpu_count() or 1))
    if opts.port and not database.port_is_free(opts.port):
        raise RunError(f"port 127.0.0.1:{opts.port} is taken")
    spec = ServerSpec(variant, env, opts.port or database.free_port(), variant.effective_workers(opts.workers), db_conn,
                      opts.pool_size, db.url)
    server = Server(spec, server_log, cpus=opts.cpus.get("server"))
    stack.callback(server.stop)
    _say(opts, f"server: {' '.join(spec.command()[:1])} ... ({spec.workers} worker(s), db {db_conn}) on {spec.base_url}")
    server.start()
    with db.connect() as conn:
        report = contract.verify(variant, spec.base_url, conn, static_root=env.static_root)
    return Stack(variant, env, db, server, spec, seed, why, report)


def new_meta(variant, opts: BenchOptions, plan: loadgen.LoadPlan) -> dict:
    return {
        "status": "running",
        "variant": variant.as_dict(),
        "plan": plan.as_dict(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine_before": results.machine(),
        "git": results.git_state(),
        "run_tag": procs.RUN_TAG,
        "cpus": placement_record(opts.cpus),
    }


def placement_record(cpus: dict) -> dict:
    return {"pinned": {k: sorted(v) for k, v in cpus.items()} or None,
            "policy": "--pin" if cpus else f"not pinned ({PLACEMENT_DEFAULT})"}


# The documented default: no pinning. On 2 cores, giving Locust a core of its own takes half the
# machine from server + PostgreSQL; we measure the generator instead and flag saturated runs. On
# larger machines, --pin server=0-N,db=...,locust=M isolates them (the README shows how).
PLACEMENT_DEFAULT = "server, PostgreSQL and Locust share every CPU; generator CPU is measured and flagged"


@contextmanager
def recorded(run_dir: Path, meta: dict):
    """Whatever happens inside, meta.json ends up saying it: completed, interrupted (Ctrl-C),
    server-died or failed, with what was measured so far."""
    try:
        yield
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        meta["interrupted"] = True
        _finish(run_dir, meta)
        raise
    except RunError as e:
        if meta["status"] == "running":
            meta["status"] = "failed"
        meta["error"] = str(e)
        _finish(run_dir, meta)
        raise
    meta["status"] = "completed"
    _finish(run_dir, meta)


def bench(opts: BenchOptions) -> list[tuple[Path, dict]]:
    """Run `opts.trials` trials, each on a freshly started server with its own warm-up; returns
    (run folder, meta) per trial."""
    variant, _ = validate(opts)
    series = f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}" if opts.trials > 1 else None
    done = []
    for trial in range(1, opts.trials + 1):
        run_dir = results.new_run_dir(variant.name, opts.plan.scenario, opts.results_root)
        meta = new_meta(variant, opts, opts.plan)
        if series:
            meta["matrix"] = {"id": series, "trial": trial, "trials": opts.trials}
            _say(opts, f"trial {trial}/{opts.trials}")
        results.write_meta(run_dir, meta)
        with recorded(run_dir, meta), ExitStack() as stack:
            st = bring_up(opts, stack, run_dir / "server.log")
            measure(st, opts, opts.plan, run_dir, meta)
        done.append((run_dir, meta))
    return done


def measure(st: Stack, opts: BenchOptions, plan: loadgen.LoadPlan, run_dir: Path, meta: dict) -> None:
    """On a server that is up: record the stack, require the contract, warm up, run Locust, record."""
    variant = st.variant
    meta.update(_stack_meta(st, opts))
    results.write_meta(run_dir, meta)
    contract.require(st.contract, variant.name)
    _say(opts, f"contract: {len(st.contract.checks)} checks passed")
    if opts.warmup > 0 and (not plan.single_process or plan.is_shape):
        # Several Locust processes (or a shape, which owns the clock): a separate warm-up run.
        _say(opts, f"warm-up: {opts.warmup:.0f}s (excluded from results)")
        # The warm-up is one standalone Locust process: remote workers would quit at its end and
        # never come back for the measured run.
        warm = loadgen.LoadPlan(**{**plan.__dict__, "scenario": loadgen.CONSTANT,
                                   "users": plan.peak_users if plan.flow != "io" else plan.users,
                                   "duration": opts.warmup, "spawn_rate": 1000.0,
                                   "processes": 1, "locust_workers": 0, "remote_workers": 0})
        w = loadgen.run(warm, st.base_url, run_dir / "warmup", server=st.server,
                        cpus=opts.cpus.get("locust"), warmup=True)
        if w.interrupted:
            raise KeyboardInterrupt
        if w.server_died:
            meta["status"] = "server-died"
            raise RunError(f"server {variant.name} died during warm-up: {st.server.log_tail()}")
    elif opts.warmup > 0:
        # One Locust process: it resets every statistic when the warm-up ends (recorder plugin).
        _say(opts, f"warm-up: {opts.warmup:.0f}s (excluded from results)")
        plan = loadgen.LoadPlan(**{**plan.__dict__, "warmup": opts.warmup})
        meta["plan"] = plan.as_dict()
    _say(opts, f"load: {plan.scenario}, {plan.seconds:.0f}s, up to {plan.peak_users} users")
    db_pid = st.db.embedded.pid() if st.db.embedded else None
    with database.BackendSampler(st.db) as backends, TreeCpu(st.server.pids) as server_cpu, \
            TreeCpu(lambda: [db_pid] if db_pid else []) as db_cpu:
        def measured_from_now():
            for meter in (server_cpu, db_cpu, backends):
                meter.restart()

        res = loadgen.run(plan, st.base_url, run_dir, server=st.server, cpus=opts.cpus.get("locust"),
                          progress=None if opts.quiet else _Progress(), on_measure_start=measured_from_now)
    if not opts.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    summary = results.summarize(run_dir)
    if plan.flow == "io":
        summary["concurrency"] = concurrency(summary, plan)
    if plan.arrival_rate:
        summary["open_model"] = open_model(summary, plan)
    generator = {**_generator(run_dir),
                 "process_cpu_seconds_incl_startup": round(res.generator_cpu_seconds, 3),
                 "locust_exit_code": res.exit_code, "wall_seconds_incl_startup": round(res.wall_seconds, 3),
                 "processes_option": plan.processes}
    generator.update(generator_bound(generator, summary))
    meta.update({
        "generator": generator,
        "server_cpu_seconds": round(server_cpu.seconds, 3),
        "db_cpu_seconds": round(db_cpu.seconds, 3) if db_pid else None,
        "db_peak_backends": backends.peak,
        "summary": summary,
    })
    if res.server_died:
        meta["status"] = "server-died"
        raise RunError(f"server {variant.name} died mid-run ({st.server.log_tail()}); partial results kept in {run_dir}")
    if res.interrupted:
        raise KeyboardInterrupt
    if summary["requests"] == 0:
        raise RunError(f"no request was measured on {variant.name} (Locust exit code {res.exit_code}; see "
                       f"{run_dir / 'locust.log'})")


def generator_bound(generator: dict, summary: dict) -> dict:
    """A trial is generator-bound when Locust itself was the limit: its CPU above 90% of a core (or
    Locust's own warning fired), or req/s above half the ceiling `asgibench calibrate` measured."""
    reasons = []
    pct = generator.get("cpu_percent_of_one_core")
    procs_n = max(1, generator.get("processes") or 1)
    if pct is not None and pct / procs_n > 90:
        reasons.append(f"generator CPU {pct:.0f}% of one core per process")
    if generator.get("cpu_warning"):
        reasons.append("Locust warned: CPU usage above 90%")
    ceiling = results.calibration()
    if ceiling and summary.get("rps", 0) > 0.5 * ceiling["ceiling_rps"]:
        reasons.append(f"{summary['rps']:.0f} req/s is above half the calibrated Locust ceiling "
                       f"({ceiling['ceiling_rps']:.0f} req/s)")
    return {"bound": bool(reasons), "bound_reasons": reasons,
            "calibrated_ceiling_rps": ceiling["ceiling_rps"] if ceiling else None}


def _external(opts: BenchOptions, variant) -> Stack:
    """--target: no env, no server of ours; the contract is checked against DATABASE_URL, the
    database the target serves from (never migrated or seeded by us)."""
    if not os.environ.get("DATABASE_URL"):
        raise UsageError("--target needs DATABASE_URL: the database the target serves from (the contract check "
                         "compares the target's JSON with it)")
    db = database.open_database()
    server = ExternalServer(opts.target)
    if not server.alive():
        raise RunError(f"target {opts.target} does not accept connections")
    _say(opts, f"server: external {opts.target} (not started by asgibench)")
    with db.connect() as conn:
        report = contract.verify(variant, server.base_url, conn)
    return Stack(variant, None, db, server, None, None, "external server", report)


def _finish(run_dir: Path, meta: dict) -> None:
    meta["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["machine_after"] = {"loadavg": results.machine()["loadavg"]}
    if "summary" not in meta and (run_dir / "locust.json").exists():
        meta["summary"] = results.summarize(run_dir)
    results.write_meta(run_dir, meta)


def _stack_meta(st: Stack, opts: BenchOptions) -> dict:
    runner = {"python": envs.current_python(), "packages": _runner_packages()}
    if st.spec is None:
        return {"runner": runner, "server": {"external": True, "url": st.base_url},
                "database": st.db.describe(), "contract": st.contract.as_dict()}
    return {
        "python": st.env.python_version,
        "env": {"group": st.env.group, "path": str(st.env.path), "packages": st.env.packages},
        "runner": runner,
        "server": {"external": False, "command": st.spec.command(), "workers": st.spec.workers, "port": st.spec.port,
                   "db_conn": st.spec.db_conn, "db_conn_source": st.db_conn_why,
                   "pool_size_per_worker": st.spec.pool_size if st.spec.db_conn == "pool" or st.variant.own_pool else None,
                   "pg_driver": st.variant.pg_driver},
        "database": {**st.db.describe(), "seed": st.seed},
        "contract": st.contract.as_dict(),
    }


def _runner_packages() -> dict:
    from importlib import metadata

    return {d.metadata["Name"].lower(): d.version for d in metadata.distributions()}


def _generator(run_dir: Path) -> dict:
    """The load generator's own cost during the measured run (test start..stop), from the files the
    recorder plugin writes per Locust process: CPU seconds summed over processes, over the wall time."""
    import json

    data = [json.loads(p.read_text()) for p in sorted(run_dir.glob("generator*.json"))]
    cpu = sum(d["run"]["cpu_s"] for d in data if d.get("run"))
    wall = max((d["run"]["wall_s"] for d in data if d.get("run")), default=0.0)
    requests = sum(d.get("requests") or 0 for d in data)
    return {
        "cpu_seconds": round(cpu, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_request": round(1e6 * cpu / requests, 1) if requests else None,
        "cpu_warning": any(d.get("cpu_warning_emitted") or d.get("worker_cpu_warning_emitted") for d in data),
        "processes": len(data),
        "per_process": data,
    }


def open_model(summary: dict, plan: loadgen.LoadPlan) -> dict:
    """Did the fixed arrival rate hold? If the users could not absorb the latency, fewer iterations
    started than asked and the latency figures are no longer those of an open model."""
    seconds = summary.get("seconds") or 0
    done = summary.get("flow", {}).get("iterations") or summary.get("requests", 0)
    achieved = done / seconds if seconds else 0.0
    return {"target_per_s": plan.arrival_rate, "achieved_per_s": round(achieved, 2), "users": plan.users,
            "held": achieved >= 0.95 * plan.arrival_rate}


def concurrency(summary: dict, plan: loadgen.LoadPlan) -> dict:
    """The I/O scenario's headline: achieved req/s over the best possible N/S."""
    ideal = plan.users / plan.io_seconds if plan.io_seconds > 0 else None
    eff = summary["rps"] / ideal if ideal else None
    return {"users": plan.users, "sleep_seconds": plan.io_seconds, "ideal_rps": ideal,
            "achieved_rps": summary["rps"], "efficiency": round(eff, 3) if eff is not None else None}


class _Progress:
    """One progress line: rewritten in place on a terminal, every 10 s otherwise (logs, CI)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = -10.0

    def __call__(self, elapsed: float, total: float, tot: dict) -> None:
        if not self.tty and elapsed - self.last < 10:
            return
        self.last = elapsed
        line = (f"  [{elapsed:4.0f}s/{total:.0f}s] {tot['requests']} requests, {tot['rps']:.1f} req/s (last 10 s), "
                f"{tot['failures']} failures")
        print(("\r" + line + "   ") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
