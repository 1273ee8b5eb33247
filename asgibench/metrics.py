"""Figures derived from a measured run, beside results' own summary (which reads Locust's files):

  generator        the load generator's own cost (generator*.json, one per Locust process) and
                   whether it was the limit (stats.generator_bound_reasons, the calibrated ceiling)
  concurrency      the io scenario's headline: achieved req/s over the ideal users / sleep
  open_model       did the fixed arrival rate (--arrival-rate) hold

A new derived figure is one function here, taking the summary, the plan or the run folder, and one
line in the pipeline's measure step that stores it (meta.json's "summary" or "generator").
Nothing here starts or reads a process; results never imports this module.
"""
from __future__ import annotations

import json
from pathlib import Path

from asgibench import loadgen, results, stats


def generator(run_dir: Path, load: loadgen.LoadResult, plan: loadgen.LoadPlan, summary: dict) -> dict:
    """meta.json's "generator": what the recorder measured per process during the measured run, what
    the kernel charged the Locust processes in all (start-up included), and the generator-bound rule."""
    out = {**generator_cost(run_dir),
           "process_cpu_seconds_incl_startup": round(load.generator_cpu_seconds, 3),
           "locust_exit_code": load.exit_code, "wall_seconds_incl_startup": round(load.wall_seconds, 3),
           "processes_option": plan.processes}
    out.update(generator_bound(out, summary))
    return out


def generator_cost(run_dir: Path) -> dict:
    """The load generator's own cost during the measured run (test start..stop), from the files the
    recorder plugin writes per Locust process: CPU seconds summed over processes, over the wall time."""
    data = [json.loads(p.read_text()) for p in sorted(run_dir.glob("generator*.json"))]
    cpu = sum(d["run"]["cpu_s"] for d in data if d.get("run"))
    wall = max((d["run"]["wall_s"] for d in data if d.get("run")), default=0.0)
    requests = sum(d.get("requests") or 0 for d in data)
    return {
        "cpu_seconds": round(cpu, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_request": round(1e6 * cpu / requests, 1) if requests else None,
        "cpu_warning": any(d.get("cpu_warning_emitted") or d.get("worker_cpu_warning_emitted") for d in data),
        "processes": len(data),
        "per_process": data,
    }


def generator_bound(generator: dict, summary: dict) -> dict:
    """A trial is generator-bound when Locust itself was the limit (the rule: stats), judged against
    the ceiling `asgibench calibrate` measured on this machine, if any."""
    ceiling = results.calibration()
    ceiling_rps = ceiling["ceiling_rps"] if ceiling else None
    reasons = stats.generator_bound_reasons(generator.get("cpu_percent_of_one_core"), generator.get("processes"),
                                            bool(generator.get("cpu_warning")), summary.get("rps"), ceiling_rps)
    return {"bound": bool(reasons), "bound_reasons": reasons, "calibrated_ceiling_rps": ceiling_rps}


def open_model(summary: dict, plan: loadgen.LoadPlan) -> dict:
    """Did the fixed arrival rate hold? If the users could not absorb the latency, fewer iterations
    started than asked and the latency figures are no longer those of an open model."""
    seconds = summary.get("seconds") or 0
    done = summary.get("flow", {}).get("iterations") or summary.get("requests", 0)
    achieved = done / seconds if seconds else 0.0
    return {"target_per_s": plan.arrival_rate, "achieved_per_s": round(achieved, 2), "users": plan.users,
            "held": achieved >= 0.95 * plan.arrival_rate}


def concurrency(summary: dict, plan: loadgen.LoadPlan) -> dict:
    """The I/O scenario's headline: achieved req/s over the best possible N/S."""
    ideal = plan.users / plan.io_seconds if plan.io_seconds > 0 else None
    eff = summary["rps"] / ideal if ideal else None
    return {"users": plan.users, "sleep_seconds": plan.io_seconds, "ideal_rps": ideal,
            "achieved_rps": summary["rps"], "efficiency": round(eff, 3) if eff is not None else None}


def derive(summary: dict, plan: loadgen.LoadPlan) -> None:
    """Add the plan's derived figures to the run's summary (in place)."""
    if plan.flow == "io" and not plan.is_open:  # users / S is a closed-model ideal
        summary["concurrency"] = concurrency(summary, plan)
    if plan.arrival_rate:
        summary["open_model"] = open_model(summary, plan)
