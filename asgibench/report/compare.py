"""`asgibench compare BASE NEW`: did NEW make it faster, or is that noise?

    python -m asgibench compare BASE NEW [--fail-if-worse PCT] [--allow-mixed] [--figures a,b] [--out DIR]

BASE and NEW are RUN_IDS as for `report` (a matrix id, a run folder, a folder of runs, a run name),
several joined by commas ("m1,m2": their trials are pooled). Each side's completed trials are grouped
as the report groups them, minus the matrix id: one *row* per (variant, scenario, flow, settings).

Pairing. A BASE row meets the NEW row of the same variant, scenario, flow and settings; failing that,
the one NEW row of the same variant, scenario, flow and *load* settings (users, run length,
--io-seconds, time scale, Locust processes/workers): the server settings may differ, that is what is
being compared (workers, --db-conn, Python; the Django version beside them) and the "changed" column
says what did. A pair whose flow or load settings differ (another flow, more users) measures another
thing: compare refuses, one line, exit 2, unless --allow-mixed. When each side is one row of
different variants (`compare runA runB`), those two are paired ("changed: variant"). Rows left over
are listed as BASE only / NEW only, never dropped silently.

Figures: every figures.FIGURES figure both rows have, per pair. ratio = mean(NEW trials) /
mean(BASE trials), with a 95% confidence interval by a percentile bootstrap of that ratio of MEANS
(each side resampled with replacement independently, BOOTSTRAP_ROUNDS rounds, numpy's default_rng
seeded from --seed and the row and figure names: the same folders give the same interval, in any
order). Means, not medians: with three trials a median's bootstrap takes three values only. With
fewer than 2 trials on a side there is no interval: the verdict is "untested" (run --trials 3).

Verdict: "better" / "worse" (from the figure's direction, Figure.better) when the interval excludes 1
AND the change exceeds the noise floor, the larger of the two sides' CV (sample stdev / mean of the
trials): a bootstrap of three trials gives an interval too narrow, so a change within one side's
trial-to-trial spread is not called. Otherwise "no significant difference" (the why column says
which test held it back). Per family: the geometric mean of the ratios of each figure over its rows.

--fail-if-worse PCT: exit 1 when a figure is "worse" and its point change is beyond PCT percent
(naming each); figures left "untested" never fail. Outputs: the terminal table, and compare.md,
compare.csv, compare.json in --out (default <results>/compare/<base>-vs-<new>/, a new "-2", "-3"
... folder when that one exists; an existing --out is refused unless --force). The HTML report shows
the newest compare.json under <results>/compare/.
"""
from __future__ import annotations

import csv
import json
import re
import statistics
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from asgibench import figures, stats
from asgibench.errors import UsageError
from asgibench.report.fmt import num, rel
from asgibench.report.groups import family_order, group_trials
from asgibench.report.trials import load_trial, resolve_run_ids
from asgibench.report.verdicts import (
    BETTER,
    BOOTSTRAP_ROUNDS,
    WORSE,
    bootstrap_ratio_ci,
    change_pct,
    failures,
    family_summary,
    verdict,
)

# config_of keys that change what is measured (a refusal), the others are what a comparison may change
LOAD_KEYS = ("users", "seconds", "io_seconds", "time_scale", "processes", "locust_workers")
CSV_FIELDS = ("row", "variant", "family", "scenario", "flow", "changed", "figure", "label", "unit", "better",
              "base_n", "new_n", "base_mean", "new_mean", "base_median", "new_median", "ratio", "ci_low",
              "ci_high", "base_cv_pct", "new_cv_pct", "noise_floor_pct", "verdict", "why", "base_flags",
              "new_flags", "base_runs", "new_runs")


@dataclass(eq=False)
class Row:
    """One side's trials of one (variant, scenario, flow, settings), pooled over its matrix ids."""
    variant: str
    family: str
    scenario: str
    flow: str
    config: dict
    label: str
    trials: list = field(default_factory=list)
    excluded: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.variant, self.scenario, self.flow, tuple(sorted(self.config.items())))

    @property
    def load_key(self) -> tuple:
        return (self.variant, self.scenario, self.flow, tuple((k, self.config.get(k)) for k in LOAD_KEYS))

    @property
    def django(self) -> str | None:
        vs = {(t.meta.get("django") or {}).get("version") for t in self.trials}
        return ", ".join(sorted(str(v) for v in vs if v)) or None


def rows_of(run_dirs) -> list[Row]:
    trials = [t for t in (load_trial(Path(d)) for d in run_dirs) if t]
    out: dict[tuple, Row] = {}
    for g in group_trials(trials):
        r = Row(g.variant, g.family, g.scenario, g.flow, dict(g.config), g.label)
        r = out.setdefault(r.key, r)
        r.trials += g.trials
        r.excluded += g.excluded
    return list(out.values())


