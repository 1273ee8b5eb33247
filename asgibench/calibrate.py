"""`asgibench calibrate`: how fast can Locust itself go on this machine?

Serves a trivial endpoint (/slowapi/slowapi/ of the raw ASGI ceiling app under granian: no
database, a constant JSON body), and measures the load generator's CPU per request for a bare
FastHttpUser GET (no checks), for the API-only flow and for the original flow (admin login + API,
against a Django row). The ceiling is the rate at which one fully busy Locust process would run:
1 core / (CPU seconds per bare request). Every later trial whose req/s exceeds half of it, or whose
generator CPU passed 90%, is flagged "generator-bound" (run.generator_bound).
Written to results/calibration.json with the machine it was measured on.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack

from asgibench import loadgen, results, run

CALIBRATION_FILE = "calibration.json"


def path():
    return results.RESULTS_DIR / CALIBRATION_FILE


def ceiling() -> dict | None:
    p = path()
    try:
        data = json.loads(p.read_text())
        return data if data.get("ceiling_rps") else None
    except (OSError, ValueError):
        return None


def _pins() -> dict:
    # Server on CPU 0, Locust alone on the last CPU: the generator must not be the one starved.
    n = os.cpu_count() or 1
    return {"server": {0}, "locust": {n - 1}} if n >= 2 else {}


def _measure(variant: str, flow: str, seconds: float, users: int, out, quiet: bool) -> dict:
    plan = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow=flow, users=users, spawn_rate=float(users),
                            duration=seconds)
    opts = run.BenchOptions(variant=variant, plan=plan, warmup=2.0, cpus=_pins(), quiet=True)
    run_dir = results.new_run_dir(variant, f"calibrate-{flow}", out)
    meta = run.new_meta(run.variants.get(variant), opts, plan)
    with run.recorded(run_dir, meta), ExitStack() as stack:
        st = run.bring_up(opts, stack, run_dir / "server.log")
        run.measure(st, opts, plan, run_dir, meta)
    gen, s = meta["generator"], meta["summary"]
    row = {"variant": variant, "flow": flow, "users": users, "rps": s["rps"], "requests": s["requests"],
           "failures": s["failures"], "generator_cpu_percent": gen["cpu_percent_of_one_core"],
           "us_per_request": gen["cpu_us_per_request"], "run_dir": str(run_dir)}
    if not quiet:
        print(f"  {flow:8s} on {variant:24s} {s['rps']:8.1f} req/s  generator {gen['cpu_percent_of_one_core']}% "
              f"of a core, {gen['cpu_us_per_request']} µs/request", flush=True)
    return row


def calibrate(seconds: float = 10.0, users: int = 16, quiet: bool = False) -> dict:
    out = results.RESULTS_DIR / "calibration"
    bare = _measure("raw-asgi-asyncpg-granian", "bare", seconds, users, out, quiet)
    api = _measure("raw-asgi-asyncpg-granian", "api", seconds, users, out, quiet)
    flow = _measure("uvicorn", "original", seconds, min(users, 8), out, quiet)
    ceiling_rps = 1e6 / bare["us_per_request"] if bare["us_per_request"] else None
    data = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": results.machine(),
        "ceiling_rps": round(ceiling_rps, 1) if ceiling_rps else None,
        "bare": bare,
        "api_flow": api,
        "original_flow": flow,
        "api_cost_ratio": round(api["us_per_request"] / bare["us_per_request"], 2),
        "original_cost_ratio": round(flow["us_per_request"] / bare["us_per_request"], 2),
        "note": "ceiling = one fully busy Locust process at the bare request's CPU cost; trials above half "
                "of it, or with generator CPU above 90%, are flagged generator-bound",
    }
    results.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(data, indent=2))
    if not quiet:
        print(f"Locust ceiling on this machine: ~{data['ceiling_rps']:.0f} req/s per process "
              f"({bare['us_per_request']} µs/request bare); API flow costs {data['api_cost_ratio']}x, "
              f"original flow {data['original_cost_ratio']}x a bare GET. Saved to {path()}")
    return data
