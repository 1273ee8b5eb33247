"""Trials -> groups (one row of summary.csv, one line of a report table), in report order, labelled;
the summary.csv row of a group; and summary.csv's columns as data (COLUMNS: name and meaning), from
which both CSV_COLUMNS and the column documentation (column_docs(), appended to this docstring and to
the package's) are made, so the documentation cannot drift from the file.

A new summary.csv column: one (name, doc) entry in COLUMNS, at its place in the file, and its value in
summarize_group (test_report checks that the two agree). A new load setting that must keep runs apart:
config_of. A new flow qualifier: flow_label.

summary.csv columns (stable; empty cell = not applicable / not measured):
"""
from __future__ import annotations

import csv
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract
from asgibench import stats, variants
from asgibench.report.fmt import rel, setting
from asgibench.report.trials import AD_HOC, Trial

FAMILY_TITLES = {"wsgi": "WSGI", "asgi": "ASGI", "fastapi": "FastAPI", "reference": "reference"}
SCENARIO_ORDER = ("constant", "readme", "easy", "medium", "medium-large", "laptop-heater", "io")
NOT_RAMPED = ("constant", "io")

# summary.csv, column by column, in file order: (name, what the cell holds).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("section", '"<matrix id> / <scenario>": the table the row belongs to'),
    ("matrix_id", f'matrix run id, or "{AD_HOC}" for runs made with `bench`'),
    ("scenario", "load scenario (constant, io, readme, medium, ...)"),
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
    ("trials", "completed trials used for the figures"),
    ("excluded_trials", 'trials left out (status not "completed")'),
    ("rps_median", "median of the trials' req/s (HTTP requests only, FLOW excluded)"),
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
    ("ceiling_ratio", "rps_median / rps_median of the best reference row of the same section"),
    ("gen_cpu_pct_max", "highest load-generator CPU over the trials, % of one core"),
    ("gen_us_per_request", "median generator CPU microseconds per request"),
    ("generator_bound", "true when any trial was generator-bound"),
    ("generator_bound_source", ("meta (the runner's flag) | derived (here: CPU > "
                                f"{stats.GENERATOR_CPU_BOUND_PCT:g}% of a core per Locust process, Locust's CPU "
                                f"warning, or req/s above {stats.GENERATOR_CEILING_FRACTION:g} x the calibrated "
                                "ceiling)")),
    ("generator_bound_reasons", 'why, "; "-separated'),
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


__doc__ += column_docs()


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


def flow_label(plan: dict) -> str:
    flow = "slowapi-only" if plan.get("only_slowapi") else (plan.get("flow") or "?")
    if plan.get("api_prefix") == benchcontract.ASYNC_API_PREFIX and flow != "io":
        flow += "+async"
    if plan.get("with_slowapi"):
        flow += "+slowapi"
    if plan.get("arrival_rate"):  # open model: a fixed rate of iterations, not as-fast-as-possible users
        flow += f"+open@{setting(plan['arrival_rate'])}/s"
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
        "django": (t.meta.get("django") or {}).get("version"),  # issue 14: steps of a migration are rows apart
        "processes": plan.get("processes", 1),
        "locust_workers": plan.get("locust_workers", 0) + plan.get("remote_workers", 0),
    }


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
    return sorted(out, key=lambda g: (section_order(g.section), family_order(g.family),
                                      -(stats.median(t.rps for t in g.trials) or -1.0), g.label))


def family_order(family: str) -> int:
    return variants.FAMILIES.index(family) if family in variants.FAMILIES else len(variants.FAMILIES)


def section_order(section: tuple):
    matrix_id, scenario = section
    sc = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    return (matrix_id == AD_HOC, matrix_id, sc, scenario)


def sections(groups: list[Group]) -> dict:
    """{(matrix id, scenario): its groups, in report order}: one table and one set of charts each."""
    out: dict = {}
    for g in groups:
        out.setdefault(g.section, []).append(g)
    return out


