"""Report step: many run folders -> results/report.md + results/report.html + results/summary.csv +
results/charts/*.png.

    python -m asgibench report [RUN_IDS...] [--out DIR] [--results DIR] [--no-charts] [--no-html]

RUN_IDS: matrix run ids (meta.json "matrix"."id"), run folders (paths), folders holding run folders
(e.g. results/uvicorn), or run-folder names (`20261125T004336Z-constant` or `uvicorn/20261125T...`)
looked up under the results folder. None: every benchmark run under the results folder (completed
runs make the figures; interrupted / failed / server-died runs are listed, never averaged).

Grouping. A *group* (one row of summary.csv, one line of the headline table) is every trial of
(matrix id or "ad-hoc", variant, scenario, flow, load settings): the flow is the Locust user class
plus `+async` (/async_api/) and `+slowapi` / `slowapi-only`; the load settings are peak users, run
length, --io-seconds (io), --time-scale (ramps), workers, database connection strategy, Python, Django
version, and Locust processes / workers — ad-hoc runs made with different settings are never mixed into
one median. A *section* is (matrix id, scenario, flow without "+async"): one table and one set of charts;
rows of different sections (so of different flows) are never compared with each other.

Figures per group (over its completed trials):
  median req/s; CV = sample standard deviation / mean of the trials' req/s (n-1; needs >= 2
  trials), above 5% the row is "unstable"; latency = median over trials of each trial's exact
  percentile (every response time, timings.bin) or, when a trial lacks exact timings, Locust's
  bucketed percentiles for the whole group (latency_source says which); totals are sums.

The package, one concern per module (each module's docstring says where a new thing of its kind goes):
  trials.py    run folders -> Trial; RUN_IDS -> run folders
  groups.py    trials -> groups (rows) in report order; the summary.csv row; COLUMNS (the columns below)
  findings.py  "What this means": one function per finding, FINDINGS in report order
  markdown.py  report.md
  charts.py    the PNG charts, one function each (CHARTS), one shared axes layout
  fmt.py       how a figure, a setting and a folder link are written
  html.py      report.html: one self-contained interactive page (report_template.html, plotly.js inlined)
  compare.py   `asgibench compare BASE NEW` (verdicts.py: its statistics); report.html shows the newest
  __init__.py  build() (the facade: load, group, summarize, write), the `report` command

summary.csv columns (stable; empty cell = not applicable / not measured), from groups.COLUMNS:
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asgibench import results
from asgibench.errors import UsageError
from asgibench.report import groups as _groups
from asgibench.report.fmt import num
from asgibench.report.groups import CSV_COLUMNS, group_trials, summarize, write_csv
from asgibench.report.markdown import render_markdown
from asgibench.report.trials import load_trial, resolve_run_ids

__doc__ += _groups.column_docs() + "\nCharts: see asgibench/report/charts.py.\n"
__all__ = ["CSV_COLUMNS", "add_arguments", "build", "cmd_report", "headline_text", "main"]


def build(run_dirs: list[Path], out_dir: Path, *, calibration: Path | None = None, charts: bool = True,
          html: bool = True) -> dict:
    """Aggregate run folders into out_dir/report.md, out_dir/summary.csv, out_dir/charts/*.png and (html)
    out_dir/report.html.

    calibration: the calibration.json to quote (None: out_dir's, else the results folder's; a path that
    does not exist: none).

    Returns {"report": Path, "summary_csv": Path, "charts": [Path], "html": Path | None,
    "rows": [summary.csv rows as dicts],
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
    best = summarize(groups, out_dir, ceiling_rps)
    csv_path = out_dir / "summary.csv"
    write_csv(csv_path, [g.row for g in groups])
    chart_files: dict = {}
    if charts and any(g.trials for g in groups):
        from asgibench.report.charts import make_charts

        chart_files = make_charts(groups, best, out_dir / "charts")
    report_path = out_dir / "report.md"
    report_path.write_text(render_markdown(groups, best, chart_files, out_dir, calib, trials))
    html_path = None
    if html:
        from asgibench.report.html import write_html

        html_path = write_html(groups, best, out_dir)
    return {
        "html": html_path,
        "report": report_path,
        "summary_csv": csv_path,
        "charts": [p for files in chart_files.values() for p in files.values()],
        "rows": [g.row for g in groups],
        "excluded": [(t.path, t.status) for g in groups for t in g.excluded],
        "ignored": ignored,
    }


# -- command line ----------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="matrix ids, run folders, or run names (default: every run under the results folder)")
    p.add_argument("--results", help="where runs are looked up (default: results/, or $ASGIBENCH_RESULTS)")
    p.add_argument("--out", help="where report.md, summary.csv and charts/ go (default: the results folder)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    p.add_argument("--no-html", action="store_true", help="skip report.html")


def cmd_report(a) -> int:
    root = Path(a.results) if a.results else results.RESULTS_DIR
    run_dirs = resolve_run_ids(a.run_ids, root)
    if not run_dirs:
        raise UsageError(f"no benchmark runs under {root} (run `asgibench bench <variant>` or `asgibench matrix`)")
    out_dir = Path(a.out) if a.out else root
    res = build(run_dirs, out_dir, calibration=root / "calibration.json", charts=not a.no_charts,
                html=not a.no_html)
    print(headline_text(res["rows"]))
    print(f"\nreport: {res['report']}\n" + (f"html: {res['html']}\n" if res["html"] else "") +
          f"summary: {res['summary_csv']}\n"
          f"charts: {len(res['charts'])} in {out_dir / 'charts'}")
    if res["excluded"]:
        print(f"left out of the figures: {len(res['excluded'])} run(s) not completed (listed in the report)")
    return 0


def headline_text(rows: list[dict]) -> str:
    """The headline table as plain text (what `report` prints)."""
    head = ("row", "family", "scenario", "req/s", "CV%", "p95 ms", "eff", "gen-bound", "trials", "fail")
    table = [head]
    for r in rows:
        table.append((r["row"], r["family"], r["scenario"], num(r["rps_median"]),
                      "–" if r["rps_cv_pct"] is None else f"{r['rps_cv_pct']:.1f}" + ("!" if r["unstable"] else ""),
                      num(r["p95_ms"]) + ("" if r["latency_source"] in ("exact", None) else "†"),
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
