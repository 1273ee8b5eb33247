"""The report: grouping, medians and CVs (fast, in memory), then a report built from real run
folders made here (e2e: real servers, PostgreSQL and Locust), its numbers checked against the Locust
files they came from, its charts against PNG magic and matplotlib, its links against the disk."""
from __future__ import annotations

import ast
import csv
import inspect
import json
import re
import statistics
from pathlib import Path

import numpy
import pytest

from asgibench import report, results, stats, variants
from asgibench.errors import UsageError
from asgibench.report import findings, groups, trials
from helpers import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- fast: statistics, grouping, figures -------------------------------------------------------------

def test_unstable_threshold_is_five_percent_on_both_sides(tmp_path):
    """README: a CV above 5% is unstable. Two trials of 100 and x: CV = |x-100|/sqrt(2) / mean."""
    stable = [_trial(tmp_path, n, _meta(rps=r, matrix=("m1", i))) for i, (n, r) in enumerate([("a", 100.0),
                                                                                           ("b", 107.2)], 1)]
    unstable = [_trial(tmp_path, n, _meta("daphne", rps=r, matrix=("m1", i)))
                for i, (n, r) in enumerate([("c", 100.0), ("d", 107.5)], 1)]
    rows = {r["variant"]: r for r in report.build([t.path for t in stable + unstable], tmp_path / "out",
                                                  charts=False, calibration=tmp_path / "none.json")["rows"]}
    assert rows["uvicorn"]["rps_cv_pct"] == pytest.approx(4.914, abs=0.01) and rows["uvicorn"]["unstable"] is False
    assert rows["daphne"]["rps_cv_pct"] == pytest.approx(5.111, abs=0.01) and rows["daphne"]["unstable"] is True


def test_median_and_cv():  # the report's figures use stats' definitions
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([None, 5]) == 5
    assert stats.median([]) is None
    # sample standard deviation (n-1), not the population one: 90, 100, 110 -> stdev 10, mean 100
    assert stats.cv_pct([90, 100, 110]) == pytest.approx(10.0)
    assert stats.cv_pct([100, 100]) == 0.0
    assert stats.cv_pct([100]) is None  # one trial: no variance estimate
    assert stats.cv_pct([0, 0]) is None


