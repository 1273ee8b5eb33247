"""The data path of one benchmark run, as a straight line:

  registry row -> env ready -> PostgreSQL ready (migrated, seeded) -> server started, ready
  -> contract verified -> warm-up (excluded) -> Locust headless -> server stopped
  -> results/<variant>/<run-id>/ (CSVs, meta.json, logs) -> summary

Each arrow is one module (variants, envs, database, server, contract, loadgen, results); this module
only calls them in order and guarantees that whatever was started is stopped, on success, failure,
server or database death and Ctrl-C; measure records the run's verdict (runmeta.verdict). What may
be asked is policy's, meta.json is runmeta's, derived figures are metrics', the lines a person reads
are console's.

  validate   everything refused before anything starts
  bring_up   validate -> env -> database -> server -> contract check: a Stack
  measure    on a Stack: warm-up, Locust, the run's record
  bench      N trials of bring_up + measure, each on a fresh server
  verify, ui the contract alone; Locust's web UI on a Stack
A new command that runs a stack is one function here built from these steps.
"""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from asgibench import console, contract, database, envs, loadgen, metrics, policy, procs, results, runmeta, variants
from asgibench.capacity import analyse as analyse_capacity, live_line, open_model_figures
from asgibench.errors import RunError, UsageError, VerdictError
from asgibench.measure import SAMPLES_FILE, Sampler, write_samples
from asgibench.server import ExternalServer, Server, ServerSpec

DEAD_DATABASE_GRACE = 2.0  # seconds a server whose database died gets to exit on SIGTERM (else 10)


@dataclass
class Stack:
    """A verified server on a prepared database, ready for load (shared by bench, ui, verify, the
    matrix and calibrate). For --target the server is someone else's: env and seed are None."""

    variant: variants.Variant
    env: envs.Env | None
    db: database.Database
    server: Server | ExternalServer
    seed: dict | None
    contract: contract.ContractReport
    django: dict | None = None  # meta.json's "django": {"requested", "version"}

    @property
    def base_url(self) -> str:
        return self.server.base_url


def validate(opts) -> tuple[variants.Variant, str]:
    """Everything that can be refused before anything starts: (row as it runs on the asked Django,
    Python version). The row's capability there is policy.capability's."""
    python = envs.parse_python(opts.python)
    fit = policy.capability(variants.get(opts.variant), python, getattr(opts, "django", None))
    policy.check_request(fit.variant, opts)
    return fit.variant, python


def bring_up(opts, stack: ExitStack, server_log: Path) -> Stack:
    """registry -> env -> database -> server -> contract check. Everything started is stopped when
    `stack` closes; the contract is verified here and required by the caller."""
    variant, python = validate(opts)
    provide = _their_server if opts.target else _our_server
    env, db, seed, server = provide(opts, variant, python, stack, server_log)
    console.say(f"server: {server.describe()}", quiet=opts.quiet)
    stack.callback(server.stop)
    server.start()
    with db.connect() as conn:
        report = contract.verify(variant, server.base_url, conn, static_root=server.static_root)
    version = env.packages.get("django") if env is not None and variants.uses_django(variant) else None
    return Stack(variant, env, db, server, seed, report,
                 {"requested": envs.parse_django(getattr(opts, "django", None)), "version": version})


def _our_server(opts, variant, python: str, stack: ExitStack, server_log: Path):
    """env -> database (migrated, seeded, placed) -> the row's server, not started yet."""
    console.say(f"env: {variant.env} on Python {python}", quiet=opts.quiet)
    django = policy.row_django(variant, getattr(opts, "django", None), python)
    env = envs.ensure(variant.env, python, django=django)
    # migrations and the seed: the row's own env when it holds Django (its version), else the django group
    django_env = env if env.has("django") else envs.ensure("django", python, django=django)
    db_conn, why = policy.resolve_db_conn(variant, opts, env)
    console.say("database: starting / checking PostgreSQL", quiet=opts.quiet)
    db = database.open_database(keep=opts.keep_db)
    stack.callback(db.release)  # the last asgibench process to leave stops a cluster a run started
    if db.sharing_note():
        console.say(f"note: {db.sharing_note()}", quiet=opts.quiet)
    seed = database.prepare(db, django_env, opts.scale)
    policy.check_db_pinning(opts.cpus, db)
    if db.embedded:  # a kept cluster may still carry an earlier run's pinning: always set it
        procs.pin_tree(db.embedded.pid(), opts.cpus.get("db") or range(os.cpu_count() or 1))
    if opts.port and not database.port_is_free(opts.port):
        raise RunError(f"port 127.0.0.1:{opts.port} is taken")
    spec = ServerSpec(variant, env, opts.port or database.free_port(), variant.effective_workers(opts.workers), db_conn,
                      opts.pool_size, db.url, db_conn_source=why)
    return env, db, seed, Server(spec, server_log, cpus=opts.cpus.get("server"))


