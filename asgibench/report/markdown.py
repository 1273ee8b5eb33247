"""report.md: the header (machine, placement, software, calibration, matrices), how to read the
tables, one table per section (one matrix, scenario and flow) with its headline figure and why, its
charts, "What this means" (findings.py) and the runs left out.

A new column of the tables: one (header, cell) entry in _columns, under the kind of table it belongs
to (throughput, io, capacity: groups.table_kind) and only when a row of the table measured it, so a
table stays readable (every line keeps as many cells as the header: test_report checks). A new header
line: render_markdown. A new finding goes in findings.py, a new chart in charts.py (CHARTS gives the
order and alt text charts are shown with here).
"""
from __future__ import annotations

import time
from pathlib import Path

import benchcontract
from asgibench import figures, stats
from asgibench.report import charts, migration
from asgibench.report.columns import cv_column, median_column
from asgibench.report.findings import section_findings
from asgibench.report.fmt import num, rel, setting
from asgibench.report.groups import FAMILY_TITLES, HEADLINE_CANDIDATES, Group, sections, table_kind
from asgibench.report.trials import AD_HOC, Trial


def render_markdown(groups, best, chart_files, out_dir: Path, calib, trials) -> str:
    L = ["# asgibench report", ""]
    done = sum(t.completed for t in trials)
    L.append(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(trials)} run folder(s) "
             f"({done} completed) in {len(groups)} row(s). Numbers: `summary.csv` beside this file "
             "(columns documented in `asgibench/report/groups.py`).")
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
                 f"(`{rel(Path(calib['_path']), out_dir)}`{'; ' + extra if extra else ''}). "
                 f"Rows above half of it are generator-bound.")
    else:
        L.append("- Locust ceiling: not calibrated (no `calibration.json`; run `asgibench calibrate`); "
                 "generator-bound is judged from the generator's CPU only.")
    for m in _matrix_lines(trials):
        L.append(f"- {m}")
    L += ["", HOW_TO_READ, ""]
    secs = sections(groups)
    for section, rows in secs.items():
        L += [f"## {_section_title(section, rows)}", ""]
        L += [_headline_line(rows), ""]
        L += _table(rows, best, out_dir)
        L.append("")
        for kind, alt, _ in charts.CHARTS:
            p = chart_files.get(section, {}).get(kind)
            if p:
                L += [f"![{alt}]({rel(p, out_dir)})", ""]
    L += migration.section([t.meta for t in trials], out_dir, charts=bool(chart_files))  # issue 14 (DJANGO)
    L += ["## What this means", "", "Every finding compares rows of one table only: the same flow, scenario and "
          "matrix (no ratio between flows is printed anywhere).", ""]
    for section, rows in secs.items():
        L += [f"### {section[1]}, {section[2]} flow ({section[0]})", ""]
        L += section_findings(rows, best.get(section))
        L.append("")
    excluded = [(g, t) for g in groups for t in g.excluded]
    if excluded:
        L += ["## Runs left out of the figures", ""]
        for g, t in excluded:
            why = t.meta.get("error") or ""
            r = rel(t.path, out_dir)
            L.append(f"- {g.label} ({g.scenario}): **{t.status}** — [{r}]({r}/)"
                     + (f": {why[:300]}" if why else ""))
        L.append("")
    return "\n".join(L) + "\n"


HOW_TO_READ = (
    "How to read the tables: one table per matrix, scenario and **flow** (the API-only flow every row serves, "
    "the original flow of Django's admin + API on the rows that serve it): rows of two flows are never "
    "in one table, one chart or one ratio. Each table leads with its **headline** figure, said above it with "
    "why: the lowest-noise figure that answers the table's question (e.g. req/s per server core = 1e6 / server "
    "CPU µs per request, which does not swing with how a few keep-alive connections landed on the workers, "
    "beside req/s). **req/s** counts every HTTP exchange, redirects included (the whole-flow "
    f"`{benchcontract.FLOW_REQUEST_TYPE}` entry is not a request); **CV** = standard deviation / mean over the "
    f"trials, above {stats.UNSTABLE_CV_PCT:.0f}% flagged unstable; **p50 / p99** are exact (every response "
    "time), † marks Locust's bucketed percentiles where exact timings were missing; **CPU µs/request** is the "
    "server process tree / PostgreSQL / the load generator; **memory** is the server tree's PSS (steady / "
    "peak); **concurrency efficiency** (I/O scenario) = achieved req/s ÷ users / seconds-per-request; "
    "**capacity at SLO** (capacity scenario) = the highest offered rate (open model) whose step met the SLO; "
    "**ref. speed**: this VM's CPU second is not a fixed unit (a fixed loop's CPU time moved 13% CV at idle), so "
    "every trial also times a fixed loop (the speed probe, asgibench/measure.py) and a figure *at reference "
    "speed* is the measured one with the window's machine speed divided out; the measured one is beside it; "
    "**vs ceiling** = req/s ÷ the best reference row (a bare ASGI app + asyncpg) of the same table. **Flags** "
    "(asgibench/figures.py): **generator-bound** = the load generator may have set the pace (its CPU above "
    f"{stats.GENERATOR_CPU_BOUND_PCT:.0f}% of a core, or req/s above half the calibrated ceiling): read the "
    "figure as a lower bound; **generator-competing** = the generator took a large share of the machine "
    "while the server was CPU-bound; **imbalanced** = one worker carried most of the server's CPU (the "
    "shares are shown). Each run link opens the run folder (meta.json, Locust CSVs, logs).")


