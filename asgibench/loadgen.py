"""Locust step: the load plan for a scenario, and one headless Locust run of it against a server
that is already up and verified. Locust lives in the runner's env (never a server's) and runs as a
subprocess in its own process group; we measure its CPU (the generator's own cost) from the kernel's
rusage of our reaped children, ask health() (server and database) while it runs, and stop it at once
on a death or Ctrl-C keeping its CSVs.
A new Locust option the runner passes is a LoadPlan field and its words in command() (its range in
bounds.BOUNDS, checked by validate); a new ramped scenario is a shape in locustfiles/stages.py.

Open model (--arrival-rate R, and the capacity scenario): locustfiles/openmodel.py's dispatcher, one
OpenModelUser scheduling arrivals independently of responses; `users` is then its in-flight cap
(--max-inflight) and the arrivals go to openmodel.json. The capacity scenario runs its ladder
(locustfiles/ladder.py: start, factor, hold, budget, SLO) inside that one Locust run; it ends itself.
"""
from __future__ import annotations

import csv
import json
import math
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import benchcontract
from asgibench import ROOT, bounds, procs
from asgibench.errors import UsageError
from locustfiles import ladder, stages  # plain data and rules, importable without Locust

LOCUSTFILES = ROOT / "locustfiles"

USER_CLASSES = {"original": "OriginalFlowUser", "api": "ApiOnlyUser", "io": "IoProbeUser", "bare": "BareGetUser"}
CONSTANT = "constant"
IO = "io"
CAPACITY = "capacity"
SCENARIOS = (*stages.SHAPES, CONSTANT, IO, CAPACITY)
OPEN_USER = "OpenModelUser"
OPEN_MODEL_FILE = "openmodel.json"
CAPACITY_INFLIGHT = 500  # the capacity scenario's default in-flight cap (slots are created only when needed)
DEFAULT_SCENARIO = "readme"


@dataclass
class LoadPlan:
    """What Locust runs: a user class and either a shape (ramped stages) or constant users."""

    scenario: str
    flow: str  # original | api | io  (-> USER_CLASSES)
    users: int = 10
    spawn_rate: float = 10.0
    duration: float = 30.0  # seconds, constant/io scenarios; shapes have their own length
    time_scale: float = 1.0  # shapes: stage durations multiplied by this (tests compress them)
    api_prefix: str = benchcontract.API_PREFIX
    with_slowapi: bool = False
    only_slowapi: bool = False
    io_path: str = benchcontract.IO_SLEEP_PATH
    io_seconds: float = 1.0
    bare_path: str = benchcontract.SLOWAPI_PATH  # BareGetUser (calibration): no checks at all
    processes: int = 1  # Locust --processes (1 = one process)
    locust_workers: int = 0  # >0: a Locust master plus this many worker processes on this machine
    remote_workers: int = 0  # workers the master also waits for from other machines (`asgibench worker`)
    master_bind: str = "127.0.0.1"  # where the master listens for workers
    master_port: int = 5557
    arrival_rate: float = 0.0  # open model: iterations started per second over all users (0 = closed)
    reconnect_every: int = 0  # flows: each user opens a new connection every K iterations (0 = keep-alive)
    warmup: float = 0.0  # seconds of load before the measured run, excluded (in-process, one process only)
    request_timeout: float = benchcontract.DEFAULT_REQUEST_TIMEOUT  # seconds a request may wait, then a failure
    arrival_spacing: str = "constant"  # open model: constant | poisson gaps between arrivals
    slo: str = ladder.DEFAULT_SLO  # capacity: the SLO every step must meet
    ladder_start: float = ladder.Planner.start  # capacity: first offered rate, requests/s
    ladder_factor: float = ladder.Planner.factor  # capacity: each step's rate x this
    ladder_hold: float = ladder.Planner.hold  # capacity: seconds per step
    ladder_budget: float = 80.0  # capacity: seconds of ladder + bisection steps at most
    extra: list = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return bool(self.arrival_rate) or self.scenario == CAPACITY

    @property
    def arrival_unit(self) -> str:
        """One request per arrival on the capacity ladder (a request-level SLO), except for the original
        flow, whose steps depend on each other (one iteration per arrival)."""
        return "request" if self.scenario == CAPACITY and self.flow != "original" else "iteration"

    def planner(self) -> ladder.Planner:
        return ladder.Planner(start=self.ladder_start, factor=self.ladder_factor, hold=self.ladder_hold,
                              budget=self.ladder_budget, overload_hold=self.ladder_hold,
                              recovery_hold=2 * self.ladder_hold)

    @property
    def is_shape(self) -> bool:
        return self.scenario in stages.SHAPES

    @property
    def seconds(self) -> float:
        if self.is_shape:
            return stages.total_seconds(self.scenario) * self.time_scale
        if self.scenario == CAPACITY:  # the longest the ladder can run; it ends itself when done
            p = self.planner()
            return p.max_seconds() + ladder.Slo().p99_ms / 1000.0 * (p.budget / p.hold + 3) + 10
        return self.duration

    @property
    def distributed(self) -> bool:
        return bool(self.locust_workers or self.remote_workers)

    @property
    def single_process(self) -> bool:
        return self.processes == 1 and not self.distributed

    @property
    def peak_users(self) -> int:
        return stages.peak_users(self.scenario) if self.is_shape else self.users

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(seconds=self.seconds, peak_users=self.peak_users, user_class=USER_CLASSES[self.flow])
        return d


