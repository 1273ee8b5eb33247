"""Command line: `python -m asgibench <command>` (the Makefile is a thin shim over it).

  list                      the registry: every row, its server, workers, env group, what it serves
  bench VARIANT [options]   the whole data path (env -> db -> server -> contract -> warm-up -> Locust -> results)
  ui VARIANT [options]      the same stack with Locust's web UI on 127.0.0.1:8089 (Ctrl-C stops everything)
  verify VARIANT            start the row and run the contract check only
  db start|stop|status      the embedded PostgreSQL (start leaves it running until `db stop`)
  env VARIANT|GROUP         build (or check) a row's environment

Exit status: 0 ok, 1 the run failed (server died, contract broken, database unreachable...),
2 bad input (unknown variant, bad numbers), 130 interrupted (partial results kept).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack

from asgibench import database, envs, loadgen, procs, results, run, variants
from asgibench.errors import AsgibenchError, RunError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        raise UsageError(message)


def duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", str(text))
    if not m:
        raise UsageError(f"bad duration {text!r}: use seconds or a suffix, e.g. 30, 30s, 2m")
    return float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def _number(kind):
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"bad number {text!r}") from None

    return parse


def cpu_placement(text: str | None) -> dict:
    """'server=0,db=0,locust=1' or 'server=0-1;locust=2' -> {"server": {0}, ...}."""
    if not text:
        return {}
    out = {}
    ncpu = os.cpu_count() or 1
    for part in re.split(r"[;,](?=\s*[a-z]+=)", text):
        if "=" not in part:
            raise UsageError(f"bad --pin {text!r}: use e.g. server=0,db=0,locust=1")
        role, cpus = part.split("=", 1)
        role = role.strip()
        if role not in ("server", "db", "locust"):
            raise UsageError(f"bad --pin role {role!r}: server, db or locust")
        ids = set()
        for chunk in cpus.split("+"):
            a, _, b = chunk.partition("-")
            try:
                lo, hi = int(a), int(b or a)
            except ValueError:
                raise UsageError(f"bad CPU list {cpus!r} in --pin") from None
            ids.update(range(lo, hi + 1))
        if not ids or max(ids) >= ncpu:
            raise UsageError(f"--pin {role}={cpus}: this machine has CPUs 0-{ncpu - 1}")
        out[role] = ids
    return out


def _add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant")
    g = p.add_argument_group("load")
    g.add_argument("--scenario", help=f"one of {', '.join(loadgen.SCENARIOS)} (default {loadgen.DEFAULT_SCENARIO}; "
                                      "--users/--duration alone mean constant)")
    g.add_argument("--users", type=_number(int), help="users (constant and io scenarios; default 10)")
    g.add_argument("--spawn-rate", type=_number(float), help="users started per second (default: all at once)")
    g.add_argument("--duration", type=duration, help="run time of constant/io scenarios, e.g. 30s, 2m")
    g.add_argument("--time-scale", type=_number(float), default=1.0, help="compress a shape's stages (0.1 = 10x faster)")
    g.add_argument("--arrival-rate", type=_number(float), default=0.0,
                   help="open model: iterations started per second (constant_throughput; users default 2 s worth)")
    d = p.add_argument_group("distributed load and external servers")
    d.add_argument("--locust-workers", type=_number(int), default=0,
                   help="run a Locust master plus N worker processes on this machine")
    d.add_argument("--remote-workers", type=_number(int), default=0,
                   help="also wait for N workers from other machines (`asgibench worker --master HOST`)")
    d.add_argument("--master-bind", default="127.0.0.1", help="where the Locust master listens for workers")
    d.add_argument("--master-port", type=_number(int), help="Locust master port (default: a free one; 5557 with --remote-workers)")
    d.add_argument("--target", help="benchmark a server asgibench did not start (contract check, then load); "
                                    "needs DATABASE_URL = the database it serves from")
    d.add_argument("--allow-remote", action="store_true", help="allow a --target or --master-bind that is not loopback")
    g.add_argument("--trials", type=_number(int), default=1, help="measured trials, each on a fresh server (default 1)")
    g.add_argument("--warmup", type=duration, default=10.0, help="warm-up before measuring, excluded (default 10s)")
    g.add_argument("--async", dest="async_api", action="store_true", help="API steps hit /async_api/ (native async views)")
    g.add_argument("--with-slowapi", action="store_true", help="also hit the mounted FastAPI slowapi app")
    g.add_argument("--only-slowapi", action="store_true", help="only hit the slowapi app")
    g.add_argument("--api-only", action="store_true", help="skip the admin login steps (API-only flow)")
    g.add_argument("--io-seconds", type=_number(float), default=1.0, help="io scenario: seconds each request waits in PostgreSQL")
    g.add_argument("--processes", type=_number(int), default=1, help="Locust --processes (-1 = one per core)")
    s = p.add_argument_group("server and database")
    s.add_argument("--workers", type=_number(int), help="override the row's worker count (Makefile: WORKERS=N)")
    s.add_argument("--db-conn", help="per-request | persistent | pool (default: the row's)")
    s.add_argument("--pool-size", type=_number(int),
                   help=f"pool connections per worker process (default {run.DEFAULT_POOL_SIZE}; io scenario: --users)")
    s.add_argument("--python", help="server Python X.Y (default: the runner's)")
    s.add_argument("--scale", type=_number(int), default=1, help="seed data scale (default 1)")
    s.add_argument("--port", type=_number(int), help="server port on 127.0.0.1 (default: a free one)")
    s.add_argument("--keep-db", action="store_true", help="leave the embedded PostgreSQL running afterwards")
    s.add_argument("--pin", help="CPU placement, e.g. server=0,db=0,locust=1 (default: not pinned)")
    s.add_argument("--results", help="results folder (default results/)")
    s.add_argument("--quiet", action="store_true")


def build_options(a) -> run.BenchOptions:
    variant = variants.get(a.variant)
    given = a.users is not None or a.duration is not None or bool(a.arrival_rate)
    scenario = a.scenario or (loadgen.CONSTANT if given else loadgen.DEFAULT_SCENARIO)
    if scenario not in loadgen.SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r} (choose from {', '.join(loadgen.SCENARIOS)})")
    if scenario in loadgen.stages.SHAPES and given:
        raise UsageError(f"scenario {scenario} is a ramp of its own: --users/--duration apply to constant and io")
    if scenario == loadgen.IO:
        flow = "io"
    elif a.api_only or a.only_slowapi or "admin" not in variant.serves:
        flow = "api"
    else:
        flow = variant.default_flow
    users = (loadgen.open_model_users(a.arrival_rate) if a.arrival_rate else 10) if a.users is None else a.users
    default_seconds = 20.0 if scenario == loadgen.IO else 30.0
    plan = loadgen.LoadPlan(
        scenario=scenario, flow=flow, users=users,
        spawn_rate=loadgen.default_spawn_rate(scenario, users) if a.spawn_rate is None else a.spawn_rate,
        duration=default_seconds if a.duration is None else a.duration,
        time_scale=a.time_scale, api_prefix="/async_api/" if a.async_api else "/api/",
        with_slowapi=a.with_slowapi, only_slowapi=a.only_slowapi,
        io_path=variant.io_probe, io_seconds=a.io_seconds, processes=a.processes, arrival_rate=a.arrival_rate,
        locust_workers=a.locust_workers, remote_workers=a.remote_workers, master_bind=a.master_bind,
        master_port=a.master_port or (5557 if a.remote_workers else database.free_port()),
    )
    if a.master_bind not in ("127.0.0.1", "localhost") and not a.allow_remote:
        raise UsageError(f"--master-bind {a.master_bind} is not loopback: add --allow-remote for workers on other machines")
    if scenario == loadgen.IO and not (0 < a.io_seconds <= 5):
        raise UsageError(f"--io-seconds must be above 0 and at most 5, got {a.io_seconds}")
    return run.BenchOptions(
        variant=a.variant, plan=plan, python=a.python, workers=a.workers, db_conn=a.db_conn,
        pool_size=a.pool_size or run.pool_size_for(users if scenario == loadgen.IO else 0),
        scale=a.scale, port=a.port, warmup=a.warmup, keep_db=a.keep_db,
        results_root=None if not a.results else __import__("pathlib").Path(a.results),
        cpus=cpu_placement(a.pin), quiet=a.quiet, trials=getattr(a, "trials", 1),
        target=run.check_target(a.target, a.allow_remote) if a.target else None,
    )


def cmd_list(a) -> int:
    rows = [("name", "family", "interface", "server", "workers", "env", "db conn", "serves", "notes")]
    for v in variants.VARIANTS:
        served = ",".join(s for s in variants.ENDPOINT_SETS if s in v.serves)
        worker = f"{v.worker} " if v.worker else ""
        notes = v.notes + (f" [no /async_api/: {v.no_async}]" if v.no_async else "")
        rows.append((v.name, v.family, v.interface, f"{v.server} {worker}".strip(),
                     str(v.workers) if v.workers else f"cpus({os.cpu_count()})", v.env, v.db_conn, served, notes))
    if a.names:
        print("\n".join(v.name for v in variants.VARIANTS))
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_bench(a) -> int:
    opts = build_options(a)
    done = run.bench(opts)
    for run_dir, meta in done:
        print_summary(opts, run_dir, meta["summary"])
    if len(done) > 1:
        print_trials([meta["summary"] for _, meta in done])
    return 0


def print_trials(summaries: list) -> None:
    """Median and coefficient of variation over trials (CV > 5% is called out)."""
    import statistics

    from asgibench import report

    rps = [s["rps"] for s in summaries]
    cv = (report.cv_pct(rps) or 0.0) / 100  # sample stdev / mean, as the report
    p95 = [s.get("exact_percentiles_ms", {}).get("p95") for s in summaries]
    p95 = [x for x in p95 if x is not None]
    print(f"{len(rps)} trials: median {statistics.median(rps):.1f} req/s, CV {100 * cv:.1f}%"
          + (f", median p95 {statistics.median(p95):.1f} ms" if p95 else "")
          + ("  UNSTABLE: CV above 5%" if cv > 0.05 else ""))


def print_summary(opts, run_dir, summary) -> None:
    meta = results.read_meta(run_dir)
    pct = summary.get("locust_percentiles_ms", {})
    exact = summary.get("exact_percentiles_ms") or {}
    gen = meta.get("generator", {})
    srv = meta["server"]
    where = f"external {srv['url']}" if srv.get("external") else f"{srv['workers']} worker(s), db {srv['db_conn']}"
    print(f"{opts.variant} | {opts.plan.scenario} | {summary.get('seconds', 0):.0f}s measured | "
          f"up to {opts.plan.peak_users} users | {where}")
    print(f"  requests {summary.get('requests', 0)}  ({summary.get('rps', 0):.1f} req/s)  "
          f"failures {summary.get('failures', 0)}")
    if exact:
        print(f"  latency ms (exact)   p50 {exact['p50']:.1f}  p95 {exact['p95']:.1f}  p99 {exact['p99']:.1f}  max {exact['max']:.1f}")
    print(f"  latency ms (Locust)  p50 {pct.get('p50')}  p95 {pct.get('p95')}  p99 {pct.get('p99')}")
    if "flow" in summary:
        f = summary["flow"]
        print(f"  whole flow: {f['iterations']} iterations ({f['failed']} failed), median {f['p50_ms']} ms")
    if "open_model" in summary:
        o = summary["open_model"]
        print(f"  open model: {o['achieved_per_s']} of {o['target_per_s']} iterations/s started with {o['users']} users"
              + ("" if o["held"] else "  RATE NOT HELD: more users needed, latency is not an open-model figure"))
    if "concurrency" in summary:
        c = summary["concurrency"]
        print(f"  concurrency efficiency {c['efficiency']}  ({c['achieved_rps']:.2f} of {c['ideal_rps']:.2f} req/s possible)")
    print(f"  generator CPU {gen.get('cpu_percent_of_one_core')}% of one core ({gen.get('cpu_us_per_request')} µs/request)"
          f"{'  (Locust warned: CPU above 90%)' if gen.get('cpu_warning') else ''}; "
          f"server CPU {meta.get('server_cpu_seconds')} s; peak PostgreSQL backends {meta.get('db_peak_backends')}")
    print(f"  results: {run_dir}")


def cmd_verify(a) -> int:
    opts = build_options(a)
    run_dir = results.new_run_dir(opts.variant, "verify", opts.results_root)
    with ExitStack() as stack:
        st = run.bring_up(opts, stack, run_dir / "server.log")
        for name, ok, detail in st.contract.checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        results.write_meta(run_dir, {"status": "verified" if not st.contract.failures else "contract-failed",
                                     "variant": st.variant.as_dict(), "contract": st.contract.as_dict()})
        from asgibench import contract

        contract.require(st.contract, st.variant.name)
    print(f"{opts.variant}: contract verified ({len(st.contract.checks)} checks)")
    return 0


def cmd_ui(a) -> int:
    opts = build_options(a)
    run_dir = results.new_run_dir(opts.variant, "ui", opts.results_root)
    with ExitStack() as stack:
        st = run.bring_up(opts, stack, run_dir / "server.log")
        from asgibench import contract

        contract.require(st.contract, st.variant.name)
        if not database.port_is_free(a.ui_port):
            raise RunError(f"port 127.0.0.1:{a.ui_port} (Locust's web UI) is taken")
        cmd = loadgen.command(opts.plan, st.base_url, run_dir, headless=False, web_port=a.ui_port)
        proc = procs.spawn(cmd, log_path=run_dir / "locust.log", env={"PYTHONPATH": str(loadgen.ROOT / "services")})
        stack.callback(procs.stop, proc)
        print(f"Locust web UI: http://127.0.0.1:{a.ui_port}  (server {st.base_url}; Ctrl-C stops everything; "
              f"stops by itself after {a.ui_minutes:.0f} min)", flush=True)
        try:
            proc.wait(timeout=a.ui_minutes * 60)
        except subprocess.TimeoutExpired:
            print(f"asgibench: the UI session's {a.ui_minutes:.0f} minutes are over; stopping", file=sys.stderr)
        if not st.server.alive():
            raise RunError(f"server {st.variant.name} died: {st.server.log_tail()}")
    return 0


def cmd_db(a) -> int:
    cluster = database.EmbeddedCluster()
    if a.action == "stop":
        if os.environ.get("DATABASE_URL"):
            print("DATABASE_URL is set: asgibench does not manage that database")
            return 0
        port = cluster.running_port()
        cluster.stop()
        print(f"embedded PostgreSQL stopped (was on port {port})" if port else "embedded PostgreSQL is not running")
        return 0
    if a.action == "status":
        port = cluster.running_port()
        print(f"embedded PostgreSQL running on 127.0.0.1:{port} ({cluster.data})" if port else
              f"embedded PostgreSQL not running ({'initialised' if cluster.initialised() else 'not initialised'} at {cluster.data})")
        return 0
    python = envs.parse_python(a.python)
    db = database.open_database()
    seed = database.prepare(db, envs.ensure("django", python), a.scale)
    print(f"PostgreSQL ready: {db.url} (seed {seed['seeded']}, scale {seed['scale']}); `asgibench db stop` stops it")
    return 0


def cmd_env(a) -> int:
    python = envs.parse_python(a.python)
    group = variants.get(a.target).env if a.target in variants.BY_NAME else a.target
    env = envs.ensure(group, python)
    print(f"{env.path} ({len(env.packages)} packages, Python {python})")
    return 0


def cmd_matrix(a) -> int:
    from asgibench import matrix

    if a.id and (results.RESULTS_DIR / "matrix" / a.id / "matrix.json").exists():
        m = matrix.Matrix.resume(a.id)
        print(f"resuming matrix {a.id} with its recorded settings", flush=True)
        return m.run()
    python = envs.parse_python(a.python)
    wanted = [w.strip() for w in a.variants.split(",") if w.strip()] if a.variants else None
    for w in wanted or []:
        variants.get(w)
    scenarios = [x.strip() for x in a.scenario.split(",") if x.strip()]
    bad = [x for x in scenarios if x not in matrix.SCENARIOS]
    if bad or not scenarios:
        raise UsageError(f"matrix scenarios are {', '.join(matrix.SCENARIOS)}, got {a.scenario!r}")
    rows, skipped = matrix.available_rows(python, wanted)
    for line in skipped:
        print(f"skipping {line}", file=sys.stderr)
    settings = matrix.MatrixSettings(rows=rows, scenarios=scenarios, trials=a.trials, duration=a.duration,
                                     io_duration=a.io_duration, warmup=a.warmup, users=a.users,
                                     io_users=a.io_users, io_seconds=a.io_seconds, python=a.python)
    for label, value, lo, hi in (("trials", a.trials, 1, 100), ("duration", a.duration, 1, 3600),
                                 ("io duration", a.io_duration, 1, 3600), ("users", a.users, 1, 10000),
                                 ("io users", a.io_users, 1, 1000), ("io seconds", a.io_seconds, 0.01, 5),
                                 ("warm-up", a.warmup, 0, 600)):
        if not lo <= value <= hi:
            raise UsageError(f"{label} must be between {lo} and {hi}, got {value}")
    matrix_id = a.id or "m" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return matrix.Matrix(matrix_id, settings).run()


def cmd_worker(a) -> int:
    """A Locust worker for a master elsewhere (`bench ... --remote-workers N --master-bind ADDR`)."""
    if not a.allow_remote:
        import ipaddress

        try:
            if not ipaddress.ip_address(socket.gethostbyname(a.master)).is_loopback:
                raise UsageError(f"--master {a.master} is not loopback: add --allow-remote")
        except OSError:
            raise UsageError(f"cannot resolve --master {a.master}") from None
    plan = loadgen.LoadPlan(scenario=a.scenario or loadgen.CONSTANT, flow="api", master_port=a.master_port)
    cmd = loadgen.worker_command(plan, a.master)
    print(f"Locust worker -> {a.master}:{a.master_port} (Ctrl-C to stop)", flush=True)
    proc = procs.spawn(cmd, env={"PYTHONPATH": str(loadgen.ROOT / "services")})
    try:
        return proc.wait() or 0
    finally:
        procs.stop(proc)


def cmd_calibrate(a) -> int:
    from asgibench import calibrate

    calibrate.calibrate(seconds=a.duration, users=a.users)
    return 0


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="asgibench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    lp = sub.add_parser("list", help="the variant registry")
    lp.add_argument("--names", action="store_true", help="names only, one per line")
    lp.set_defaults(fn=cmd_list)
    for name, fn, hlp in (("bench", cmd_bench, "run a benchmark"), ("verify", cmd_verify, "contract check only"),
                          ("ui", cmd_ui, "Locust web UI on a running stack")):
        sp = sub.add_parser(name, help=hlp)
        _add_load_args(sp)
        if name == "ui":
            sp.add_argument("--ui-minutes", type=_number(float), default=60.0, help="stop after this long (default 60)")
            sp.add_argument("--ui-port", type=_number(int), default=8089, help="Locust web UI port on 127.0.0.1")
        sp.set_defaults(fn=fn)
    mp = sub.add_parser("matrix", help="every row x scenario x trials, interleaved, resumable")
    mp.add_argument("--variants", help="comma-separated rows (default: every row available on this Python)")
    mp.add_argument("--scenario", default="cpu,io", help="cpu,io (default both)")
    mp.add_argument("--trials", type=_number(int), default=3)
    mp.add_argument("--duration", type=duration, default=20.0, help="cpu scenario run time (default 20s)")
    mp.add_argument("--io-duration", type=duration, default=10.0, help="io scenario run time (default 10s)")
    mp.add_argument("--warmup", type=duration, default=3.0, help="per row and trial, excluded (default 3s)")
    mp.add_argument("--users", type=_number(int), default=10)
    mp.add_argument("--io-users", type=_number(int), default=10)
    mp.add_argument("--io-seconds", type=_number(float), default=1.0)
    mp.add_argument("--python")
    mp.add_argument("--id", help="matrix id; an existing id resumes that matrix")
    mp.set_defaults(fn=cmd_matrix)
    from asgibench import report

    rp = sub.add_parser("report", help="results/report.md, summary.csv and charts from runs")
    report.add_arguments(rp)
    rp.set_defaults(fn=report.cmd_report)
    wp = sub.add_parser("worker", help="a Locust worker joining a master on another machine")
    wp.add_argument("--master", required=True, help="host of the `bench ... --remote-workers N` master")
    wp.add_argument("--master-port", type=_number(int), default=5557)
    wp.add_argument("--scenario", help="the master's scenario when it is a ramp (loads the shape file)")
    wp.add_argument("--allow-remote", action="store_true")
    wp.set_defaults(fn=cmd_worker)
    cp = sub.add_parser("calibrate", help="measure how fast Locust itself can go on this machine")
    cp.add_argument("--duration", type=duration, default=10.0)
    cp.add_argument("--users", type=_number(int), default=16)
    cp.set_defaults(fn=cmd_calibrate)
    dp = sub.add_parser("db", help="the embedded PostgreSQL")
    dp.add_argument("action", choices=("start", "stop", "status"))
    dp.add_argument("--scale", type=_number(int), default=1)
    dp.add_argument("--python")
    dp.set_defaults(fn=cmd_db)
    ep = sub.add_parser("env", help="build a row's (or group's) environment")
    ep.add_argument("target")
    ep.add_argument("--python")
    ep.set_defaults(fn=cmd_env)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean-up path as Ctrl-C


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compose"]:  # its own small parser (compose.main)
        from asgibench import compose

        return compose.main(argv[1:])
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C must reach our clean-up even when started from a shell that ignores SIGINT (`cmd &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        a = parser().parse_args(argv)
        return a.fn(a)
    except AsgibenchError as e:
        print(f"asgibench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\nasgibench: interrupted; everything started was stopped, partial results kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; the run itself finished and was cleaned up
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        # Belt and braces: nothing this invocation started may outlive it. Finding anything here is
        # a clean-up bug, so say so (the tests assert this line never appears).
        left = procs.tagged_pids()
        names = [procs.describe(pid) for pid in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if left:
            print(f"asgibench: warning: killed {len(left)} leftover process(es): {names}", file=sys.stderr)