def _their_server(opts, variant, python: str, stack: ExitStack, server_log: Path):
    """--target: no env, no server of ours; the contract is checked against DATABASE_URL, the
    database the target serves from (never migrated or seeded by us)."""
    if not os.environ.get("DATABASE_URL"):
        raise UsageError("--target needs DATABASE_URL: the database the target serves from (the contract check "
                         "compares the target's JSON with it)")
    db = database.open_database()
    return None, db, None, ExternalServer(opts.target)


def bench(opts) -> list[tuple[Path, dict]]:
    """Run `opts.trials` trials, each on a freshly started server with its own warm-up; returns
    (run folder, meta) per trial."""
    variant, _ = validate(opts)
    series = f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}" if opts.trials > 1 else None
    done = []
    for trial in range(1, opts.trials + 1):
        run_dir = results.new_run_dir(variant.name, opts.plan.scenario, opts.results_root)
        meta = runmeta.new_meta(variant, opts, opts.plan)
        if series:
            meta["matrix"] = {"id": series, "trial": trial, "trials": opts.trials}
            console.say(f"trial {trial}/{opts.trials}", quiet=opts.quiet)
        results.write_meta(run_dir, meta)
        try:
            with runmeta.recorded(run_dir, meta), ExitStack() as stack:
                st = bring_up(opts, stack, run_dir / "server.log")
                measure(st, opts, opts.plan, run_dir, meta)
        except RunError:
            if meta.get("died") and meta.get("summary"):  # what was measured before it died, then the error
                console.print_summary(opts, run_dir, meta["summary"])
            raise
        done.append((run_dir, meta))
    return done


def require_verdicts(done: list[tuple[Path, dict]]) -> None:
    """After bench's summaries: VerdictError (exit 1) when a trial's requests failed or it stalled and
    --accept-failures did not accept it (runmeta.verdict)."""
    bad = [meta for _, meta in done if meta["verdict"]["exit_code"]]
    if bad:
        raise VerdictError(f"{len(bad)} of {len(done)} trial(s): {console.verdict_words(bad[0])} "
                           "(--accept-failures to accept: exit 0, still recorded)")


def measure(st: Stack, opts, plan: loadgen.LoadPlan, run_dir: Path, meta: dict) -> None:
    """On a server that is up: record the stack, require the contract, warm up, run Locust, record."""
    variant = st.variant
    meta.update(runmeta.stack_meta(st))
    results.write_meta(run_dir, meta)
    contract.require(st.contract, variant.name)
    console.say(f"contract: {len(st.contract.checks)} checks passed", quiet=opts.quiet)
    plan = _warm_up(st, opts, plan, run_dir, meta)
    console.say(f"load: {plan.scenario}, {plan.seconds:.0f}s, up to {plan.peak_users} users", quiet=opts.quiet)
    db_pid = st.db.embedded.pid() if st.db.embedded else None
    # Sampled over the whole Locust run; the measured window is cut from the samples afterwards (measure).
    proc = getattr(st.server, "proc", None)  # our server's root process (none for --target)
    trees = {"server": lambda: [proc.pid] if proc is not None else [], "db": lambda: [db_pid] if db_pid else []}
    server_log = getattr(st.server, "log_path", None)  # a matrix's: one log for all the row-trial's scenarios
    log_offset = _size(server_log)
    with database.BackendSampler(st.db) as backends, Sampler(trees, pss={"server"}) as sampled:
        res = loadgen.run(plan, st.base_url, run_dir, health=stack_health(st.server, backends),
                          cpus=opts.cpus.get("locust"), progress=None if opts.quiet else console.Progress(),
                          on_measure_start=backends.restart,
                          on_step=None if opts.quiet or plan.scenario != loadgen.CAPACITY else
                          lambda step: print(live_line(step), flush=True))
    if not opts.quiet:
        console.Progress.done()
    write_samples(run_dir / SAMPLES_FILE, sampled)
    summary = results.summarize(run_dir, results.stall_threshold(plan.io_seconds if plan.flow == "io" else 0.0))
    metrics.derive(summary, plan)
    server, db = sampled.trees["server"], (sampled.trees["db"] if db_pid else None)
    generator = metrics.generator(run_dir, res, plan, summary)
    win = metrics.window_of(summary)
    generator.update(metrics.competing(generator, sampled.cpus_busy(*win) if win else None,
                                       generator_cpus=opts.cpus.get("locust"), server_cpus=sampled.cpus))
    summary["memory"] = metrics.memory(summary, server, backends.peak)
    summary["machine"] = sampled.speed(*win) if win else None
    summary["cost"] = metrics.cost(summary, server, db, generator, summary["memory"], summary["machine"])
    summary["balance"] = metrics.balance(summary, server)
    if plan.arrival_rate and "open_model" in summary:  # the dispatcher's arrivals, latency both ways
        summary["open_model"].update(open_model_figures(run_dir) or {})
    meta.update({
        "generator": generator,
        "server_cpu_seconds": summary["cost"]["server_cpu_seconds"],
        "db_cpu_seconds": summary["cost"]["db_cpu_seconds"],
        "db_peak_backends": backends.peak,
        "summary": summary,
    })
    if plan.scenario == loadgen.CAPACITY:
        meta["capacity"] = analyse_capacity(run_dir, plan.slo, server_log, log_offset)
    if res.died == "database-died":  # its requests wait on a database that is gone: no point in a long grace
        st.server.stop(grace=DEAD_DATABASE_GRACE)
    if res.died:
        meta["status"] = res.died
        meta["died"] = {"reason": res.died_reason, "after_s": round(res.died_after, 1), "planned_s": plan.seconds}
        what = "the database" if res.died == "database-died" else f"server {variant.name}"
        raise RunError(f"{what} died mid-run ({res.died_reason}); the run stopped {res.died_after:.0f} s into "
                       f"the measured {plan.seconds:.0f} s; partial results kept in {run_dir}")
    if res.interrupted:
        raise KeyboardInterrupt
    if summary["requests"] == 0:
        raise RunError(f"no request was measured on {variant.name} (Locust exit code {res.exit_code}; see "
                       f"{run_dir / 'locust.log'})")
    # the capacity ladder pushes past the knee on purpose: its failures are the ladder's figures, not a verdict
    meta["verdict"] = runmeta.verdict(summary, opts.accept_failures or plan.scenario == loadgen.CAPACITY)
    if summary.get("stall"):
        meta["status"] = "stalled"


