"""report.html: one self-contained page (plotly.js embedded, the data as JSON, no CDN, no server: it
works offline from file://), written beside report.md by build().

What the page holds, in order: the answer per section and flow (the best configuration of each family
by the figure the report's table leads with, summary.csv's "headline" (capacity at SLO where
measured), and the raw ceiling:
the best reference row), the full table (every summary.csv column, read generically from the rows,
so a column another step adds appears without code here; sortable by a click on its header,
filterable by family, server, worker class, ORM, sync/async, flow, Python, Django version, section
and free text), then the charts per section and flow (throughput or capacity, latency percentiles,
cost per request, memory, I/O efficiency, the capacity hockey stick, the Django migration), then the
newest `compare` of the results folder. Charts follow the table's filters; hovering a bar shows the
figure, its CV and trials and the trial flags with their reasons (figures.flags: flagged bars are
hatched and marked ⚠); a click opens the run folder. Why plotly: one JavaScript file that embeds
(plotly.offline.get_plotlyjs), charts declared as JSON that the page's own script re-draws when a
filter changes, hover templates and click events built in; bokeh's inline resources would tie the
charts to documents built in Python, apart from the table's filters.

The page's script and style are report_template.html beside this module (package data). A new chart:
a figure key in CHART_FIGURES (its median/CV/trials per row are then in the data) and one function
in the template's CHARTS; a new filter: FACETS and facets().
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from asgibench import figures, stats
from asgibench.report.fmt import rel
from asgibench.report.groups import CSV_COLUMNS, FAMILY_TITLES, Group

TEMPLATE = Path(__file__).with_name("report_template.html")
# the filters of the table, in order: (column, label); facets() fills the ones summary.csv lacks
FACETS = (("family", "family"), ("server", "server"), ("worker", "worker class"), ("orm", "ORM"),
          ("mode", "sync/async"), ("flow", "flow"), ("python", "Python"), ("django", "Django"),
          ("section", "section"))
# app module (meta.json variant.app) -> the ORM / database layer it uses
ORMS = (("sqlalchemy", "SQLAlchemy"), ("tortoise", "Tortoise"), ("gino", "GINO"), ("django_orm", "Django ORM"),
        ("asyncpg", "asyncpg (raw SQL)"), ("psycopg", "psycopg (raw SQL)"), ("benchproject", "Django ORM"))
ASYNC_APPS = ("asyncpg", "sqlalchemy_async", "tortoise", "gino", "django_orm")


def facets(g: Group) -> dict:
    """The filter values of a group that summary.csv does not hold as such."""
    t = (g.trials or g.excluded)[0]
    v = t.variant
    app = v.get("app") or ""
    versions = sorted({str((x.meta.get("django") or {}).get("version")) for x in g.all_trials
                       if (x.meta.get("django") or {}).get("version")})
    return {
        "worker": v.get("worker") or ("-" if v.get("server") != "gunicorn" else "sync"),
        "orm": next((name for k, name in ORMS if k in app), "-"),
        "mode": "async" if "+async" in g.flow or any(k in app for k in ASYNC_APPS) else "sync",
        "django": ", ".join(versions) or "-",
    }


def row_flags(g: Group, out_dir: Path) -> list[dict]:
    """Every flag of the group's trials (figures.flags) plus the row's own (unstable CV, generator-bound
    as the report judged it), each with its reason and the trial it is about."""
    out = [{"flag": f, "reason": why, "run": rel(t.path, out_dir)} for t in g.all_trials for f, why in
           figures.flags(t.meta)]
    r = g.row
    if r.get("unstable"):
        out.append({"flag": "unstable", "reason": f"req/s CV {r.get('rps_cv_pct')}% > {stats.UNSTABLE_CV_PCT:g}%",
                    "run": ""})
    if r.get("generator_bound") and not any(f["flag"] == "generator-bound" for f in out):
        out.append({"flag": "generator-bound", "reason": r.get("generator_bound_reasons") or "flagged", "run": ""})
    return out


def figure_data(g: Group, out_dir: Path) -> dict:
    """Per figures.FIGURES figure the row has: median, CV, trial count and each trial's value + folder."""
    out = {}
    for fig in figures.FIGURES:
        pairs = [(fig.of(t.meta), rel(t.path, out_dir)) for t in g.trials]
        pairs = [(v, p) for v, p in pairs if v is not None]
        if pairs:
            vals = [v for v, _ in pairs]
            out[fig.key] = {"median": stats.median(vals), "cv": stats.cv_pct(vals), "n": len(vals),
                            "values": vals, "runs": [p for _, p in pairs]}
    return out


def capacity_steps(g: Group) -> tuple[list, float | None]:
    """The ladder of the group's first trial that has one (meta["capacity"]["steps"]) and its SLO's p99."""
    for t in g.trials:
        cap = t.meta.get("capacity") or {}
        if cap.get("steps"):
            return [s for s in cap["steps"] if isinstance(s, dict)], (cap.get("slo") or {}).get("p99_ms")
    return [], None


def _json_cell(v):
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def page_data(groups: list[Group], best: dict, out_dir: Path, compare: dict | None = None) -> dict:
    rows, extra = [], []
    for i, g in enumerate(groups):
        row = {k: _json_cell(v) for k, v in g.row.items()}
        for k in row:
            if k not in CSV_COLUMNS and k not in extra:
                extra.append(k)
        row.update({k: v for k, v in facets(g).items() if k not in g.row})
        steps, slo_p99 = capacity_steps(g)
        row.update(_i=i, _flags=row_flags(g, out_dir), _runs=[rel(t.path, out_dir) for t in g.all_trials],
                   _figs=figure_data(g, out_dir), _capacity=steps, _slo_p99=slo_p99,
                   _chart_section=g.row.get("section"))  # "<matrix> / <scenario> / <flow>": one flow per chart
        rows.append(row)
    facet_cols = [k for k, _ in FACETS if k not in CSV_COLUMNS]
    columns = ["row", *facet_cols, *(c for c in CSV_COLUMNS if c != "row"), *extra]
    return {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "columns": columns, "facets": [list(f) for f in FACETS], "rows": rows,
        "figures": {f.key: {"label": f.label, "unit": f.unit, "better": f.better, "doc": f.doc}
                    for f in figures.FIGURES},
        "families": FAMILY_TITLES, "ceilings": {f"{k[0]} / {k[1]}": list(v) for k, v in best.items()},
        "unstable_cv_pct": stats.UNSTABLE_CV_PCT, "compare": compare,
    }


def newest_compare(out_dir: Path) -> dict | None:
    """The newest compare.json under out_dir/compare/ (what `asgibench compare` wrote), with its folder."""
    found = sorted((out_dir / "compare").glob("*/compare.json"), key=lambda p: p.stat().st_mtime)
    for p in reversed(found):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        data["_folder"] = rel(p.parent, out_dir)
        return data
    return None


def _finite(v):
    """JSON the browser parses: NaN and infinities (never a figure) become null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def render(data: dict) -> str:
    """The page: the template with plotly.js and the data inlined (`</` escaped inside the JSON)."""
    from plotly.offline import get_plotlyjs

    payload = json.dumps(_finite(data), default=str, allow_nan=False).replace("</", "<\\/")
    page = TEMPLATE.read_text()
    head, rest = page.split("/*PLOTLY_JS*/", 1)
    return head + get_plotlyjs() + rest.replace("/*DATA_JSON*/", payload, 1)


def write_html(groups: list[Group], best: dict, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / "report.html"
    path.write_text(render(page_data(groups, best, out_dir, newest_compare(out_dir))))
    return path
