"""Trials -> groups (one row of summary.csv, one line of a report table), in report order, labelled;
sections (one table each: rows of one matrix id, scenario and flow, never compared across flows);
the summary.csv row of a group; and each section's headline figure (choose_headline). summary.csv's
columns as data live in columns.py (COLUMNS, re-exported here with CSV_COLUMNS and column_docs).

Same flow only: a section is (matrix id, scenario, flow_key(flow)), where flow_key drops "+async"
only (the async twin of a flow makes the same HTTP exchanges on /async_api/, so async_versus_sync
compares them); every ratio, "best per family", "vs ceiling" and chart is computed within one
section, so no figure of one flow is ever divided by a figure of another.

A new load setting that must keep runs apart: config_of. A new flow qualifier: flow_label. A new
headline candidate: HEADLINE_CANDIDATES.

summary.csv columns (stable; empty cell = not applicable / not measured):
"""
from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract
from asgibench import figures, stats, variants
from asgibench.report import columns
from asgibench.report.columns import COLUMNS, CSV_COLUMNS, column_docs, cv_column, median_column
from asgibench.report.fmt import rel, setting
from asgibench.report.trials import AD_HOC, Trial

__all__ = ["COLUMNS", "CSV_COLUMNS", "Group", "column_docs", "group_trials", "sections", "summarize", "write_csv"]

FAMILY_TITLES = {"wsgi": "WSGI", "asgi": "ASGI", "fastapi": "FastAPI", "reference": "reference"}
SCENARIO_ORDER = ("constant", "keepalive", "capacity", "readme", "easy", "medium", "medium-large", "laptop-heater",
                  "io")
NOT_RAMPED = ("constant", "keepalive", "io", "capacity")
FLOW_ORDER = ("api", "original", "slowapi-only", "io")

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
        """(matrix id, scenario, flow key): the table this row is in; rows of one flow only."""
        return (self.matrix_id, self.scenario, flow_key(self.flow))

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


def flow_key(flow: str) -> str:
    """The flow a section holds: the flow label without "+async" (same exchanges, async views)."""
    return "+".join(p for p in flow.split("+") if p != "async")


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
        "django": t.django_version,
        "processes": plan.get("processes", 1),
        "locust_workers": plan.get("locust_workers", 0) + plan.get("remote_workers", 0),
        "reconnect_every": plan.get("reconnect_every", 0),  # matrix api/original turn over; keepalive does not
    }