def _section_title(section: tuple, rows: list[Group]) -> str:
    matrix_id, scenario, flow = section
    cfg = rows[0].config
    turnover = {g.config.get("reconnect_every") for g in rows}
    users_on = ("each user reconnecting every " + "/".join(sorted(map(str, turnover))) + " iterations"
                if all(turnover) else "each user on one keep-alive connection for the whole run")
    what = {"io": f"I/O probe: each request waits {setting(cfg.get('io_seconds'))} s in PostgreSQL",
            "constant": f"constant users, {users_on}", "keepalive": f"constant users, {users_on}",
            "capacity": "open-model rate ladder to the SLO"}.get(scenario, "ramped users")
    users = sorted({g.config.get("users") for g in rows if g.config.get("users") is not None})
    secs = sorted({g.config.get("seconds") for g in rows if g.config.get("seconds") is not None})
    src = _source_name(matrix_id)
    load = f"up to {'/'.join(map(str, users))} users, " if users and scenario != "capacity" else ""
    timing = f"{'/'.join(setting(round(s, 1)) for s in secs)} s measured per trial" if secs else "per trial"
    return f"{scenario}, {flow} flow — {src} ({what}; {load}{timing})"


def _headline_line(rows: list[Group]) -> str:
    r = rows[0].row
    return f"Headline: **{figures.BY_KEY[r['headline']].label}** — {r['headline_reason'] or ''}."


def _source_name(matrix_id: str) -> str:
    if matrix_id == AD_HOC:
        return "ad-hoc runs (`asgibench bench`)"
    if matrix_id.startswith("bench-"):
        return f"series `{matrix_id}` (`asgibench bench --trials`)"
    return f"matrix `{matrix_id}`"


def _link_runs(g: Group, out_dir: Path) -> str:
    links = [f"[{t.trial_no or i}]({rel(t.path, out_dir)}/)" for i, t in enumerate(g.trials, 1)]
    links += [f"[~~{t.status}~~]({rel(t.path, out_dir)}/)" for t in g.excluded]
    return " ".join(links)


# -- the tables: columns chosen per kind of table ---------------------------------------------------

def _cv(v, unstable_mark=True) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}%" + (" ⚠ unstable" if unstable_mark and stats.unstable(v) else "")


def _lat(r) -> str:
    mark = "" if r["latency_source"] == "exact" else " †"
    return f"{num(r['p50_ms'])} / {num(r['p99_ms'])}{mark}"


def _slash(*vals) -> str:
    return "–" if all(v is None for v in vals) else " / ".join(num(v) for v in vals)


def flags_cell(r: dict) -> str:
    """The flags of a row (figures.flags over its trials) with what they rest on; "none" when clean."""
    parts = []
    if r["generator_bound"]:
        cpu = f" ({r['gen_cpu_pct_max']:.0f}% CPU)" if r["gen_cpu_pct_max"] is not None else ""
        parts.append(f"**generator-bound**{cpu}")
    if r["generator_competing"]:
        share = r["generator_share_pct_max"]
        parts.append("**generator-competing**" + (f" ({share:.0f}% of the machine)" if share is not None else ""))
    if r["imbalanced"]:
        parts.append("**imbalanced**" + (f" (worker shares % {_shares(r)})" if r["balance_shares"] else ""))
    if parts:
        return "; ".join(parts)
    out = "none" + (f" (generator {r['gen_cpu_pct_max']:.0f}% CPU)" if r["gen_cpu_pct_max"] is not None else "")
    return out + (f"; worker shares % {_shares(r)}" if r["balance_shares"] else "")


def _shares(r: dict) -> str:
    return r["balance_shares"].replace("; ", ", ")


