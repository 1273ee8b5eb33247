"""`asgibench matrix`: every available row (or a filter), every scenario, N trials, interleaved
(trial 1 of A B C, then trial 2 of A B C, ...) so that machine drift hits all rows alike.

One trial of one row = a freshly started server, its contract checked, a warm-up, then each
scenario that applies to the row measured into its own run folder (meta.json carries {"matrix":
{"id", "trial", "trials", "scenario"}}). The matrix's plan and progress live in
results/matrix/<id>/matrix.json: a second call with the same --id finishes the missing trials
(resumable after Ctrl-C or a crash). PostgreSQL stays up for the whole matrix. A row that fails is
recorded as failed and the matrix goes on.

Scenarios (SCENARIOS; the default: api, original, io):
  api        the API-only flow on EVERY row: the one flow all rows serve, so the one table where every
             row is comparable with every other.
  original   the original study's flow (admin login + the two API pages, 7 HTTP exchanges) on the rows
             that serve Django's admin only; compared among those rows only (never with `api`).
  io         the I/O probe (concurrency efficiency).
  keepalive  the API-only flow with each user on one keep-alive connection for the whole run: a few
             long-lived connections. Not in the default (the 60-minute budget): ask for it
             (`--scenario api,keepalive`) to see the finding it shows.
  cpu        the row's default flow, keep-alive (matrices planned before the same-flow split).
  capacity   the SLO ladder (asgibench/capacity.py) on the API flow of every row: capacity at SLO and
             the overload step. Not in the default either (~72 s per row and trial: 27 rows x 3 trials
             would take ~97 minutes more): `make matrix SCENARIO=capacity`.

Why api and original turn their connections over (each user reconnects every RECONNECT_EVERY
iterations, its first after a random 1..K): with 10 keep-alive connections on a 2-worker server the
kernel hands the burst of new connections at the start to whichever worker is in accept() first, and
that split holds for the whole run. Measured here (FLOWS helper, 2026-12-02; fastapi-tortoise, uvicorn
2 workers, API flow, 10 users, 8 s windows, per-worker CPU from psutil, configurations interleaved,
other helpers' tests running, load average 4-7): keep-alive gave the busier worker 99.5, 63, 52, 51
and 51% of the server CPU (issue 12 saw 94/6 in 2 runs of 5: 152 vs 212-242 req/s); turning
connections over every 5 iterations gave 50-51% in 4 runs of 5 and 56% in one, every 20 iterations
50-54%, every iteration 50-51%; server CPU per request (8.3-8.9 ms, inflated by the load) and
generator CPU per request did not move with K. Many clients whose connections come and go are what
production traffic looks like, so that is the default; K=5 balanced best at no measured cost (one
new connection per 10 API requests, 35 original-flow exchanges) and still turns over several times
per user in a 12 s run of a slow row. A few long-lived connections are real server behaviour too,
and the imbalance they cause is a finding users must see: the keepalive scenario keeps it (the COST
helper's summary.balance and figures.flags mark an imbalanced trial).

Its options (add_arguments, cmd_matrix) and their ranges (MatrixSettings.validate, bounds.BOUNDS)
are here; each row-trial runs the pipeline's own steps (bring_up, then measure per scenario). A new
matrix scenario is a SCENARIOS entry (its flow and which rows it applies to) and its plan in plan_for;
a new setting, a MatrixSettings field (recorded in matrix.json, so a resumed matrix keeps it), its
option and its bound.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import benchcontract as bc
from asgibench import bounds, database, envs, figures, loadgen, pipeline, policy, results, runmeta, stats, variants
from asgibench.errors import RunError, UsageError
from asgibench.files import write_json_atomic
from asgibench.options import BenchOptions, duration, number


def _admin(variant) -> bool:
    return variant.default_flow == "original"


def _every(variant) -> bool:
    return True


# name -> (flow: a variant -> loadgen flow, applies to: a variant -> bool)
SCENARIOS = {
    "api": (lambda v: "api", _every),
    "original": (lambda v: "original", _admin),
    "io": (lambda v: "io", _every),
    "keepalive": (lambda v: "api", _every),
    "cpu": (lambda v: v.default_flow, _every),
    # per-request arrivals on the one flow every row serves, so every row's capacity is in the same req/s
    "capacity": (lambda v: "api", _every),
}
CAPACITY_SECONDS = 70.0  # a capacity ladder (loadgen's defaults) typically runs this long
DEFAULT_SCENARIOS = ("api", "original", "io")
RECONNECT_EVERY = 5  # api and original: each user opens a new connection every 5 iterations (module docstring)
# Measured here: server start + contract check + stop, per row and trial; and one Locust start-up, per scenario.
SERVER_OVERHEAD_SECONDS = 6.5
LOCUST_OVERHEAD_SECONDS = 2.0
# the final table's marks for figures.flags (the rule and its reason live there)
FLAG_MARKS = (("generator-bound", "GEN"), ("generator-competing", "COMP"), ("imbalanced", "IMB"))


@dataclass
class MatrixSettings:
    rows: list
    scenarios: list
    trials: int = 3
    duration: float = 12.0
    io_duration: float = 8.0
    keepalive_duration: float = 12.0
    warmup: float = 3.0
    users: int = 10
    io_users: int = 10
    io_seconds: float = 1.0
    python: str | None = None
    django: str | None = None

    def validate(self) -> None:
        for name, value in (("trials", self.trials), ("matrix_duration", self.duration),
                            ("matrix_io_duration", self.io_duration),
                            ("matrix_duration", self.keepalive_duration), ("users", self.users),
                            ("matrix_io_users", self.io_users), ("matrix_io_seconds", self.io_seconds),
                            ("matrix_warmup", self.warmup)):
            bounds.check(name, value)

    def scenario_seconds(self, scenario: str) -> float:
        if scenario == "capacity":
            return CAPACITY_SECONDS
        return self.io_duration if scenario == "io" else self.keepalive_duration if scenario == "keepalive" \
            else self.duration

    def estimate_seconds(self) -> float:
        """SERVER_OVERHEAD + warm-up per row-trial, plus (Locust start-up + run time) per scenario that
        applies to the row. The default (27 rows, 19 serving the admin, 3 trials): ~58.5 min."""
        per_trial = 0.0
        for row in self.rows:
            v = variants.get(policy.parse_cell(row)[0])
            runs = [LOCUST_OVERHEAD_SECONDS + self.scenario_seconds(sc) for sc in self.scenarios if applies(sc, v)]
            per_trial += (SERVER_OVERHEAD_SECONDS + self.warmup + sum(runs)) if runs else 0.0  # none: not started
        return per_trial * self.trials


def applies(scenario: str, variant) -> bool:
    return SCENARIOS[scenario][1](variant)


def available_rows(python: str, wanted: list[str] | None, django: str | None = None) -> tuple[list[str], list[str]]:
    """(rows to run, rows skipped with why) for this Python (and Django)."""
    names = wanted or [v.name for v in variants.VARIANTS]
    keep, skipped = [], []
    for name in names:
        row, _, dj, py = policy.parse_cell(name)  # a row, or a cell ROW[+async]@DJANGO/PYTHON
        v = variants.get(row)
        try:
            policy.capability(v, py or python, dj or django)
            keep.append(name)
        except UsageError as e:
            if wanted:
                raise
            skipped.append(f"{name}: {e}")
    return keep, skipped


def plan_for(settings: MatrixSettings, variant, scenario: str, async_api: bool = False) -> loadgen.LoadPlan:
    flow = SCENARIOS[scenario][0](variant)
    if flow == "io":
        return loadgen.LoadPlan(scenario=loadgen.IO, flow="io", users=settings.io_users,
                                spawn_rate=loadgen.default_spawn_rate(loadgen.IO, settings.io_users),
                                duration=settings.io_duration,
                                io_path=variant.io_probe, io_seconds=settings.io_seconds)
    prefix = {"api_prefix": bc.ASYNC_API_PREFIX} if async_api else {}  # a migration cell's +async
    if scenario == "capacity":
        return loadgen.LoadPlan(scenario=loadgen.CAPACITY, flow=flow, users=loadgen.CAPACITY_INFLIGHT, **prefix)
    return loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow=flow, users=settings.users,
                            spawn_rate=loadgen.default_spawn_rate(loadgen.CONSTANT, settings.users),
                            duration=settings.scenario_seconds(scenario),
                            reconnect_every=RECONNECT_EVERY if scenario in ("api", "original") else 0, **prefix)


class Matrix:
    def __init__(self, matrix_id: str, settings: MatrixSettings, root: Path | None = None):
        self.id = matrix_id
        self.settings = settings
        self.root = root or results.RESULTS_DIR
        self.dir = self.root / "matrix" / matrix_id
        self.state_file = self.dir / "matrix.json"
        self.accept_failures = False  # --accept-failures: failed requests alone do not make the exit status 1
        self.state = {"id": matrix_id, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "settings": settings.__dict__, "runs": {}}

    @classmethod
    def resume(cls, matrix_id: str, root: Path | None = None) -> "Matrix":
        state_file = (root or results.RESULTS_DIR) / "matrix" / matrix_id / "matrix.json"
        state = json.loads(state_file.read_text())
        m = cls(matrix_id, MatrixSettings(**state["settings"]), root)
        m.state = state
        return m

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.state_file, self.state, indent=1)

    @staticmethod
    def key(trial: int, row: str) -> str:
        return f"{trial}/{row}"

    def todo(self) -> list[tuple[int, str]]:
        s = self.settings
        return [(t, r) for t in range(1, s.trials + 1) for r in s.rows
                if self.state["runs"].get(self.key(t, r), {}).get("status") != "completed"]

    def run(self, quiet: bool = False) -> int:
        todo = self.todo()
        s = self.settings
        total = len(s.rows) * s.trials
        per = s.estimate_seconds() / max(1, total)
        print(f"matrix {self.id}: {len(s.rows)} rows x {s.trials} trials x {', '.join(s.scenarios)}; "
              f"{len(todo)} of {total} row-trials to run, estimated {len(todo) * per / 60:.0f} min", flush=True)
        self.save()
        db = database.open_database()  # held for the whole matrix: its rows join it; released at the end
        failures = 0
        t0 = time.monotonic()
        try:
            for i, (trial, row) in enumerate(todo, 1):
                eta = (time.monotonic() - t0) / (i - 1) * (len(todo) - i + 1) if i > 1 else per * len(todo)
                print(f"[{i}/{len(todo)}] {row} trial {trial}/{s.trials}  (ETA {eta / 60:.0f} min)", flush=True)
                entry = self.state["runs"].setdefault(self.key(trial, row), {})
                entry.update(status="running", run_dirs={})
                self.save()
                try:
                    entry["status"] = self._one(trial, row, entry, quiet)
                    failed_requests = entry.get("failed_requests") and not self.accept_failures
                    if entry["status"] != "completed" or failed_requests:
                        failures += 1
                except RunError as e:
                    failures += 1
                    entry.update(status="failed", error=str(e))
                    print(f"    failed: {e}", file=sys.stderr, flush=True)
                finally:
                    if entry.get("status") == "running":
                        entry["status"] = "interrupted"
                    self.save()
        finally:
            db.release()  # stops the cluster if the matrix is its last user and a run started it
        self.print_table()
        print(f"matrix {self.id} done in {(time.monotonic() - t0) / 60:.1f} min; "
              f"{failures} row-trial(s) failed; results in {self.root}; `asgibench report {self.id}` builds the report")
        return 1 if failures else 0

    def _one(self, trial: int, row: str, entry: dict, quiet: bool) -> None:
        s = self.settings
        cell = row  # a row name, or a cell ROW[+async]@DJANGO/PYTHON (policy.parse_cell: the migration preset)
        row, async_api, django, python = policy.parse_cell(cell)
        v = variants.get(row)
        plans = [(sc, plan_for(s, v, sc, async_api)) for sc in s.scenarios if applies(sc, v)]
        opts = BenchOptions(variant=row, plan=plans[0][1], python=python or s.python, django=django or s.django,
                            warmup=s.warmup, quiet=True,
                            results_root=self.root, pool_size=policy.pool_size_for(s.io_users))
        pipeline.validate(opts)
        statuses = []
        with ExitStack() as stack:
            log = "".join(c if c.isalnum() or c in "-." else "_" for c in cell)
            st = pipeline.bring_up(opts, stack, self.dir / "logs" / f"{log}-t{trial}.server.log")
            for k, (scenario, plan) in enumerate(plans):
                run_dir = results.new_run_dir(row, scenario, self.root)
                entry["run_dirs"][scenario] = str(run_dir.relative_to(self.root))
                self.save()
                meta = runmeta.new_meta(v, opts, plan)
                meta["matrix"] = {"id": self.id, "trial": trial, "trials": s.trials, "scenario": scenario}
                # the first scenario warms the freshly started server; the next ones run on a warm one
                o = replace(opts, plan=plan, warmup=s.warmup if k == 0 else 0.0)
                with runmeta.recorded(run_dir, meta):
                    pipeline.measure(st, o, plan, run_dir, meta)
                summ = meta["summary"]
                statuses.append(meta["status"])
                if scenario != "capacity":  # the ladder pushes past the knee on purpose: its failures are figures
                    entry["failed_requests"] = entry.get("failed_requests", 0) + summ["failures"]
                eff = summ.get("concurrency", {}).get("efficiency")
                its = (summ.get("flow") or {}).get("iterations_per_s")
                print(f"    {scenario:9s} {summ['rps']:9.1f} req/s" + (f" ({its:.1f} it/s)" if its else "") + "  p95 "
                      f"{summ.get('exact_percentiles_ms', {}).get('p95', float('nan')):8.1f} ms  "
                      f"failures {summ['failures']}" + (f"  efficiency {eff}" if eff is not None else "")
                      + "".join(f"  {name.upper()}" for name, _ in figures.flags(meta) if name != "not-completed")
                      + (f"  capacity at SLO {meta['capacity']['capacity_rps']} req/s (at ref. speed "
                         f"{meta['capacity'].get('capacity_ref_rps')})" if meta.get("capacity") else "")
                      + (f"  {meta['status'].upper()}" if meta["status"] != "completed" else ""), flush=True)
        return next((x for x in statuses if x != "completed"), "completed")

    def print_table(self) -> None:
        rows, left_out = {}, []
        for key, entry in self.state["runs"].items():
            _, row = key.split("/", 1)
            for scenario, rel in (entry.get("run_dirs") or {}).items():
                try:
                    meta = results.read_meta(self.root / rel)
                except OSError:
                    continue
                if meta.get("status") == "completed":
                    rows.setdefault((row, scenario), []).append(meta)
                else:
                    left_out.append(f"{row} {scenario} trial {key.split('/')[0]}: {meta.get('status')} ({rel})")
        for line in left_out:
            print(f"not in the figures: {line}")
        if not rows:
            return
        print(f"\n{'row':40s} {'scenario':9s} {'trials':>6s} {'median req/s':>12s} {'CV':>6s} {'it/s':>7s} "
              f"{'p95 ms':>8s} {'eff.':>6s} {'srv µs/req':>10s} {'CV':>6s} {'ref µs':>7s} {'CV':>6s}")
        for (row, scenario), metas in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rps = [m["summary"]["rps"] for m in metas]
            cv = stats.cv_pct(rps)  # the report's definition (sample stdev / mean)
            p95 = statistics.median([m["summary"].get("exact_percentiles_ms", {}).get("p95") or 0 for m in metas])
            effs = [m["summary"].get("concurrency", {}).get("efficiency") for m in metas]
            effs = [e for e in effs if e is not None]
            flag = " *" if stats.unstable(cv) else ""
            marks = {name for m in metas for name, _ in figures.flags(m)}
            bound = "".join(f" {short}" for name, short in FLAG_MARKS if name in marks)
            bound += " FAIL" if scenario != "capacity" and any(m["summary"].get("failures") for m in metas) else ""
            srv = figures.values(metas, "server_us_per_request")
            srv_cv = stats.cv_pct(srv)
            ref = figures.values(metas, "server_ref_us_per_request")
            ref_cv = stats.cv_pct(ref)
            its = [(m["summary"].get("flow") or {}).get("iterations_per_s") for m in metas]
            its = [x for x in its if x is not None]
            print(f"{row:40s} {scenario:9s} {len(rps):6d} {statistics.median(rps):12.1f} {cv or 0.0:5.1f}%"
                  f"{statistics.median(its) if its else float('nan'):8.1f}{p95:9.1f} "
                  f"{statistics.median(effs) if effs else float('nan'):6.2f} "
                  f"{statistics.median(srv) if srv else float('nan'):10.0f} {srv_cv or 0.0:5.1f}%"
                  f"{statistics.median(ref) if ref else float('nan'):8.0f} {ref_cv or 0.0:5.1f}%{flag}{bound}")
        print(f"(* req/s CV above {stats.UNSTABLE_CV_PCT:.0f}%: unstable; "
              + "; ".join(f"{short}: {name} trial" for name, short in FLAG_MARKS)
              + "; FAIL: requests failed in a trial; srv µs/req: server CPU per request, the low-noise figure; ref µs: "
              "the same at reference speed, the VM's drift divided out by the speed probe)")


def add_arguments(p) -> None:
    p.add_argument("--variants", help="comma-separated rows (default: every row available on this Python)")
    p.add_argument("--scenario", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated, of {', '.join(SCENARIOS)} (default {','.join(DEFAULT_SCENARIOS)}; "
                        "the module docstring says what each runs)")
    p.add_argument("--trials", type=number(int), default=3)
    p.add_argument("--duration", type=duration, default=12.0, help="api/original/cpu run time (default 12s)")
    p.add_argument("--io-duration", type=duration, default=8.0, help="io scenario run time (default 8s)")
    p.add_argument("--keepalive-duration", type=duration, default=12.0,
                   help="keepalive scenario run time (default 12s)")
    p.add_argument("--warmup", type=duration, default=3.0, help="per row and trial, excluded (default 3s)")
    p.add_argument("--users", type=number(int), default=10)
    p.add_argument("--io-users", type=number(int), default=10)
    p.add_argument("--io-seconds", type=number(float), default=1.0)
    p.add_argument("--python")
    p.add_argument("--django", help="Django X.Y of every row's env (default: the Python's)")
    p.add_argument("--preset", choices=("migration",),
                   help="migration: the study's path, Django 2.2 -> 3.2 -> 4.2 -> 5.2 -> 6.x (policy.MIGRATION_PATH)")
    p.add_argument("--id", help="matrix id; an existing id resumes that matrix")
    p.add_argument("--accept-failures", action="store_true",
                   help="row-trials whose requests failed do not make the exit status 1 (still flagged FAIL)")


def cmd_matrix(a) -> int:
    """`asgibench matrix`: resume the matrix `--id` names, or plan a new one and run it."""
    if a.id and (results.RESULTS_DIR / "matrix" / a.id / "matrix.json").exists():
        m = Matrix.resume(a.id)
        print(f"resuming matrix {a.id} with its recorded settings", flush=True)
        m.accept_failures = a.accept_failures
        return m.run()
    python = envs.parse_python(a.python)
    wanted = [w.strip() for w in a.variants.split(",") if w.strip()] if a.variants else None
    for w in wanted or []:
        variants.get(policy.parse_cell(w)[0])
    scenarios = [x.strip() for x in a.scenario.split(",") if x.strip()]
    bad = [x for x in scenarios if x not in SCENARIOS]
    if bad or not scenarios:
        raise UsageError(f"matrix scenarios are {', '.join(SCENARIOS)}, got {a.scenario!r}")
    if a.preset == "migration":  # each step on its oldest Python unless --python says otherwise
        rows, skipped = policy.migration_cells(a.python), []
    else:
        rows, skipped = available_rows(python, wanted, envs.parse_django(a.django))
    served = [r for r in rows if any(applies(sc, variants.get(policy.parse_cell(r)[0])) for sc in scenarios)]
    skipped += [f"{r}: none of the scenarios {', '.join(scenarios)} applies to it" for r in rows if r not in served]
    rows = served
    for line in skipped:
        print(f"skipping {line}", file=sys.stderr)
    settings = MatrixSettings(rows=rows, scenarios=scenarios, trials=a.trials, duration=a.duration,
                              io_duration=a.io_duration, keepalive_duration=a.keepalive_duration,
                              warmup=a.warmup, users=a.users,
                              io_users=a.io_users, io_seconds=a.io_seconds, python=a.python, django=a.django)
    settings.validate()
    matrix_id = a.id or "m" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    m = Matrix(matrix_id, settings)
    m.accept_failures = a.accept_failures
    return m.run()
