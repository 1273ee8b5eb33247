"""The report's charts: PNG, matplotlib Agg, one set per section; a chart with no data is not drawn.

  charts/rps-<section>.png          median req/s per row, +-1 standard deviation, CV printed, colour =
                                    family, generator-bound rows hatched, best reference row as the
                                    "raw ceiling" line
  charts/latency-<section>.png      p50 / p95 / p99 per row
  charts/concurrency-<section>.png  io scenario: efficiency per row, line at 1.0 (fully concurrent)
  charts/cost-<section>.png         CPU microseconds per request, stacked: server / PostgreSQL / load
                                    generator (median over trials per row), server CV printed
  charts/capacity-<section>.png     capacity scenario: p99 vs offered rate (the "hockey stick"), one
                                    curve per row from meta["capacity"]["steps"] of its median trial
                                    (ladder and bisection steps; the overload step as a cross), the
                                    SLO's p99 as a line, each row's knee (capacity at SLO) marked
  charts/ramp-<section>.png         ramped scenarios: req/s (FLOW excluded, from the per-second totals
                                    of locust_stats_history.csv) and users over time, median trial per row
  (rps and latency are not drawn for the capacity scenario: its latency per step is the capacity chart)

A section is one matrix, scenario and flow (groups.sections): no chart holds rows of two flows.
A new chart: one function (plt, section, rows, best) -> a figure or None (no data), one entry in
CHARTS (its file name prefix and the alt text report.md shows it with) and a line above. Bar charts
(one bar per row, top to bottom in table order) lay out their axes with _finish, the one helper for
row labels, family separators, title, grid and the family legend.
"""
from __future__ import annotations

import csv
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import benchcontract
from asgibench import stats, variants
from asgibench.report.findings import SERIALISES_BELOW
from asgibench.report.fmt import num
from asgibench.report.groups import FAMILY_TITLES, NOT_RAMPED, Group, sections
from asgibench.report.trials import Trial

FAMILY_COLOURS = {"wsgi": "#1f77b4", "asgi": "#ff7f0e", "fastapi": "#2ca02c", "reference": "#7f7f7f", "?": "#9467bd"}
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 8, "borderaxespad": 0}


def make_charts(groups: list[Group], best: dict, charts_dir: Path) -> dict:
    """{section: {kind of CHARTS: Path}}; a chart with no data is not drawn."""
    plt = _pyplot()
    charts_dir.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    for section, rows in sections(groups).items():
        rows = [g for g in rows if g.trials]
        files = out.setdefault(section, {})
        for kind, _, chart in CHARTS:
            fig = chart(plt, section, rows, best)
            if fig is not None:
                files[kind] = _save(fig, charts_dir / f"{kind}-{_slug(section)}.png", plt)
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(section: tuple) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(section)).strip("-")


def _title(section: tuple) -> str:
    return f"{section[1]}, {section[2]} flow — {section[0]}"


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -- bar charts: one bar per row -------------------------------------------------------------------

@dataclass
class _Bars:
    order: list  # bars top-to-bottom in table order: reversed for barh
    colours: list

    @property
    def height(self) -> float:
        return max(2.6, 0.42 * len(self.order) + 1.6)


def _bars(rows: list[Group]) -> _Bars:
    order = list(reversed(rows))
    return _Bars(order, [FAMILY_COLOURS.get(g.family, FAMILY_COLOURS["?"]) for g in order])


def _finish(ax, bars: _Bars, xlabel: str, title: str, extra=(), families: bool = True) -> None:
    """The one axes layout of a bar chart: row labels, a line between families, the x label, the
    title, the grid and the family legend (without it: families=False; plus `extra` handles)
    outside on the right."""
    from matplotlib.patches import Patch

    order = bars.order
    ax.set_yticks(range(len(order)), [g.label for g in order], fontsize=9)
    for i in range(1, len(order)):
        if order[i].family != order[i - 1].family:
            ax.axhline(i - 0.5, color="black", lw=0.6, alpha=0.5)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    fams = [f for f in variants.FAMILIES + ("?",) if any(g.family == f for g in order)]
    handles = [Patch(color=FAMILY_COLOURS[f], label=FAMILY_TITLES.get(f, "other")) for f in fams if families]
    handles += list(extra)
    ax.legend(handles=handles, **LEGEND_OUTSIDE)
    ax.figure.tight_layout()


