"""Report step: many run folders -> results/report.md + results/summary.csv + results/charts/*.png.

    python -m asgibench report [RUN_IDS...] [--out DIR] [--results DIR] [--no-charts]

RUN_IDS: matrix run ids (meta.json "matrix"."id"), run folders (paths), folders holding run folders
(e.g. results/uvicorn), or run-folder names (`20261125T004336Z-constant` or `uvicorn/20261125T...`)
looked up under the results folder. None: every benchmark run under the results folder (completed
runs make the figures; interrupted / failed / server-died runs are listed, never averaged).

Grouping. A *group* (one row of summary.csv, one line of the headline table) is every trial of
(matrix id or "ad-hoc", variant, scenario, flow, load settings): the flow is the Locust user class
plus `+async` (/async_api/) and `+slowapi` / `slowapi-only`; the load settings are peak users, run
length, --io-seconds (io), --time-scale (ramps), workers, database connection strategy, Python, and
Locust processes / workers — ad-hoc runs made with different settings are never mixed into one median. A
*section* is (matrix id, scenario): one table and one set of charts; rows of different sections are
not compared with each other.

Figures per group (over its completed trials):
  median req/s; CV = sample standard deviation / mean of the trials' req/s (n-1; needs >= 2
  trials), above 5% the row is "unstable"; latency = median over trials of each trial's exact
  percentile (every response time, timings.bin) or, when a trial lacks exact timings, Locust's
  bucketed percentiles for the whole group (latency_source says which); totals are sums.

summary.csv columns (stable; empty cell = not applicable / not measured):
  section            "<matrix id> / <scenario>": the table the row belongs to
  matrix_id          matrix run id, or "ad-hoc" for runs made with `bench`
  scenario           load scenario (constant, io, readme, medium, ...)
  row                row label used in report.md and charts (variant + flow/settings qualifiers)
  variant            registry row name
  family             wsgi | asgi | fastapi | reference
  server             server of the row (gunicorn, uvicorn, ...), worker class after a colon
  flow               original | api | io, plus "+async", "+slowapi", "slowapi-only", "+open@R/s" (open model,
                     --arrival-rate R)
  users              peak Locust users
  seconds            planned measured seconds per trial
  io_seconds         seconds each io-scenario request waits in PostgreSQL (io only)
  workers            server worker processes
  db_conn            per-request | persistent | pool
  python             server Python
  trials             completed trials used for the figures
  excluded_trials    trials left out (status not "completed")
  rps_median         median of the trials' req/s (HTTP requests only, FLOW excluded)
  rps_mean, rps_stdev, rps_min, rps_max
  rps_cv_pct         100 * rps_stdev / rps_mean (empty with one trial)
  unstable           true when rps_cv_pct > 5
  latency_source     exact | locust  (which percentiles p50_ms..p99_ms are)
  p50_ms, p90_ms, p95_ms, p99_ms   median over trials of that percentile, milliseconds
  max_ms             highest single response time over the trials
  locust_p95_ms      median over trials of Locust's own (bucketed) p95, for comparison
  requests           HTTP requests over the trials (locust.json entries other than FLOW)
  failures           failed requests over the trials
  failure_pct        100 * failures / requests
  efficiency         io scenario: median over trials of achieved req/s / (users / io_seconds)
  ideal_rps          io scenario: users / io_seconds
  ceiling_ratio      rps_median / rps_median of the best reference row of the same section
  gen_cpu_pct_max    highest load-generator CPU over the trials, % of one core
  gen_us_per_request median generator CPU microseconds per request
  generator_bound    true when any trial was generator-bound
  generator_bound_source   meta (the runner's flag) | derived (here: CPU > 90% of a core per Locust
                     process, Locust's CPU warning, or req/s above half the calibrated ceiling)
  generator_bound_reasons  why, "; "-separated
  status_problems    excluded trials, "status: folder" "; "-separated
  run_dirs           the trials' run folders, relative to the report folder, " "-separated

Charts (PNG, matplotlib Agg, one set per section; skipped when there is no data for them):
  charts/rps-<section>.png          median req/s per row, +-1 standard deviation, CV printed, colour =
                                    family, generator-bound rows hatched, best reference row as the
                                    "raw ceiling" line
  charts/latency-<section>.png      p50 / p95 / p99 per row
  charts/concurrency-<section>.png  io scenario: efficiency per row, line at 1.0 (fully concurrent)
  charts/ramp-<section>.png         ramped scenarios: req/s (FLOW excluded, from the per-second totals
                                    of locust_stats_history.csv) and users over time, median trial per row
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract

from asgibench import results
from asgibench.errors import UsageError

FAMILIES = ("wsgi", "asgi", "fastapi", "reference")
FAMILY_TITLES = {"wsgi": "WSGI", "asgi": "ASGI", "fastapi": "FastAPI", "reference": "reference"}
FAMILY_COLOURS = {"wsgi": "#1f77b4", "asgi": "#ff7f0e", "fastapi": "#2ca02c", "reference": "#7f7f7f", "?": "#9467bd"}
SCENARIO_ORDER = ("constant", "readme", "easy", "medium", "medium-large", "laptop-heater", "io")
NOT_RAMPED = ("constant", "io")
AD_HOC = "ad-hoc"
UNSTABLE_CV_PCT = 5.0
SERIALISES_BELOW = 0.5  # concurrency efficiency below this: the row serialises I/O
CONCURRENT_FROM = 0.9  # at or above this: concurrent
GEN_CPU_BOUND_PCT = 90.0  # derived generator-bound rule (when meta has no "bound" flag)
GEN_CEILING_FRACTION = 0.5
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 8, "borderaxespad": 0}

CSV_COLUMNS = (
    "section", "matrix_id", "scenario", "row", "variant", "family", "server", "flow", "users", "seconds",
    "io_seconds", "workers", "db_conn", "python", "trials", "excluded_trials",
    "rps_median", "rps_mean", "rps_stdev", "rps_min", "rps_max", "rps_cv_pct", "unstable",
    "latency_source", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "locust_p95_ms",
    "requests", "failures", "failure_pct", "efficiency", "ideal_rps", "ceiling_ratio",
    "gen_cpu_pct_max", "gen_us_per_request", "generator_bound", "generator_bound_source",
    "generator_bound_reasons", "status_problems", "run_dirs",
)


# -- statistics ------------------------------------------------------------------------------------

def median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def cv_pct(values) -> float | None:
    """Coefficient of variation in percent: sample stdev (n-1) / mean; None below two values."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return None
    mean = statistics.fmean(vals)
    return 100.0 * statistics.stdev(vals) / mean if mean else None