def default_spawn_rate(scenario: str, users: int) -> float:
    """Closed-model runs start their users over one second; the I/O scenario starts them all at
    once (a one-second ramp would cost a 10 s run a few percent of its efficiency)."""
    return float(max(users, 1)) * (100.0 if scenario == IO else 1.0)


def worker_command(plan: LoadPlan, master_host: str) -> list[str]:
    """A Locust worker: the master sends it the user class and every custom argument."""
    files = [str(LOCUSTFILES / "workload.py")] + ([str(LOCUSTFILES / "shapes.py")] if plan.is_shape else [])
    return [str(locust_bin()), "-f", ",".join(files), "--worker", "--master-host", master_host,
            "--master-port", str(plan.master_port), "--loglevel", "WARNING"]


def locust_bin() -> Path:
    return Path(sys.executable).parent / "locust"


def locust_env() -> dict:
    """What every Locust process (headless run, web UI, worker) adds to its environment: the
    locustfiles import benchcontract from services/."""
    return {"PYTHONPATH": str(ROOT / "services")}


def open_model_words(plan: LoadPlan, out: Path, warmup: bool) -> list[str]:
    """openmodel.py's options: the flow each arrival runs, the cap, the spacing, the ladder."""
    cmd = ["--open-flow", USER_CLASSES[plan.flow], "--arrival-unit", plan.arrival_unit,
           "--arrival-spacing", plan.arrival_spacing, "--max-inflight", str(plan.users), "--users", "1",
           "--spawn-rate", "1"]
    if not warmup:
        cmd += ["--open-model-file", str(out / OPEN_MODEL_FILE)]
    if plan.scenario == CAPACITY:
        per = ladder.REQUESTS_PER_ITERATION[plan.flow] if plan.arrival_unit == "iteration" else 1
        cmd += ["--ladder", "--slo", plan.slo, "--ladder-start", f"{plan.ladder_start / per:g}",
                "--ladder-factor", f"{plan.ladder_factor:g}", "--ladder-hold", f"{plan.ladder_hold:g}",
                "--ladder-budget", f"{plan.ladder_budget:g}"]
    return cmd