def _mismatch(b: Row, n: Row) -> list[str]:
    """What makes b and n measure different things (flow, scenario, load settings)."""
    out = [f"{k} {v} vs {w}" for k, v, w in (("scenario", b.scenario, n.scenario), ("flow", b.flow, n.flow))
           if v != w]
    return out + [f"{k} {b.config.get(k)} vs {n.config.get(k)}" for k in LOAD_KEYS
                  if b.config.get(k) != n.config.get(k)]


def _changed(b: Row, n: Row) -> str:
    """What differs between two paired rows that a comparison may change (variant, server settings)."""
    out = [f"variant {b.variant} -> {n.variant}"] if b.variant != n.variant else []
    out += [f"{k} {b.config.get(k)} -> {n.config.get(k)}" for k in sorted(b.config)
            if k not in LOAD_KEYS and k != "django" and b.config.get(k) != n.config.get(k)]
    if b.django != n.django:
        out.append(f"Django {b.django or '-'} -> {n.django or '-'}")
    return "; ".join(out + _mismatch(b, n))


def pair_rows(base: list[Row], new: list[Row], allow_mixed: bool = False):
    """(pairs [(b, n)], BASE-only rows, NEW-only rows); raises UsageError for a mixed pair unless allowed."""
    left_b, left_n, pairs = list(base), list(new), []

    def match(keyf):
        for b in list(left_b):
            cands = [n for n in left_n if keyf(n) == keyf(b)]
            if len(cands) == 1 and sum(keyf(o) == keyf(b) for o in left_b) == 1:
                pairs.append((b, cands[0]))
                left_b.remove(b)
                left_n.remove(cands[0])

    match(lambda r: r.key)
    match(lambda r: r.load_key)
    n_clean = len(pairs)
    match(lambda r: (r.variant, r.scenario))
    if not pairs and len(left_b) == len(left_n) == 1:
        pairs.append((left_b.pop(), left_n.pop()))
    mixed = [(b, n) for b, n in pairs[n_clean:] if _mismatch(b, n)]
    if mixed and not allow_mixed:
        b, n = mixed[0]
        more = f" (and {len(mixed) - 1} more row(s))" if len(mixed) > 1 else ""
        raise UsageError(f"BASE and NEW ran {b.label} with different flow or load settings: "
                         f"{'; '.join(_mismatch(b, n))}{more}; --allow-mixed compares them anyway")
    return pairs, left_b, left_n


def compare_figure(fig: figures.Figure, b: Row, n: Row, seed: int) -> dict | None:
    bv, nv = figures.values([t.meta for t in b.trials], fig.key), figures.values([t.meta for t in n.trials], fig.key)
    if not bv or not nv:
        return None
    bm, nm = statistics.fmean(bv), statistics.fmean(nv)
    ratio = nm / bm if bm else None
    ci = bootstrap_ratio_ci(bv, nv, zlib.crc32(f"{b.label}|{n.label}|{fig.key}".encode()) ^ seed) if ratio else None
    cvs = [c for c in (stats.cv_pct(bv), stats.cv_pct(nv)) if c is not None]
    noise = max(cvs) if cvs else None
    v, why = verdict(fig, ratio, ci, noise)
    return {"figure": fig.key, "label": fig.label, "unit": fig.unit, "better": fig.better,
            "base_n": len(bv), "new_n": len(nv), "base_mean": bm, "new_mean": nm,
            "base_median": stats.median(bv), "new_median": stats.median(nv), "ratio": ratio,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
            "base_cv_pct": stats.cv_pct(bv), "new_cv_pct": stats.cv_pct(nv), "noise_floor_pct": noise,
            "verdict": v, "why": why}


def _flags(row: Row) -> str:
    return "; ".join(sorted({f"{f}: {why}" for t in row.trials for f, why in figures.flags(t.meta)}))


def compare_rows(pairs, figure_keys=None, seed: int = 0) -> list[dict]:
    """One line per (pair, figure): the figures.FIGURES both rows have (or those of figure_keys)."""
    out = []
    figs = [f for f in figures.FIGURES if not figure_keys or f.key in figure_keys]
    for b, n in sorted(pairs, key=lambda p: (family_order(p[0].family), p[0].scenario, p[0].label)):
        for fig in figs:
            c = compare_figure(fig, b, n, seed)
            if c:
                out.append({"row": b.label if b.label == n.label else f"{b.label} -> {n.label}",
                            "variant": b.variant, "family": b.family, "scenario": b.scenario, "flow": b.flow,
                            "changed": _changed(b, n), **c, "base_flags": _flags(b), "new_flags": _flags(n),
                            "base_runs": [str(t.path) for t in b.trials], "new_runs": [str(t.path) for t in n.trials]})
    return out


