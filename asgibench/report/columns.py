"""summary.csv's columns as data (COLUMNS: name and meaning, in file order), from which CSV_COLUMNS
and the column documentation (column_docs(), appended to groups' and the package's docstrings) are
made, so the documentation cannot drift from the file; and the cells of the columns that are read
generically from meta.json (figure_cells, flag_cells, memory_cells, balance_cells, capacity_cells).

The headline figures come from asgibench/figures.py: every Figure gets a median column and a CV
column (figure_columns), so a new Figure is a new pair of columns without code here. The columns
that existed before figures.py keep their names (rps_median, rps_cv_pct, p50_ms, p99_ms, efficiency:
LEGACY_MEDIAN) and are computed in groups.summarize_group as before.

A new summary.csv column: one (name, doc) entry in COLUMNS at its place in the file and its value in
groups.summarize_group or one of the *_cells functions here (summarize_group refuses a row whose keys
are not exactly CSV_COLUMNS, and test_report checks both).
"""
from __future__ import annotations

import textwrap

from asgibench import figures, stats, variants
from asgibench.report.fmt import rel
from asgibench.report.trials import AD_HOC

# figures whose median column existed before figures.py (names kept stable)
LEGACY_MEDIAN = {"rps": "rps_median", "p50_ms": "p50_ms", "p99_ms": "p99_ms", "efficiency": "efficiency"}


def median_column(key: str) -> str:
    """summary.csv's median column of figure `key`."""
    return LEGACY_MEDIAN.get(key, f"{key}_median")


def cv_column(key: str) -> str:
    """summary.csv's CV column of figure `key` (rps_cv_pct for req/s, as it always was)."""
    return f"{key}_cv_pct"


def _figure_columns() -> tuple:
    out = []
    for f in figures.FIGURES:
        unit = f" ({f.unit})" if f.unit else ""
        if f.key not in LEGACY_MEDIAN:
            out.append((median_column(f.key), f"median over trials: {f.doc}{unit}"))
        if f.key != "rps":
            out.append((cv_column(f.key), f"CV % over trials of {median_column(f.key)} (empty below 2 trials)"))
    return tuple(out)


_OVERLOAD_SUMS = ("timeouts", "errors_5xx", "resets", "dropped", "worker_restarts")

