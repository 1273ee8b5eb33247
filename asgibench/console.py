"""What a person reads on the terminal: status lines on stderr ("asgibench: ..."), the live progress
line, a run's summary, the trials' median and CV, the contract's checks and the registry table.

Results go to stdout, progress and status to stderr. A new console line goes here as a function
that takes what it shows (a summary, a meta, a report) and prints it; the caller decides when.
The matrix's own table and progress lines live in matrix; the report writes files, not lines.
"""
from __future__ import annotations

import os
import statistics
import sys

from asgibench import capacity, figures, results, stats, variants


def say(msg: str, *, quiet: bool = False) -> None:
    """One status line on stderr: what the run is doing now."""
    if not quiet:
        print(f"asgibench: {msg}", file=sys.stderr, flush=True)


class Progress:
    """One progress line: rewritten in place on a terminal, every 10 s otherwise (logs, CI)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = -10.0

    def __call__(self, elapsed: float, total: float, tot: dict) -> None:
        if not self.tty and elapsed - self.last < 10:
            return
        self.last = elapsed
        line = (f"  [{elapsed:4.0f}s/{total:.0f}s] {tot['requests']} requests, {tot['rps']:.1f} req/s (last 10 s), "
                f"{tot['failures']} failures")
        print(("\r" + line + "   ") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    @staticmethod
    def done() -> None:
        """End the rewritten line (on a terminal only)."""
        if sys.stderr.isatty():
            print(file=sys.stderr)


def print_bench(opts, done: list) -> None:
    """`bench`'s stdout: each trial's summary, then (several trials) their median and CV."""
    for run_dir, meta in done:
        print_summary(opts, run_dir, meta["summary"])
    completed = [meta["summary"] for _, meta in done if meta["status"] == "completed"]  # a stall is no figure
    if len(completed) > 1:
        print_trials(completed)


def print_trials(summaries: list) -> None:
    """Median and coefficient of variation over trials (CV above stats.UNSTABLE_CV_PCT is called out)."""
    rps = [s["rps"] for s in summaries]
    cv = stats.cv_pct(rps)
    p95 = [s.get("exact_percentiles_ms", {}).get("p95") for s in summaries]
    p95 = [x for x in p95 if x is not None]
    print(f"{len(rps)} trials: median {statistics.median(rps):.1f} req/s, CV {cv or 0.0:.1f}%"
          + (f", median p95 {statistics.median(p95):.1f} ms" if p95 else "")
          + (f"  UNSTABLE: CV above {stats.UNSTABLE_CV_PCT:.0f}%" if stats.unstable(cv) else ""))
    for key, label, unit in (("server_us_per_request", "server CPU per request", "µs"),
                             ("server_ref_us_per_request", "server CPU per request at reference speed", "µs"),
                             ("capacity_per_server_core", "capacity per server core", "req/s")):
        vals = [x for x in ((s.get("cost") or {}).get(key) for s in summaries) if x is not None]
        if len(vals) > 1:
            cv = stats.cv_pct(vals)
            print(f"  {label}: median {statistics.median(vals):.0f} {unit}, CV {cv or 0.0:.1f}%"
                  + (f"  UNSTABLE: CV above {stats.UNSTABLE_CV_PCT:.0f}%" if stats.unstable(cv) else ""))


def verdict_words(meta: dict) -> str:
    """How a trial ended, in words (the first summary line; meta.json's status and verdict)."""
    status, v, s = meta.get("status"), meta.get("verdict") or {}, meta.get("summary") or {}
    if status in ("database-died", "server-died"):
        d = meta.get("died") or {}
        return (f"{status.upper().replace('-', ' ')} after {d.get('after_s', 0):.0f} s of {d.get('planned_s', 0):.0f}: "
                f"{d.get('reason')}")
    words = []
    if s.get("stall"):
        st = s["stall"]
        worst = max(st["stalls"], key=lambda x: x["seconds"])
        more = f"; {len(st['stalls'])} stalls, {st['total_s']:.1f} s in all" if len(st["stalls"]) > 1 else ""
        until = worst["at_s"] + worst["seconds"]
        words.append(f"STALLED: no request completed from {worst['at_s']:.1f} s to {until:.1f} s of the window "
                     f"({worst['seconds']:.1f} s; threshold {st['threshold_s']:g} s{more})")
    if s.get("failures"):
        words.append(f"FAILED REQUESTS: {s['failures']} of {s.get('requests', 0)}")
    if not words:
        return "COMPLETED: no request failed"
    if meta.get("capacity") and v.get("accepted"):  # pipeline.measure: the ladder's failures are its figures
        return "; ".join(words) + "  (the capacity ladder goes past the knee on purpose: not a failed run)"
    return "; ".join(words) + ("  (accepted: --accept-failures)" if v.get("accepted") else "")


def print_summary(opts, run_dir, summary) -> None:
    meta = results.read_meta(run_dir)
    print(verdict_words(meta))
    pct = summary.get("locust_percentiles_ms", {})
    exact = summary.get("exact_percentiles_ms") or {}
    gen = meta.get("generator", {})
    srv = meta["server"]
    where = f"external {srv['url']}" if srv.get("external") else f"{srv['workers']} worker(s), db {srv['db_conn']}"
    dj = (meta.get("django") or {}).get("version")
    where += f" | Django {dj} on Python {meta.get('python')}" if dj else ""
    print(f"{opts.variant} | {opts.plan.scenario} | {summary.get('seconds', 0):.0f}s measured | "
          f"up to {opts.plan.peak_users} users | {where}")
    print(f"  requests {summary.get('requests', 0)}  ({summary.get('rps', 0):.1f} req/s)  "
          f"failures {summary.get('failures', 0)}")
    w = summary.get("window") or {}
    if (w.get("early_end_s") or 0) >= 1:
        print(f"  the last request succeeded {w['early_end_s']:.1f} s before the measured window's end: req/s "
              f"is over the whole {w['seconds']:.0f} s window")
    if exact:
        print(f"  latency ms (exact)   p50 {exact['p50']:.1f}  p95 {exact['p95']:.1f}  p99 {exact['p99']:.1f}  "
              f"max {exact['max']:.1f}")
    print(f"  latency ms (Locust)  p50 {pct.get('p50')}  p95 {pct.get('p95')}  p99 {pct.get('p99')}")
    if "flow" in summary:
        f = summary["flow"]
        per_s = f" = {f['iterations_per_s']:.2f}/s" if f.get("iterations_per_s") is not None else ""
        print(f"  whole flow: {f['iterations']} iterations{per_s} ({f['failed']} failed), median {f['p50_ms']} ms")
    if "open_model" in summary:
        o = summary["open_model"]
        print(f"  open model: {o['achieved_per_s']} of {o['target_per_s']} iterations/s, in-flight cap {o['users']}, "
              f"dropped {o.get('dropped', 0)}" + ("" if o["held"] else (
                  f"  RATE NOT HELD (under {100 * stats.OPEN_MODEL_HELD:g}% of the target): "
                  + ("the generator's own limit (generator-bound)" if gen.get("bound") else
                     "the server could not keep up, or the in-flight cap (--users) was too low"))))
    if meta.get("capacity"):
        print("\n".join(capacity.ladder_lines(meta["capacity"])))
    if "concurrency" in summary:
        c = summary["concurrency"]
        print(f"  concurrency efficiency {c['efficiency']}  "
              f"({c['achieved_rps']:.2f} of {c['ideal_rps']:.2f} req/s possible)")
    print(f"  generator CPU {gen.get('cpu_percent_of_one_core')}% of one core, {_pct(gen.get('machine_share'))} of "
          f"the machine ({gen.get('cpu_us_per_request')} µs/request)"
          f"{'  (Locust warned: CPU above 90%)' if gen.get('cpu_warning') else ''}")
    print_cost(summary)
    for name, reason in figures.flags(meta):
        if name != "not-completed":
            print(f"  {name.upper()}: {reason}")
    print(f"  results: {run_dir}")


def _pct(x) -> str:
    return f"{100 * x:.0f}%" if x is not None else "n/a"


def _n(x, fmt: str = ".0f") -> str:
    return format(x, fmt) if x is not None else "n/a"


def print_cost(summary: dict) -> None:
    """Cost per request, memory and worker balance (metrics: cost, memory, balance). The headline
    beside req/s is capacity per server core (1e6 / server CPU per request): the lowest-noise figure
    that still means "how much traffic can a core of this server take" (metrics' docstring says why)."""
    c, m, b = summary.get("cost") or {}, summary.get("memory") or {}, summary.get("balance")
    if not c:
        return
    print(f"  cost per request: server {_n(c.get('server_us_per_request'))} µs, PostgreSQL "
          f"{_n(c.get('db_us_per_request'))} µs, generator {_n(c.get('generator_us_per_request'))} µs CPU "
          f"-> capacity {_n(c.get('capacity_per_server_core'))} req/s per server core (headline: lowest noise)")
    mach = summary.get("machine") or {}
    if c.get("server_ref_us_per_request") is not None:
        print(f"  machine: speed factor {_n(mach.get('speed_factor'), '.3f')} (probe {_n(mach.get('probe_us'))} µs "
              f"per run, reference {_n(mach.get('probe_nominal_us'))}), steal {_n(mach.get('steal_pct'), '.1f')}% "
              f"-> server {_n(c['server_ref_us_per_request'])} µs per request at reference speed, "
              f"{_n(c.get('capacity_per_ref_core'))} req/s per reference core")
    pss, rss = m.get("server_pss_mb") or {}, m.get("server_rss_mb") or {}
    workers = [w for w in m.get("per_worker") or [] if w["role"] == "worker"]
    per = "/".join(_n((w["pss_mb"] or {}).get("steady")) for w in workers)
    print(f"  memory: server PSS {_n(pss.get('steady'))} MB steady, {_n(pss.get('peak'))} peak; RSS "
          f"{_n(rss.get('steady'))} MB steady, {_n(rss.get('peak'))} peak"
          + (f"; per worker PSS {per} MB" if len(workers) > 1 else "")
          + f"; {_n(c.get('rps_per_gb'))} req/s per GB; PostgreSQL backends peak {m.get('db_backends_peak')}")
    if b:
        print(f"  balance: {b['workers']} workers, {b['reason']}, imbalance {_n(b['imbalance'], '.2f')} "
              f"(1 = even, flagged above {b['threshold']:g})")


def print_checks(report) -> None:
    """The contract check, one line per check (`verify`)."""
    for name, ok, detail in report.checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")


def print_web_ui(port: int, base_url: str, minutes: float) -> None:
    print(f"Locust web UI: http://127.0.0.1:{port}  (server {base_url}; Ctrl-C stops everything; "
          f"stops by itself after {minutes:.0f} min)", flush=True)


def print_capability(python: str, django: str | None) -> None:
    """`asgibench list --python X --django Y`: each row, whether it runs there (its Django and what it
    serves) or why not (policy.capability's one line)."""
    from asgibench import policy
    from asgibench.errors import UsageError

    runs, not_here = [], []
    for v in variants.VARIANTS:
        try:
            fit = policy.capability(v, python, django)
        except UsageError as e:
            why = str(e)
            not_here.append((v.name, why[len(v.name) + 1:] if why.startswith(v.name + " ") else why))
            continue
        served = ",".join(s for s in variants.ENDPOINT_SETS if s in fit.variant.serves)
        runs.append((v.name, f"Django {fit.django}" if fit.django else "no Django", fit.lock.name, served))
    print(f"Python {python}, Django {django or 'default'}: {len(runs)} rows run, {len(not_here)} do not")
    widths = [max([len(r[i]) for r in runs] or [0]) for i in range(3)]
    for r in runs:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    for name, why in not_here:
        print(f"  NOT {name}: {why}")


def print_registry(names_only: bool = False) -> None:
    """`asgibench list`: every row, its server, workers, env group, what it serves, its notes."""
    if names_only:
        print("\n".join(v.name for v in variants.VARIANTS))
        return
    rows = [("name", "family", "interface", "server", "workers", "env", "db conn", "serves", "notes")]
    for v in variants.VARIANTS:
        served = ",".join(s for s in variants.ENDPOINT_SETS if s in v.serves)
        worker = f"{v.worker} " if v.worker else ""
        notes = v.notes + (f" [no /async_api/: {v.no_async}]" if v.no_async else "")
        rows.append((v.name, v.family, v.interface, f"{v.server} {worker}".strip(),
                     str(v.workers) if v.workers else f"cpus({os.cpu_count()})", v.env, v.db_conn, served, notes))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
