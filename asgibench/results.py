"""Results step: the run folder (never overwritten), meta.json (written at start, updated at the
end, so a killed run still says what it was), and the summary computed from Locust's final stats.

results/<variant>/<run-id>/
  locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv,
  locust.json (final totals), report.html, timings.bin (every response time), generator.json,
  server.log, locust.log, meta.json
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


def summarize(run_dir: Path) -> dict:
    """Totals, req/s and latency of a finished (or interrupted) run, FLOW entries excluded."""
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
    # The measured window runs from the test's start (generator.json, written by the recorder) to the
    # last completion. Locust's own req/s starts at the first *completion*, which overstates the
    # rate of slow requests (a 1 s pg_sleep run would gain one second of requests for free).
    starts = [e["start_time"] for e in reqs if e["num_requests"]] + _test_starts(run_dir)
    ends = [e["last_request_timestamp"] for e in reqs if e.get("last_request_timestamp")]
    seconds = (max(ends) - min(starts)) if starts and ends else 0.0
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
                       "avg_ms": _avg_ms(f)}
    exact = exact_latencies(run_dir)
    if exact:
        out["exact_percentiles_ms"] = exact
    return out


def _avg_ms(entry: dict) -> float | None:
    """Locust's mean response time of one stats entry, ms (None without requests)."""
    n = entry["num_requests"]
    return round(entry["total_response_time"] / n, 2) if n else None


def _test_starts(run_dir: Path) -> list:
    out = []
    for p in run_dir.glob("generator*.json"):
        run = json.loads(p.read_text()).get("run") or {}
        if run.get("started_at"):
            out.append(run["started_at"])
    return out


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