# summary.csv, column by column, in file order: (name, what the cell holds).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("section", '"<matrix id> / <scenario> / <flow>": the table the row belongs to (rows of one flow only)'),
    ("matrix_id", f'matrix run id, or "{AD_HOC}" for runs made with `bench`'),
    ("scenario", "load scenario (constant, io, capacity, readme, medium, ...)"),
    ("row", "row label used in report.md and charts (variant + flow/settings qualifiers)"),
    ("variant", "registry row name"),
    ("family", " | ".join(variants.FAMILIES)),
    ("server", "server of the row (gunicorn, uvicorn, ...), worker class after a colon"),
    ("flow", ('original | api | io, plus "+async", "+slowapi", "slowapi-only", "+open@R/s" (open model, '
              "--arrival-rate R)")),
    ("users", "peak Locust users"),
    ("seconds", "planned measured seconds per trial"),
    ("io_seconds", "seconds each io-scenario request waits in PostgreSQL (io only)"),
    ("workers", "server worker processes"),
    ("db_conn", " | ".join(variants.DB_CONN_STRATEGIES)),
    ("python", "server Python"),
    ("django", 'the Django version the server ran (meta "django"."version"; empty: no Django); part of the '
               "group key, so two Django versions never share a median"),
    ("trials", "completed trials used for the figures"),
    ("excluded_trials", 'trials left out (status not "completed")'),
    ("headline", "the figure key (asgibench/figures.py) this row's table leads with, the same for every row "
                 "of a section: the lowest-noise figure that answers the table's question"),
    ("headline_median", "median over trials of the headline figure"),
    ("headline_cv_pct", "CV % over trials of the headline figure"),
    ("headline_reason", "why the section leads with that figure (its CV beside the other candidates')"),
    ("rps_median", "median of the trials' req/s (every HTTP exchange, redirects included; FLOW excluded)"),
    ("rps_mean", "mean of the trials' req/s"),
    ("rps_stdev", "sample standard deviation (n-1) of the trials' req/s (empty with one trial)"),
    ("rps_min", "lowest trial req/s"),
    ("rps_max", "highest trial req/s"),
    ("rps_cv_pct", "100 * rps_stdev / rps_mean (empty with one trial)"),
    ("unstable", f"true when rps_cv_pct > {stats.UNSTABLE_CV_PCT:g}"),
    ("latency_source", "exact | locust  (which percentiles p50_ms..p99_ms are)"),
    *((f"{p}_ms", f"median over trials of the trials' {p}, milliseconds") for p in ("p50", "p90", "p95", "p99")),
    ("max_ms", "highest single response time over the trials"),
    ("locust_p95_ms", "median over trials of Locust's own (bucketed) p95, for comparison"),
    ("requests", "HTTP requests over the trials (locust.json entries other than FLOW)"),
    ("failures", "failed requests over the trials"),
    ("failure_pct", "100 * failures / requests"),
    ("efficiency", "io scenario: median over trials of achieved req/s / (users / io_seconds)"),
    ("ideal_rps", "io scenario: users / io_seconds"),
    ("ceiling_ratio", "rps_median / rps_median of the best reference row of the same section (same flow)"),
    ("gen_cpu_pct_max", "highest load-generator CPU over the trials, % of one core"),
    ("gen_us_per_request", "median generator CPU microseconds per request"),
    ("generator_bound", "true when any trial was generator-bound"),
    ("generator_bound_source", ("meta (the runner's flag) | derived (here: CPU > "
                                f"{stats.GENERATOR_CPU_BOUND_PCT:g}% of a core per Locust process, Locust's CPU "
                                f"warning, or req/s above {stats.GENERATOR_CEILING_FRACTION:g} x the calibrated "
                                "ceiling)")),
    ("generator_bound_reasons", 'why, "; "-separated'),
    *_figure_columns(),
    ("flags", 'every trial flag of figures.flags any trial raised, in figures.FLAGS order, "; "-separated'),
    ("flag_reasons", 'each flagged trial: "folder: flag: reason", "; "-separated'),
    ("generator_competing", "true when any trial's generator took more than its documented share of the "
                            "machine while the server was CPU-bound (figures.flags)"),
    ("generator_share_pct_max", "highest generator CPU over the trials, % of the whole machine (all CPUs)"),
    ("imbalanced", "true when any trial's server workers were imbalanced (figures.flags)"),
    ("balance_shares", 'each multi-worker trial\'s worker shares of the server CPU in %, pid order, "/"-'
                       'joined, trials "; "-separated (e.g. "94/6; 45/55")'),
    ("imbalance_median", "median over trials of the documented imbalance figure (summary.balance.imbalance)"),
    ("server_rss_mb", "median over trials of the server tree's steady-state RSS, MB"),
    ("server_rss_peak_mb", "highest server-tree RSS over the trials, MB"),
    ("server_pss_peak_mb", "highest server-tree PSS over the trials, MB"),
    ("worker_pss_mb", "median over trials of the mean steady PSS of one worker process, MB"),
    ("db_backends_peak", "most PostgreSQL backends seen in any trial"),
    ("slo", 'capacity scenario: the SLO each ladder step was judged by ("p99<=250ms errors<=0.1% ...")'),
    ("capacity_p50_ms", "capacity scenario: median over trials of p50 at the capacity step, ms"),
    ("capacity_p999_ms", "capacity scenario: median over trials of p99.9 at the capacity step, ms"),
    ("capacity_server_us_per_request", "capacity scenario: median server CPU us per request at the capacity step"),
    ("overload_offered_rps", "capacity scenario: median offered rate of the overload step (~1.5x capacity)"),
    ("overload_achieved_rps", "capacity scenario: median achieved rate of the overload step"),
    ("overload_p99_ms", "capacity scenario: median p99 of the overload step, ms"),
    *((f"overload_{k}", f"capacity scenario: {k.replace('_', ' ')} in the overload step, summed over trials")
      for k in _OVERLOAD_SUMS),
    ("overload_recovery_s", "capacity scenario: median seconds until the server served within the SLO again "
                            "after the overload step (empty: not measured)"),
    ("status_problems", 'excluded trials, "status: folder" "; "-separated'),
    ("run_dirs", 'the trials\' run folders, relative to the report folder, " "-separated'),
)
CSV_COLUMNS = tuple(name for name, _ in COLUMNS)


def column_docs(indent: str = "  ", width: int = 104) -> str:
    """COLUMNS as text: one column per line (wrapped), its meaning beside it."""
    pad = max(len(name) for name in CSV_COLUMNS) + 2
    out = []
    for name, doc in COLUMNS:
        out += textwrap.wrap(doc, width, initial_indent=f"{indent}{name:<{pad}}", subsequent_indent=indent + " " * pad,
                             break_long_words=False, break_on_hyphens=False)
    return "\n".join(out) + "\n"


# -- cells read generically from meta.json ---------------------------------------------------------

def r(v, nd):
    """A figure rounded for the file (None stays None)."""
    return None if v is None else round(float(v), nd)


