"""`asgibench calibrate`: how fast can Locust itself go on this machine?

Serves a trivial endpoint (/slowapi/slowapi/ of the raw ASGI ceiling app under granian: no
database, a constant JSON body), and measures the load generator's CPU per request for a bare
FastHttpUser GET (no checks), for the API-only flow and for the original flow (admin login + API,
against a Django row), net of Locust's fixed background cost per second (measured first with users
that mostly wait). The ceiling is the rate at which one fully busy Locust process would run:
1 core / (net CPU seconds per bare request). Every later trial whose req/s exceeds half of it, or whose
generator CPU passed 90%, is flagged "generator-bound" (metrics.generator_bound, the rule in stats).
Then the open model's own limit (issue 13): --arrival-rate runs of the same trivial GET at rising
rates (OPEN_RATES, each `seconds` long), stopped at the first whose completed arrivals fell short of
stats.OPEN_MODEL_HELD x the target: the highest rate it held, and what the generator was doing when
it could not (its CPU, the generator-bound rule, dropped arrivals, the dispatcher's lag).
Written to results/calibration.json with the machine it was measured on (read back by
results.calibration). Each measurement is an ordinary pipeline run (bring_up + measure) in
results/calibration/; a new measured figure is one more _measure call and a key of the file.
"""
from __future__ import annotations

import os
import time
from contextlib import ExitStack

import benchcontract as bc
from asgibench import loadgen, pipeline, results, runmeta, stats, variants
from asgibench.files import write_json_atomic
from asgibench.options import BenchOptions


def path():
    return results.calibration_path()


ceiling = results.calibration


def _pins() -> dict:
    # Server on CPU 0, Locust alone on the last CPU: the generator must not be the one starved.
    n = os.cpu_count() or 1
    return {"server": {0}, "locust": {n - 1}} if n >= 2 else {}


OPEN_RATES = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)  # arrivals/s; the sweep stops at the first not held


def _measure(variant: str, flow: str, seconds: float, users: int, out, quiet: bool, **plan_kw) -> dict:
    plan = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow=flow, users=users,
                            spawn_rate=loadgen.default_spawn_rate(loadgen.CONSTANT, users), duration=seconds, **plan_kw)
    opts = BenchOptions(variant=variant, plan=plan, warmup=2.0, cpus=_pins(), quiet=True)
    run_dir = results.new_run_dir(variant, f"calibrate-{flow}", out)
    meta = runmeta.new_meta(variants.get(variant), opts, plan)
    with runmeta.recorded(run_dir, meta), ExitStack() as stack:
        st = pipeline.bring_up(opts, stack, run_dir / "server.log")
        pipeline.measure(st, opts, plan, run_dir, meta)
    gen, s = meta["generator"], meta["summary"]
    out = {"variant": variant, "flow": flow, "users": users, "rps": s["rps"], "requests": s["requests"],
           "failures": s["failures"], "generator_cpu_percent": gen["cpu_percent_of_one_core"],
           "cpu_seconds": gen["cpu_seconds"], "wall_seconds": s["seconds"],
           "us_per_request": gen["cpu_us_per_request"], "run_dir": str(run_dir)}
    om = s.get("open_model")
    if om:
        lag = [st.get("dispatch_lag_p99_ms") for st in _open_steps(run_dir)]
        out.update(target_per_s=om["target_per_s"], achieved_per_s=om["achieved_per_s"], held=om["held"],
                   offered=om.get("offered"), dropped=om.get("dropped"), dropped_pct=om.get("dropped_pct"),
                   dispatch_lag_p99_ms=max((x for x in lag if x is not None), default=None),
                   generator_bound=gen.get("bound"), bound_reasons=gen.get("bound_reasons") or [])
    return out


def _open_steps(run_dir) -> list:
    import json

    try:
        return json.loads((run_dir / "openmodel.json").read_text()).get("steps") or []
    except (OSError, ValueError):
        return []