def command(plan: LoadPlan, host: str, out: Path, *, headless: bool = True, warmup: bool = False,
            web_port: int = 8089) -> list[str]:
    files = [str(LOCUSTFILES / "workload.py")] + ([str(LOCUSTFILES / "shapes.py")] if plan.is_shape else []) \
        + ([str(LOCUSTFILES / "openmodel.py")] if plan.is_open else [])
    user_class = OPEN_USER if plan.is_open else USER_CLASSES[plan.flow]
    cmd = [str(locust_bin()), "-f", ",".join(files), user_class, "--host", host,
           "--api-prefix", plan.api_prefix, "--io-path", plan.io_path, "--io-seconds", str(plan.io_seconds),
           "--bare-path", plan.bare_path, "--request-timeout", f"{plan.request_timeout:g}",
           "--loglevel", "WARNING", "--logfile", str(out / "locust.log")]
    if plan.with_slowapi:
        cmd.append("--with-slowapi")
    if plan.only_slowapi:
        cmd.append("--only-slowapi")
    if plan.is_shape:
        cmd += ["--scenario", plan.scenario, "--time-scale", str(plan.time_scale)]
    elif plan.is_open:
        cmd += open_model_words(plan, out, warmup)
    else:
        cmd += ["--users", str(plan.users), "--spawn-rate", str(plan.spawn_rate)]
    if plan.processes != 1:
        cmd += ["--processes", str(plan.processes)]
    if plan.distributed:
        cmd += ["--master", "--master-bind-host", plan.master_bind, "--master-bind-port", str(plan.master_port),
                "--expect-workers", str(plan.locust_workers + plan.remote_workers)]
    if not headless:
        return cmd + ["--web-host", "127.0.0.1", "--web-port", str(web_port)] + plan.extra
    if plan.warmup:
        cmd += ["--warmup-seconds", str(plan.warmup)]
    if plan.arrival_rate:
        cmd += ["--arrival-rate", str(plan.arrival_rate)]
    if plan.reconnect_every:
        cmd += ["--reconnect-every", str(plan.reconnect_every)]
    if not plan.is_shape:
        cmd += ["--run-time", f"{max(1, round(plan.seconds + plan.warmup))}s"]
    cmd += ["--headless", "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0"]
    if not warmup:
        cmd += ["--csv", str(out / "locust"), "--csv-full-history", "--html", str(out / "report.html"),
                "--json-file", str(out / "locust"), "--timings-file", str(out / "timings.bin"),
                "--generator-file", str(out / "generator.json")]
    return cmd + plan.extra


@dataclass
class LoadResult:
    exit_code: int | None
    wall_seconds: float
    generator_cpu_seconds: float
    interrupted: bool = False
    died: str | None = None  # what health() reported: "server-died" | "database-died"
    died_reason: str | None = None  # its one line
    died_after: float | None = None  # seconds into the measured run

    @property
    def server_died(self) -> bool:
        return self.died == "server-died"


