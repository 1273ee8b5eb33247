"""Command line: `python -m asgibench <command>` (the Makefile is a thin shim over it).

  list                      the registry: every row, its server, workers, env group, what it serves
  bench VARIANT [options]   the whole data path (env -> db -> server -> contract -> warm-up -> Locust -> results)
  ui VARIANT [options]      the same stack with Locust's web UI on 127.0.0.1:8089 (Ctrl-C stops everything)
  verify VARIANT            start the row and run the contract check only
  matrix, report, calibrate every row x scenario x trials; the report from run folders; Locust's own ceiling
  compare BASE NEW          NEW/BASE per row and figure, 95% CI, verdicts (--fail-if-worse PCT: exit 1)
  worker, compose           a Locust worker for a master elsewhere; compose/compose.yaml from the registry
  fidelity                  Locust's req/s and iterations/s against wrk and k6 on the same servers
  db start|stop|status|reset the embedded PostgreSQL (start leaves it running until `db stop`; reset
                            deletes its data; stop and reset refuse while a run uses it, unless --force)
  env VARIANT|GROUP         build (or check) a row's environment

Exit status: 0 ok (no request failed), 1 the run failed (requests failed or it stalled, unless
--accept-failures; server or database died, contract broken, an unexpected error...), 2 bad input
(unknown variant, bad numbers), 130 interrupted (partial results kept). README "Results" has the table.

This module only parses, dispatches and maps exit codes (errors.exit_code under procs.run_as_main).
A new subcommand is one add_parser in parser() and a cmd_* function of a few lines calling the
module that does the work; a command with many options of its own keeps them beside its code
(add_arguments + cmd_*, as matrix, report and compose do).
"""
from __future__ import annotations

import argparse
import os
import sys

import asgibench.fidelity as fidelity
from asgibench import (
    calibrate,
    compose,
    console,
    database,
    envs,
    loadgen,
    matrix,
    pipeline,
    policy,
    procs,
    report,
    variants,
)
from asgibench.errors import UsageError
from asgibench.options import Parser, add_load_args, build_options, duration, number
from asgibench.report import compare
from asgibench.server import loopback


def cmd_list(a) -> int:
    if a.python or a.django:  # what runs on that Python / Django, and why the rest does not
        python = envs.parse_python(a.python)
        django = envs.parse_django(a.django)
        if django:
            envs.check_django(django, python)
        console.print_capability(python, django)
        return 0
    console.print_registry(names_only=a.names)
    return 0


def cmd_bench(a) -> int:
    opts = build_options(a)
    done = pipeline.bench(opts)
    console.print_bench(opts, done)
    pipeline.require_verdicts(done)
    return 0


def cmd_verify(a) -> int:
    opts = build_options(a)
    checked = pipeline.verify(opts)
    print(f"{opts.variant}: contract verified ({len(checked.checks)} checks)")
    return 0


def ui_options(a):
    """`ui`'s options: constant load with the row's default users and spawn rate, pre-filled in Locust's
    form, unless --scenario asks for a ramp (whose shape then drives the users: Locust shows the user
    fields disabled at 0). The flow switches (--async, --with-slowapi, ...) are the form's extra options."""
    if a.scenario is None:
        a.scenario = loadgen.CONSTANT
    return build_options(a)


def cmd_ui(a) -> int:
    pipeline.ui(ui_options(a), a.ui_port, a.ui_minutes)
    return 0


def cmd_db(a) -> int:
    if a.action != "start" and os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is set: asgibench does not manage that database")
        return 0
    if a.action == "stop":
        print(database.stop_cluster(force=a.force))
        return 0
    if a.action == "reset":
        print(database.reset_cluster(force=a.force))
        return 0
    if a.action == "status":
        print(database.status_line())
        return 0
    python = envs.parse_python(a.python)
    db = database.open_database(keep=True)
    try:
        seed = database.prepare(db, envs.ensure("django", python), a.scale)
    finally:
        db.release(keep=True)  # the cluster stays up until `db stop`; this process no longer uses it
    print(f"PostgreSQL ready: {db.url} (seed {seed['seeded']}, scale {seed['scale']}); `asgibench db stop` stops it")
    return 0


def cmd_env(a) -> int:
    python = envs.parse_python(a.python)
    row = variants.BY_NAME.get(a.target)
    group = row.env if row else a.target
    django = policy.row_django(row, a.django, python) if row else envs.parse_django(a.django)
    env = envs.ensure(group, python, django=django)
    dj = f", Django {env.packages['django']}" if env.has("django") else ""
    print(f"{env.path} ({len(env.packages)} packages, Python {python}{dj})")
    return 0