# -- one trial -------------------------------------------------------------------------------------

@dataclass
class Trial:
    path: Path
    meta: dict

    @property
    def status(self) -> str:
        return self.meta.get("status") or "unknown"

    @property
    def completed(self) -> bool:
        return self.status == "completed" and bool(self.meta.get("summary"))

    @property
    def summary(self) -> dict:
        return self.meta.get("summary") or {}

    @property
    def plan(self) -> dict:
        return self.meta.get("plan") or {}

    @property
    def variant(self) -> dict:
        return self.meta.get("variant") or {}

    @property
    def matrix_id(self) -> str:
        m = self.meta.get("matrix") or {}
        return str(m.get("id")) if m.get("id") else AD_HOC

    @property
    def trial_no(self) -> int | None:
        return (self.meta.get("matrix") or {}).get("trial")

    @property
    def rps(self) -> float | None:
        return self.summary.get("rps")

    @property
    def efficiency(self) -> float | None:
        return (self.summary.get("concurrency") or {}).get("efficiency")

    @property
    def generator(self) -> dict:
        return self.meta.get("generator") or {}

    def bound(self, ceiling_rps: float | None) -> tuple[bool, str, list]:
        """(generator-bound?, "meta" | "derived", reasons)."""
        gen = self.generator
        if "bound" in gen:
            return bool(gen["bound"]), "meta", list(gen.get("bound_reasons") or [])
        reasons = []
        cpu = gen.get("cpu_percent_of_one_core")
        procs = max(1, int(gen.get("processes") or 1))
        if cpu is not None and cpu / procs > GEN_CPU_BOUND_PCT:
            reasons.append(f"generator CPU {cpu:.0f}% of one core")
        if gen.get("cpu_warning"):
            reasons.append("Locust warned: CPU above 90%")
        if ceiling_rps and self.rps and self.rps > GEN_CEILING_FRACTION * ceiling_rps:
            reasons.append(f"{self.rps:.0f} req/s > half the calibrated ceiling ({ceiling_rps:.0f})")
        return bool(reasons), "derived", reasons


def flow_label(plan: dict) -> str:
    flow = "slowapi-only" if plan.get("only_slowapi") else (plan.get("flow") or "?")
    if plan.get("api_prefix") == "/async_api/" and flow != "io":
        flow += "+async"
    if plan.get("with_slowapi"):
        flow += "+slowapi"
    if plan.get("arrival_rate"):  # open model: a fixed rate of iterations, not as-fast-as-possible users
        flow += f"+open@{_fmt_cfg(plan['arrival_rate'])}/s"
    return flow


def config_of(t: Trial) -> dict:
    """The load settings that make two runs comparable (part of the group key)."""
    plan, server = t.plan, t.meta.get("server") or {}
    scenario = plan.get("scenario")
    return {
        "users": plan.get("peak_users", plan.get("users")),
        "seconds": plan.get("seconds"),
        "io_seconds": plan.get("io_seconds") if plan.get("flow") == "io" else None,
        "time_scale": plan.get("time_scale") if scenario not in NOT_RAMPED else None,
        "workers": server.get("workers"),
        "db_conn": server.get("db_conn"),
        "python": t.meta.get("python"),
        "processes": plan.get("processes", 1),
        "locust_workers": plan.get("locust_workers", 0) + plan.get("remote_workers", 0),
    }


