"""From command-line words to a BenchOptions: the load, server and database options of `bench`,
`verify` and `ui` (and of the compose locust-master, which parses the same words), their parsers
(duration, number, cpu_placement), and build_options, which picks the scenario and the flow.

Every refusal is a UsageError (one line, exit 2); numeric ranges are bounds.BOUNDS, what a row can
run is policy.check_request (the pipeline's first step). A new load option is one add_argument in
add_load_args, one BenchOptions/LoadPlan field it sets in build_options, and, if it is a number
with a range, one row in bounds.BOUNDS.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract as bc
from asgibench import bounds, database, loadgen, policy, server, variants
from asgibench.errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        raise UsageError(message)


@dataclass
class BenchOptions:
    variant: str
    plan: loadgen.LoadPlan
    python: str | None = None
    django: str | None = None  # --django X.Y (None: the Python's default Django)
    workers: int | None = None
    db_conn: str | None = None
    pool_size: int = policy.DEFAULT_POOL_SIZE
    scale: int = 1
    warmup: float = 10.0
    keep_db: bool = False
    port: int | None = None  # server port; default a free one
    target: str | None = None  # --target: an external server (contract check + load only)
    results_root: Path | None = None
    cpus: dict = field(default_factory=dict)  # {"server": {0}, "locust": {1}, "db": {0}}
    quiet: bool = False
    trials: int = 1
    accept_failures: bool = False  # --accept-failures: failed requests and stalls are recorded, exit 0


def duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", str(text))
    if not m:
        raise UsageError(f"bad duration {text!r}: use seconds or a suffix, e.g. 30, 30s, 2m")
    return float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def number(kind):
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


def add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant")
    g = p.add_argument_group("load")
    g.add_argument("--scenario", help=f"one of {', '.join(loadgen.SCENARIOS)} (default {loadgen.DEFAULT_SCENARIO}; "
                                      "--users/--duration alone mean constant)")
    g.add_argument("--users", type=number(int), help="users (constant and io scenarios; default 10)")
    g.add_argument("--spawn-rate", type=number(float), help="users started per second (default: all at once)")
    g.add_argument("--duration", type=duration, help="run time of constant/io scenarios, e.g. 30s, 2m")
    g.add_argument("--time-scale", type=number(float), default=1.0, help="compress a shape's stages (0.1 = 10x faster)")
    g.add_argument("--arrival-rate", type=number(float), default=0.0,
                   help="open model: iterations started per second, independently of responses (openmodel.py); "
                        "--users is then the in-flight cap (default 2 s of arrivals)")
    g.add_argument("--arrival-spacing", choices=("constant", "poisson"), default="constant",
                   help="open model: gaps between arrivals (default constant, 1/rate)")
    c = p.add_argument_group("capacity scenario (--scenario capacity: a ladder of offered rates, "
                             "locustfiles/ladder.py)")
    slo = loadgen.ladder.DEFAULT_SLO.replace("%", "%%")  # argparse %-formats help strings
    c.add_argument("--slo", default=loadgen.ladder.DEFAULT_SLO,
                   help=f"per-request SLO every step must meet (default {slo}; also "
                        "achieved=97%%, dropped=1%%)")
    c.add_argument("--ladder-start", type=number(float), default=loadgen.LoadPlan.ladder_start,
                   help=f"first offered rate, requests/s (default {loadgen.LoadPlan.ladder_start:g}; the original "
                        "flow's ladder offers whole iterations, about 6 requests each)")
    c.add_argument("--ladder-factor", type=number(float), default=loadgen.LoadPlan.ladder_factor,
                   help=f"each step offers this many times the last (default {loadgen.LoadPlan.ladder_factor:g})")
    c.add_argument("--ladder-hold", type=duration, default=loadgen.LoadPlan.ladder_hold,
                   help=f"seconds per step (default {loadgen.LoadPlan.ladder_hold:g})")
    c.add_argument("--io-probe", action="store_true",
                   help="the ladder offers the I/O probe (--io-seconds per request) instead of the row's flow: a "
                        "known capacity, concurrent slots / seconds")
    c.add_argument("--ladder-budget", type=duration, default=loadgen.LoadPlan.ladder_budget,
                   help=f"seconds of ladder + bisection steps at most (default {loadgen.LoadPlan.ladder_budget:g})")
    d = p.add_argument_group("distributed load and external servers")
    d.add_argument("--locust-workers", type=number(int), default=0,
                   help="run a Locust master plus N worker processes on this machine")
    d.add_argument("--remote-workers", type=number(int), default=0,
                   help="also wait for N workers from other machines (`asgibench worker --master HOST`)")
    d.add_argument("--master-bind", default="127.0.0.1", help="where the Locust master listens for workers")
    d.add_argument("--master-port", type=number(int),
                   help="Locust master port (default: a free one; 5557 with --remote-workers)")
    d.add_argument("--target", help="benchmark a server asgibench did not start (contract check, then load); "
                                    "needs DATABASE_URL = the database it serves from")
    d.add_argument("--allow-remote", action="store_true", help="allow a --target or --master-bind that is not loopback")
    g.add_argument("--trials", type=number(int), default=1, help="measured trials, each on a fresh server (default 1)")
    g.add_argument("--warmup", type=duration, default=10.0, help="warm-up before measuring, excluded (default 10s)")
    g.add_argument("--async", dest="async_api", action="store_true",
                   help="API steps hit /async_api/ (native async views)")
    g.add_argument("--with-slowapi", action="store_true", help="also hit the mounted FastAPI slowapi app")
    g.add_argument("--only-slowapi", action="store_true", help="only hit the slowapi app")
    g.add_argument("--api-only", action="store_true", help="skip the admin login steps (API-only flow)")
    g.add_argument("--io-seconds", type=number(float), default=1.0,
                   help="io scenario: seconds each request waits in PostgreSQL")
    g.add_argument("--reconnect-every", type=number(int), default=0,
                   help="each user opens a new connection every K iterations, as the matrix's api/original "
                        "scenarios do (K=5: spreads connections over workers); default 0 = keep-alive for the run")
    g.add_argument("--request-timeout", type=duration, default=bc.DEFAULT_REQUEST_TIMEOUT,
                   help=f"a request waiting longer fails as 'timeout after S s' "
                        f"(default {bc.DEFAULT_REQUEST_TIMEOUT:g}s)")
    g.add_argument("--accept-failures", action="store_true",
                   help="failed requests and stalls are recorded but exit 0 (overload experiments)")
    g.add_argument("--processes", type=number(int), default=1, help="Locust --processes (-1 = one per core)")
    s = p.add_argument_group("server and database")
    s.add_argument("--workers", type=number(int), help="override the row's worker count (Makefile: WORKERS=N)")
    s.add_argument("--db-conn", help="per-request | persistent | pool (default: the row's)")
    s.add_argument("--pool-size", type=number(int),
                   help=f"pool connections per worker process (default {policy.DEFAULT_POOL_SIZE}; "
                        "io scenario: --users)")
    s.add_argument("--python", help="server Python X.Y (default: the runner's)")
    s.add_argument("--django", help="Django X.Y of the row's env: 2.2, 3.2, 4.2, 5.2 or 6.1 (default: the "
                                    "Python's; Makefile: DJANGO=X.Y)")
    s.add_argument("--scale", type=number(int), default=1, help="seed data scale (default 1)")
    s.add_argument("--port", type=number(int), help="server port on 127.0.0.1 (default: a free one)")
    s.add_argument("--keep-db", action="store_true", help="leave the embedded PostgreSQL running afterwards")
    s.add_argument("--pin", help="CPU placement, e.g. server=0,db=0,locust=1 (default: not pinned)")
    s.add_argument("--results", help="results folder (default results/)")
    s.add_argument("--quiet", action="store_true")


def bench_parser(prog: str = "asgibench bench") -> Parser:
    """A parser of `bench`'s words alone (VARIANT [options]), as the compose locust-master gets them."""
    p = Parser(prog=prog)
    add_load_args(p)
    return p


