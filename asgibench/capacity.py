"""Capacity at an SLO, from a capacity-scenario run's files: meta["capacity"] (the contract in
/work/plan/PLAN2.md), and the open model's own figures for any --arrival-rate run.

The Locust run (locustfiles/openmodel.py) chose its steps live and wrote them, with its arrivals, to
openmodel.json; here every step is judged again from the exact timings (timings*.bin) with the same
rules (locustfiles/ladder.py: figures, judge, recovery_seconds; one definition), so the verdicts are
the files'. The capacity at SLO is the highest offered rate of a ladder or bisection step that met
the SLO; at_capacity carries that step's figures and the server's CPU per request during that step
(from the run's /proc samples, cut to the step). overload: the step at ~1.5x capacity (its timeouts,
5xx, resets, dropped arrivals as the dispatcher counted them by intended start), the worker
restarts in the server log during the run, and recovery_s: how long after the drop back every
later window met the SLO again (None: it never did within the recovery step).

parse_slo is ladder.parse_slo with its refusals as UsageError (one line, exit 2).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from asgibench import measure
from asgibench.errors import UsageError
from locustfiles import ladder, timingfile

STEP_KEYS = ("phase", "offered_rps", "achieved_rps", "p50_ms", "p99_ms", "p999_ms", "errors_pct", "dropped",
             "dropped_pct", "ok", "reason", "start_s", "seconds")
JUDGED = ("ladder", "bisect", "overload", "recovery")
# Lines a server writes when a worker dies or is replaced (gunicorn, uvicorn --workers, daphne/hypercorn).
RESTART_PATTERNS = (r"WORKER TIMEOUT", r"Worker \(pid:\d+\) was sent SIG", r"Worker exited",
                    r"Child process \[\d+\] died", r"Waiting for child process \[\d+\]")


def parse_slo(text: str) -> ladder.Slo:
    try:
        return ladder.parse_slo(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _timings(run_dir: Path) -> timingfile.TimingsFile | None:
    files = sorted(run_dir.glob("timings*.bin"))
    if not files:
        return None
    return timingfile.merge_timings(timingfile.read_timings(str(p)) for p in files)


def read_open_model(run_dir: Path) -> dict | None:
    p = run_dir / "openmodel.json"
    return json.loads(p.read_text()) if p.exists() else None


def judge_steps(om: dict, tf: timingfile.TimingsFile, slo: ladder.Slo) -> list[dict]:
    """Every judged step of the open-model file, re-measured from the timings (contract keys)."""
    shift = om["t0"] - tf.t0  # the file's offsets are from its own process's t0
    out = []
    for st in om["steps"]:
        if st["phase"] not in JUDGED:
            continue
        start = st["start_s"] + shift
        fig = ladder.figures(tf.series, start, st["seconds"], st["rate"], st["offered"], st["started"], st["dropped"],
                             per_arrival=1.0 if om["unit"] == "request" else None,
                             dispatch_lag_p99_ms=st.get("dispatch_lag_p99_ms", 0.0), slo=slo)
        ok, reason = ladder.judge(fig, slo)
        out.append({**{k: fig[k] for k in STEP_KEYS if k in fig}, "phase": st["phase"], "ok": ok, "reason": reason,
                    "start_s": round(st["start_s"], 3), "seconds": st["seconds"],
                    "_failures": st.get("failures") or {}, "_start": start, "_epoch": om["t0"] + st["start_s"],
                    "_requests": fig.get("requests")})
    return out


def worker_restarts(server_log: Path, offset: int = 0) -> int | None:
    """Restarts the server logged after byte `offset` of its log (a matrix's row-trial runs several
    scenarios on one server and one log: only the capacity run's part counts); None without a log."""
    try:
        with open(server_log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    return sum(len(re.findall(p, text)) for p in RESTART_PATTERNS)


def step_server_us(run_dir: Path, step: dict) -> float | None:
    """Server CPU per request during one step: the server tree's CPU between the step's start and end,
    cut from the run's /proc samples (measure.SAMPLES_FILE), over the requests the step completed."""
    start = step["_epoch"]
    cpu = measure.cpu_between(run_dir / measure.SAMPLES_FILE, "server", start, start + step["seconds"])
    n = step.get("_requests")
    return round(1e6 * cpu / n, 1) if cpu is not None and n else None


def step_speed(run_dir: Path, step: dict) -> float | None:
    """The machine's speed factor during one step (the speed probe's runs inside it, measure.SAMPLES_FILE)."""
    start = step["_epoch"]
    return measure.speed_between(run_dir / measure.SAMPLES_FILE, start, start + step["seconds"])


def analyse(run_dir: Path, slo_text: str, server_log: Path | None = None, log_offset: int = 0) -> dict | None:
    """meta["capacity"] for a capacity-scenario run folder (None without its open-model file). The
    server's log: server_log from byte log_offset (the run's own part), else the run folder's server.log."""
    om, tf = read_open_model(run_dir), _timings(run_dir)
    if om is None or tf is None:
        return None
    slo = parse_slo(slo_text)
    steps = judge_steps(om, tf, slo)
    good = [s for s in steps if s["phase"] in ("ladder", "bisect") and s["ok"]]
    best = max(good, key=lambda s: s["offered_rps"]) if good else None
    over = next((s for s in steps if s["phase"] == "overload"), None)
    rec = next((s for s in steps if s["phase"] == "recovery"), None)
    overload = None
    if over is not None:
        f = over["_failures"]
        overload = {"offered_rps": over["offered_rps"], "achieved_rps": over["achieved_rps"], "p99_ms": over["p99_ms"],
                    "timeouts": f.get("timeouts", 0), "errors_5xx": f.get("errors_5xx", 0),
                    "resets": f.get("resets", 0), "dropped": over["dropped"],
                    "worker_restarts": worker_restarts(server_log or run_dir / "server.log", log_offset),
                    "recovery_s": ladder.recovery_seconds(tf.series, rec["_start"], rec["seconds"], slo)
                    if rec is not None else None}
    speed = step_speed(run_dir, best) if best else None
    return {
        "slo": slo.as_dict(),
        "steps": [{k: s[k] for k in STEP_KEYS} for s in steps],
        "capacity_rps": best["offered_rps"] if best else None,
        # the same at reference speed: the capacity step's rate over the machine's speed factor during it
        "capacity_ref_rps": round(best["offered_rps"] / speed, 1) if best and speed else None,
        "at_capacity": None if best is None else {
            "offered_rps": best["offered_rps"], "achieved_rps": best["achieved_rps"], "p50_ms": best["p50_ms"],
            "p99_ms": best["p99_ms"], "p999_ms": best["p999_ms"],
            "server_us_per_request": step_server_us(run_dir, best), "speed_factor": speed},
        "overload": overload,
    }


def open_model_figures(run_dir: Path) -> dict | None:
    """An --arrival-rate run's arrivals (offered, dropped) and its latencies both ways, exact, per
    endpoint: from the intended start (corrected) and from the actual send."""
    om, tf = read_open_model(run_dir), _timings(run_dir)
    if om is None or tf is None:
        return None
    steps = [s for s in om["steps"] if s["phase"] == "open"]
    offered = sum(s["offered"] for s in steps)
    dropped = sum(s["dropped"] for s in steps)
    per = {}
    for k, s in tf.series.items():
        if k.ok and k.request_type != timingfile.FLOW_REQUEST_TYPE and len(s):
            a = timingfile.summarize(s.intended_ms(), (0.5, 0.99))
            b = timingfile.summarize(s.ms, (0.5, 0.99))
            per[f"{k.request_type} {k.name}"] = {
                "from_intended": {"p50": round(a["p50"], 3), "p99": round(a["p99"], 3), "max": round(a["max"], 3)},
                "from_send": {"p50": round(b["p50"], 3), "p99": round(b["p99"], 3), "max": round(b["max"], 3)}}
    return {"offered": offered, "dropped": dropped,
            "dropped_pct": round(100.0 * dropped / offered, 3) if offered else 0.0,
            "spacing": om["spacing"], "max_inflight": om["max_inflight"], "slots_used": om["slots_created"],
            "latency_ms": per}


def live_line(step: dict) -> str:
    """One step of openmodel.json as the controller judged it while the run went on."""
    f = step["live"]
    p99 = f"{f['p99_ms']:.1f}" if f.get("p99_ms") is not None else "-"
    return (f"  step {step['phase']:8s} offered {f['offered_rps']:8.1f}  achieved {f['achieved_rps']:8.1f}  "
            f"p99 {p99:>8s} ms  errors {f['errors_pct']:.2f}%  dropped {f['dropped']}  "
            + ("ok" if f["ok"] else f"FAIL: {f['reason']}"))


def ladder_lines(cap: dict) -> list[str]:
    """The ladder as a person reads it: one line per step, then the capacity at SLO and the overload."""
    slo = cap["slo"]
    lines = [f"  capacity ladder (SLO per request: p99 <= {slo['p99_ms']:g} ms, errors <= {slo['errors_pct']:g}%, "
             f"achieved >= {slo['min_achieved_ratio'] * 100:g}% of offered, dropped <= {slo['max_dropped_pct']:g}%)",
             f"    {'phase':9s} {'offered':>9s} {'achieved':>9s} {'p99 ms':>9s} {'errors':>7s} {'dropped':>8s}"
             "  verdict"]
    for s in cap["steps"]:
        p99 = f"{s['p99_ms']:.1f}" if s["p99_ms"] is not None else "-"
        lines.append(f"    {s['phase']:9s} {s['offered_rps']:9.1f} {s['achieved_rps']:9.1f} {p99:>9s} "
                     f"{s['errors_pct']:6.2f}% {s['dropped']:8d}  {'ok' if s['ok'] else 'FAIL: ' + s['reason']}")
    if cap["capacity_rps"] is None:
        lines.append("  capacity at SLO: none (the first step already broke the SLO)")
    else:
        a = cap["at_capacity"]
        ref = cap.get("capacity_ref_rps")
        lines.append(f"  capacity at SLO: {cap['capacity_rps']:.1f} req/s  (p50 {a['p50_ms']:.1f}  "
                     f"p99 {a['p99_ms']:.1f}  "
                     f"p99.9 {a['p999_ms']:.1f} ms)"
                     + (f"; {ref:.1f} req/s at reference speed (machine speed factor {a['speed_factor']:.3f} "
                        "in that step)" if ref is not None else ""))
    o = cap.get("overload")
    if o:
        rec = "never within the recovery step" if o["recovery_s"] is None else f"{o['recovery_s']:g} s"
        lines.append(f"  overload at {o['offered_rps']:.1f} req/s: achieved {o['achieved_rps']:.1f}, "
                     f"p99 {o['p99_ms']} ms, "
                     f"timeouts {o['timeouts']}, 5xx {o['errors_5xx']}, resets {o['resets']}, dropped {o['dropped']}, "
                     f"worker restarts {o['worker_restarts']}; back within SLO after {rec}")
    return lines