def load_trial(run_dir: Path) -> Trial | None:
    """A benchmark run folder (meta.json with a load plan), else None (verify/ui folders, junk)."""
    try:
        meta = json.loads((Path(run_dir) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not meta.get("plan") or not meta.get("variant"):
        return None
    return Trial(Path(run_dir), meta)


# -- groups ----------------------------------------------------------------------------------------

@dataclass(eq=False)
class Group:
    matrix_id: str
    variant: str
    family: str
    scenario: str
    flow: str
    config: dict
    trials: list = field(default_factory=list)  # completed: the figures
    excluded: list = field(default_factory=list)  # anything else: listed, never averaged
    label: str = ""
    row: dict = field(default_factory=dict)  # the summary.csv row

    @property
    def section(self) -> tuple:
        return (self.matrix_id, self.scenario)

    @property
    def all_trials(self) -> list:
        return self.trials + self.excluded


def group_key(t: Trial) -> tuple:
    return (t.matrix_id, t.variant.get("name") or "?", t.plan.get("scenario") or "?", flow_label(t.plan),
            tuple(sorted(config_of(t).items(), key=lambda kv: kv[0])))


def _trial_order(t: Trial):
    return (t.trial_no if t.trial_no is not None else 1 << 30, t.meta.get("started_at") or "", str(t.path))


def group_trials(trials) -> list[Group]:
    """Trials -> groups (completed ones make the figures), labelled, in report order."""
    groups: dict[tuple, Group] = {}
    for t in trials:
        key = group_key(t)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(matrix_id=key[0], variant=key[1], family=t.variant.get("family") or "?",
                                    scenario=key[2], flow=key[3], config=dict(key[4]))
        (g.trials if t.completed else g.excluded).append(t)
    out = list(groups.values())
    for g in out:
        g.trials.sort(key=_trial_order)
        g.excluded.sort(key=_trial_order)
    _label(out)
    return sorted(out, key=lambda g: (_section_order(g.section), _family_order(g.family),
                                      -(median(t.rps for t in g.trials) or -1.0), g.label))


def _family_order(family: str) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def _section_order(section: tuple):
    matrix_id, scenario = section
    sc = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    return (matrix_id == AD_HOC, matrix_id, sc, scenario)


def _label(groups: list[Group]) -> None:
    """Row label: the variant, its flow when it is not the row's default, then whatever load setting
    differs between groups that would otherwise share a label in the same section."""
    for g in groups:
        t = (g.trials or g.excluded)[0]
        serves = set(t.variant.get("serves") or ())
        default_flow = "original" if "admin" in serves else "api"
        quals = []
        base = g.flow.split("+")[0]
        if base == "slowapi-only":
            quals.append("slowapi-only")
        elif base not in (default_flow, "io"):
            quals.append(f"{base} flow")
        quals += g.flow.split("+")[1:]
        g.label = g.variant + (f" ({', '.join(quals)})" if quals else "")
    by_label: dict[tuple, list[Group]] = {}
    for g in groups:
        by_label.setdefault((g.section, g.label), []).append(g)
    for same in by_label.values():
        if len(same) < 2:
            continue
        differing = [k for k in same[0].config if len({repr(g.config.get(k)) for g in same}) > 1]
        for g in same:
            g.label += " [" + ", ".join(f"{k}={_fmt_cfg(g.config.get(k))}" for k in differing) + "]"


def _fmt_cfg(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# -- figures per group -----------------------------------------------------------------------------

def summarize_group(g: Group, out_dir: Path, ceiling_rps: float | None = None) -> dict:
    """The summary.csv row of a group (ceiling_ratio is filled in per section afterwards)."""
    tr = g.trials
    rps = [t.rps for t in tr if t.rps is not None]
    exact = [t.summary.get("exact_percentiles_ms") for t in tr]
    use_exact = bool(tr) and all(e and e.get("p50") is not None for e in exact)
    pct_src = exact if use_exact else [t.summary.get("locust_percentiles_ms") or {} for t in tr]
    bounds = [t.bound(ceiling_rps) for t in tr]
    reasons = []
    for t, (b, _, rs) in zip(tr, bounds):
        if b:
            reasons += [f"{_rel(t.path, out_dir)}: {r}" for r in rs] or [f"{_rel(t.path, out_dir)}: flagged"]
    first = (tr or g.excluded)[0]
    v = first.variant
    requests = sum(int(t.summary.get("requests") or 0) for t in tr)
    failures = sum(int(t.summary.get("failures") or 0) for t in tr)
    cv = cv_pct(rps)
    gen_cpu = [t.generator.get("cpu_percent_of_one_core") for t in tr]
    gen_cpu = [c for c in gen_cpu if c is not None]
    eff = median(t.efficiency for t in tr)
    conc = [t.summary.get("concurrency") or {} for t in tr]
    ideal = next((c.get("ideal_rps") for c in conc if c.get("ideal_rps")), None)
    server = v.get("server") or ""
    if v.get("worker"):
        server += f":{v['worker']}"
    return {
        "section": f"{g.matrix_id} / {g.scenario}",
        "matrix_id": g.matrix_id,
        "scenario": g.scenario,
        "row": g.label,
        "variant": g.variant,
        "family": g.family,
        "server": server,
        "flow": g.flow,
        "users": g.config.get("users"),
        "seconds": g.config.get("seconds"),
        "io_seconds": g.config.get("io_seconds"),
        "workers": g.config.get("workers"),
        "db_conn": g.config.get("db_conn"),
        "python": g.config.get("python"),
        "trials": len(tr),
        "excluded_trials": len(g.excluded),
        "rps_median": _r(median(rps), 2),
        "rps_mean": _r(statistics.fmean(rps), 2) if rps else None,
        "rps_stdev": _r(statistics.stdev(rps), 2) if len(rps) > 1 else None,
        "rps_min": _r(min(rps), 2) if rps else None,
        "rps_max": _r(max(rps), 2) if rps else None,
        "rps_cv_pct": _r(cv, 2),
        "unstable": cv is not None and cv > UNSTABLE_CV_PCT,
        "latency_source": ("exact" if use_exact else "locust") if tr else None,
        **{f"{p}_ms": _r(median(s.get(p) for s in pct_src), 3) for p in ("p50", "p90", "p95", "p99")},
        "max_ms": _r(max((m for m in ((e or {}).get("max") if use_exact else t.summary.get("max_ms")
                                         for e, t in zip(exact, tr)) if m is not None), default=None), 3),
        "locust_p95_ms": _r(median((t.summary.get("locust_percentiles_ms") or {}).get("p95") for t in tr), 3),
        "requests": requests,
        "failures": failures,
        "failure_pct": _r(100.0 * failures / requests, 3) if requests else None,
        "efficiency": _r(eff, 3),
        "ideal_rps": _r(ideal, 3),
        "ceiling_ratio": None,
        "gen_cpu_pct_max": max(gen_cpu) if gen_cpu else None,
        "gen_us_per_request": _r(median(t.generator.get("cpu_us_per_request") for t in tr), 1),
        "generator_bound": any(b for b, _, _ in bounds),
        "generator_bound_source": ("meta" if all(s == "meta" for _, s, _ in bounds) else "derived") if tr else None,
        "generator_bound_reasons": "; ".join(reasons),
        "status_problems": "; ".join(f"{t.status}: {_rel(t.path, out_dir)}" for t in g.excluded),
        "run_dirs": " ".join(_rel(t.path, out_dir) for t in tr),
    }


def _r(v, nd):
    return None if v is None else round(float(v), nd)


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def ceilings(groups: list[Group]) -> dict:
    """Per section: the reference row with the highest median req/s, as (label, rps)."""
    best: dict = {}
    for g in groups:
        rps = g.row.get("rps_median")
        if g.family == "reference" and rps and (g.section not in best or rps > best[g.section][1]):
            best[g.section] = (g.label, rps)
    return best


# -- run selection ---------------------------------------------------------------------------------

def find_runs(root: Path) -> list[Path]:
    """Every benchmark run folder below root (a folder with a meta.json that has a load plan)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for meta in sorted(root.rglob("meta.json")):
        inner = meta.parent.parts[len(root.parts):]
        # warm-ups are not runs; `asgibench calibrate` measures Locust, not a row (results/calibration/)
        if "warmup" in inner or "calibration" in inner[:1] or "-calibrate-" in meta.parent.name:
            continue
        if load_trial(meta.parent) is not None:
            out.append(meta.parent)
    return out


def resolve_run_ids(ids, results_root: Path) -> list[Path]:
    """RUN_IDS (see the module docstring) -> run folders, in order, without duplicates."""
    results_root = Path(results_root)
    if not ids:
        return find_runs(results_root)
    every = None
    out: list[Path] = []
    for rid in ids:
        p = Path(rid)
        found: list[Path] = []
        for cand in (p, results_root / rid):
            if (cand / "meta.json").exists() and load_trial(cand):
                found = [cand]
                break
            if cand.is_dir() and (found := find_runs(cand)):
                break
        if not found:
            if every is None:
                every = [load_trial(d) for d in find_runs(results_root)]
            found = [t.path for t in every if t.matrix_id == rid]
            found = found or [t.path for t in every if t.path.name == rid]
        if not found:
            raise UsageError(f"no run matches {rid!r}: give a matrix id, a run folder, "
                             f"or a run name under {results_root}")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out


# -- build -----------------------------------------------------------------------------------------

def build(run_dirs: list[Path], out_dir: Path, *, calibration: Path | None = None, charts: bool = True) -> dict:
    """Aggregate run folders into out_dir/report.md, out_dir/summary.csv and out_dir/charts/*.png.

    calibration: the calibration.json to quote (None: out_dir's, else the results folder's; a path that
    does not exist: none).

    Returns {"report": Path, "summary_csv": Path, "charts": [Path], "rows": [summary.csv rows as dicts],
    "excluded": [(folder, status)], "ignored": [folders that are not benchmark runs]}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials, ignored = [], []
    for d in run_dirs:
        t = load_trial(Path(d))
        (trials.append(t) if t else ignored.append(Path(d)))
    calib = results.calibration(calibration) if calibration is not None else \
        results.calibration(out_dir / "calibration.json", results.calibration_path())
    ceiling_rps = float(calib["ceiling_rps"]) if calib else None
    groups = group_trials(trials)
    for g in groups:
        g.row = summarize_group(g, out_dir, ceiling_rps)
    best = ceilings(groups)
    for g in groups:
        if g.section in best and g.row["rps_median"]:
            g.row["ceiling_ratio"] = round(g.row["rps_median"] / best[g.section][1], 4)
    csv_path = out_dir / "summary.csv"
    write_csv(csv_path, [g.row for g in groups])
    chart_files: dict = {}
    if charts and any(g.trials for g in groups):
        chart_files = make_charts(groups, best, out_dir / "charts")
    report_path = out_dir / "report.md"
    report_path.write_text(render_markdown(groups, best, chart_files, out_dir, calib, trials))
    return {
        "report": report_path,
        "summary_csv": csv_path,
        "charts": [p for files in chart_files.values() for p in files.values()],
        "rows": [g.row for g in groups],
        "excluded": [(t.path, t.status) for g in groups for t in g.excluded],
        "ignored": ignored,
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: _csv_cell(row.get(k)) for k in CSV_COLUMNS})


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


# -- markdown --------------------------------------------------------------------------------------

def _num(v, unit: str = "") -> str:
    if v is None:
        return "–"
    v = float(v)
    s = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return s + unit


def _sections(groups: list[Group]) -> dict:
    out: dict = {}
    for g in groups:
        out.setdefault(g.section, []).append(g)
    return out


def _slug(section: tuple) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(section)).strip("-")


def _section_title(section: tuple, rows: list[Group]) -> str:
    matrix_id, scenario = section
    cfg = rows[0].config
    what = {"io": f"I/O probe: each request waits {_fmt_cfg(cfg.get('io_seconds'))} s in PostgreSQL",
            "constant": "constant users"}.get(scenario, "ramped users")
    users = sorted({g.config.get("users") for g in rows if g.config.get("users") is not None})
    secs = sorted({g.config.get("seconds") for g in rows if g.config.get("seconds") is not None})
    src = _source_name(matrix_id)
    return (f"{scenario} — {src} ({what}; up to {'/'.join(map(str, users))} users, "
            f"{'/'.join(_fmt_cfg(round(s, 1)) for s in secs)} s measured per trial)")


def _source_name(matrix_id: str) -> str:
    if matrix_id == AD_HOC:
        return "ad-hoc runs (`asgibench bench`)"
    if matrix_id.startswith("bench-"):
        return f"series `{matrix_id}` (`asgibench bench --trials`)"
    return f"matrix `{matrix_id}`"


def _link_runs(g: Group, out_dir: Path) -> str:
    links = [f"[{t.trial_no or i}]({_rel(t.path, out_dir)}/)" for i, t in enumerate(g.trials, 1)]
    links += [f"[~~{t.status}~~]({_rel(t.path, out_dir)}/)" for t in g.excluded]
    return " ".join(links)


def _table(rows: list[Group], best, out_dir: Path) -> list[str]:
    io = any(g.row.get("efficiency") is not None for g in rows)
    has_ceiling = rows[0].section in best and not io
    head = ["row", "family", "flow", "median req/s", "CV", "p95 ms", "p50 / p99 ms"]
    head += ["concurrency efficiency"] if io else []
    head += ["vs ceiling"] if has_ceiling else []
    head += ["generator-bound?", "trials", "failures", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    family = None
    for g in rows:
        r = g.row
        if g.family != family:
            family = g.family
            lines.append(f"| **{FAMILY_TITLES.get(family, family)}** |" + " |" * (len(head) - 1))
        if not g.trials:
            cells = [g.label, g.family, g.flow, "no completed trial", "", "", ""] + [""] * (len(head) - 11)
            cells += ["", "0", "", _link_runs(g, out_dir)]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        mark = "" if r["latency_source"] == "exact" else " †"
        cv = "–" if r["rps_cv_pct"] is None else \
            f"{r['rps_cv_pct']:.1f}%" + (" ⚠ unstable" if r["unstable"] else "")
        cells = [g.label, g.family, g.flow, _num(r["rps_median"]), cv, _num(r["p95_ms"]) + mark,
                 f"{_num(r['p50_ms'])} / {_num(r['p99_ms'])}{mark}"]
        if io:
            e = r["efficiency"]
            cells.append("–" if e is None else f"{e:.2f} ({_num(r['rps_median'])} of {_num(r['ideal_rps'])})")
        if has_ceiling:
            cells.append("–" if r["ceiling_ratio"] is None else f"{r['ceiling_ratio']:.2f}×")
        cells.append(f"**yes** ({r['gen_cpu_pct_max']:.0f}% CPU)" if r["generator_bound"] else
                     f"no ({r['gen_cpu_pct_max']:.0f}% CPU)" if r["gen_cpu_pct_max"] is not None else "no")
        cells.append(str(r["trials"]) + (f" (+{r['excluded_trials']} excluded)" if r["excluded_trials"] else ""))
        cells.append(f"**{r['failures']}** ({r['failure_pct']:.2f}%)" if r["failures"] else "0")
        cells.append(_link_runs(g, out_dir))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def _machine(trials: list[Trial]) -> list[str]:
    seen = {}
    for t in trials:
        m = t.meta.get("machine_before") or {}
        if m:
            key = (m.get("cpu_model") or "unknown CPU", m.get("cpu_count"), m.get("kernel"), m.get("hostname"))
            seen[key] = seen.get(key, 0) + 1
    out = []
    for (model, n, kernel, host), count in seen.items():
        out.append(f"{model}, {n} CPUs, Linux {kernel} (host {host}; {count} run(s))")
    return out


def placement_text(cpus) -> str:
    """meta["cpus"] (a string, or {"pinned": {role: [cpu...]} | None, "policy": str}) as one phrase."""
    if isinstance(cpus, dict):
        pinned = cpus.get("pinned")
        if pinned:
            return ", ".join(f"{role} on CPU {'+'.join(map(str, ids))}" for role, ids in sorted(pinned.items()))
        return str(cpus.get("policy") or "not pinned")
    return str(cpus) if cpus else "not recorded"


def _placement(trials: list[Trial]) -> str:
    kinds: dict = {}
    for t in trials:
        text = placement_text(t.meta.get("cpus"))
        kinds[text] = kinds.get(text, 0) + 1
    if len(kinds) == 1:
        return next(iter(kinds))
    return "; ".join(f"{k} ({n} runs)" for k, n in kinds.items())


def _versions(trials: list[Trial]) -> str:
    loc = {((t.meta.get("runner") or {}).get("locust") or {}).get("locust") for t in trials}
    pg = {(t.meta.get("database") or {}).get("server_version", "").split(" ")[0] for t in trials}
    parts = []
    if loc - {None}:
        parts.append("Locust " + "/".join(sorted(loc - {None})))
    if pg - {""}:
        parts.append("PostgreSQL " + "/".join(sorted(pg - {""})))
    py = {t.meta.get("python") for t in trials} - {None}
    if py:
        parts.append("server Python " + "/".join(sorted(py)))
    return ", ".join(parts)


def _matrix_lines(trials: list[Trial]) -> list[str]:
    by: dict = {}
    for t in trials:
        if t.matrix_id != AD_HOC:
            by.setdefault(t.matrix_id, []).append(t)
    out = []
    for mid, ts in sorted(by.items()):
        starts = [t.meta.get("started_at") for t in ts if t.meta.get("started_at")]
        ends = [t.meta.get("ended_at") for t in ts if t.meta.get("ended_at")]
        wall = ""
        if starts and ends:
            try:
                a = time.mktime(time.strptime(min(starts), "%Y-%m-%dT%H:%M:%SZ"))
                b = time.mktime(time.strptime(max(ends), "%Y-%m-%dT%H:%M:%SZ"))
                wall = f", {(b - a) / 60:.1f} min from the first trial's start to the last one's end"
            except ValueError:
                pass
        n = max(((t.meta.get("matrix") or {}).get("trials") or 0) for t in ts)
        done = sum(t.completed for t in ts)
        out.append(f"{_source_name(mid)}: {len(ts)} run folders ({done} completed), {n or '?'} trials per row{wall}")
    return out


def render_markdown(groups, best, chart_files, out_dir: Path, calib, trials) -> str:
    L = ["# asgibench report", ""]
    done = sum(t.completed for t in trials)
    L.append(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(trials)} run folder(s) "
             f"({done} completed) in {len(groups)} row(s). Numbers: `summary.csv` beside this file "
             "(columns documented in `asgibench/report.py`).")
    L.append("")
    for m in _machine(trials):
        L.append(f"- Machine: {m}")
    L.append(f"- CPU placement (server / PostgreSQL / Locust): {_placement(trials)}")
    v = _versions(trials)
    if v:
        L.append(f"- Software: {v}")
    if calib:
        extra = ", ".join(f"{k} {val}" for k, val in calib.items()
                          if k not in ("ceiling_rps", "_path") and isinstance(val, (int, float, str)))
        L.append(f"- Calibrated Locust ceiling on this machine: **{calib['ceiling_rps']:,.0f} req/s** "
                 f"(`{_rel(Path(calib['_path']), out_dir)}`{'; ' + extra if extra else ''}). "
                 f"Rows above half of it are generator-bound.")
    else:
        L.append("- Locust ceiling: not calibrated (no `calibration.json`; run `asgibench calibrate`); "
                 "generator-bound is judged from the generator's CPU only.")
    for m in _matrix_lines(trials):
        L.append(f"- {m}")
    L += ["", ("How to read the tables: **median req/s** over the trials (HTTP requests only; the whole-flow "
          "`FLOW` entry is not a request); **CV** = standard deviation / mean of the trials' req/s, above "
          f"{UNSTABLE_CV_PCT:.0f}% the figure is flagged unstable; **p95** is exact (every response time), † marks "
          "Locust's bucketed percentiles where exact timings were missing; **concurrency efficiency** (I/O "
          "scenario) = achieved req/s ÷ users / seconds-per-request (1.0 = every waiting request overlapped); "
          "**vs ceiling** = req/s ÷ the best reference row (a bare ASGI app + asyncpg) of the same table; "
          "**generator-bound** = the load generator, not the server, may have set the pace (its CPU above "
          f"{GEN_CPU_BOUND_PCT:.0f}% of a core, or req/s above half the calibrated ceiling): read such a figure "
          "as a lower bound. Rows run their registry default flow: Django rows the original flow (admin login + "
          "two API pages), rows without Django's admin the API-only flow. Each run link opens the run folder "
          "(meta.json, Locust CSVs, logs)."), ""]
    secs = _sections(groups)
    for section, rows in secs.items():
        L += [f"## {_section_title(section, rows)}", ""]
        L += _table(rows, best, out_dir)
        L.append("")
        for kind, alt in (("rps", "req/s per row"), ("latency", "latency percentiles"),
                          ("concurrency", "concurrency efficiency"), ("ramp", "req/s and users over time")):
            p = chart_files.get(section, {}).get(kind)
            if p:
                L += [f"![{alt}]({_rel(p, out_dir)})", ""]
    L += ["## What this means", ""]
    for section, rows in secs.items():
        L += [f"### {section[1]} ({section[0]})", ""]
        L += _findings(rows, best.get(section), out_dir)
        L.append("")
    excluded = [(g, t) for g in groups for t in g.excluded]
    if excluded:
        L += ["## Runs left out of the figures", ""]
        for g, t in excluded:
            why = t.meta.get("error") or ""
            rel = _rel(t.path, out_dir)
            L.append(f"- {g.label} ({g.scenario}): **{t.status}** — [{rel}]({rel}/)"
                     + (f": {why[:300]}" if why else ""))
        L.append("")
    return "\n".join(L) + "\n"


def _top_failures(g: Group, n: int = 2) -> list[str]:
    counts: dict = {}
    for t in g.trials:
        try:
            with open(t.path / "locust_failures.csv", newline="") as f:
                for rec in csv.DictReader(f):
                    k = f"{rec.get('Method')} {rec.get('Name')}: {rec.get('Error')}"
                    counts[k] = counts.get(k, 0) + int(rec.get("Occurrences") or 0)
        except (OSError, ValueError):
            continue
    return [f"{k} (×{c})" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def _findings(rows: list[Group], ceiling, out_dir: Path) -> list[str]:
    L = []
    live = [g for g in rows if g.trials and g.row.get("rps_median") is not None]
    if not live:
        return ["- No completed trial in this table."]
    by_family: dict = {}
    for g in live:
        by_family.setdefault(g.family, []).append(g)
    bests = []
    for fam in sorted(by_family, key=_family_order):
        top = max(by_family[fam], key=lambda g: g.row["rps_median"])
        bests.append(f"{FAMILY_TITLES.get(fam, fam)}: **{top.label}** {_num(top.row['rps_median'])} req/s")
    L.append("- Best row per family (median req/s): " + "; ".join(bests) + ".")
    overall = max(live, key=lambda g: g.row["rps_median"])
    is_io = any(g.row.get("efficiency") is not None for g in live)
    non_ref = [g for g in live if g.family != "reference"]
    tops = {fam: max(gs, key=lambda g: g.row["rps_median"]) for fam, gs in by_family.items()}
    if not is_io and "wsgi" in tops:
        w = tops["wsgi"]
        for fam in ("asgi", "fastapi"):
            if fam in tops:
                o = tops[fam]
                L.append(f"- Best {FAMILY_TITLES[fam]} row vs best WSGI row: {o.label} serves "
                         f"{o.row['rps_median'] / w.row['rps_median']:.2f}× the req/s of {w.label}, "
                         f"p95 {_num(o.row['p95_ms'])} vs {_num(w.row['p95_ms'])} ms"
                         + (" (different flows: compare with care)" if o.flow != w.flow else "") + ".")
    for g in live:
        if "+async" not in g.flow:
            continue
        twin = [h for h in live if h.variant == g.variant and h.flow == g.flow.replace("+async", "")
                and h.config == g.config]
        if twin:
            h = twin[0]
            ratio = g.row["rps_median"] / h.row["rps_median"]
            L.append(f"- Django async views on {g.variant}: {ratio:.2f}× the req/s "
                     f"of its sync views ({_num(g.row['rps_median'])} vs {_num(h.row['rps_median'])}), p95 "
                     f"{_num(g.row['p95_ms'])} vs {_num(h.row['p95_ms'])} ms.")
    if non_ref and not is_io:
        top = max(non_ref, key=lambda g: g.row["rps_median"])
        slow = min(non_ref, key=lambda g: g.row["rps_median"])
        if top is not slow and top.row["rps_median"] >= 1.1 * slow.row["rps_median"]:
            L.append(f"- Spread: the fastest non-reference row ({top.label}) serves "
                     f"{top.row['rps_median'] / slow.row['rps_median']:.1f}× the slowest ({slow.label}).")
    if ceiling and not any(g.row.get("efficiency") is not None for g in live):
        label, rps = ceiling
        ratios = sorted((g for g in live if g.label != label), key=lambda g: -(g.row["ceiling_ratio"] or 0))
        L.append(f"- Raw ceiling: **{label}** at {_num(rps)} req/s (a bare ASGI app on asyncpg: what Python reaches on "
                 "these queries without a framework). Each row as a fraction of it: "
                 + ", ".join(f"{g.label} {g.row['ceiling_ratio']:.2f}×" for g in ratios) + ".")
        if overall.label != label and overall.row["rps_median"] > 1.02 * rps:
            L.append(f"  - {overall.label} beat the reference row here; check it is generator-bound or unstable before "
                     "reading it as faster than the ceiling.")
    elif not ceiling:
        L.append("- No reference row in this table: no ceiling to compare with (add `raw-asgi-asyncpg` to the run).")
    effs = [g for g in live if g.row.get("efficiency") is not None]
    if effs:
        ser = [g for g in effs if g.row["efficiency"] < SERIALISES_BELOW]
        part = [g for g in effs if SERIALISES_BELOW <= g.row["efficiency"] < CONCURRENT_FROM]
        conc = [g for g in effs if g.row["efficiency"] >= CONCURRENT_FROM]

        def names(gs):
            gs = sorted(gs, key=lambda g: g.row["efficiency"])
            return ", ".join(f"{g.label} ({g.row['efficiency']:.2f})" for g in gs)

        fams = []
        for fam in sorted({g.family for g in effs}, key=_family_order):
            n = [g for g in effs if g.family == fam]
            k = sum(g.row["efficiency"] < SERIALISES_BELOW for g in n)
            fams.append(f"{FAMILY_TITLES.get(fam, fam)} {k} of {len(n)}")
        L.append("- Rows that serialise I/O, per family: " + ", ".join(fams) + ".")
        if ser:
            L.append(f"- **Serialises I/O** (efficiency < {SERIALISES_BELOW}: waiting requests queue behind each "
                     "other, "
                     f"as the original study saw with 1.65 of 10 req/s): {names(ser)}.")
        if part:
            L.append(f"- Partly concurrent ({SERIALISES_BELOW}–{CONCURRENT_FROM}): {names(part)}.")
        if conc:
            L.append(f"- Concurrent (≥ {CONCURRENT_FROM}: the waits overlap, as many requests in flight as users): "
                     f"{names(conc)}.")
    unstable = [g for g in live if g.row["unstable"]]
    if unstable:
        L.append(f"- **Unstable** (CV > {UNSTABLE_CV_PCT:.0f}%; rerun or add trials before comparing): "
                 + ", ".join(f"{g.label} (CV {g.row['rps_cv_pct']:.1f}%)" for g in unstable) + ".")
    single = [g for g in live if g.row["trials"] < 2]
    if single:
        L.append("- One trial only (no variance estimate): " + ", ".join(g.label for g in single) + ".")
    bound = [g for g in live if g.row["generator_bound"]]
    if bound:
        L.append("- **Generator-bound** (the load generator may have set the pace; the figure is a lower bound): "
                 + "; ".join(f"{g.label} ({g.row['generator_bound_reasons']})" for g in bound) + ".")
    else:
        top_cpu = max((g.row["gen_cpu_pct_max"] or 0) for g in live)
        L.append(f"- No figure is generator-bound (highest generator CPU {top_cpu:.0f}% of one core).")
    failing = [g for g in live if g.row["failures"]]
    if failing:
        for g in failing:
            top = _top_failures(g)
            L.append(f"- **Failures** in {g.label}: {g.row['failures']} of {g.row['requests']} requests "
                     f"({g.row['failure_pct']:.2f}%)" + (f"; most frequent: {'; '.join(top)}" if top else "") + ".")
    else:
        L.append("- No failed request in this table (every check of every request passed).")
    no_async = {}
    for g in rows:
        reason = (g.all_trials[0].variant.get("no_async") or "")
        if reason:
            no_async[g.variant] = reason
    if no_async and any("+async" in g.flow for g in rows):
        L.append("- Not in the async rows (they cannot serve `/async_api/`): "
                 + "; ".join(f"{k}: {v}" for k, v in no_async.items()) + ".")
    return L


# -- charts ----------------------------------------------------------------------------------------

def ramp_series(run_dir: Path) -> tuple[list, list, list] | None:
    """(seconds since start, users, req/s) from locust_stats_history.csv: req/s per interval from the
    growth of the total request count, FLOW entries excluded (Locust's own Requests/s column is a
    ~10 s average and counts FLOW)."""
    path = Path(run_dir) / "locust_stats_history.csv"
    if not path.exists():
        return None
    agg: dict = {}
    flow: dict = {}
    users: dict = {}
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            try:
                ts = float(rec["Timestamp"])
                total = float(rec["Total Request Count"])
            except (KeyError, ValueError):
                continue
            if rec.get("Name") == "Aggregated":
                agg[ts] = total
                users[ts] = float(rec.get("User Count") or 0)
            elif rec.get("Type") == benchcontract.FLOW_REQUEST_TYPE:
                flow[ts] = flow.get(ts, 0.0) + total
    times = sorted(agg)
    if len(times) < 3:
        return None
    t0 = times[0]
    xs, us, rs = [], [], []
    prev_t, prev_n = times[0], agg[times[0]] - flow.get(times[0], 0.0)
    for ts in times[1:]:
        n = agg[ts] - flow.get(ts, 0.0)
        if ts > prev_t:
            xs.append(ts - t0)
            us.append(users[ts])
            rs.append(max(0.0, (n - prev_n) / (ts - prev_t)))
            prev_t, prev_n = ts, n
    return xs, us, rs


def _smooth(values: list, window: int) -> list:
    if window <= 1:
        return values
    half = window // 2
    return [statistics.fmean(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


def _median_trial(g: Group) -> Trial:
    m = median(t.rps for t in g.trials)
    return min(g.trials, key=lambda t: abs((t.rps or 0) - (m or 0)))


def make_charts(groups: list[Group], best: dict, charts_dir: Path) -> dict:
    """{section: {"rps"|"latency"|"concurrency"|"ramp": Path}}; a chart with no data is not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    charts_dir.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    for section, rows in _sections(groups).items():
        rows = [g for g in rows if g.trials]
        files = out.setdefault(section, {})
        slug = _slug(section)
        title = f"{section[1]} — {section[0]}"
        # bars top-to-bottom in table order: reverse for barh
        order = list(reversed(rows))
        labels = [g.label for g in order]
        height = max(2.6, 0.42 * len(order) + 1.6)
        colours = [FAMILY_COLOURS.get(g.family, FAMILY_COLOURS["?"]) for g in order]

        def family_legend(extra=(), order=order):
            fams = [f for f in FAMILIES + ("?",) if any(g.family == f for g in order)]
            return [Patch(color=FAMILY_COLOURS[f], label=FAMILY_TITLES.get(f, "other")) for f in fams] + list(extra)

        def family_separators(ax, order=order):
            for i in range(1, len(order)):
                if order[i].family != order[i - 1].family:
                    ax.axhline(i - 0.5, color="black", lw=0.6, alpha=0.5)

        rps = [g.row["rps_median"] for g in order]
        if any(r for r in rps if r):
            fig, ax = plt.subplots(figsize=(10, height))
            err = [g.row["rps_stdev"] or 0 for g in order]
            bars = ax.barh(range(len(order)), [r or 0 for r in rps], xerr=err, color=colours,
                           error_kw={"ecolor": "black", "capsize": 3, "lw": 1})
            xmax = max((r or 0) + e for r, e in zip(rps, err))
            extra = []
            for bar, g in zip(bars, order):
                if g.row["generator_bound"]:
                    bar.set_hatch("///")
                    bar.set_edgecolor("black")
                cv = g.row["rps_cv_pct"]
                note = f"{_num(g.row['rps_median'])}" + ("" if cv is None else f"  CV {cv:.1f}%")
                note += " (unstable)" if g.row["unstable"] else ""
                note += "  gen-bound" if g.row["generator_bound"] else ""
                ax.text(bar.get_width() + (g.row["rps_stdev"] or 0) + xmax * 0.01, bar.get_y() + bar.get_height() / 2,
                        note, va="center", fontsize=8)
            if any(g.row["generator_bound"] for g in order):
                extra.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="generator-bound"))
            if section in best:
                lbl, ceil = best[section]
                ax.axvline(ceil, color="crimson", ls="--", lw=1.2)
                extra.append(plt.Line2D([], [], color="crimson", ls="--", label=f"raw ceiling: {lbl} ({_num(ceil)})"))
            ax.set_yticks(range(len(order)), labels, fontsize=9)
            ax.set_xlim(0, xmax * 1.75 if xmax else 1)
            family_separators(ax)
            ax.set_xlabel("median req/s over trials (error bar: ±1 standard deviation)")
            ax.set_title(f"Throughput per row — {title}", fontsize=11)
            ax.grid(axis="x", alpha=0.3)
            ax.legend(handles=family_legend(extra), **LEGEND_OUTSIDE)
            fig.tight_layout()
            files["rps"] = _save(fig, charts_dir / f"rps-{slug}.png", plt)

        lat = [(g.row["p50_ms"], g.row["p95_ms"], g.row["p99_ms"]) for g in order]
        if any(p is not None for trio in lat for p in trio):
            fig, ax = plt.subplots(figsize=(10, max(2.6, 0.55 * len(order) + 1.6)))
            h = 0.26
            for k, (name, shade) in enumerate((("p50", 1.0), ("p95", 0.65), ("p99", 0.35))):
                vals = [trio[k] or 0 for trio in lat]
                ax.barh([i + (1 - k) * h for i in range(len(order))], vals, height=h,
                        color=colours, alpha=shade, edgecolor="black", lw=0.3)
            for i, (g, trio) in enumerate(zip(order, lat)):
                if trio[2] is not None:
                    src = "" if g.row["latency_source"] == "exact" else " (Locust)"
                    ax.text(max(t or 0 for t in trio) * 1.02, i, f"p50 {_num(trio[0])} / p95 {_num(trio[1])} / "
                            f"p99 {_num(trio[2])} ms{src}", va="center", fontsize=7.5)
            top = max((t or 0) for trio in lat for t in trio)
            ax.set_xlim(0, top * 1.55 if top else 1)
            ax.set_yticks(range(len(order)), labels, fontsize=9)
            family_separators(ax)
            ax.set_xlabel("response time, ms (bars top to bottom: p50, p95, p99; median over trials)")
            ax.set_title(f"Latency percentiles per row — {title}", fontsize=11)
            ax.grid(axis="x", alpha=0.3)
            ax.legend(handles=family_legend(), **LEGEND_OUTSIDE)
            fig.tight_layout()
            files["latency"] = _save(fig, charts_dir / f"latency-{slug}.png", plt)

        eff = [g.row["efficiency"] for g in order]
        if any(e is not None for e in eff):
            fig, ax = plt.subplots(figsize=(10, height))
            ax.barh(range(len(order)), [e or 0 for e in eff], color=colours)
            for i, (g, e) in enumerate(zip(order, eff)):
                if e is not None:
                    what = f"{e:.2f}  ({_num(g.row['rps_median'])} of {_num(g.row['ideal_rps'])} req/s)"
                    ax.text(max(e, 1.0) + 0.02, i, what,
                            va="center", fontsize=8)
            ax.axvline(1.0, color="black", lw=1.2)
            ax.axvline(SERIALISES_BELOW, color="crimson", ls=":", lw=1)
            ax.text(1.0, len(order) - 0.4, " fully concurrent", fontsize=8, va="bottom")
            ax.text(SERIALISES_BELOW, len(order) - 0.4, " serialises below", fontsize=8, va="bottom", color="crimson")
            ax.set_xlim(0, max(1.5, max(e or 0 for e in eff) + 0.5))
            ax.set_ylim(-0.6, len(order) + 0.2)
            ax.set_yticks(range(len(order)), labels, fontsize=9)
            family_separators(ax)
            ax.set_xlabel("concurrency efficiency = achieved req/s ÷ (users / seconds per request)")
            ax.set_title(f"I/O concurrency per row — {title}", fontsize=11)
            ax.grid(axis="x", alpha=0.3)
            ax.legend(handles=family_legend(), **LEGEND_OUTSIDE)
            fig.tight_layout()
            files["concurrency"] = _save(fig, charts_dir / f"concurrency-{slug}.png", plt)

        if section[1] not in NOT_RAMPED:
            series = [(g, ramp_series(_median_trial(g).path)) for g in rows]
            series = [(g, s) for g, s in series if s]
            if series:
                fams = [f for f in FAMILIES + ("?",) if any(g.family == f or (f == "?" and g.family not in FAMILIES)
                                                             for g, _ in series)]
                fig, axes = plt.subplots(len(fams) + 1, 1, figsize=(11, 2.8 * len(fams) + 1.8), sharex=True,
                                         gridspec_kw={"height_ratios": [3] * len(fams) + [1.3]}, squeeze=False)
                axes = [a[0] for a in axes]
                cmap = plt.get_cmap("tab10")
                longest = max(len(s[0]) for _, s in series)
                window = 5 if longest > 30 else 1
                axu = axes[-1]
                for ax, fam in zip(axes, fams):
                    mine = [(g, s) for g, s in series if g.family == fam or (fam == "?" and g.family not in FAMILIES)]
                    for i, (g, (xs, us, rs)) in enumerate(mine):
                        ax.plot(xs, _smooth(rs, window), color=cmap(i % 10), ls=("-", "--", ":")[i // 10 % 3],
                                lw=1.5, label=g.label)
                    ax.set_ylabel(f"{FAMILY_TITLES.get(fam, 'other')}\nreq/s")
                    ax.grid(alpha=0.3)
                    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
                for g, (xs, us, rs) in series:
                    axu.plot(xs, us, color="dimgray", lw=1, alpha=0.6)
                axes[0].set_title(f"Throughput as users ramp — {title} (median trial per row; FLOW excluded"
                                  + (f"; {window}-sample mean" if window > 1 else "") + ")", fontsize=11)
                axu.set_ylabel("users")
                axu.set_xlabel("seconds since the measured run started")
                axu.grid(alpha=0.3)
                fig.tight_layout()
                files["ramp"] = _save(fig, charts_dir / f"ramp-{slug}.png", plt)
    return out


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -- command line ----------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="matrix ids, run folders, or run names (default: every run under the results folder)")
    p.add_argument("--results", help="where runs are looked up (default: results/, or $ASGIBENCH_RESULTS)")
    p.add_argument("--out", help="where report.md, summary.csv and charts/ go (default: the results folder)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")


def cmd_report(a) -> int:
    root = Path(a.results) if a.results else results.RESULTS_DIR
    run_dirs = resolve_run_ids(a.run_ids, root)
    if not run_dirs:
        raise UsageError(f"no benchmark runs under {root} (run `asgibench bench <variant>` or `asgibench matrix`)")
    out_dir = Path(a.out) if a.out else root
    res = build(run_dirs, out_dir, calibration=root / "calibration.json", charts=not a.no_charts)
    print(headline_text(res["rows"]))
    print(f"\nreport: {res['report']}\nsummary: {res['summary_csv']}\n"
          f"charts: {len(res['charts'])} in {out_dir / 'charts'}")
    if res["excluded"]:
        print(f"left out of the figures: {len(res['excluded'])} run(s) not completed (listed in the report)")
    return 0


def headline_text(rows: list[dict]) -> str:
    """The headline table as plain text (what `report` prints)."""
    head = ("row", "family", "scenario", "req/s", "CV%", "p95 ms", "eff", "gen-bound", "trials", "fail")
    table = [head]
    for r in rows:
        table.append((r["row"], r["family"], r["scenario"], _num(r["rps_median"]),
                      "–" if r["rps_cv_pct"] is None else f"{r['rps_cv_pct']:.1f}" + ("!" if r["unstable"] else ""),
                      _num(r["p95_ms"]) + ("" if r["latency_source"] in ("exact", None) else "†"),
                      "–" if r["efficiency"] is None else f"{r['efficiency']:.2f}",
                      "yes" if r["generator_bound"] else "no", str(r["trials"]), str(r["failures"])))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="asgibench report", description=__doc__.split("\n")[0])
    add_arguments(p)
    try:
        return cmd_report(p.parse_args(argv))
    except UsageError as e:
        print(f"asgibench: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
