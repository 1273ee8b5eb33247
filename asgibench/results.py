"""Results step: the run folder (never overwritten), meta.json (written at start, updated at the
end, so a killed run still says what it was), and the summary computed from Locust's final stats:
totals over the measured window (measured_window: the test's start to its stop, not to the last
completion) and the stall, if any (find_stall: STALL_SECONDS without a completed request).

results/<variant>/<run-id>/
  locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv,
  locust.json (final totals), report.html, timings.bin (every response time), generator.json,
  server.log, locust.log, meta.json, error.log (an unexpected error's traceback)
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import benchcontract
from asgibench import ROOT, files
from locustfiles import timingfile  # the recorder's file format: stdlib only, no Locust import

RESULTS_DIR = Path(os.environ.get("ASGIBENCH_RESULTS") or ROOT / "results")
PERCENTILES = (0.5, 0.9, 0.95, 0.99)


def new_run_dir(variant: str, label: str, root: Path | None = None) -> Path:
    """results/<variant>/<UTC time>-<label>[-N]: created exclusively, so no run overwrites another."""
    base = (root or RESULTS_DIR) / variant
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        path = base / (f"{stamp}-{label}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def write_meta(run_dir: Path, meta: dict) -> None:
    """meta.json, atomically (a reader never sees half of it; a killed run keeps the last whole one)."""
    files.write_json_atomic(Path(run_dir) / "meta.json", meta)


def calibration_path() -> Path:
    """What `asgibench calibrate` measured on this machine (results/calibration.json)."""
    return RESULTS_DIR / "calibration.json"


def calibration(*paths) -> dict | None:
    """The one calibration reader: the first of `paths` (default: calibration_path()) that holds a
    measured ceiling ("ceiling_rps"), as its JSON plus "_path" (the file it came from, quoted by the
    report); None when none does (missing, unreadable, not JSON, no ceiling). The generator-bound
    rule of new runs and the report both read calibration.json through here."""
    for p in paths or (calibration_path(),):
        if not p:
            continue
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("ceiling_rps"):
            data["_path"] = str(p)
            return data
    return None


def read_meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


# -- summary ---------------------------------------------------------------------------------------

def bucket_percentile(buckets: dict, total: int, q: float) -> float | None:
    """Locust's own percentile over its (rounded) response-time buckets."""
    if total == 0:
        return None
    threshold = int(total * q)
    processed = 0
    for rt in sorted(buckets, reverse=True):
        processed += buckets[rt]
        if total - processed <= threshold:
            return float(rt)
    return float(min(buckets))


def summarize(run_dir: Path, stall_after: float = None) -> dict:
    """Totals, req/s and latency of a finished (or interrupted) run, FLOW entries excluded (every HTTP
    exchange is a request: the workload follows redirects as requests of their own), "flow" (the
    iterations, and iterations_per_s over the same window as req/s) for flows; its measured window
    and, if requests stopped completing for `stall_after` s (stall_threshold), the stall."""
    stats_path = run_dir / "locust.json"
    entries = json.loads(stats_path.read_text()) if stats_path.exists() else []
    reqs = [e for e in entries if e["method"] != benchcontract.FLOW_REQUEST_TYPE]
    flows = [e for e in entries if e["method"] == benchcontract.FLOW_REQUEST_TYPE]
    n = sum(e["num_requests"] for e in reqs)
    fails = sum(e["num_failures"] for e in reqs)
    buckets: dict = {}
    for e in reqs:
        for rt, c in e["response_times"].items():
            buckets[float(rt)] = buckets.get(float(rt), 0) + c
    # The measured window (measured_window): the test's start to its stop as the recorder saw them
    # (generator.json), i.e. the planned run when it ran its course, stretched to the last completion
    # if one came later. Not Locust's own (from the first *completion*: it overstates slow requests'
    # rate), nor start..last completion (a run whose requests stopped completing would hide the stall).
    starts = [e["start_time"] for e in reqs if e["num_requests"]] + [r["started_at"] for r in _generator_runs(run_dir)]
    ends = [e["last_request_timestamp"] for e in reqs if e.get("last_request_timestamp")]
    done, last_ok = completions(run_dir)
    window = measured_window(run_dir, min(starts) if starts else None,
                             last_ok if done else (max(ends) if ends else None))
    seconds = window["seconds"] if window else ((max(ends) - min(starts)) if starts and ends else 0.0)
    out = {
        "source": "locust.json (Locust's final stats)" if entries else "none: Locust wrote no final stats",
        "requests": n,
        "failures": fails,
        "failure_ratio": (fails / n) if n else 0.0,
        "seconds": round(seconds, 3),
        "rps": round(n / seconds, 2) if seconds > 0 else 0.0,
        "avg_ms": round(sum(e["total_response_time"] for e in reqs) / n, 2) if n else None,
        "max_ms": max((e["max_response_time"] for e in reqs), default=None),
        "locust_percentiles_ms": {f"p{int(q * 100)}": bucket_percentile(buckets, n, q) for q in PERCENTILES},
        "endpoints": {f"{e['method']} {e['name']}": {"requests": e["num_requests"], "failures": e["num_failures"],
                                                     "avg_ms": _avg_ms(e)} for e in reqs},
    }
    if flows:
        f = flows[0]
        out["flow"] = {"iterations": f["num_requests"], "failed": f["num_failures"],
                       "p50_ms": bucket_percentile({float(k): v for k, v in f["response_times"].items()},
                                                   f["num_requests"], 0.5),
                       "avg_ms": _avg_ms(f),
                       "iterations_per_s": round(f["num_requests"] / seconds, 2) if seconds > 0 else 0.0}
    if window:
        out["window"] = window
    exact = exact_latencies(run_dir)
    if exact:
        out["exact_percentiles_ms"] = exact
    out["stall"] = find_stall(done, window, stall_after) if window else None
    return out