def run(plan: LoadPlan, host: str, out: Path, *, health=None, cpus=None, warmup: bool = False,
        progress=None, on_measure_start=None, on_step=None) -> LoadResult:
    """Run Locust headless until its run time ends (or health() reports a death, or Ctrl-C).
    health() (every 0.5 s) returns None while the stack is fine, else (status, one-line reason): the
    run then stops at once, Locust keeping its CSVs. on_measure_start() is called once the in-process
    warm-up is over (approximately: Locust's clock starts with its first stats file). on_step(step) is
    called with each ladder step of openmodel.json once the controller has judged it (live figures)."""
    out.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    env = locust_env()
    proc = procs.spawn(command(plan, host, out, warmup=warmup), log_path=out / "locust.out", cwd=ROOT, env=env,
                       cpus=cpus)
    workers = [procs.spawn(worker_command(plan, "127.0.0.1"), log_path=out / f"locust-worker{i}.out", cwd=ROOT,
                           env=env, cpus=cpus) for i in range(plan.locust_workers)]
    hard_limit = plan.seconds + plan.warmup + 90  # every load run is bounded: Locust stops itself long before this
    interrupted, died, died_after = False, None, None
    started = None  # the measured run starts when Locust writes its first stats (after its imports)
    steps_told = 0
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            died = health() if health is not None else None
            if died:  # seconds into the measured run (its clock: Locust's first stats, after the warm-up)
                died_after = max(0.0, time.monotonic() - (started or t0) - (plan.warmup if started else 0.0))
                break
            if time.monotonic() - t0 > hard_limit:
                break
            if started is None and (out / "locust_stats.csv").exists():
                started = time.monotonic()
            if on_measure_start and started is not None and time.monotonic() - started >= plan.warmup:
                on_measure_start()
                on_measure_start = None
            if progress and started is not None:
                progress(time.monotonic() - started - plan.warmup, plan.seconds, read_totals(out))
            if on_step is not None:
                steps_told = _tell_steps(out / OPEN_MODEL_FILE, steps_told, on_step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if proc.poll() is None:
            # SIGTERM makes Locust shut down cleanly: it still writes its CSV, HTML and JSON reports.
            procs.stop(proc, grace=15, sig=signal.SIGTERM)
        _reap(proc)
        for w in workers:  # the master told them to quit; make sure they did
            procs.stop(w, grace=10, sig=signal.SIGTERM)
            _reap(w)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LoadResult(proc.returncode, time.monotonic() - t0, cpu, interrupted, *(died or (None, None)), died_after)


def _tell_steps(path: Path, told: int, on_step) -> int:
    """Hand on_step the judged steps of the open-model file not handed yet; returns how many were."""
    try:
        steps = [s for s in json.loads(path.read_text())["steps"] if s.get("live")]
    except (OSError, ValueError, KeyError):
        return told
    for s in steps[told:]:
        on_step(s)
    return max(told, len(steps))


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        procs.stop(proc, grace=1, sig=signal.SIGKILL)


def read_totals(out: Path) -> dict:
    """Live totals from Locust's _stats.csv (rewritten each second): requests, failures, req/s,
    excluding the FLOW entry (a whole iteration, not a request)."""
    path = out / "locust_stats.csv"
    tot = {"requests": 0, "failures": 0, "rps": 0.0}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("Type") in (benchcontract.FLOW_REQUEST_TYPE, "") or row.get("Name") == "Aggregated":
                    continue
                tot["requests"] += int(row["Request Count"])
                tot["failures"] += int(row["Failure Count"])
                tot["rps"] += float(row["Requests/s"])
    except (OSError, KeyError, ValueError):
        pass
    return tot


def open_model_users(rate: float) -> int:
    """The open model's default in-flight cap for an arrival rate: 2 s of arrivals in flight."""
    return max(10, min(1000, math.ceil(rate * 2)))


def validate(plan: LoadPlan) -> None:
    """What Locust cannot run as asked (ranges: bounds.BOUNDS)."""
    if plan.arrival_rate and plan.is_shape:
        raise UsageError("--arrival-rate is an open model of its own: use it with the constant or io scenario")
    if plan.scenario == CAPACITY and plan.arrival_rate:
        raise UsageError("the capacity scenario chooses its own rates: drop --arrival-rate "
                         "(--ladder-start sets the first)")
    if plan.is_open and not plan.single_process:
        raise UsageError("the open model runs in one Locust process: drop --processes/--locust-workers")
    if plan.arrival_spacing not in ("constant", "poisson"):
        raise UsageError(f"unknown arrival spacing {plan.arrival_spacing!r} (constant or poisson)")
    try:
        ladder.parse_slo(plan.slo)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if plan.distributed and plan.processes != 1:
        raise UsageError("--processes and --locust-workers are two ways to the same thing: pick one")
    if plan.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {plan.scenario!r} (choose from {', '.join(SCENARIOS)})")
    for name in ("users", "spawn_rate", "duration", "time_scale", "io_seconds", "processes", "arrival_rate",
                 "locust_workers", "remote_workers", "request_timeout", "ladder_start", "ladder_factor",
                 "ladder_hold", "ladder_budget", "reconnect_every"):
        bounds.check(name, getattr(plan, name))