def build_options(a) -> BenchOptions:
    variant = variants.get(a.variant)
    given = a.users is not None or a.duration is not None or bool(a.arrival_rate)
    scenario = a.scenario or (loadgen.CONSTANT if given else loadgen.DEFAULT_SCENARIO)
    if scenario not in loadgen.SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r} (choose from {', '.join(loadgen.SCENARIOS)})")
    if scenario in loadgen.stages.SHAPES and given:
        raise UsageError(f"scenario {scenario} is a ramp of its own: --users/--duration apply to constant and io")
    if scenario == loadgen.IO or (scenario == loadgen.CAPACITY and a.io_probe):
        flow = "io"
    elif a.api_only or a.only_slowapi or "admin" not in variant.serves:
        flow = "api"
    else:
        flow = variant.default_flow
    if a.users is not None:
        users = a.users
    elif scenario == loadgen.CAPACITY:
        users = loadgen.CAPACITY_INFLIGHT  # the in-flight cap
    else:
        users = loadgen.open_model_users(a.arrival_rate) if a.arrival_rate else 10
    default_seconds = 20.0 if scenario == loadgen.IO else 30.0
    plan = loadgen.LoadPlan(
        scenario=scenario, flow=flow, users=users,
        spawn_rate=loadgen.default_spawn_rate(scenario, users) if a.spawn_rate is None else a.spawn_rate,
        duration=default_seconds if a.duration is None else a.duration,
        time_scale=a.time_scale, api_prefix=bc.ASYNC_API_PREFIX if a.async_api else bc.API_PREFIX,
        with_slowapi=a.with_slowapi, only_slowapi=a.only_slowapi,
        io_path=variant.io_probe, io_seconds=a.io_seconds, processes=a.processes, arrival_rate=a.arrival_rate,
        locust_workers=a.locust_workers, remote_workers=a.remote_workers, master_bind=a.master_bind,
        master_port=a.master_port or (5557 if a.remote_workers else database.free_port()),
        request_timeout=a.request_timeout, arrival_spacing=a.arrival_spacing, slo=a.slo,
        ladder_start=a.ladder_start, ladder_factor=a.ladder_factor, ladder_hold=a.ladder_hold,
        ladder_budget=a.ladder_budget, reconnect_every=a.reconnect_every,
    )
    if not a.allow_remote and not server.loopback(a.master_bind):
        raise UsageError(f"--master-bind {a.master_bind} is not loopback: "
                         "add --allow-remote for workers on other machines")
    if scenario == loadgen.IO:
        bounds.check("io_seconds_option", a.io_seconds)
    return BenchOptions(
        variant=a.variant, plan=plan, python=a.python, django=a.django, workers=a.workers, db_conn=a.db_conn,
        pool_size=a.pool_size or policy.pool_size_for(users if scenario == loadgen.IO else 0),
        scale=a.scale, port=a.port, warmup=a.warmup, keep_db=a.keep_db,
        results_root=None if not a.results else Path(a.results),
        cpus=cpu_placement(a.pin), quiet=a.quiet, trials=getattr(a, "trials", 1), accept_failures=a.accept_failures,
        target=server.check_target(a.target, a.allow_remote) if a.target else None,
    )