def _avg_ms(entry: dict) -> float | None:
    """Locust's mean response time of one stats entry, ms (None without requests)."""
    n = entry["num_requests"]
    return round(entry["total_response_time"] / n, 2) if n else None


# -- the measured window and stalls ----------------------------------------------------------------

STALL_SECONDS = 5.0  # users active and no request completed for this long: the trial stalled


def stall_threshold(io_seconds: float = 0.0) -> float:
    """Seconds without a completed request that make a stall: STALL_SECONDS, plus the probe's own
    sleep on the io flow (a request started just after the last completion cannot end sooner)."""
    return STALL_SECONDS + (io_seconds or 0.0)


def _generator_runs(run_dir: Path) -> list:
    out = []
    for p in sorted(run_dir.glob("generator*.json")):
        try:
            run = json.loads(p.read_text()).get("run")
        except (OSError, ValueError):
            continue
        if run and run.get("started_at"):
            out.append(run)
    return out


def measured_window(run_dir: Path, first_start: float | None, last_completion: float | None) -> dict | None:
    """{"start", "stop" (epoch s), "seconds", "last_completion_s" (since start), "early_end_s"}: the test's
    start to its stop (test_stopping: the planned end, or where it was cut short), stretched to the last
    (successful) completion if later; None without the recorder's generator.json. early_end_s: how long
    before the window's end the last request succeeded (0: it did not come early; None: none did)."""
    runs = _generator_runs(run_dir)
    if not runs:
        return None
    start = min([r["started_at"] for r in runs] + ([first_start] if first_start else []))
    stop = max(r.get("stopping_at") or r.get("stopped_at") or start for r in runs)
    end = max(stop, last_completion or stop)
    last = (last_completion - start) if last_completion else None
    return {"start": start, "stop": end, "seconds": round(end - start, 3),
            "last_completion_s": round(last, 3) if last is not None else None,
            "early_end_s": round(max(0.0, end - last_completion), 3) if last_completion else None}


def completions(run_dir: Path) -> tuple[list, float | None]:
    """(epoch seconds at which every request, failed ones too, FLOW excluded, completed: t0 + t + ms/1000
    from timings*.bin, sorted; the last successful one). Only a success stretches the window: the
    failures fired when Locust cuts off the requests still in flight come after its stop timeout."""
    found = sorted(run_dir.glob("timings*.bin"))
    if not found:
        return [], None
    merged = timingfile.merge_timings(timingfile.read_timings(str(p)) for p in found)
    out, last_ok = [], None
    for k, s in merged.series.items():
        if k.request_type != benchcontract.FLOW_REQUEST_TYPE:
            ends = [merged.t0 + t + ms / 1000.0 for t, ms in zip(s.t, s.ms)]
            out.extend(ends)
            if k.ok and ends:
                last_ok = max(ends + ([last_ok] if last_ok else []))
    return sorted(out), last_ok


def find_stall(done: list, window: dict, threshold: float | None = None) -> dict | None:
    """The gaps of `threshold` s (default stall_threshold()) or more with no completion inside the
    window (from its start to the first completion, between completions, from the last to its end):
    None, or {"threshold_s", "stalls": [{"at_s" (since the window's start), "seconds"}], "longest_s",
    "total_s"}."""
    threshold = stall_threshold() if threshold is None else threshold
    start, stop = window["start"], window["stop"]
    points = [start] + [c for c in done if start <= c <= stop] + [stop]
    stalls = [{"at_s": round(a - start, 3), "seconds": round(b - a, 3)}
              for a, b in zip(points, points[1:]) if b - a >= threshold]
    if not stalls:
        return None
    return {"threshold_s": threshold, "stalls": stalls, "longest_s": max(x["seconds"] for x in stalls),
            "total_s": round(sum(x["seconds"] for x in stalls), 3)}


def exact_latencies(run_dir: Path) -> dict | None:
    """Exact percentiles over every response time Locust saw (timings*.bin, one file per Locust
    process, format in locustfiles/timingfile.py), FLOW excluded, failures included as Locust does."""
    files = sorted(run_dir.glob("timings*.bin"))
    if not files:
        return None
    merged = timingfile.merge_timings(timingfile.read_timings(str(p)) for p in files)
    values = timingfile.select(merged)
    if not len(values):
        return None
    s = timingfile.summarize(values, PERCENTILES)
    out = {k: round(s[k], 3) for k in ("p50", "p90", "p95", "p99", "max")}
    out["count"] = s["count"]
    out["per_endpoint"] = {}
    for k in merged.series:
        if k.ok and k.request_type != benchcontract.FLOW_REQUEST_TYPE:
            per = timingfile.summarize(timingfile.select(merged, k.request_type, k.name), PERCENTILES)
            out["per_endpoint"][f"{k.request_type} {k.name}"] = {
                q: round(v, 3) for q, v in per.items() if q in ("p50", "p95", "p99", "count")}
    return out


# -- environment capture ---------------------------------------------------------------------------

def machine() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "loadavg": list(os.getloadavg()),
        "hostname": platform.node(),
    }


def git_state() -> dict:
    def git(*args):
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return res.stdout.strip() if res.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}