def _path(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return None if isinstance(d, bool) or not isinstance(d, (int, float)) else float(d)


def figure_cells(trials) -> dict:
    """The median and CV column of every figure in figures.FIGURES not computed the legacy way."""
    out = {}
    for f in figures.FIGURES:
        vals = [t.figure(f.key) for t in trials]
        if f.key not in LEGACY_MEDIAN:
            out[median_column(f.key)] = r(stats.median(vals), 3)
        if f.key != "rps":
            out[cv_column(f.key)] = r(stats.cv_pct(vals), 2)
    return out


def flag_cells(trials, out_dir) -> dict:
    """flags, flag_reasons, generator_competing, generator_share_pct_max, imbalanced (figures.flags)."""
    seen, reasons = set(), []
    for t in trials:
        for name, why in t.flags:
            seen.add(name)
            reasons.append(f"{rel(t.path, out_dir)}: {name}: {why}")
    shares = [_path(t.generator, "machine_share") for t in trials]
    shares = [s for s in shares if s is not None]
    return {
        "flags": "; ".join(name for name, _ in figures.FLAGS if name in seen),
        "flag_reasons": "; ".join(reasons),
        "generator_competing": "generator-competing" in seen,
        "generator_share_pct_max": r(100.0 * max(shares), 1) if shares else None,
        "imbalanced": "imbalanced" in seen,
    }


def shares_text(balance: dict) -> str | None:
    """A trial's worker shares as "94/6" (percent of the server CPU, pid order); None without them."""
    shares = (balance or {}).get("shares")
    if not shares:
        return None
    return "/".join(f"{100.0 * s:.0f}" for s in shares)


def balance_cells(trials) -> dict:
    per = [shares_text(t.summary.get("balance") or {}) for t in trials]
    return {
        "balance_shares": "; ".join(p for p in per if p),
        "imbalance_median": r(stats.median(_path(t.summary, "balance", "imbalance") for t in trials), 3),
    }


def memory_cells(trials) -> dict:
    def mem(*keys):
        return [_path(t.summary, "memory", *keys) for t in trials]

    def top(vals):
        vals = [v for v in vals if v is not None]
        return r(max(vals), 1) if vals else None

    worker = []
    for t in trials:
        ws = [_path(w, "pss_mb", "steady") for w in ((t.summary.get("memory") or {}).get("per_worker") or [])
              if isinstance(w, dict) and w.get("role") == "worker"]
        ws = [w for w in ws if w is not None]
        worker.append(sum(ws) / len(ws) if ws else None)
    backends = [_path(t.summary, "memory", "db_backends_peak") for t in trials]
    return {
        "server_rss_mb": r(stats.median(mem("server_rss_mb", "steady")), 1),
        "server_rss_peak_mb": top(mem("server_rss_mb", "peak")),
        "server_pss_peak_mb": top(mem("server_pss_mb", "peak")),
        "worker_pss_mb": r(stats.median(worker), 1),
        "db_backends_peak": (int(top(backends)) if top(backends) is not None else None),
    }


def slo_text(slo: dict) -> str | None:
    """The SLO of meta["capacity"]["slo"] as one phrase ("p99<=250ms errors<=0.1% ..."); None without."""
    if not slo:
        return None
    parts = []
    if slo.get("p99_ms") is not None:
        parts.append(f"p99<={slo['p99_ms']:g}ms")
    if slo.get("errors_pct") is not None:
        parts.append(f"errors<={slo['errors_pct']:g}%")
    if slo.get("min_achieved_ratio") is not None:
        parts.append(f"achieved>={100 * slo['min_achieved_ratio']:g}%")
    if slo.get("max_dropped_pct") is not None:
        parts.append(f"dropped<={slo['max_dropped_pct']:g}%")
    if slo.get("level"):
        parts.append(f"per {slo['level']}")
    return " ".join(parts) or None


def capacity_cells(trials) -> dict:
    caps = [t.capacity for t in trials]
    slos = {slo_text(c.get("slo") or {}) for c in caps} - {None}

    def med(*keys):
        return r(stats.median(_path(c, *keys) for c in caps), 3)

    def total(key):
        vals = [_path(c, "overload", key) for c in caps]
        vals = [v for v in vals if v is not None]
        return int(sum(vals)) if vals else None

    return {
        "slo": " | ".join(sorted(slos)) or None,
        "capacity_p50_ms": med("at_capacity", "p50_ms"),
        "capacity_p999_ms": med("at_capacity", "p999_ms"),
        "capacity_server_us_per_request": med("at_capacity", "server_us_per_request"),
        "overload_offered_rps": med("overload", "offered_rps"),
        "overload_achieved_rps": med("overload", "achieved_rps"),
        "overload_p99_ms": med("overload", "p99_ms"),
        **{f"overload_{k}": total(k) for k in _OVERLOAD_SUMS},
        "overload_recovery_s": med("overload", "recovery_s"),
    }