def open_model_sweep(seconds: float, rates, out, quiet: bool) -> dict:
    """The open model against the trivial GET at each rate in turn, until one is not held."""
    steps = []
    for rate in rates:
        row = _measure("raw-asgi-asyncpg-granian", "bare", seconds, loadgen.CAPACITY_INFLIGHT, out, quiet,
                       arrival_rate=rate)
        steps.append(row)
        if not quiet:
            why = "; ".join(row["bound_reasons"]) or "not generator-bound"
            print(f"  open model {rate:7.0f}/s: completed {row['achieved_per_s']:8.1f}/s "
                  f"({100 * row['achieved_per_s'] / rate:.1f}%), dropped {row['dropped']} ({row['dropped_pct']}%), "
                  f"dispatcher lag p99 {row['dispatch_lag_p99_ms']} ms, generator {row['generator_cpu_percent']}% "
                  f"of a core: {'held' if row['held'] else 'NOT HELD'} ({why})", flush=True)
        if not row["held"]:
            break
    held = [r["target_per_s"] for r in steps if r["held"]]
    return {"steps": steps, "held_up_to_per_s": max(held) if held else None,
            "first_not_held_per_s": next((r["target_per_s"] for r in steps if not r["held"]), None),
            "rule": f"held: completed arrivals >= {stats.OPEN_MODEL_HELD:g} x the target over the measured window"}


def _net_cost(row: dict, idle_cpu_per_s: float) -> float | None:
    """CPU per request once Locust's fixed background cost (stats, CPU monitor, greenlet hub: what it
    spends per second whatever the load) is taken out: the figure that extrapolates to saturation."""
    if not row["requests"]:
        return None
    return round(1e6 * max(0.0, row["cpu_seconds"] - idle_cpu_per_s * row["wall_seconds"]) / row["requests"], 1)


def calibrate(seconds: float = 10.0, users: int = 16, quiet: bool = False, open_rates=OPEN_RATES) -> dict:
    out = results.RESULTS_DIR / "calibration"
    # 1. Locust's background cost: users that mostly wait (10 requests/s, each 1 s inside PostgreSQL).
    idle = _measure("raw-asgi-asyncpg-granian", "io", seconds, 10, out, quiet,
                    io_path=bc.SLOWAPI_SLEEP_PATH, io_seconds=1.0)
    idle_cpu_per_s = idle["cpu_seconds"] / idle["wall_seconds"] if idle["wall_seconds"] else 0.0
    # 2. The cheapest request, against a trivial endpoint, and the two flows the benchmarks use.
    bare = _measure("raw-asgi-asyncpg-granian", "bare", seconds, users, out, quiet)
    api = _measure("raw-asgi-asyncpg-granian", "api", seconds, users, out, quiet)
    flow = _measure("uvicorn", "original", seconds, min(users, 8), out, quiet)
    for row in (bare, api, flow):
        row["net_us_per_request"] = _net_cost(row, idle_cpu_per_s)
        if not quiet:
            print(f"  {row['flow']:8s} on {row['variant']:24s} {row['rps']:8.1f} req/s  generator "
                  f"{row['generator_cpu_percent']}% of a core, {row['us_per_request']} µs/request "
                  f"({row['net_us_per_request']} µs net of Locust's idle cost)", flush=True)
    ceiling_rps = 1e6 / bare["net_us_per_request"] if bare["net_us_per_request"] else None
    sweep = open_model_sweep(seconds, open_rates, out, quiet) if open_rates else None
    data = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": results.machine(),
        "ceiling_rps": round(ceiling_rps, 1) if ceiling_rps else None,
        "idle_cpu_percent": round(100 * idle_cpu_per_s, 1),
        "bare": bare,
        "api_flow": api,
        "original_flow": flow,
        "api_cost_ratio": _ratio(api, bare),
        "original_cost_ratio": _ratio(flow, bare),
        "open_model": sweep,
        "note": "ceiling = one fully busy Locust process at the bare request's net CPU cost; trials above half "
                "of it, or with generator CPU above 90%, are flagged generator-bound",
    }
    results.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path(), data)
    if not quiet:
        print(f"Locust ceiling on this machine: ~{data['ceiling_rps']:.0f} req/s per process "
              f"({bare['net_us_per_request']} µs net per bare GET; idle cost {data['idle_cpu_percent']}% of a core); "
              f"API flow costs {data['api_cost_ratio']}x, original flow {data['original_cost_ratio']}x a bare GET. "
              f"Saved to {path()}")
        if sweep:
            print(f"Open model: held its rate within {100 * (1 - stats.OPEN_MODEL_HELD):.0f}% up to "
                  f"{sweep['held_up_to_per_s']} arrivals/s" + (f"; not at {sweep['first_not_held_per_s']:g}/s"
                                                               if sweep["first_not_held_per_s"] else ""))
    return data


def _ratio(row: dict, bare: dict) -> float | None:
    a, b = row.get("net_us_per_request"), bare.get("net_us_per_request")
    return round(a / b, 2) if a and b else None