def group_key(t: Trial) -> tuple:
    return (t.matrix_id, t.variant.get("name") or "?", t.scenario, flow_label(t.plan),
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
    matrix_id, scenario, flow = section
    sc = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    base = flow.split("+")[0]
    fl = FLOW_ORDER.index(base) if base in FLOW_ORDER else len(FLOW_ORDER)
    return (matrix_id == AD_HOC, matrix_id, sc, scenario, fl, flow)


def sections(groups: list[Group]) -> dict:
    """{(matrix id, scenario, flow key): its groups, in report order}: one table and one set of charts
    each; nothing is compared across sections."""
    out: dict = {}
    for g in groups:
        out.setdefault(g.section, []).append(g)
    return out


def _label(groups: list[Group]) -> None:
    """Row label: the variant, its flow qualifiers ("+async", "slowapi-only", ...; the base flow is
    the section's, named in its title, so it is not repeated), then whatever load setting differs
    between groups that would otherwise share a label in the same section."""
    for g in groups:
        quals = ["slowapi-only"] if g.flow.split("+")[0] == "slowapi-only" else []
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
    cells = {
        "section": " / ".join(g.section),
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
        "django": g.config.get("django"),
        "trials": len(tr),
        "excluded_trials": len(g.excluded),
        "headline": None, "headline_median": None, "headline_cv_pct": None, "headline_reason": None,
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
        **columns.figure_cells(tr),
        **columns.flag_cells(tr, out_dir),
        **columns.balance_cells(tr),
        **columns.memory_cells(tr),
        **columns.capacity_cells(tr),
        "status_problems": "; ".join(f"{t.status}: {rel(t.path, out_dir)}" for t in g.excluded),
        "run_dirs": " ".join(rel(t.path, out_dir) for t in tr),
    }
    if set(cells) != set(CSV_COLUMNS):  # COLUMNS is the one table: a cell without a column is a bug
        raise AssertionError(f"summary row vs COLUMNS: {sorted(set(cells) ^ set(CSV_COLUMNS))}")
    return {k: cells[k] for k in CSV_COLUMNS}


_r = columns.r


def ceilings(groups: list[Group]) -> dict:
    """Per section: the reference row with the highest median req/s, as (label, rps)."""
    best: dict = {}
    for g in groups:
        rps = g.row.get("rps_median")
        if g.family == "reference" and rps and (g.section not in best or rps > best[g.section][1]):
            best[g.section] = (g.label, rps)
    return best


def summarize(groups: list[Group], out_dir: Path, ceiling_rps: float | None) -> dict:
    """Fill every group's row (ceiling_ratio against its section's best reference row, the section's
    headline figure), and order the rows of each section by that headline within a family (in place);
    returns ceilings(groups)."""
    for g in groups:
        g.row = summarize_group(g, out_dir, ceiling_rps)
    best = ceilings(groups)
    for g in groups:
        if g.section in best and g.row["rps_median"]:
            g.row["ceiling_ratio"] = round(g.row["rps_median"] / best[g.section][1], 4)
    for rows in sections(groups).values():
        key, reason = choose_headline(rows)
        for g in rows:
            g.row.update(headline=key, headline_median=g.row[median_column(key)],
                         headline_cv_pct=g.row[cv_column(key)], headline_reason=reason)
    groups.sort(key=lambda g: (section_order(g.section), family_order(g.family), _headline_order(g), g.label))
    return best


def _headline_order(g: Group) -> float:
    v = g.row.get("headline_median")
    if v is None:
        return float("inf")
    return -v if figures.BY_KEY[g.row["headline"]].better == "higher" else v


# -- the headline figure of a section (issue 12.6) --------------------------------------------------
# Per kind of table, the figures that answer its question, preferred first when noise cannot decide:
# a throughput table asks "how much does this server serve": req/s per server core (1e6 / server CPU
# per request) says it without depending on how Locust's few connections landed on the workers, which
# is what made req/s swing by 30% between trials; req/s stays beside it.
HEADLINE_CANDIDATES = {
    "capacity": ("capacity_rps", "capacity_ref_rps"),
    "io": ("efficiency",),
    "throughput": ("capacity_per_ref_core", "capacity_per_core", "rps"),
}


def table_kind(scenario: str, flow: str) -> str:
    """"capacity" | "io" | "throughput": which question a section answers."""
    if scenario == "capacity":
        return "capacity"
    return "io" if scenario == "io" or flow == "io" else "throughput"


def choose_headline(rows: list[Group]) -> tuple[str, str]:
    """(figure key, why): among the section kind's candidates that every row with a completed trial
    has, the one whose median CV over those rows is lowest (ties and no CV: the first candidate)."""
    live = [g for g in rows if g.trials]
    kind = table_kind(rows[0].scenario, rows[0].flow)
    cands = [k for k in HEADLINE_CANDIDATES[kind]
             if live and all(g.row.get(median_column(k)) is not None for g in live)]
    if kind == "capacity" and any(g.row.get("slo") for g in live):
        cands = list(HEADLINE_CANDIDATES[kind])  # a ladder none of whose steps met the SLO still answers
    if not cands:
        return "rps", "no other candidate figure was measured on every row of this table"
    noise = {k: stats.median(g.row.get(cv_column(k)) for g in live) for k in cands}
    known = [k for k in cands if noise[k] is not None]
    pick = min(known, key=lambda k: (noise[k], cands.index(k))) if known else cands[0]
    if len(cands) == 1:
        why = {"capacity": "the highest offered rate sustained within the SLO: what the scenario measures",
               "io": "how much of the waiting the row overlaps: what the I/O probe measures",
               "throughput": "the only candidate measured on every row"}[kind]
        cv = f" (median CV {noise[pick]:.1f}% over the rows)" if noise[pick] is not None else ""
        return pick, f"{why}{cv}"
    if not known:
        return pick, ("one trial per row, no CV yet; preferred because it does not depend on how the "
                      "generator's connections landed on the workers")
    others = ", ".join(f"{figures.BY_KEY[k].label} {noise[k]:.1f}%" if noise[k] is not None else
                       f"{figures.BY_KEY[k].label} no CV" for k in cands if k != pick)
    return pick, f"the lowest-noise candidate, median CV {noise[pick]:.1f}% over the rows ({others})"


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