def rps_chart(plt, section: tuple, rows: list[Group], best: dict):
    from matplotlib.patches import Patch

    if section[1] == "capacity":  # a ladder's req/s is its steps' mix: the capacity chart says what it served
        return None
    bars = _bars(rows)
    order = bars.order
    rps = [g.row["rps_median"] for g in order]
    if not any(r for r in rps if r):
        return None
    fig, ax = plt.subplots(figsize=(10, bars.height))
    err = [g.row["rps_stdev"] or 0 for g in order]
    drawn = ax.barh(range(len(order)), [r or 0 for r in rps], xerr=err, color=bars.colours,
                    error_kw={"ecolor": "black", "capsize": 3, "lw": 1})
    xmax = max((r or 0) + e for r, e in zip(rps, err))
    extra = []
    for bar, g in zip(drawn, order):
        if g.row["generator_bound"]:
            bar.set_hatch("///")
            bar.set_edgecolor("black")
        cv = g.row["rps_cv_pct"]
        note = f"{num(g.row['rps_median'])}" + ("" if cv is None else f"  CV {cv:.1f}%")
        note += " (unstable)" if g.row["unstable"] else ""
        note += "  gen-bound" if g.row["generator_bound"] else ""
        ax.text(bar.get_width() + (g.row["rps_stdev"] or 0) + xmax * 0.01, bar.get_y() + bar.get_height() / 2,
                note, va="center", fontsize=8)
    if any(g.row["generator_bound"] for g in order):
        extra.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="generator-bound"))
    if section in best:
        lbl, ceil = best[section]
        ax.axvline(ceil, color="crimson", ls="--", lw=1.2)
        extra.append(plt.Line2D([], [], color="crimson", ls="--", label=f"raw ceiling: {lbl} ({num(ceil)})"))
    ax.set_xlim(0, xmax * 1.75 if xmax else 1)
    _finish(ax, bars, "median req/s over trials (error bar: ±1 standard deviation)",
            f"Throughput per row — {_title(section)}", extra)
    return fig


def latency_chart(plt, section: tuple, rows: list[Group], best: dict):
    if section[1] == "capacity":  # percentiles over the whole ladder mean nothing: latency per step is below
        return None
    bars = _bars(rows)
    order = bars.order
    lat = [(g.row["p50_ms"], g.row["p95_ms"], g.row["p99_ms"]) for g in order]
    if not any(p is not None for trio in lat for p in trio):
        return None
    fig, ax = plt.subplots(figsize=(10, max(2.6, 0.55 * len(order) + 1.6)))
    h = 0.26
    for k, (name, shade) in enumerate((("p50", 1.0), ("p95", 0.65), ("p99", 0.35))):
        vals = [trio[k] or 0 for trio in lat]
        ax.barh([i + (1 - k) * h for i in range(len(order))], vals, height=h,
                color=bars.colours, alpha=shade, edgecolor="black", lw=0.3)
    for i, (g, trio) in enumerate(zip(order, lat)):
        if trio[2] is not None:
            src = "" if g.row["latency_source"] == "exact" else " (Locust)"
            ax.text(max(t or 0 for t in trio) * 1.02, i, f"p50 {num(trio[0])} / p95 {num(trio[1])} / "
                    f"p99 {num(trio[2])} ms{src}", va="center", fontsize=7.5)
    top = max((t or 0) for trio in lat for t in trio)
    ax.set_xlim(0, top * 1.55 if top else 1)
    _finish(ax, bars, "response time, ms (bars top to bottom: p50, p95, p99; median over trials)",
            f"Latency percentiles per row — {_title(section)}")
    return fig