def _columns(rows: list[Group], best) -> list[tuple[str, object]]:
    """[(header, cell(row dict) -> str)] for this table, by its kind and what its rows measured."""
    live = [g.row for g in rows if g.trials]
    has = lambda col: any(r.get(col) is not None for r in live)  # noqa: E731
    kind = table_kind(rows[0].scenario, rows[0].flow)
    head = rows[0].row["headline"]
    hl = figures.BY_KEY[head]
    hcol = median_column(head)
    def headline(r):
        if r[hcol] is None and kind == "capacity" and r.get("slo"):
            return "none: no step met the SLO"
        return num(r[hcol])

    cols = [(f"**{hl.label}** (headline)", headline), ("CV", lambda r: _cv(r["headline_cv_pct"]))]
    # the other candidates for the headline (e.g. the raw figure beside the one at reference speed), with
    # their CVs: the reader sees what the choice was between
    for key in HEADLINE_CANDIDATES[kind]:
        if key not in (head, "rps") and has(median_column(key)):
            cols.append((f"{figures.BY_KEY[key].label} (CV)", lambda r, k=key: (
                f"{num(r[median_column(k)])} ({_cv(r[cv_column(k)])})" if r[median_column(k)] is not None else "–")))
    if kind == "capacity":
        cols += [("p50 / p99 / p99.9 ms at capacity",
                  lambda r: _slash(r["capacity_p50_ms"], r["capacity_p99_ms_median"], r["capacity_p999_ms"])),
                 ("server CPU µs/request at capacity", lambda r: num(r["capacity_server_us_per_request"])),
                 ("overload: achieved of offered req/s, p99 ms", lambda r: "–" if r["overload_offered_rps"] is None
                  else f"{num(r['overload_achieved_rps'])} of {num(r['overload_offered_rps'])}, "
                       f"{num(r['overload_p99_ms'])}"),
                 ("overload: timeouts / 5xx / resets / dropped, restarts, recovery s", _overload_cell)]
    else:
        if head != "rps":
            cols += [("req/s", lambda r: num(r["rps_median"])), ("req/s CV", lambda r: _cv(r["rps_cv_pct"]))]
        if has("iterations_per_s_median"):
            cols.append(("iterations/s", lambda r: num(r["iterations_per_s_median"])))
        cols.append(("p50 / p99 ms", _lat))
        if kind == "io" and head != "efficiency":
            cols.append(("concurrency efficiency", lambda r: num(r["efficiency"])))
        if kind == "io":
            cols.append(("of ideal req/s", lambda r: f"{num(r['rps_median'])} of {num(r['ideal_rps'])}"))
        if has("server_us_per_request_median") or has("db_us_per_request_median"):
            cols.append(("CPU µs/request: server / PostgreSQL / generator", lambda r: _slash(
                r["server_us_per_request_median"], r["db_us_per_request_median"],
                r["generator_us_per_request_median"])))
        if has("server_pss_mb_median"):
            cols.append(("server memory MB (PSS steady / peak)",
                         lambda r: _slash(r["server_pss_mb_median"], r["server_pss_peak_mb"])))
        if rows[0].section in best and kind == "throughput":
            cols.append(("vs ceiling", lambda r: "–" if r["ceiling_ratio"] is None else f"{r['ceiling_ratio']:.2f}×"))
    cols += [("flags", flags_cell),
             ("trials", lambda r: str(r["trials"]) + (f" (+{r['excluded_trials']} excluded)"
                                                      if r["excluded_trials"] else "")),
             ("failures", lambda r: f"**{r['failures']}** ({r['failure_pct']:.2f}%)" if r["failures"] else "0")]
    return cols


def _overload_cell(r: dict) -> str:
    errs = [r[f"overload_{k}"] for k in ("timeouts", "errors_5xx", "resets", "dropped")]
    if all(e is None for e in errs) and r["overload_recovery_s"] is None:
        return "–"
    rec = "–" if r["overload_recovery_s"] is None else num(r["overload_recovery_s"])
    return (" / ".join("–" if e is None else str(e) for e in errs)
            + f", {'–' if r['overload_worker_restarts'] is None else r['overload_worker_restarts']}, {rec}")


def _table(rows: list[Group], best, out_dir: Path) -> list[str]:
    cols = _columns(rows, best)
    head = ["row", "family", "flow"] + [h for h, _ in cols] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    family = None
    for g in rows:
        if g.family != family:
            family = g.family
            lines.append(f"| **{FAMILY_TITLES.get(family, family)}** |" + " |" * (len(head) - 1))
        if not g.trials:
            cells = ["no completed trial"] + ["0" if h == "trials" else "" for h, _ in cols[1:]]
        else:
            cells = [fn(g.row) for _, fn in cols]
        cells = [g.label, g.family, g.flow] + cells + [_link_runs(g, out_dir)]
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
    dj = {t.django_version for t in trials} - {None}
    if dj:
        parts.append("Django " + "/".join(sorted(dj)) + (" (rows of different versions are kept apart: "
                                                          "[django=...] in the label)" if len(dj) > 1 else ""))
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