def _meta(variant="uvicorn", family="asgi", scenario="constant", flow="original", rps=100.0, *, status="completed",
          matrix=None, users=4, workers=2, async_api=False, exact=True, efficiency=None, gen_cpu=10.0, bound=None,
          failures=0, requests=1000):
    plan = {"scenario": scenario, "flow": flow, "users": users, "peak_users": users, "seconds": 4.0,
            "api_prefix": "/async_api/" if async_api else "/api/", "io_seconds": 0.5, "time_scale": 1.0,
            "processes": 1, "with_slowapi": False, "only_slowapi": False}
    summary = {"requests": requests, "failures": failures, "rps": rps, "seconds": requests / rps,
               "locust_percentiles_ms": {"p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 40.0}, "max_ms": 55.0}
    if exact:
        summary["exact_percentiles_ms"] = {"p50": 9.5, "p90": 19.5, "p95": 29.5, "p99": 39.5, "max": 50.0,
                                           "count": requests}
    if efficiency is not None:
        summary["concurrency"] = {"efficiency": efficiency, "ideal_rps": 8.0, "achieved_rps": rps}
    gen = {"cpu_percent_of_one_core": gen_cpu, "cpu_us_per_request": 100.0, "cpu_warning": False, "processes": 1}
    if bound is not None:
        gen.update(bound=bound, bound_reasons=["test reason"] if bound else [])
    serves = ["admin", "api", "static"] if family in ("wsgi", "asgi") else ["api"]
    meta = {"status": status, "variant": {"name": variant, "family": family, "server": "uvicorn", "serves": serves},
            "plan": plan, "server": {"workers": workers, "db_conn": "pool"}, "python": "3.11",
            "generator": gen, "started_at": "2026-11-25T00:00:00Z"}
    if status == "completed":
        meta["summary"] = summary
    if matrix:
        meta["matrix"] = {"id": matrix[0], "trial": matrix[1], "trials": 3}
    return meta


def _trial(tmp_path, name, meta):
    d = tmp_path / meta["variant"]["name"] / name
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps(meta))
    return trials.load_trial(d)


def test_grouping_by_matrix_variant_scenario_flow_and_settings(tmp_path):
    ts = [
        _trial(tmp_path, "a", _meta(rps=100, matrix=("m1", 1))),
        _trial(tmp_path, "b", _meta(rps=120, matrix=("m1", 2))),
        _trial(tmp_path, "c", _meta(rps=110, matrix=("m1", 3))),
        _trial(tmp_path, "d", _meta(status="interrupted", matrix=("m1", 3))),
        _trial(tmp_path, "e", _meta(rps=90, matrix=("m2", 1))),  # another matrix: its own row
        _trial(tmp_path, "f", _meta(rps=80, async_api=True)),  # ad-hoc, async flow
        _trial(tmp_path, "g", _meta(rps=70, users=4)),  # ad-hoc, different users: never one median
        _trial(tmp_path, "h", _meta(rps=75, users=8)),
        _trial(tmp_path, "i", _meta(rps=7, scenario="io", flow="io", efficiency=0.9)),
    ]
    made = groups.group_trials(ts)
    by = {(g.matrix_id, g.scenario, g.label): g for g in made}
    assert set(by) == {("m1", "constant", "uvicorn"), ("m2", "constant", "uvicorn"),
                       ("ad-hoc", "constant", "uvicorn (async)"), ("ad-hoc", "constant", "uvicorn [users=4]"),
                       ("ad-hoc", "constant", "uvicorn [users=8]"), ("ad-hoc", "io", "uvicorn")}
    m1 = by[("m1", "constant", "uvicorn")]
    assert [t.path.name for t in m1.trials] == ["a", "b", "c"]  # ordered by trial number
    assert [t.path.name for t in m1.excluded] == ["d"]  # listed, not averaged
    row = groups.summarize_group(m1, tmp_path)
    assert row["trials"] == 3 and row["excluded_trials"] == 1
    assert row["rps_median"] == 110
    assert row["rps_cv_pct"] == pytest.approx(9.0909, abs=0.001)  # stdev (n-1) 10 over mean 110
    assert row["unstable"] is True  # 9.1% > 5%
    assert row["requests"] == 3000
    assert row["latency_source"] == "exact" and row["p95_ms"] == 29.5
    assert row["status_problems"] == "interrupted: uvicorn/d"
    assert row["run_dirs"] == "uvicorn/a uvicorn/b uvicorn/c"
    # sections come in a fixed order: matrices first, the I/O scenario after the CPU one
    assert [g.section for g in made][:2] == [("m1", "constant"), ("m2", "constant")]
    assert made[-1].section == ("ad-hoc", "io")


def test_flow_labels():
    assert groups.flow_label({"flow": "original", "api_prefix": "/api/"}) == "original"
    assert groups.flow_label({"flow": "original", "api_prefix": "/async_api/", "with_slowapi": True}) == \
        "original+async+slowapi"
    assert groups.flow_label({"flow": "io", "api_prefix": "/async_api/"}) == "io"  # the probe has no async twin
    assert groups.flow_label({"flow": "api", "only_slowapi": True, "arrival_rate": 50.0}) == "slowapi-only+open@50/s"


def test_latency_falls_back_to_locust_for_the_whole_group(tmp_path):
    runs = [_trial(tmp_path, "a", _meta(rps=100)), _trial(tmp_path, "b", _meta(rps=100, exact=False))]
    g = groups.group_trials(runs)[0]
    row = groups.summarize_group(g, tmp_path)
    assert row["latency_source"] == "locust" and row["p95_ms"] == 30.0 and row["max_ms"] == 55.0
    assert row["unstable"] is False and row["rps_cv_pct"] == 0.0


def test_generator_bound_from_meta_or_derived(tmp_path):
    runs = [_trial(tmp_path, "a", _meta(bound=False)), _trial(tmp_path, "b", _meta(bound=True))]
    flagged = groups.group_trials(runs)[0]
    row = groups.summarize_group(flagged, tmp_path)
    assert row["generator_bound"] is True and row["generator_bound_source"] == "meta"
    assert "uvicorn/b: test reason" in row["generator_bound_reasons"]
    # older runs without the flag: derived from CPU, Locust's warning, and half the calibrated ceiling
    hot = groups.group_trials([_trial(tmp_path, "c", _meta(variant="x", gen_cpu=95.0))])[0]
    assert groups.summarize_group(hot, tmp_path)["generator_bound"] is True
    fast = groups.group_trials([_trial(tmp_path, "d", _meta(variant="y", rps=3000.0, gen_cpu=40.0))])[0]
    assert groups.summarize_group(fast, tmp_path)["generator_bound"] is False
    row = groups.summarize_group(fast, tmp_path, ceiling_rps=5000.0)
    assert row["generator_bound"] is True and row["generator_bound_source"] == "derived"
    assert fast.trials[0].bound(5000.0) == (True, "derived",  # the rule of stats, word for word
                                            stats.generator_bound_reasons(40.0, 1, False, 3000.0, 5000.0))


def test_findings_ceiling_ratio_serialising_and_failures(tmp_path):
    runs = [
        _trial(tmp_path, "a", _meta("raw-asgi-asyncpg", "reference", flow="api", rps=800.0)),
        _trial(tmp_path, "b", _meta("gunicorn-sync", "wsgi", rps=250.0, failures=5)),
        _trial(tmp_path, "c", _meta("raw-asgi-asyncpg", "reference", "io", "io", rps=7.9, efficiency=0.99)),
        _trial(tmp_path, "d", _meta("gunicorn-sync", "wsgi", "io", "io", rps=2.0, efficiency=0.25)),
        _trial(tmp_path, "e", _meta("uvicorn", "asgi", "io", "io", rps=5.0, efficiency=0.62)),
        _trial(tmp_path, "f", _meta("daphne", "asgi", "io", "io", status="server-died")),
        _trial(tmp_path, "g", _meta("raw-asgi-asyncpg-granian", "reference", flow="api", rps=1000.0)),
        _trial(tmp_path, "h", _meta("uvicorn", "asgi", rps=1200.0)),  # faster than every reference row
    ]
    res = report.build([t.path for t in runs], tmp_path / "out", charts=False, calibration=tmp_path / "none.json")
    rows = {(r["scenario"], r["variant"]): r for r in res["rows"]}
    assert rows[("constant", "gunicorn-sync")]["ceiling_ratio"] == 0.25
    # against the best reference row of the same section, whichever row that is (hand-worked ratios)
    assert rows[("constant", "raw-asgi-asyncpg")]["ceiling_ratio"] == 0.8  # listed first, not the best
    assert rows[("constant", "raw-asgi-asyncpg-granian")]["ceiling_ratio"] == 1.0
    assert rows[("constant", "uvicorn")]["ceiling_ratio"] == 1.2
    assert rows[("io", "gunicorn-sync")]["ceiling_ratio"] == pytest.approx(2.0 / 7.9, abs=1e-4)  # io's own reference
    assert rows[("io", "uvicorn")]["ceiling_ratio"] == pytest.approx(5.0 / 7.9, abs=1e-4)
    md = res["report"].read_text()
    assert "Serialises I/O" in md and "gunicorn-sync (0.25)" in md
    assert "Partly concurrent" in md and "uvicorn (0.62)" in md
    assert "Concurrent (≥ 0.9" in md and "raw-asgi-asyncpg (0.99)" in md
    assert "**Failures** in gunicorn-sync: 5 of 1000 requests" in md
    assert "gunicorn-sync 0.25×" in md
    assert "not calibrated" in md
    assert not (tmp_path / "out" / "charts").exists()
    # every table line has as many cells as its header; a row without a completed trial is still listed
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.MULTILINE):
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in table.strip().splitlines()}
        assert len(widths) == 1, table
    assert "| daphne | asgi | io | no completed trial |" in md
    assert "**server-died**" in md and rows[("io", "daphne")]["status_problems"] == "server-died: ../daphne/f"
    with open(res["summary_csv"], newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == groups.CSV_COLUMNS


def test_run_ids_resolve_matrix_ids_names_and_folders(tmp_path):
    a = _trial(tmp_path, "20260101T000000Z-constant", _meta(matrix=("m1", 1)))
    b = _trial(tmp_path, "20260101T000100Z-constant", _meta(variant="daphne"))
    (a.path / "warmup").mkdir()
    (a.path / "warmup" / "meta.json").write_text(json.dumps(_meta()))  # never a run of its own
    cal = tmp_path / "calibration" / "raw" / "20260101T000200Z-calibrate-bare"
    cal.mkdir(parents=True)
    (cal / "meta.json").write_text(json.dumps(_meta(variant="raw")))  # calibrate's runs are not rows
    (tmp_path / "uvicorn" / "junk").mkdir()  # no meta.json: ignored
    assert trials.find_runs(tmp_path) == sorted([a.path, b.path])
    assert trials.resolve_run_ids([], tmp_path) == sorted([a.path, b.path])
    assert trials.resolve_run_ids(["m1"], tmp_path) == [a.path]
    assert trials.resolve_run_ids(["20260101T000100Z-constant"], tmp_path) == [b.path]
    assert trials.resolve_run_ids(["daphne/20260101T000100Z-constant", str(b.path)], tmp_path) == [b.path]
    assert trials.resolve_run_ids([str(tmp_path / "uvicorn")], tmp_path) == [a.path]
    with pytest.raises(UsageError):
        trials.resolve_run_ids(["no-such-run"], tmp_path)


def test_main_without_runs_is_a_usage_error(tmp_path, capsys):
    assert report.main(["--results", str(tmp_path)]) == 2
    assert "no benchmark runs" in capsys.readouterr().err


# -- fast: the seams of the package ------------------------------------------------------------------

def test_csv_columns_and_their_docs_are_one_table(tmp_path):
    names = [name for name, _ in groups.COLUMNS]
    assert tuple(names) == groups.CSV_COLUMNS and len(set(names)) == len(names)
    docs = groups.column_docs()
    for name, doc in groups.COLUMNS:
        assert doc.strip() and re.search(rf"^  {re.escape(name)} +\S", docs, flags=re.MULTILINE), name
        assert " ".join(doc.split()) in " ".join(docs.split()), name
    assert docs in groups.__doc__ and docs in report.__doc__  # the two docstrings show the generated text
    assert f"rps_cv_pct > {stats.UNSTABLE_CV_PCT:g}" in docs  # written from the rule, not a copy of it
    # the row summarize_group builds has exactly these columns, in this order
    g = groups.group_trials([_trial(tmp_path, "a", _meta())])[0]
    assert tuple(groups.summarize_group(g, tmp_path)) == groups.CSV_COLUMNS


def _functions(module) -> set:
    return {n for n, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and not n.startswith("_")}


def test_every_finding_is_one_function_in_the_table(tmp_path):
    assert _functions(findings) - {"section_findings"} == {f.__name__ for f in findings.FINDINGS}
    assert len(set(findings.FINDINGS)) == len(findings.FINDINGS)
    made = groups.group_trials([
        _trial(tmp_path, "a", _meta("gunicorn-sync", "wsgi", rps=200.0)),
        _trial(tmp_path, "b", _meta(rps=400.0)),
        _trial(tmp_path, "c", _meta(rps=320.0, async_api=True)),
        _trial(tmp_path, "d", _meta("raw-asgi-asyncpg", "reference", flow="api", rps=1000.0))])
    best = groups.summarize(made, tmp_path, None)
    (section,) = groups.sections(made)
    s = findings.Section(made, made, best[section])
    said = {f.__name__: f(s) for f in findings.FINDINGS}
    assert all(isinstance(lines, list) and all(line.startswith(("- ", "  - ")) for line in lines)
               for lines in said.values())
    in_order = [line for f in findings.FINDINGS for line in said[f.__name__]]
    assert findings.section_findings(made, best[section]) == in_order
    assert said["async_versus_sync"] == [("- Django async views on uvicorn: 0.80× the req/s of its sync views "
                                          "(320 vs 400), p95 29.5 vs 29.5 ms.")]
    assert said["serialises_io"] == said["concurrent"] == said["unstable_rows"] == []  # a CPU table, one trial each
    assert said["raw_ceiling"][0].startswith("- Raw ceiling: **raw-asgi-asyncpg** at 1,000 req/s")
    assert findings.section_findings(made[:0], None) == ["- No completed trial in this table."]


def _history(run_dir: Path, rows) -> None:
    """locust_stats_history.csv: (timestamp, users, all requests, FLOW iterations) per second."""
    lines = ["Timestamp,User Count,Type,Name,Total Request Count"]
    for ts, users, total, flow in rows:
        lines += [f"{ts},{users},,Aggregated,{total}", f"{ts},{users},FLOW,iteration,{flow}",
                  f"{ts},{users},GET,/api/troupe/,{total - flow}"]
    (run_dir / "locust_stats_history.csv").write_text("\n".join(lines) + "\n")


def test_every_chart_is_drawn_named_and_shown(tmp_path):
    from asgibench.report import charts

    assert {f.__name__ for *_, f in charts.CHARTS} == {n for n in _functions(charts) if n.endswith("_chart")}
    runs = [_trial(tmp_path, "a", _meta(scenario="io", flow="io", rps=6.0, efficiency=0.75, bound=True)),
            _trial(tmp_path, "b", _meta("raw-asgi-asyncpg", "reference", "io", "io", rps=7.9, efficiency=0.99)),
            _trial(tmp_path, "c", _meta(scenario="medium", rps=80.0))]
    _history(runs[2].path, [(100, 1, 0, 0), (101, 2, 30, 10), (102, 4, 70, 20), (103, 4, 70, 20)])
    assert charts.ramp_series(runs[2].path) == ([1.0, 2.0, 3.0], [2.0, 4.0, 4.0], [20.0, 30.0, 0.0])  # FLOW left out
    res = report.build([t.path for t in runs], tmp_path / "out", calibration=tmp_path / "none.json")
    assert sorted(p.name for p in res["charts"]) == [  # no chart without data: no ramp of io, no concurrency of ramps
        "concurrency-ad-hoc-io.png", "latency-ad-hoc-io.png", "latency-ad-hoc-medium.png", "ramp-ad-hoc-medium.png",
        "rps-ad-hoc-io.png", "rps-ad-hoc-medium.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in res["charts"])
    md = res["report"].read_text()
    for kind, alt, _ in charts.CHARTS:  # report.md shows each chart with the alt text of CHARTS
        assert f"![{alt}](charts/{kind}-ad-hoc-" in md


def test_default_flow_is_one_rule_for_the_registry_and_the_labels(tmp_path):
    assert all(v.default_flow == variants.default_flow_for(v.serves) for v in variants.VARIANTS)
    made = groups.group_trials([_trial(tmp_path, "a", _meta(flow="api")),  # serves admin: api is not its default
                                _trial(tmp_path, "b", _meta("fastapi-asyncpg", "fastapi", flow="api"))])
    assert {g.label for g in made} == {"uvicorn (api flow)", "fastapi-asyncpg"}
    assert [groups.family_order(f) for f in variants.FAMILIES + ("?",)] == list(range(len(variants.FAMILIES) + 1))


def test_report_reads_calibration_through_results(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "results")
    results.RESULTS_DIR.mkdir()
    (results.RESULTS_DIR / "calibration.json").write_text(json.dumps({"ceiling_rps": 5000.0}))
    t = _trial(tmp_path, "a", _meta(rps=3000.0, gen_cpu=50.0))
    md = report.build([t.path], tmp_path / "out", charts=False)["report"].read_text()  # out/ has none: results'
    assert "**5,000 req/s** (`../results/calibration.json`)" in md
    (tmp_path / "out" / "calibration.json").write_text(json.dumps({"ceiling_rps": 8000.0}))
    md = report.build([t.path], tmp_path / "out", charts=False)["report"].read_text()
    assert "**8,000 req/s** (`calibration.json`)" in md


def test_report_is_the_last_step_of_the_data_path():
    """The report imports only what comes before it; nothing but the CLI and the matrix imports it."""
    package = Path(report.__file__).parent
    before = {"asgibench." + m for m in ("results", "stats", "variants", "files", "errors", "figures")}

    def imported(path: Path) -> set:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                out |= {f"{node.module}.{a.name}" if node.module == "asgibench" else node.module for a in node.names}
        return {m for m in out if m.split(".")[0] == "asgibench"}

    for p in package.glob("*.py"):
        assert {m for m in imported(p) if not m.startswith("asgibench.report")} <= before, p.name
    importers = {p.relative_to(package.parent).as_posix() for p in package.parent.rglob("*.py")
                 if package not in p.parents and any(m.startswith("asgibench.report") for m in imported(p))}
    assert importers <= {"cli.py", "matrix.py"}, importers


# -- e2e: a report from real runs --------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_runs(db, tmp_path_factory):
    """Two trials of the reference row (one `bench --trials 2` series) and one I/O run of a row that
    serialises it (gunicorn sync, 1 worker): real servers, real Locust, a few seconds each."""
    root = tmp_path_factory.mktemp("report") / "results"
    res = cli("bench", "raw-asgi-asyncpg", "--users", "4", "--duration", "3s", "--warmup", "0", "--trials", "2",
              "--quiet", results=root, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    res = cli("bench", "gunicorn-sync", "--workers", "1", "--scenario", "io", "--users", "4", "--io-seconds", "0.5",
              "--duration", "3s", "--warmup", "0", "--quiet", results=root, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    out = root / "report"
    assert report.main(["--results", str(root), "--out", str(out)]) == 0
    with open(out / "summary.csv", newline="") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    return root, out, rows


def _locust_requests(run_dir: Path) -> tuple[int, int]:
    """(requests, failures) straight from Locust's files: locust.json and locust_stats.csv, FLOW excluded."""
    entries = json.loads((run_dir / "locust.json").read_text())
    js = (sum(e["num_requests"] for e in entries if e["method"] != "FLOW"),
          sum(e["num_failures"] for e in entries if e["method"] != "FLOW"))
    with open(run_dir / "locust_stats.csv", newline="") as f:
        recs = [r for r in csv.DictReader(f) if r["Name"] != "Aggregated" and r["Type"] != "FLOW"]
    assert sum(int(r["Request Count"]) for r in recs) == js[0]  # the CSV agrees with the final stats
    return js


@pytest.mark.e2e
def test_summary_numbers_come_from_the_run_folders(real_runs):
    _, out, rows = real_runs
    assert set(rows) == {"raw-asgi-asyncpg", "gunicorn-sync"}
    ref = rows["raw-asgi-asyncpg"]
    dirs = [out / d for d in ref["run_dirs"].split()]
    assert len(dirs) == 2 and int(ref["trials"]) == 2 and all(d.is_dir() for d in dirs)
    metas = [json.loads((d / "meta.json").read_text()) for d in dirs]
    assert {m["matrix"]["id"] for m in metas} == {ref["matrix_id"]} and ref["matrix_id"].startswith("bench-")
    counts = [_locust_requests(d) for d in dirs]
    assert int(ref["requests"]) == sum(c[0] for c in counts) > 0
    assert int(ref["failures"]) == sum(c[1] for c in counts)
    # each trial's req/s is its Locust total over a measured window that is the planned 3 s (the window's
    # definition may change; it must stay the plan's length); the report's median and CV are recomputed
    # here with numpy (sample standard deviation, ddof=1) from those independent rates
    rps = []
    for m, (n, _) in zip(metas, counts):
        assert 3 - 1 <= m["summary"]["seconds"] <= 3 + 6, m["summary"]["seconds"]
        assert m["summary"]["rps"] == pytest.approx(n / m["summary"]["seconds"], rel=0.01)
        rps.append(n / m["summary"]["seconds"])
    assert float(ref["rps_median"]) == pytest.approx(float(numpy.median(rps)), rel=0.002)
    cv = 100 * float(numpy.std(rps, ddof=1) / numpy.mean(rps))
    assert float(ref["rps_cv_pct"]) == pytest.approx(cv, rel=0.01, abs=0.02)
    if abs(cv - 5.0) > 0.1:  # README: "CV above 5% is called out as unstable"
        assert ref["unstable"] == ("true" if cv > 5.0 else "false"), cv
    assert ref["latency_source"] == "exact"
    assert float(ref["p95_ms"]) == pytest.approx(
        statistics.median(m["summary"]["exact_percentiles_ms"]["p95"] for m in metas), abs=0.001)
    io = rows["gunicorn-sync"]
    (io_dir,) = [out / d for d in io["run_dirs"].split()]
    io_meta = json.loads((io_dir / "meta.json").read_text())
    assert int(io["requests"]) == _locust_requests(io_dir)[0]
    assert float(io["efficiency"]) == io_meta["summary"]["concurrency"]["efficiency"] < findings.SERIALISES_BELOW
    assert float(io["ideal_rps"]) == 8.0 and io["matrix_id"] == "ad-hoc" and io["trials"] == "1"
    # at most 8 req/s and no calibration in this results folder: nothing may flag it, and Locust's own
    # CPU over the run (the recorder, itself checked against /proc in test_locustfiles) is far below 90%
    gen = json.loads((io_dir / "generator.json").read_text())["run"]
    assert gen["cpu_s"] < 0.5 * gen["wall_s"], gen
    assert io["generator_bound"] == "false" and io["generator_bound_reasons"] == ""
    assert io["ceiling_ratio"] == ""  # no reference row in the io section: never against the CPU section's


@pytest.mark.e2e
def test_charts_are_valid_pngs(real_runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    _, out, _ = real_runs
    names = {p.name for p in (out / "charts").glob("*.png")}
    assert {"latency-ad-hoc-io.png", "rps-ad-hoc-io.png", "concurrency-ad-hoc-io.png"} <= names
    assert any(n.startswith("rps-bench-") for n in names) and any(n.startswith("latency-bench-") for n in names)
    assert not any(n.startswith(("concurrency-bench-", "ramp-")) for n in names)  # no data: no chart
    for p in (out / "charts").glob("*.png"):
        assert p.read_bytes()[:8] == PNG_MAGIC, p
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 300, (p, img.shape)


@pytest.mark.e2e
def test_report_names_every_row_and_links_existing_folders(real_runs):
    root, out, rows = real_runs
    md = (out / "report.md").read_text()
    for r in rows.values():
        assert f"| {r['row']} |" in md
    links = re.findall(r"(!?)\[[^\]]*\]\(([^)]+)\)", md)
    folders = [t for bang, t in links if not bang]
    images = [t for bang, t in links if bang]
    assert len(folders) >= 3 and len(images) >= 5
    for target in folders:
        assert (out / target / "meta.json").is_file(), target
    for target in images:
        assert (out / target).is_file(), target
    assert "Serialises I/O" in md and "gunicorn-sync (" in md
    assert "Machine:" in md
    # one matrix/series id selects only its own runs
    sub = root / "only-series"
    assert report.main([rows["raw-asgi-asyncpg"]["matrix_id"], "--results", str(root), "--out", str(sub)]) == 0
    with open(sub / "summary.csv", newline="") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == ["raw-asgi-asyncpg"]


def test_calibrated_ceiling_is_quoted_and_flags_old_runs(tmp_path):
    t = _trial(tmp_path, "a", _meta("raw-asgi-asyncpg", "reference", flow="api", rps=3000.0, gen_cpu=50.0))
    cal = tmp_path / "calibration.json"
    cal.write_text(json.dumps({"ceiling_rps": 5000.0, "api_cost_ratio": 1.2}))
    res = report.build([t.path], tmp_path / "out", calibration=cal, charts=False)
    md = res["report"].read_text()
    assert "Calibrated Locust ceiling on this machine: **5,000 req/s**" in md and "api_cost_ratio 1.2" in md
    (row,) = res["rows"]
    assert row["generator_bound"] is True and row["generator_bound_source"] == "derived"
    assert "half the calibrated Locust ceiling" in row["generator_bound_reasons"]  # stats' wording
    assert "**Generator-bound**" in md