def concurrency_chart(plt, section: tuple, rows: list[Group], best: dict):
    bars = _bars(rows)
    order = bars.order
    eff = [g.row["efficiency"] for g in order]
    if not any(e is not None for e in eff):
        return None
    fig, ax = plt.subplots(figsize=(10, bars.height))
    ax.barh(range(len(order)), [e or 0 for e in eff], color=bars.colours)
    for i, (g, e) in enumerate(zip(order, eff)):
        if e is not None:
            what = f"{e:.2f}  ({num(g.row['rps_median'])} of {num(g.row['ideal_rps'])} req/s)"
            ax.text(max(e, 1.0) + 0.02, i, what, va="center", fontsize=8)
    ax.axvline(1.0, color="black", lw=1.2)
    ax.axvline(SERIALISES_BELOW, color="crimson", ls=":", lw=1)
    ax.text(1.0, len(order) - 0.4, " fully concurrent", fontsize=8, va="bottom")
    ax.text(SERIALISES_BELOW, len(order) - 0.4, " serialises below", fontsize=8, va="bottom", color="crimson")
    ax.set_xlim(0, max(1.5, max(e or 0 for e in eff) + 0.5))
    ax.set_ylim(-0.6, len(order) + 0.2)
    _finish(ax, bars, "concurrency efficiency = achieved req/s ÷ (users / seconds per request)",
            f"I/O concurrency per row — {_title(section)}")
    return fig


COST_PARTS = (("server_us_per_request_median", "server", "#d62728"),
              ("db_us_per_request_median", "PostgreSQL", "#9467bd"),
              ("generator_us_per_request_median", "load generator", "#bcbd22"))


def cost_chart(plt, section: tuple, rows: list[Group], best: dict):
    from matplotlib.patches import Patch

    bars = _bars(rows)
    order = bars.order
    if not any(g.row.get(col) is not None for g in order for col, _, _ in COST_PARTS):
        return None
    fig, ax = plt.subplots(figsize=(10, bars.height))
    left = [0.0] * len(order)
    for col, _, colour in COST_PARTS:
        vals = [g.row.get(col) or 0.0 for g in order]
        ax.barh(range(len(order)), vals, left=left, color=colour, edgecolor="black", lw=0.3)
        left = [a + b for a, b in zip(left, vals)]
    top = max(left) or 1.0
    for i, g in enumerate(order):
        parts = " / ".join(num(g.row.get(col)) for col, _, _ in COST_PARTS)
        cv = g.row.get("server_us_per_request_cv_pct")
        ax.text(left[i] + top * 0.01, i, parts + ("" if cv is None else f"  (server CV {cv:.1f}%)"),
                va="center", fontsize=8)
    ax.set_xlim(0, top * 1.7)
    _finish(ax, bars, "CPU µs per request, median over trials (server / PostgreSQL / load generator)",
            f"Cost per request — {_title(section)}",
            [Patch(color=colour, label=label) for _, label, colour in COST_PARTS], families=False)
    return fig


CURVE_PHASES = ("ladder", "bisect")


def capacity_curve(trial: Trial) -> tuple[list, list, list]:
    """(offered req/s, p99 ms, overload [(offered, p99)]) of one trial's meta["capacity"]["steps"]:
    the ladder and bisection steps sorted by offered rate; the overload step apart (it is held past
    the knee on purpose and would hide the curve's shape)."""
    steps = [s for s in (trial.capacity.get("steps") or []) if isinstance(s, dict)
             and s.get("offered_rps") is not None and s.get("p99_ms") is not None]
    curve = sorted((s for s in steps if s.get("phase") in CURVE_PHASES), key=lambda s: s["offered_rps"])
    over = [(s["offered_rps"], s["p99_ms"]) for s in steps if s.get("phase") == "overload"]
    return [s["offered_rps"] for s in curve], [s["p99_ms"] for s in curve], over