# -- output ----------------------------------------------------------------------------------------

def ratio_text(c: dict) -> str:
    ci = f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]" if c["ci_low"] is not None else "no CI (n<2)"
    return f"{c['ratio']:.3f} {ci}" if c["ratio"] is not None else "–"


def _cv(c: dict) -> str:
    return "/".join("–" if v is None else f"{v:.1f}" for v in (c["base_cv_pct"], c["new_cv_pct"]))


def _side_line(r: Row) -> str:
    extra = f", {len(r.excluded)} not completed" if r.excluded else ""
    return f"{r.label} ({r.scenario}, {r.flow}): {len(r.trials)} trial(s){extra}"


def terminal_table(res: dict) -> str:
    head = ("row", "scenario", "figure", "BASE", "NEW", "NEW/BASE [95% CI]", "CV% B/N", "verdict")
    table = [head] + [(c["row"], c["scenario"], c["label"], num(c["base_mean"]), num(c["new_mean"]), ratio_text(c),
                       _cv(c), c["verdict"] + (" !" if c in res["failed"] else "")) for c in res["lines"]]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    L = [f"changed: {ch}" for ch in sorted({c["changed"] for c in res["lines"] if c["changed"]})]
    L += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in table]
    if res["families"]:
        L += ["", "geometric mean of NEW/BASE per family:"]
        L += [f"  {f['family']:<10} {f['label']:<26} {f['geomean_ratio']:.3f} over {f['rows']} row(s) "
              f"({f[BETTER]} better, {f[WORSE]} worse)" for f in res["families"]]
    for side in ("base", "new"):
        if res[f"{side}_only"]:
            L += ["", f"{side.upper()} only (not compared):"] + [f"  {_side_line(r)}" for r in res[f"{side}_only"]]
    return "\n".join(L)


def render_markdown(res: dict) -> str:
    L = [f"# compare: {res['base_name']} vs {res['new_name']}", "",
         f"BASE: {', '.join(res['base_ids'])} ({res['base_runs']} run folders); "
         f"NEW: {', '.join(res['new_ids'])} ({res['new_runs']} run folders).", "",
         ("NEW/BASE = mean of NEW's trials / mean of BASE's; the 95% CI is a seeded percentile bootstrap of that "
          f"ratio ({BOOTSTRAP_ROUNDS} rounds, seed {res['seed']}). **better/worse** when the CI excludes 1 and the "
          "change exceeds the noise floor (the larger CV of the two sides); with one trial on a side there is no CI "
          "(**untested**). Direction per figure from `asgibench/figures.py`."), ""]
    changed = sorted({c["changed"] for c in res["lines"] if c["changed"]})
    if changed:
        L += ["Changed between BASE and NEW: " + " | ".join(changed), ""]
    L += ["| row | figure | BASE | NEW | NEW/BASE [95% CI] | CV% B/N | verdict |", "|---|---|---|---|---|---|---|"]
    for c in res["lines"]:
        v = f"**{c['verdict']}**" if c["verdict"] in (BETTER, WORSE) else c["verdict"]
        flags = " ⚠ " + "; ".join(x for x in (c["base_flags"], c["new_flags"]) if x) if (
            c["base_flags"] or c["new_flags"]) else ""
        L.append(f"| {c['row']} ({c['scenario']}) | {c['label']} ({'↑' if c['better'] == 'higher' else '↓'}) | "
                 f"{num(c['base_mean'])} | {num(c['new_mean'])} | {ratio_text(c)} | {_cv(c)} | {v}"
                 f"{' — ' + c['why'] if c['why'] else ''}{flags} |")
    if res["families"]:
        L += ["", "## Geometric mean per family", "", "| family | figure | NEW/BASE | rows | better | worse |",
              "|---|---|---|---|---|---|"]
        L += [f"| {f['family']} | {f['label']} | {f['geomean_ratio']:.3f} | {f['rows']} | {f[BETTER]} | {f[WORSE]} |"
              for f in res["families"]]
    for side in ("base", "new"):
        if res[f"{side}_only"]:
            L += ["", f"## {side.upper()} only (not compared)", ""]
            L += [f"- {_side_line(r)}" for r in res[f"{side}_only"]]
    if res["fail_if_worse"] is not None:
        L += ["", f"## --fail-if-worse {res['fail_if_worse']:g}%", ""]
        L += [f"- FAILED: {c['row']} {c['label']} {change_pct(figures.BY_KEY[c['figure']], c['ratio']):.1f}% worse"
              for c in res["failed"]] or ["- passed: no figure significantly worse by more than that"]
    return "\n".join(L) + "\n"