def _size(path) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def stack_health(server, backends=None):
    """loadgen.run's health(): (status, reason) once the database is lost (the backend sampler's
    verdict: the embedded postmaster gone, or no connection and gone() says why; a server answering
    500s is only its symptom) or the server died; None while both are there."""
    def check():
        gone = backends.database_gone() if backends is not None else None
        if gone:
            return ("database-died", gone)
        if not server.alive():
            return ("server-died", server.log_tail())
        return None
    return check


def _warm_up(st: Stack, opts, plan: loadgen.LoadPlan, run_dir: Path, meta: dict) -> loadgen.LoadPlan:
    """The excluded warm-up; returns the plan to measure (one Locust process warms up in-process)."""
    if opts.warmup <= 0:
        return plan
    console.say(f"warm-up: {opts.warmup:.0f}s (excluded from results)", quiet=opts.quiet)
    if plan.single_process and not plan.is_shape:
        # One Locust process: it resets every statistic when the warm-up ends (recorder plugin).
        plan = replace(plan, warmup=opts.warmup)
        meta["plan"] = plan.as_dict()
        return plan
    # Several Locust processes (or a shape, which owns the clock): a separate warm-up run, one
    # standalone Locust process: remote workers would quit at its end and never come back.
    warm = replace(plan, scenario=loadgen.CONSTANT, users=plan.peak_users if plan.flow != "io" else plan.users,
                   duration=opts.warmup, spawn_rate=1000.0, processes=1, locust_workers=0, remote_workers=0)
    w = loadgen.run(warm, st.base_url, run_dir / "warmup", health=stack_health(st.server),
                    cpus=opts.cpus.get("locust"), warmup=True)
    if w.interrupted:
        raise KeyboardInterrupt
    if w.server_died:
        meta["status"] = "server-died"
        raise RunError(f"server {st.variant.name} died during warm-up: {st.server.log_tail()}")
    return plan


def verify(opts) -> contract.ContractReport:
    """`verify`: bring the row up, show and record its contract check, require it."""
    run_dir = results.new_run_dir(opts.variant, "verify", opts.results_root)
    with ExitStack() as stack:
        st = bring_up(opts, stack, run_dir / "server.log")
        console.print_checks(st.contract)
        results.write_meta(run_dir, {"status": "verified" if not st.contract.failures else "contract-failed",
                                     "variant": st.variant.as_dict(), "contract": st.contract.as_dict()})
        contract.require(st.contract, st.variant.name)
    return st.contract


def ui(opts, port: int, minutes: float) -> None:
    """`ui`: a verified stack with Locust's web UI on 127.0.0.1:`port`, until Ctrl-C or `minutes`."""
    run_dir = results.new_run_dir(opts.variant, "ui", opts.results_root)
    with ExitStack() as stack:
        st = bring_up(opts, stack, run_dir / "server.log")
        contract.require(st.contract, st.variant.name)
        if not database.port_is_free(port):
            raise RunError(f"port 127.0.0.1:{port} (Locust's web UI) is taken")
        cmd = loadgen.command(opts.plan, st.base_url, run_dir, headless=False, web_port=port)
        proc = procs.spawn(cmd, log_path=run_dir / "locust.log", env=loadgen.locust_env())
        stack.callback(procs.stop, proc)
        console.print_web_ui(port, st.base_url, minutes)
        try:
            proc.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            console.say(f"the UI session's {minutes:.0f} minutes are over; stopping")
        if not st.server.alive():
            raise RunError(f"server {st.variant.name} died: {st.server.log_tail()}")