def capacity_chart(plt, section: tuple, rows: list[Group], best: dict):
    rows = [g for g in rows if any(t.capacity.get("steps") for t in g.trials)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 5.5))
    cmap = plt.get_cmap("tab10")
    slo = None
    for i, g in enumerate(rows):
        t = _median_trial(g, "capacity_rps")
        xs, ys, over = capacity_curve(t)
        colour = cmap(i % 10)
        ls = ("-", "--", ":")[i // 10 % 3]
        ax.plot(xs, ys, color=colour, ls=ls, marker="o", ms=3.5, lw=1.4, label=g.label)
        for x, y in over:
            ax.plot([x], [y], color=colour, marker="x", ms=8, mew=2)
        cap, at = t.capacity.get("capacity_rps"), t.capacity.get("at_capacity") or {}
        if cap is not None and at.get("p99_ms") is not None:
            ax.plot([cap], [at["p99_ms"]], color=colour, marker="*", ms=15, mec="black", mew=0.6)
            ax.annotate(f" {num(cap)}", (cap, at["p99_ms"]), fontsize=8, color=colour, va="bottom")
        slo = slo or (t.capacity.get("slo") or {}).get("p99_ms")
    handles = ax.get_legend_handles_labels()[0]
    if slo:
        ax.axhline(slo, color="crimson", ls="--", lw=1.2)
        handles.append(plt.Line2D([], [], color="crimson", ls="--", label=f"SLO p99 {num(slo)} ms"))
    handles.append(plt.Line2D([], [], color="gray", marker="*", ls="", ms=12, label="knee: capacity at SLO"))
    handles.append(plt.Line2D([], [], color="gray", marker="x", ls="", ms=8, mew=2, label="overload step"))
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, req/s (open model: arrivals do not wait for responses)")
    ax.set_ylabel("p99 from the intended start, ms (log)")
    ax.set_title(f"Latency vs offered rate — {_title(section)} (median trial per row)", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=handles, **LEGEND_OUTSIDE)
    fig.tight_layout()
    return fig


# -- the ramp: req/s and users over time -----------------------------------------------------------

def ramp_chart(plt, section: tuple, rows: list[Group], best: dict):
    if section[1] in NOT_RAMPED:
        return None
    series = [(g, ramp_series(_median_trial(g).path)) for g in rows]
    series = [(g, s) for g, s in series if s]
    if not series:
        return None
    families = variants.FAMILIES

    def of(fam, g):
        return g.family == fam or (fam == "?" and g.family not in families)

    fams = [f for f in families + ("?",) if any(of(f, g) for g, _ in series)]
    fig, axes = plt.subplots(len(fams) + 1, 1, figsize=(11, 2.8 * len(fams) + 1.8), sharex=True,
                             gridspec_kw={"height_ratios": [3] * len(fams) + [1.3]}, squeeze=False)
    axes = [a[0] for a in axes]
    cmap = plt.get_cmap("tab10")
    longest = max(len(s[0]) for _, s in series)
    window = 5 if longest > 30 else 1
    axu = axes[-1]
    for ax, fam in zip(axes, fams):
        mine = [(g, s) for g, s in series if of(fam, g)]
        for i, (g, (xs, us, rs)) in enumerate(mine):
            ax.plot(xs, _smooth(rs, window), color=cmap(i % 10), ls=("-", "--", ":")[i // 10 % 3],
                    lw=1.5, label=g.label)
        ax.set_ylabel(f"{FAMILY_TITLES.get(fam, 'other')}\nreq/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for g, (xs, us, rs) in series:
        axu.plot(xs, us, color="dimgray", lw=1, alpha=0.6)
    axes[0].set_title(f"Throughput as users ramp — {_title(section)} (median trial per row; FLOW excluded"
                      + (f"; {window}-sample mean" if window > 1 else "") + ")", fontsize=11)
    axu.set_ylabel("users")
    axu.set_xlabel("seconds since the measured run started")
    axu.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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


def _median_trial(g: Group, key: str = "rps") -> Trial:
    """The trial whose figure `key` is nearest the group's median (the curve a chart shows)."""
    m = stats.median(t.figure(key) for t in g.trials)
    return min(g.trials, key=lambda t: abs((t.figure(key) or 0) - (m or 0)))


# (file name prefix = the key of make_charts' answer, alt text in report.md, chart): in report.md's order.
CHARTS = (
    ("rps", "req/s per row", rps_chart),
    ("latency", "latency percentiles", latency_chart),
    ("concurrency", "concurrency efficiency", concurrency_chart),
    ("cost", "CPU cost per request: server / PostgreSQL / generator", cost_chart),
    ("capacity", "p99 vs offered rate, SLO and knee", capacity_chart),
    ("ramp", "req/s and users over time", ramp_chart),
)
