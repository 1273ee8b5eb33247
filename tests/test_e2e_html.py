"""report.html as a person sees it: built from synthetic run folders (every family, flagged trials, an
I/O section, a capacity ladder, two Django versions, a compare), opened from file:// in headless
Chromium (Debian's, driven by Playwright through its executable path: no browser download), and
checked on the rendered page: one table row per summary.csv row, sorting and a filter change what is
shown, every chart drew its SVG, nothing was fetched from the network, the console stayed clean.
The page itself (self-contained, the data it embeds) is checked without a browser first."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from asgibench import report
from asgibench.report import compare, html
from helpers import skip_unless_ci

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), None)

ROWS = [  # variant, family, server, worker, app, rps of the 3 trials
    ("gunicorn-sync", "wsgi", "gunicorn", "sync", "benchproject.wsgi:application", (410, 420, 430)),
    ("gunicorn-gthread", "wsgi", "gunicorn", "gthread", "benchproject.wsgi:application", (300, 390, 450)),
    ("uvicorn", "asgi", "uvicorn", "", "benchproject.asgi:application", (520, 530, 525)),
    ("fastapi-asyncpg", "fastapi", "uvicorn", "", "fastapi_app.fastapi_asyncpg:app", (1500, 1520, 1490)),
    ("raw-asgi-asyncpg", "reference", "uvicorn", "", "fastapi_app.raw_asyncpg:app", (2500, 2550, 2520)),
]


def _meta(variant, family, server, worker, app, rps, trial, *, matrix="m1", scenario="constant", flow="api",
          django="5.2.1", bound=False, imbalanced=False, capacity=None, efficiency=None):
    plan = {"scenario": scenario, "flow": flow, "users": 8, "peak_users": 8, "seconds": 10.0, "api_prefix": "/api/",
            "io_seconds": 0.5, "time_scale": 1.0, "processes": 1}
    summary = {"requests": int(rps * 10), "failures": 0, "rps": float(rps),
               "exact_percentiles_ms": {"p50": 800 / rps, "p90": 1500 / rps, "p95": 2000 / rps, "p99": 3000 / rps},
               "cost": {"server_us_per_request": 1e6 / rps * 0.8, "db_us_per_request": 150.0,
                        "generator_us_per_request": 90.0, "capacity_per_server_core": rps / 0.8},
               "memory": {"server_pss_mb": {"steady": 60.0 + trial, "peak": 70.0}},
               "balance": {"imbalanced": imbalanced, "reason": "worker shares 94/6%" if imbalanced else ""}}
    if efficiency:
        summary["concurrency"] = {"efficiency": efficiency, "ideal_rps": 16.0}
    m = {"status": "completed", "plan": plan, "python": "3.11", "started_at": f"2026-12-01T00:00:0{trial}Z",
         "variant": {"name": variant, "family": family, "server": server, "worker": worker, "app": app,
                     "serves": ["api"]},
         "server": {"workers": 2, "db_conn": "pool"}, "matrix": {"id": matrix, "trial": trial, "trials": 3},
         "generator": {"cpu_percent_of_one_core": 97.0 if bound else 40.0, "bound": bound,
                       "bound_reasons": ["generator CPU 97% of one core per process"] if bound else []},
         "django": {"requested": None, "version": django}, "summary": summary}
    if capacity:
        m["capacity"] = {"capacity_rps": capacity, "slo": {"p99_ms": 250.0}, "steps": [
            {"phase": "ladder", "offered_rps": r, "achieved_rps": min(r, capacity * 1.02), "p99_ms": p, "ok": ok,
             "errors_pct": 0.0, "reason": "" if ok else "p99 over the SLO"}
            for r, p, ok in ((capacity * 0.25, 8, True), (capacity * 0.5, 9, True), (capacity, 30, True),
                             (capacity * 1.5, 900, False))]}
    return m


def make_runs(root: Path) -> list[Path]:
    metas = []
    for i, (variant, family, server, worker, app, rpss) in enumerate(ROWS):
        for t, rps in enumerate(rpss, 1):
            metas.append(_meta(variant, family, server, worker, app, rps, t, bound=(variant == "fastapi-asyncpg"
                                                                                    and t == 2),
                               imbalanced=(variant == "gunicorn-sync" and t == 1)))
            metas.append(_meta(variant, family, server, worker, app, rps * 0.9, t, matrix="m-dj42", django="4.2.20"))
    for t in (1, 2, 3):
        metas.append(_meta("uvicorn", "asgi", "uvicorn", "", "benchproject.asgi:application", 15.0 + t, t,
                           scenario="io", flow="io", efficiency=0.9 + t / 100))
        metas.append(_meta("uvicorn", "asgi", "uvicorn", "", "benchproject.asgi:application", 500.0 + t, t,
                           scenario="capacity", capacity=480.0 + t))
    dirs = []
    for i, m in enumerate(metas):
        d = root / m["variant"]["name"] / f"run{i:03d}"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps(m))
        dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    dirs = make_runs(root)
    res = compare.compare(["m-dj42"], ["m1"], root)
    compare.write_outputs(res, root / "compare" / "m-dj42-vs-m1")
    out = report.build(dirs, root, charts=False, calibration=root / "none.json")
    return root, out


def test_the_page_is_self_contained_and_embeds_every_summary_row(built):
    root, out = built
    page = out["html"].read_text()
    assert out["html"] == root / "report.html"
    # plotly.js itself inlined; nothing else loaded from elsewhere: no src/href to a network address
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in page
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page.replace(get_plotlyjs(), ""))
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))
    csv_rows = list(csv.DictReader(open(root / "summary.csv")))
    assert [r["row"] for r in data["rows"]] == [r["row"] for r in csv_rows]
    assert set(csv_rows[0]) <= set(data["columns"])  # every summary.csv column is a table column
    by = {(r["matrix_id"], r["scenario"], r["row"]): r for r in data["rows"]}
    sync = by[("m1", "constant", "gunicorn-sync")]
    assert sync["worker"] == "sync" and sync["orm"] == "Django ORM" and sync["django"] == "5.2.1"
    assert [f["flag"] for f in sync["_flags"]] == ["imbalanced"] and "94/6%" in sync["_flags"][0]["reason"]
    assert sync["_figs"]["rps"]["values"] == [410.0, 420.0, 430.0] and sync["_runs"][0].startswith("gunicorn-sync/")
    assert by[("m1", "constant", "gunicorn-gthread")]["_flags"][0]["flag"] == "unstable"
    assert by[("m1", "constant", "fastapi-asyncpg")]["mode"] == "async"
    cap = by[("m1", "capacity", "uvicorn")]
    assert len(cap["_capacity"]) == 4 and cap["_slo_p99"] == 250
    assert data["compare"]["_folder"] == "compare/m-dj42-vs-m1"


def test_a_column_another_step_adds_appears_without_code_here(built, tmp_path):
    """summary rows are read generically: a key the table does not know becomes a column."""
    root, _ = built
    trials = [report.load_trial(d) for d in sorted(root.glob("uvicorn/run*"))]
    groups = report.group_trials([t for t in trials if t])
    report.summarize(groups, tmp_path, None)
    groups[0].row["brand_new_figure"] = 42.5
    data = html.page_data(groups, {}, tmp_path)
    assert data["columns"][-1] == "brand_new_figure" and data["rows"][0]["brand_new_figure"] == 42.5


@pytest.mark.e2e
def test_report_html_in_headless_chromium(built, tmp_path, capsys):
    if CHROMIUM is None:
        skip_unless_ci("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    root, out = built
    n_rows = len(list(csv.DictReader(open(root / "summary.csv"))))
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out["html"].as_uri())
            page.wait_for_function("document.querySelectorAll('.chart').length > 0 && [...document.querySelectorAll("
                                   "'.chart')].every(d => d.querySelector('.main-svg'))", timeout=30_000)
            body = "#table tbody tr"
            assert page.locator(body).count() == n_rows
            # every chart drew: one plotly SVG per chart div; the kinds the data calls for are all there
            charts = page.locator(".chart")
            kinds = set(charts.evaluate_all("ds => ds.map(d => d.dataset.kind)"))
            assert {"throughput", "latency", "cost", "memory", "efficiency", "capacity", "migration"} <= kinds
            assert charts.count() == page.locator(".chart .main-svg").evaluate_all(
                "ss => new Set(ss.map(s => s.closest('.chart'))).size")
            assert page.locator(".chart .bars .point, .chart .scatterlayer .point").count() > 20  # drawn marks
            # the answer first: per section the best of each family and the ceiling
            answer = page.locator("#answer").inner_text()
            assert "best WSGI" in answer and "raw ceiling" in answer and "raw-asgi-asyncpg" in answer
            # sorting by req/s: the order of the rows changes, then reverses
            first = lambda: page.locator(f"{body} td:first-child").all_inner_texts()  # noqa: E731
            before = first()
            page.locator("#table th", has_text=re.compile("^rps_median$")).click()
            asc = first()
            page.locator("#table th", has_text=re.compile("^rps_median$")).click()
            desc = first()
            assert asc != before and desc != asc
            rps_sorted = [float(x.replace(",", "")) for x in page.locator(f"{body} td:nth-child("
                          f"{_col(page, 'rps_median')})").all_inner_texts() if x != "–"]
            assert rps_sorted == sorted(rps_sorted, reverse=True)
            # a filter: only the WSGI rows stay, the charts follow
            page.select_option("select[name=family]", "wsgi")
            fams = page.locator(f"{body} td:nth-child({_col(page, 'family')})").all_inner_texts()
            assert fams and set(fams) == {"wsgi"} and len(fams) < n_rows
            assert f"{len(fams)} of {n_rows} rows" in page.locator("#count").inner_text()
            # flagged rows are marked, the reason on hover (title)
            page.select_option("select[name=family]", "")
            assert page.locator(f"{body} .flag[title*='imbalanced: worker shares 94/6%']").count() == 1
            # a bar says why on hover: fastapi-asyncpg had a generator-bound trial (bars follow the table's order)
            chart = ".chart[data-kind=throughput][data-section='m1 / constant / api']"
            bars = page.locator(f"{chart} .bars .point")
            order = page.evaluate(f"document.querySelector(\"{chart}\").data[0].x")
            assert bars.count() == len(ROWS) == len(order)
            bars.nth(order.index("fastapi-asyncpg")).hover(force=True)
            tip = page.locator(".hoverlayer .hovertext").first.text_content(timeout=5_000)
            assert "fastapi-asyncpg" in tip and "generator-bound" in tip and "CV" in tip and "trials 3" in tip
            assert "Compare: m-dj42 vs m1" in page.locator("#compare").inner_text()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000  # a page, not a blank
            with capsys.disabled():  # in the test output, passed or not: where to look at the page
                print(f"\nscreenshot of report.html in headless Chromium: {shot}")
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests


def _col(page, name: str) -> int:
    heads = page.locator("#table th").all_inner_texts()
    return [h.strip(" ▲▼") for h in heads].index(name) + 1