def write_outputs(res: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(render_markdown(res))
    with open(out / "compare.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for c in res["lines"]:
            w.writerow({k: _cell(c.get(k), out) for k in CSV_FIELDS})
    keep = {k: v for k, v in res.items() if k not in ("base_only", "new_only", "failed")}
    keep.update({f"{s}_only": [_side_line(r) for r in res[f"{s}_only"]] for s in ("base", "new")},
                failed=[f"{c['row']} {c['label']}" for c in res["failed"]])
    (out / "compare.json").write_text(json.dumps(keep, indent=1, default=str))
    return {"md": out / "compare.md", "csv": out / "compare.csv", "json": out / "compare.json"}


def _cell(v, out: Path):
    if isinstance(v, list):
        return " ".join(rel(Path(p), out) for p in v)
    if isinstance(v, float):
        return round(v, 6)
    return "" if v is None else v


# -- the command -----------------------------------------------------------------------------------

def compare(base_ids, new_ids, results_root: Path, *, allow_mixed=False, figure_keys=None, fail_if_worse=None,
            seed: int = 0) -> dict:
    base_dirs, new_dirs = resolve_run_ids(base_ids, results_root), resolve_run_ids(new_ids, results_root)
    base, new = rows_of(base_dirs), rows_of(new_dirs)
    pairs, base_only, new_only = pair_rows(base, new, allow_mixed)
    for b, n in [p for p in pairs if not (p[0].trials and p[1].trials)]:  # no completed trial: listed, not compared
        pairs.remove((b, n))
        base_only.append(b)
        new_only.append(n)
    lines = compare_rows(pairs, figure_keys, seed)
    return {"base_ids": list(base_ids), "new_ids": list(new_ids), "base_name": _name(base_ids),
            "new_name": _name(new_ids), "base_runs": len(base_dirs), "new_runs": len(new_dirs), "seed": seed,
            "lines": lines, "families": family_summary(lines), "base_only": base_only, "new_only": new_only,
            "fail_if_worse": fail_if_worse, "failed": failures(lines, fail_if_worse)}


def _name(ids) -> str:
    s = "+".join(Path(str(i).rstrip("/")).name or str(i) for i in ids)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", s)[:60] or "runs"


def out_dir_for(res: dict, results_root: Path, out: str | None, force: bool) -> Path:
    if out:
        p = Path(out)
        if (p / "compare.md").exists() and not force:
            raise UsageError(f"{p} already holds a comparison: --force overwrites it")
        return p
    base = Path(results_root) / "compare" / f"{res['base_name']}-vs-{res['new_name']}"
    p, i = base, 2
    while p.exists():
        p, i = base.with_name(f"{base.name}-{i}"), i + 1
    return p


def _split(ids: str) -> list[str]:
    return [x for x in ids.split(",") if x]


def add_arguments(p) -> None:
    p.add_argument("base", metavar="BASE", help="matrix id(s), run folder(s) or run names, comma-separated")
    p.add_argument("new", metavar="NEW", help="the same, for the runs compared against BASE")
    p.add_argument("--results", help="where runs are looked up (default: results/, or $ASGIBENCH_RESULTS)")
    p.add_argument("--out", help="folder for compare.md/csv/json (default: <results>/compare/<base>-vs-<new>/)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--fail-if-worse", type=float, metavar="PCT",
                   help="exit 1 when a figure is significantly worse by more than PCT percent")
    p.add_argument("--allow-mixed", action="store_true", help="compare rows of different flows or load settings")
    p.add_argument("--figures", help=f"comma-separated figure keys (default: all): {', '.join(figures.BY_KEY)}")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def cmd_compare(a) -> int:
    import sys

    from asgibench import results

    root = Path(a.results) if a.results else results.RESULTS_DIR
    keys = [k.strip() for k in a.figures.split(",")] if a.figures else None
    unknown = [k for k in keys or () if k not in figures.BY_KEY]
    if unknown:
        raise UsageError(f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(figures.BY_KEY)}")
    res = compare(_split(a.base), _split(a.new), root, allow_mixed=a.allow_mixed, figure_keys=keys,
                  fail_if_worse=a.fail_if_worse, seed=a.seed)
    if not res["lines"]:
        print("nothing to compare: no row and flow with a figure on both sides", file=sys.stderr)
    out = out_dir_for(res, root, a.out, a.force)
    files = write_outputs(res, out)
    print(terminal_table(res))
    print(f"\ncompare: {files['md']}\n         {files['csv']}")
    if res["failed"]:
        names = ", ".join(f"{c['row']} {c['label']} "
                          f"({change_pct(figures.BY_KEY[c['figure']], c['ratio']):.1f}% worse)" for c in res["failed"])
        print(f"asgibench: --fail-if-worse {a.fail_if_worse:g}: significantly worse: {names}", file=sys.stderr)
        return 1
    return 0
