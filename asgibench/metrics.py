"""Figures derived from a measured run, beside results' own summary (which reads Locust's files):

  generator        the load generator's own cost (generator*.json, one per Locust process) and
                   whether it was the limit (stats.generator_bound_reasons, the calibrated ceiling)
  concurrency      the io scenario's headline: achieved req/s over the ideal users / sleep
  open_model       did the fixed arrival rate (--arrival-rate) hold
  cost             CPU per request of the server tree, PostgreSQL and the generator over the measured
                   window, capacity per server core, req/s per GB (summary.cost)
  memory           RSS and PSS of the server and of each worker, steady and peak (summary.memory)
  balance          each worker's share of the server's CPU, the imbalance figure (summary.balance)
  machine          the speed probe and the steal share during the window (summary.machine): on this VM
                   the CPU second itself drifts (measure's docstring); cost's "at reference speed"
                   figures divide that drift out
  competing        the generator's share of the machine and the generator-competing rule (generator.*)

The headline (issue 12.6): req/s is what a user asks for, but on a shared machine it moves with
whatever else runs and with how connections land on workers (CV up to 30% measured); the server's
CPU per request moves far less (2% where req/s moved 30%) and means "what one request costs". So
the summary prints capacity per server core (1e6 / server us per request) beside req/s: the lowest-
noise figure that still answers "how many requests can this server take per core".

A new derived figure is one function here, taking the summary, the plan or the run folder, and one
line in the pipeline's measure step that stores it (meta.json's "summary" or "generator").
Nothing here starts or reads a process; results never imports this module.
"""
from __future__ import annotations

import json
from pathlib import Path

from asgibench import loadgen, measure, results, stats


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
            "held": achieved >= stats.OPEN_MODEL_HELD * plan.arrival_rate}


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


def window_of(summary: dict) -> tuple[float, float] | None:
    """The measured window (epoch start, stop) of results' summary: the recorder's test start to its
    stop (stretched to the last completion), the same window req/s is over; None without one."""
    w = summary.get("window") or {}
    return (w["start"], w["stop"]) if w.get("start") and w.get("stop") else None


def _per_request(seconds, requests) -> float | None:
    return round(1e6 * seconds / requests, 1) if seconds is not None and requests else None


def cost(summary: dict, server: measure.Tree, db: measure.Tree | None, generator: dict, memory: dict,
         machine: dict | None = None) -> dict:
    """summary.cost: CPU per request over the measured window (server tree, PostgreSQL tree, the
    generator's run window from generator*.json), capacity per server core, req/s per GB of server PSS
    (steady; GB = 1024 MB, the MB of summary.memory being MiB as /proc reports them); and, where the
    speed probe ran (summary.machine), the server's CPU per request at reference speed (its CPU
    times the window's speed factor: what it would cost on the machine where the probe takes
    measure.PROBE_NOMINAL_US) and the capacity per reference core from it."""
    win = window_of(summary)
    n = summary.get("requests") or 0
    srv = server.cpu_seconds(*win) if win else None
    dbs = db.cpu_seconds(*win) if win and db is not None else None
    srv_us = _per_request(srv, n)
    pss = (memory.get("server_pss_mb") or {}).get("steady")
    speed = (machine or {}).get("speed_factor")
    ref_us = round(srv_us * speed, 1) if srv_us and speed else None
    return {
        "server_us_per_request": srv_us,
        "db_us_per_request": _per_request(dbs, n),
        "generator_us_per_request": _per_request(generator.get("cpu_seconds"), n),
        "capacity_per_server_core": round(1e6 / srv_us, 1) if srv_us else None,
        "rps_per_gb": round(summary.get("rps", 0) / (pss / 1024), 1) if pss and summary.get("rps") else None,
        "server_cpu_seconds": round(srv, 3) if srv is not None else None,
        "db_cpu_seconds": round(dbs, 3) if dbs is not None else None,
        "window_s": round(win[1] - win[0], 3) if win else None,
        "server_ref_us_per_request": ref_us,
        "capacity_per_ref_core": round(1e6 / ref_us, 1) if ref_us else None,
    }


def memory(summary: dict, server: measure.Tree, db_peak_backends) -> dict:
    """summary.memory: RSS and PSS of the server tree and per master/worker over the measured window
    (steady = median of the samples, peak = max, MB), and the peak of PostgreSQL backends."""
    win = window_of(summary)
    out = server.memory(*win) if win and server.procs else {
        "server_rss_mb": {"steady": None, "peak": None}, "server_pss_mb": {"steady": None, "peak": None},
        "per_worker": []}
    out["db_backends_peak"] = db_peak_backends
    return out


def balance(summary: dict, server: measure.Tree) -> dict | None:
    """summary.balance of a trial with more than one worker (else None): each worker's share of the
    workers' CPU in the window (pid order; the master's own CPU is not request work), the imbalance
    figure and the rule (stats.IMBALANCE_MAX)."""
    win = window_of(summary)
    workers = sorted(p for p, r in server.roles().items() if r == "worker")
    if not win or len(workers) < 2:
        return None
    used = [server.process_cpu(p, *win) for p in workers]
    total = sum(used)
    shares = [round(u / total, 3) if total else 0.0 for u in used]
    figure = stats.imbalance(shares) if total else None
    judged = total >= stats.BALANCE_MIN_CPU_S
    bad = bool(judged and figure is not None and figure > stats.IMBALANCE_MAX)
    words = "/".join(f"{100 * s:.0f}" for s in shares)
    return {"workers": len(workers), "pids": workers, "shares": shares, "imbalance": figure, "imbalanced": bad,
            "threshold": stats.IMBALANCE_MAX,
            "reason": f"worker shares {words}%" + ("" if judged else f" (not judged: under {stats.BALANCE_MIN_CPU_S} "
                                                                     "CPU s in the workers)")}


def competing(generator: dict, cpus_busy: float | None, cpu_count: int | None = None, generator_cpus=None,
              server_cpus=None) -> dict:
    """generator.machine_share (its CPU over wall x the machine's CPU count), server_cpus_busy, competing
    and competing_reason: the generator-competing rule (stats) on the share of the CPUs it was pinned to
    (the machine when not pinned), if the server may run on them too."""
    import os

    walls = [d["run"]["wall_s"] for d in generator.get("per_process") or [] if d.get("run")]
    wall = max(walls, default=0.0)
    ncpu = cpu_count or os.cpu_count() or 1
    cpu = generator.get("cpu_seconds")
    share = round(cpu / (wall * ncpu), 3) if wall and cpu is not None else None
    gen_cpus = set(generator_cpus or ())
    if gen_cpus and len(gen_cpus) < ncpu and share is not None:
        rule_share, where = cpu / (wall * len(gen_cpus)), f"its pinned CPU(s) {','.join(map(str, sorted(gen_cpus)))}"
    else:
        rule_share, where = share, "the machine's CPU"
    overlap = not gen_cpus or not server_cpus or bool(gen_cpus & set(server_cpus))
    reason = stats.generator_competing_reason(rule_share, cpus_busy, where, overlap)
    return {"machine_share": share, "server_cpus_busy": cpus_busy, "competing": bool(reason),
            "competing_reason": reason or None}