def _label(groups: list[Group]) -> None:
    """Row label: the variant, its flow when it is not the row's default, then whatever load setting
    differs between groups that would otherwise share a label in the same section."""
    for g in groups:
        t = (g.trials or g.excluded)[0]
        default_flow = variants.default_flow_for(set(t.variant.get("serves") or ()))
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
            g.label += " [" + ", ".join(f"{k}={setting(g.config.get(k))}" for k in differing) + "]"


# -- the summary.csv row of a group ----------------------------------------------------------------

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
            reasons += [f"{rel(t.path, out_dir)}: {r}" for r in rs] or [f"{rel(t.path, out_dir)}: flagged"]
    first = (tr or g.excluded)[0]
    v = first.variant
    requests = sum(int(t.summary.get("requests") or 0) for t in tr)
    failures = sum(int(t.summary.get("failures") or 0) for t in tr)
    cv = stats.cv_pct(rps)
    gen_cpu = [t.generator.get("cpu_percent_of_one_core") for t in tr]
    gen_cpu = [c for c in gen_cpu if c is not None]
    eff = stats.median(t.efficiency for t in tr)
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
        "rps_median": _r(stats.median(rps), 2),
        "rps_mean": _r(statistics.fmean(rps), 2) if rps else None,
        "rps_stdev": _r(statistics.stdev(rps), 2) if len(rps) > 1 else None,
        "rps_min": _r(min(rps), 2) if rps else None,
        "rps_max": _r(max(rps), 2) if rps else None,
        "rps_cv_pct": _r(cv, 2),
        "unstable": stats.unstable(cv),
        "latency_source": ("exact" if use_exact else "locust") if tr else None,
        **{f"{p}_ms": _r(stats.median(s.get(p) for s in pct_src), 3) for p in ("p50", "p90", "p95", "p99")},
        "max_ms": _r(max((m for m in ((e or {}).get("max") if use_exact else t.summary.get("max_ms")
                                         for e, t in zip(exact, tr)) if m is not None), default=None), 3),
        "locust_p95_ms": _r(stats.median((t.summary.get("locust_percentiles_ms") or {}).get("p95") for t in tr), 3),
        "requests": requests,
        "failures": failures,
        "failure_pct": _r(100.0 * failures / requests, 3) if requests else None,
        "efficiency": _r(eff, 3),
        "ideal_rps": _r(ideal, 3),
        "ceiling_ratio": None,
        "gen_cpu_pct_max": max(gen_cpu) if gen_cpu else None,
        "gen_us_per_request": _r(stats.median(t.generator.get("cpu_us_per_request") for t in tr), 1),
        "generator_bound": any(b for b, _, _ in bounds),
        "generator_bound_source": ("meta" if all(s == "meta" for _, s, _ in bounds) else "derived") if tr else None,
        "generator_bound_reasons": "; ".join(reasons),
        "status_problems": "; ".join(f"{t.status}: {rel(t.path, out_dir)}" for t in g.excluded),
        "run_dirs": " ".join(rel(t.path, out_dir) for t in tr),
    }


def _r(v, nd):
    return None if v is None else round(float(v), nd)


def ceilings(groups: list[Group]) -> dict:
    """Per section: the reference row with the highest median req/s, as (label, rps)."""
    best: dict = {}
    for g in groups:
        rps = g.row.get("rps_median")
        if g.family == "reference" and rps and (g.section not in best or rps > best[g.section][1]):
            best[g.section] = (g.label, rps)
    return best


def summarize(groups: list[Group], out_dir: Path, ceiling_rps: float | None) -> dict:
    """Fill every group's row (ceiling_ratio against its section's best reference row); returns
    ceilings(groups)."""
    for g in groups:
        g.row = summarize_group(g, out_dir, ceiling_rps)
    best = ceilings(groups)
    for g in groups:
        if g.section in best and g.row["rps_median"]:
            g.row["ceiling_ratio"] = round(g.row["rps_median"] / best[g.section][1], 4)
    return best


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
