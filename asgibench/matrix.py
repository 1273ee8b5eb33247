"""`asgibench matrix`: every available row (or a filter), every scenario, N trials, interleaved
(trial 1 of A B C, then trial 2 of A B C, ...) so that machine drift hits all rows alike.

One trial of one row = a freshly started server, its contract checked, a warm-up, then each
scenario measured into its own run folder (meta.json carries {"matrix": {"id", "trial", "trials"}}).
The matrix's plan and progress live in results/matrix/<id>/matrix.json: a second call with the same
--id finishes the missing trials (resumable after Ctrl-C or a crash). PostgreSQL stays up for the
whole matrix. A row that fails is recorded as failed and the matrix goes on.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from asgibench import database, envs, loadgen, report, results, run, variants
from asgibench.errors import RunError, UsageError

SCENARIOS = ("cpu", "io")  # cpu: the row's default flow, constant users; io: the I/O probe
# Measured here: server start + contract + one Locust start-up per scenario + stop, per row and trial.
OVERHEAD_SECONDS = 10.5


@dataclass
class MatrixSettings:
    rows: list
    scenarios: list
    trials: int = 3
    duration: float = 20.0
    io_duration: float = 10.0
    warmup: float = 3.0
    users: int = 10
    io_users: int = 10
    io_seconds: float = 1.0
    python: str | None = None

    def estimate_seconds(self) -> float:
        per = OVERHEAD_SECONDS + self.warmup + ("cpu" in self.scenarios) * self.duration \
            + ("io" in self.scenarios) * self.io_duration
        return per * len(self.rows) * self.trials


def available_rows(python: str, wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(rows to run, rows skipped with why) for this Python."""
    names = wanted or [v.name for v in variants.VARIANTS]
    keep, skipped = [], []
    for name in names:
        v = variants.get(name)
        try:
            run.python_allowed(v, python)
            envs.lock_file(v.env, python)
            keep.append(name)
        except UsageError as e:
            if wanted:
                raise
            skipped.append(f"{name}: {e}")
    return keep, skipped


def plan_for(settings: MatrixSettings, variant, scenario: str) -> loadgen.LoadPlan:
    if scenario == "io":
        return loadgen.LoadPlan(scenario=loadgen.IO, flow="io", users=settings.io_users,
                                spawn_rate=loadgen.default_spawn_rate(loadgen.IO, settings.io_users),
                                duration=settings.io_duration,
                                io_path=variant.io_probe, io_seconds=settings.io_seconds)
    return loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow=variant.default_flow, users=settings.users,
                            spawn_rate=loadgen.default_spawn_rate(loadgen.CONSTANT, settings.users),
                            duration=settings.duration)


class Matrix:
    def __init__(self, matrix_id: str, settings: MatrixSettings, root: Path | None = None):
        self.id = matrix_id
        self.settings = settings
        self.root = root or results.RESULTS_DIR
        self.dir = self.root / "matrix" / matrix_id
        self.state_file = self.dir / "matrix.json"
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
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_file)

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
        db = database.open_database()  # kept up for the whole matrix, stopped at the end if started here
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
                    self._one(trial, row, entry, quiet)
                    entry["status"] = "completed"
                except RunError as e:
                    failures += 1
                    entry.update(status="failed", error=str(e))
                    print(f"    failed: {e}", file=sys.stderr, flush=True)
                finally:
                    if entry.get("status") == "running":
                        entry["status"] = "interrupted"
                    self.save()
        finally:
            db.stop_if_started()
        self.print_table()
        print(f"matrix {self.id} done in {(time.monotonic() - t0) / 60:.1f} min; "
              f"{failures} row-trial(s) failed; results in {self.root}; `asgibench report {self.id}` builds the report")
        return 1 if failures else 0

    def _one(self, trial: int, row: str, entry: dict, quiet: bool) -> None:
        s = self.settings
        v = variants.get(row)
        plans = [plan_for(s, v, sc) for sc in s.scenarios]
        opts = run.BenchOptions(variant=row, plan=plans[0], python=s.python, warmup=s.warmup, quiet=True,
                                results_root=self.root, pool_size=run.pool_size_for(s.io_users))
        run.validate(opts)
        with ExitStack() as stack:
            st = run.bring_up(opts, stack, self.dir / "logs" / f"{row}-t{trial}.server.log")
            for k, plan in enumerate(plans):
                run_dir = results.new_run_dir(row, plan.scenario, self.root)
                entry["run_dirs"][plan.scenario] = str(run_dir.relative_to(self.root))
                self.save()
                meta = run.new_meta(v, opts, plan)
                meta["matrix"] = {"id": self.id, "trial": trial, "trials": s.trials}
                # the first scenario warms the freshly started server; the next ones run on a warm one
                o = run.BenchOptions(**{**opts.__dict__, "plan": plan, "warmup": s.warmup if k == 0 else 0.0})
                with run.recorded(run_dir, meta):
                    run.measure(st, o, plan, run_dir, meta)
                summ = meta["summary"]
                eff = summ.get("concurrency", {}).get("efficiency")
                print(f"    {plan.scenario:8s} {summ['rps']:9.1f} req/s  p95 "
                      f"{summ.get('exact_percentiles_ms', {}).get('p95', float('nan')):8.1f} ms  "
                      f"failures {summ['failures']}" + (f"  efficiency {eff}" if eff is not None else "")
                      + ("  GENERATOR-BOUND" if meta["generator"]["bound"] else ""), flush=True)

    def print_table(self) -> None:
        rows = {}
        for key, entry in self.state["runs"].items():
            _, row = key.split("/", 1)
            for scenario, rel in (entry.get("run_dirs") or {}).items():
                try:
                    meta = results.read_meta(self.root / rel)
                except OSError:
                    continue
                if meta.get("status") == "completed":
                    rows.setdefault((row, scenario), []).append(meta)
        if not rows:
            return
        print(f"\n{'row':40s} {'scenario':9s} {'trials':>6s} {'median req/s':>12s} {'CV':>6s} {'p95 ms':>8s} {'eff.':>6s}")
        for (row, scenario), metas in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rps = [m["summary"]["rps"] for m in metas]
            cv = (report.cv_pct(rps) or 0.0) / 100  # the report's definition (sample stdev / mean)
            p95 = statistics.median([m["summary"].get("exact_percentiles_ms", {}).get("p95") or 0 for m in metas])
            effs = [m["summary"].get("concurrency", {}).get("efficiency") for m in metas]
            effs = [e for e in effs if e is not None]
            flag = " *" if cv > 0.05 else ""
            bound = " GEN" if any(m["generator"].get("bound") for m in metas) else ""
            print(f"{row:40s} {scenario:9s} {len(rps):6d} {statistics.median(rps):12.1f} {100 * cv:5.1f}%"
                  f"{p95:9.1f} {statistics.median(effs) if effs else float('nan'):6.2f}{flag}{bound}")
        print("(* CV above 5%: unstable; GEN: generator-bound trial)")
