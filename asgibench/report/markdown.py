"""report.md: the header (machine, placement, software, calibration, matrices), how to read the
tables, one table per section with its charts, "What this means" (findings.py) and the runs left out.

A new column of the tables: head and cells in _table (every line must keep as many cells as the
header: test_report checks). A new header line: render_markdown. A new finding goes in findings.py,
a new chart in charts.py (CHARTS gives the order and alt text charts are shown with here).
"""
from __future__ import annotations

import time
from pathlib import Path

import benchcontract
from asgibench import stats
from asgibench.report import charts, migration
from asgibench.report.findings import section_findings
from asgibench.report.fmt import num, rel, setting
from asgibench.report.groups import FAMILY_TITLES, Group, sections
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
    L += ["", ("How to read the tables: **median req/s** over the trials (HTTP requests only; the whole-flow "
          f"`{benchcontract.FLOW_REQUEST_TYPE}` entry is not a request); **CV** = standard deviation / mean of the "
          f"trials' req/s, above {stats.UNSTABLE_CV_PCT:.0f}% the figure is flagged unstable; **p95** is exact "
          "(every response time), † marks "
          "Locust's bucketed percentiles where exact timings were missing; **concurrency efficiency** (I/O "
          "scenario) = achieved req/s ÷ users / seconds-per-request (1.0 = every waiting request overlapped); "
          "**vs ceiling** = req/s ÷ the best reference row (a bare ASGI app + asyncpg) of the same table; "
          "**generator-bound** = the load generator, not the server, may have set the pace (its CPU above "
          f"{stats.GENERATOR_CPU_BOUND_PCT:.0f}% of a core, or req/s above half the calibrated ceiling): read "
          "such a figure as a lower bound. Rows run their registry default flow: Django rows the original flow "
          "(admin login + two API pages), rows without Django's admin the API-only flow. Each run link opens the "
          "run folder (meta.json, Locust CSVs, logs)."), ""]
    secs = sections(groups)
    for section, rows in secs.items():
        L += [f"## {_section_title(section, rows)}", ""]
        L += _table(rows, best, out_dir)
        L.append("")
        for kind, alt, _ in charts.CHARTS:
            p = chart_files.get(section, {}).get(kind)
            if p:
                L += [f"![{alt}]({rel(p, out_dir)})", ""]
    L += migration.section([t.meta for t in trials], out_dir, charts=bool(chart_files))  # issue 14 (DJANGO)
    L += ["## What this means", ""]
    for section, rows in secs.items():
        L += [f"### {section[1]} ({section[0]})", ""]
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


def _section_title(section: tuple, rows: list[Group]) -> str:
    matrix_id, scenario = section
    cfg = rows[0].config
    what = {"io": f"I/O probe: each request waits {setting(cfg.get('io_seconds'))} s in PostgreSQL",
            "constant": "constant users"}.get(scenario, "ramped users")
    users = sorted({g.config.get("users") for g in rows if g.config.get("users") is not None})
    secs = sorted({g.config.get("seconds") for g in rows if g.config.get("seconds") is not None})
    src = _source_name(matrix_id)
    return (f"{scenario} — {src} ({what}; up to {'/'.join(map(str, users))} users, "
            f"{'/'.join(setting(round(s, 1)) for s in secs)} s measured per trial)")


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
        cells = [g.label, g.family, g.flow, num(r["rps_median"]), cv, num(r["p95_ms"]) + mark,
                 f"{num(r['p50_ms'])} / {num(r['p99_ms'])}{mark}"]
        if io:
            e = r["efficiency"]
            cells.append("–" if e is None else f"{e:.2f} ({num(r['rps_median'])} of {num(r['ideal_rps'])})")
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