def cmd_worker(a) -> int:
    """A Locust worker for a master elsewhere (`bench ... --remote-workers N --master-bind ADDR`)."""
    if not a.allow_remote:
        local = loopback(a.master)
        if local is None:
            raise UsageError(f"cannot resolve --master {a.master}")
        if not local:
            raise UsageError(f"--master {a.master} is not loopback: add --allow-remote")
    plan = loadgen.LoadPlan(scenario=a.scenario or loadgen.CONSTANT, flow="api", master_port=a.master_port)
    cmd = loadgen.worker_command(plan, a.master)
    print(f"Locust worker -> {a.master}:{a.master_port} (Ctrl-C to stop)", flush=True)
    proc = procs.spawn(cmd, env=loadgen.locust_env())
    try:
        return proc.wait() or 0
    finally:
        procs.stop(proc)


def cmd_calibrate(a) -> int:
    calibrate.calibrate(seconds=a.duration, users=a.users, open_rates=a.open_rates)
    return 0


def _rates(text: str) -> tuple:
    """--open-rates: arrivals/s, comma-separated and rising, or "none"."""
    if text.strip() == "none":
        return ()
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates are numbers, comma-separated (or none), got {text!r}") from None
    if any(v <= 0 or v > 100000 for v in vals) or list(vals) != sorted(vals):
        raise argparse.ArgumentTypeError(f"rates rise from above 0 to at most 100000 arrivals/s, got {text!r}")
    return vals


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="asgibench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    lp = sub.add_parser("list", help="the variant registry")
    lp.add_argument("--names", action="store_true", help="names only, one per line")
    lp.add_argument("--python", help="what runs on this Python X.Y (and why the rest does not)")
    lp.add_argument("--django", help="... with this Django X.Y")
    lp.set_defaults(fn=cmd_list)
    for name, fn, hlp in (("bench", cmd_bench, "run a benchmark"), ("verify", cmd_verify, "contract check only"),
                          ("ui", cmd_ui, "Locust web UI on a running stack")):
        sp = sub.add_parser(name, help=hlp)
        add_load_args(sp)
        if name == "ui":
            sp.add_argument("--ui-minutes", type=number(float), default=60.0, help="stop after this long (default 60)")
            sp.add_argument("--ui-port", type=number(int), default=8089, help="Locust web UI port on 127.0.0.1")
        sp.set_defaults(fn=fn)
    mp = sub.add_parser("matrix", help="every row x scenario x trials, interleaved, resumable")
    matrix.add_arguments(mp)
    mp.set_defaults(fn=matrix.cmd_matrix)
    rp = sub.add_parser("report", help="results/report.md, summary.csv and charts from runs")
    report.add_arguments(rp)
    rp.set_defaults(fn=report.cmd_report)
    kp = sub.add_parser("compare", help="NEW vs BASE: ratios, 95%% CIs and verdicts per row and figure",
                        description=compare.__doc__.split("\n")[0])
    compare.add_arguments(kp)
    kp.set_defaults(fn=compare.cmd_compare)
    wp = sub.add_parser("worker", help="a Locust worker joining a master on another machine")
    wp.add_argument("--master", required=True, help="host of the `bench ... --remote-workers N` master")
    wp.add_argument("--master-port", type=number(int), default=5557)
    wp.add_argument("--scenario", help="the master's scenario when it is a ramp (loads the shape file)")
    wp.add_argument("--allow-remote", action="store_true")
    wp.set_defaults(fn=cmd_worker)
    fp = sub.add_parser("fidelity", help="Locust against wrk and k6 on the same servers (results/fidelity/<id>/)")
    fidelity.add_arguments(fp)
    fp.set_defaults(fn=fidelity.cmd_fidelity)
    cp = sub.add_parser("calibrate", help="measure how fast Locust itself can go on this machine")
    cp.add_argument("--duration", type=duration, default=10.0)
    cp.add_argument("--users", type=number(int), default=16)
    cp.add_argument("--open-rates", type=_rates, default=calibrate.OPEN_RATES,
                    help="the open model's sweep, arrivals/s, comma-separated; stops at the first rate not held "
                         f"(default {','.join(f'{r:g}' for r in calibrate.OPEN_RATES)}; none: skip it)")
    cp.set_defaults(fn=cmd_calibrate)
    dp = sub.add_parser("db", help="the embedded PostgreSQL")
    dp.add_argument("action", choices=("start", "stop", "status", "reset"),
                    help="reset: stop it and delete its data (the next run initialises and seeds a fresh one)")
    dp.add_argument("--force", action="store_true",
                    help="stop / reset even while another asgibench process uses it (that run loses its database)")
    dp.add_argument("--scale", type=number(int), default=1)
    dp.add_argument("--python")
    dp.set_defaults(fn=cmd_db)
    ep = sub.add_parser("env", help="build a row's (or group's) environment")
    ep.add_argument("target")
    ep.add_argument("--python")
    ep.add_argument("--django")
    ep.set_defaults(fn=cmd_env)
    op = sub.add_parser("compose", help="compose/compose.yaml from the registry (--check: is it up to date)",
                        description=compose.DESCRIPTION)
    compose.add_arguments(op, parser_class=Parser)
    op.set_defaults(fn=compose.cmd_compose)
    return p


def _dispatch(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    return a.fn(a)


def main(argv=None) -> int:
    return procs.run_as_main(_dispatch, sys.argv[1:] if argv is None else argv)
