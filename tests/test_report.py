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

from asgibench import figures, report, results, stats, variants
from asgibench.errors import UsageError
from asgibench.report import columns, findings, groups, trials
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
    assert [g.section for g in made][:2] == [("m1", "constant", "original"), ("m2", "constant", "original")]
    assert made[-1].section == ("ad-hoc", "io", "io")


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
        _trial(tmp_path, "b", _meta("gunicorn-sync", "wsgi", flow="api", rps=250.0, failures=5)),
        _trial(tmp_path, "c", _meta("raw-asgi-asyncpg", "reference", "io", "io", rps=7.9, efficiency=0.99)),
        _trial(tmp_path, "d", _meta("gunicorn-sync", "wsgi", "io", "io", rps=2.0, efficiency=0.25)),
        _trial(tmp_path, "e", _meta("uvicorn", "asgi", "io", "io", rps=5.0, efficiency=0.62)),
        _trial(tmp_path, "f", _meta("daphne", "asgi", "io", "io", status="server-died")),
        _trial(tmp_path, "g", _meta("raw-asgi-asyncpg-granian", "reference", flow="api", rps=1000.0)),
        _trial(tmp_path, "h", _meta("uvicorn", "asgi", flow="api", rps=1200.0)),  # faster than every reference row
        _trial(tmp_path, "i", _meta("uvicorn", "asgi", flow="original", rps=300.0)),  # another flow: own table
    ]
    res = report.build([t.path for t in runs], tmp_path / "out", charts=False, calibration=tmp_path / "none.json")
    rows = {(r["scenario"], r["variant"], r["flow"]): r for r in res["rows"]}
    rows.update({(sc, v): r for (sc, v, fl), r in rows.items() if fl in ("api", "io")})
    assert rows[("constant", "gunicorn-sync")]["ceiling_ratio"] == 0.25
    # against the best reference row of the same section, whichever row that is (hand-worked ratios)
    assert rows[("constant", "raw-asgi-asyncpg")]["ceiling_ratio"] == 0.8  # listed first, not the best
    assert rows[("constant", "raw-asgi-asyncpg-granian")]["ceiling_ratio"] == 1.0
    assert rows[("constant", "uvicorn")]["ceiling_ratio"] == 1.2
    assert rows[("io", "gunicorn-sync")]["ceiling_ratio"] == pytest.approx(2.0 / 7.9, abs=1e-4)  # io's own reference
    assert rows[("io", "uvicorn")]["ceiling_ratio"] == pytest.approx(5.0 / 7.9, abs=1e-4)
    # the original flow has no reference row: no ratio against the API flow's ceiling (0.3 would be a lie)
    orig = rows[("constant", "uvicorn", "original")]
    assert orig["ceiling_ratio"] is None and orig["section"] == "ad-hoc / constant / original"
    assert rows[("constant", "uvicorn")]["section"] == "ad-hoc / constant / api"
    md = res["report"].read_text()
    assert "Serialises I/O" in md and "gunicorn-sync (0.25)" in md
    assert "Partly concurrent" in md and "uvicorn (0.62)" in md
    assert "Concurrent (≥ 0.9" in md and "raw-asgi-asyncpg (0.99)" in md
    assert "**Failures** in gunicorn-sync: 5 of 1000 requests" in md
    assert "gunicorn-sync 0.25×" in md
    assert "No reference row serves this flow" in md
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
        _trial(tmp_path, "a", _meta("gunicorn-sync", "wsgi", flow="api", rps=200.0)),
        _trial(tmp_path, "b", _meta(rps=400.0, flow="api")),
        _trial(tmp_path, "c", _meta(rps=320.0, flow="api", async_api=True)),  # the async twin: same table
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
    assert said["versus_best_wsgi"] == [("- Best ASGI row vs best WSGI row, same flow: uvicorn has 2.00× the req/s "
                                         "of gunicorn-sync, p95 29.5 vs 29.5 ms.")]
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
        "concurrency-ad-hoc-io-io.png", "latency-ad-hoc-io-io.png", "latency-ad-hoc-medium-original.png",
        "ramp-ad-hoc-medium-original.png", "rps-ad-hoc-io-io.png", "rps-ad-hoc-medium-original.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in res["charts"])
    md = res["report"].read_text()
    alts = {kind: alt for kind, alt, _ in charts.CHARTS}
    for p in res["charts"]:  # report.md shows each chart with the alt text of CHARTS (cost, capacity: below)
        assert f"![{alts[p.name.split('-')[0]]}](charts/{p.name})" in md


def test_default_flow_is_one_rule_for_the_registry_and_the_labels(tmp_path):
    assert all(v.default_flow == variants.default_flow_for(v.serves) for v in variants.VARIANTS)
    made = groups.group_trials([_trial(tmp_path, "a", _meta(flow="api")),  # serves admin: api is not its default
                                _trial(tmp_path, "b", _meta("fastapi-asyncpg", "fastapi", flow="api")),
                                _trial(tmp_path, "c", _meta(flow="original"))])
    # the flow is the section's (its title names it), not a label qualifier; one table per flow
    assert {(g.section, g.label) for g in made} == {(("ad-hoc", "constant", "api"), "uvicorn"),
                                                    (("ad-hoc", "constant", "api"), "fastapi-asyncpg"),
                                                    (("ad-hoc", "constant", "original"), "uvicorn")}
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


# -- fast: the meta.json contract's new figures (synthetic run folders) ------------------------------

def _contract(meta, *, server_us=6288.0, db_us=400.0, gen_us=375.0, pss=(200.0, 230.0), rss=(300.0, 320.0),
              shares=None, imbalanced=False, machine_share=0.2, competing=False, django="3.2.25",
              iterations=None, capacity=None):
    """meta.json with the keys of the contract (plan/PLAN2.md): summary.cost, .memory, .balance,
    generator share, django, flow iterations/s, capacity."""
    s = meta["summary"]
    s["cost"] = {"server_us_per_request": server_us, "db_us_per_request": db_us,
                 "generator_us_per_request": gen_us, "capacity_per_server_core": 1e6 / server_us,
                 "rps_per_gb": s["rps"] / (pss[0] / 1024), "server_cpu_seconds": 1.0, "db_cpu_seconds": 0.1,
                 "window_s": 4.0}
    s["memory"] = {"server_rss_mb": {"steady": rss[0], "peak": rss[1]},
                   "server_pss_mb": {"steady": pss[0], "peak": pss[1]}, "db_backends_peak": 7,
                   "per_worker": [{"pid": 1, "role": "master", "pss_mb": {"steady": 20.0, "peak": 21.0}},
                                  {"pid": 2, "role": "worker", "pss_mb": {"steady": 80.0, "peak": 90.0}},
                                  {"pid": 3, "role": "worker", "pss_mb": {"steady": 100.0, "peak": 110.0}}]}
    if shares:
        s["balance"] = {"workers": len(shares), "shares": shares, "imbalance": max(shares) - min(shares),
                        "imbalanced": imbalanced, "threshold": 0.7,
                        "reason": "worker shares " + "/".join(f"{100 * x:.0f}" for x in shares) + "%"}
    meta["generator"].update(machine_share=machine_share, competing=competing,
                             competing_reason=f"generator {100 * machine_share:.0f}% of the machine" if competing
                             else "")
    meta["django"] = {"requested": django and django[:3], "version": django}
    if iterations is not None:
        s.setdefault("flow", {})["iterations_per_s"] = iterations
    if capacity is not None:
        meta["capacity"] = capacity
    return meta


def _capacity(cap, p99_at, *, slo=250.0, overload_p99=2000.0, recovery=3.0):
    steps = [{"phase": "ladder", "offered_rps": r, "achieved_rps": r, "p99_ms": p, "ok": p <= slo}
             for r, p in ((cap / 4, 20.0), (cap / 2, 40.0), (cap * 0.8, 90.0), (cap * 1.25, 900.0))]
    steps += [{"phase": "bisect", "offered_rps": cap, "achieved_rps": cap, "p99_ms": p99_at, "ok": True},
              {"phase": "overload", "offered_rps": 1.5 * cap, "achieved_rps": 1.1 * cap, "p99_ms": overload_p99},
              {"phase": "recovery", "offered_rps": 50.0, "achieved_rps": 50.0, "p99_ms": 30.0}]
    return {"slo": {"p99_ms": slo, "errors_pct": 0.1, "min_achieved_ratio": 0.97, "max_dropped_pct": 1.0,
                    "level": "request"},
            "steps": steps, "capacity_rps": cap,
            "at_capacity": {"offered_rps": cap, "achieved_rps": cap, "p50_ms": 12.0, "p99_ms": p99_at,
                            "p999_ms": 300.0, "server_us_per_request": 5000.0},
            "overload": {"offered_rps": 1.5 * cap, "achieved_rps": 1.1 * cap, "p99_ms": overload_p99, "timeouts": 3,
                         "errors_5xx": 2, "resets": 1, "dropped": 10, "worker_restarts": 0, "recovery_s": recovery}}


def test_new_columns_from_the_meta_contract(tmp_path):
    """Two trials of one row, every new key of the contract, each column checked against hand-worked
    figures (6288 and 6414 us: median 6351, CV = 89.10 / 6351 = 1.403%)."""
    a = _trial(tmp_path, "a", _contract(_meta("fastapi-tortoise", "fastapi", flow="api", rps=152.0, matrix=("m", 1)),
                                        server_us=6288.0, shares=[0.94, 0.06], imbalanced=True, machine_share=0.31,
                                        competing=True, django=None, iterations=50.0))
    b = _trial(tmp_path, "b", _contract(_meta("fastapi-tortoise", "fastapi", flow="api", rps=234.0, matrix=("m", 2)),
                                        server_us=6414.0, db_us=600.0, shares=[0.45, 0.55], pss=(220.0, 260.0),
                                        rss=(310.0, 340.0), django=None, iterations=70.0))
    res = report.build([a.path, b.path], tmp_path / "out", charts=False, calibration=tmp_path / "none.json")
    (row,) = res["rows"]
    assert row["server_us_per_request_median"] == 6351.0
    assert row["server_us_per_request_cv_pct"] == pytest.approx(100 * statistics.stdev([6288, 6414]) / 6351, abs=0.01)
    assert row["rps_cv_pct"] == pytest.approx(100 * statistics.stdev([152, 234]) / 193, abs=0.01)  # name kept
    assert row["capacity_per_core_median"] == pytest.approx(statistics.median([1e6 / 6288, 1e6 / 6414]), abs=1e-3)
    assert row["db_us_per_request_median"] == 500.0 and row["generator_us_per_request_median"] == 375.0
    assert row["iterations_per_s_median"] == 60.0
    assert row["iterations_per_s_cv_pct"] == pytest.approx(100 * statistics.stdev([50, 70]) / 60, abs=0.01)
    assert row["server_pss_mb_median"] == 210.0 and row["server_pss_peak_mb"] == 260.0
    assert row["server_rss_mb"] == 305.0 and row["server_rss_peak_mb"] == 340.0
    assert row["worker_pss_mb"] == 90.0 and row["db_backends_peak"] == 7  # the master is not a worker
    assert row["balance_shares"] == "94/6; 45/55" and row["imbalance_median"] == pytest.approx(0.49)
    assert row["imbalanced"] is True and row["generator_competing"] is True
    assert row["generator_share_pct_max"] == 31.0
    assert row["flags"] == "generator-competing; imbalanced"  # figures.FLAGS order
    assert "fastapi-tortoise/a: imbalanced: worker shares 94/6%" in row["flag_reasons"]
    assert "fastapi-tortoise/a: generator-competing: generator 31% of the machine" in row["flag_reasons"]
    assert "fastapi-tortoise/b" not in row["flag_reasons"]  # a clean trial adds nothing
    assert row["django"] is None and row["capacity_rps_median"] is None and row["slo"] is None
    # every figure of figures.FIGURES has its median and CV columns (a new Figure needs no code here)
    for f in figures.FIGURES:
        assert columns.median_column(f.key) in groups.CSV_COLUMNS and columns.cv_column(f.key) in groups.CSV_COLUMNS
    # the headline: capacity per core (CV ~1.4%) beats req/s (CV ~30%), and the table says so
    assert row["headline"] == "capacity_per_core" and row["headline_median"] == row["capacity_per_core_median"]
    assert "1.4%" in row["headline_reason"] and "req/s 30.0%" in row["headline_reason"]
    md = res["report"].read_text()
    assert "Headline: **req/s per server core** — " in md
    assert "| **req/s per server core** (headline) | CV | req/s | req/s CV | iterations/s |" in md
    assert "6,351 / 500 / 375" in md and "210 / 260" in md
    assert "**imbalanced** (worker shares % 94/6, 45/55)" in md and "**generator-competing** (31% of the machine)" in md
    assert "**Imbalanced workers**" in md and "**Generator-competing**" in md
    with open(res["summary_csv"], newline="") as f:
        (csv_row,) = list(csv.DictReader(f))
    assert csv_row["server_us_per_request_median"] == "6351.0" and csv_row["django"] == ""
    assert csv_row["imbalanced"] == "true" and csv_row["section"] == "m / constant / api"


def test_contract_keys_that_hold_none_make_empty_cells_not_errors(tmp_path):
    """The contract writes None where a figure was not measured: every such cell is empty, never 0."""
    meta = _meta(flow="api")
    meta["summary"].update(cost={k: None for k in ("server_us_per_request", "db_us_per_request",
                                                    "generator_us_per_request", "capacity_per_server_core",
                                                    "rps_per_gb")},
                           memory={"server_rss_mb": None, "server_pss_mb": {"steady": None, "peak": None},
                                   "per_worker": None, "db_backends_peak": None},
                           balance={"workers": 2, "shares": None, "imbalance": None, "imbalanced": False},
                           flow={"iterations_per_s": None})
    meta.update(django={"requested": None, "version": None}, capacity=None)
    meta["generator"].update(machine_share=None, competing=False, competing_reason=None)
    res = report.build([_trial(tmp_path, "a", meta).path], tmp_path / "out", charts=False,
                       calibration=tmp_path / "none.json")
    (row,) = res["rows"]
    for col in ("server_us_per_request_median", "capacity_per_core_median", "server_pss_mb_median", "server_rss_mb",
                "worker_pss_mb", "db_backends_peak", "imbalance_median", "iterations_per_s_median", "django",
                "generator_share_pct_max", "capacity_rps_median", "overload_recovery_s", "slo"):
        assert row[col] is None, col
    assert row["balance_shares"] == "" and row["flags"] == "" and row["headline"] == "rps"
    assert "| CPU µs/request: server" not in res["report"].read_text()  # a column nobody measured is not shown


def test_two_flows_in_one_matrix_never_share_a_table_or_a_ratio(tmp_path, monkeypatch):
    """The matrix runs the API flow on every row and the original flow on admin rows: the original-flow
    gunicorn-eventlet row (87 req/s) must never be divided into fastapi-tortoise's API figure."""
    m = ("m1", 1)
    runs = [_trial(tmp_path, "a", _contract(_meta("fastapi-tortoise", "fastapi", flow="api", rps=234.0, matrix=m),
                                            server_us=4000.0)),
            _trial(tmp_path, "b", _contract(_meta("gunicorn-eventlet", "wsgi", flow="api", rps=100.0, matrix=m),
                                            server_us=10000.0)),
            _trial(tmp_path, "c", _contract(_meta("gunicorn-eventlet", "wsgi", flow="original", rps=87.0, matrix=m),
                                            server_us=16000.0)),
            _trial(tmp_path, "d", _contract(_meta("uvicorn", "asgi", flow="original", rps=90.0, matrix=m))),
            _trial(tmp_path, "e", _contract(_meta("raw-asgi-asyncpg", "reference", flow="api", rps=800.0, matrix=m)))]
    res = report.build([t.path for t in runs], tmp_path / "out", charts=False, calibration=tmp_path / "none.json")
    secs = {}
    for r in res["rows"]:
        secs.setdefault(r["section"], set()).add((r["variant"], r["flow"]))
    assert secs == {"m1 / constant / api": {("fastapi-tortoise", "api"), ("gunicorn-eventlet", "api"),
                                            ("raw-asgi-asyncpg", "api")},
                    "m1 / constant / original": {("gunicorn-eventlet", "original"), ("uvicorn", "original")}}
    orig = [r for r in res["rows"] if r["flow"] == "original"]
    assert all(r["ceiling_ratio"] is None for r in orig)  # the reference row runs the API flow only
    md = res["report"].read_text()
    assert "compare with care" not in md and "different flows" not in md
    # the headline (req/s per server core) of the same flow: 1e6/4000 over 1e6/10000, not over the original
    # flow's 1e6/16000 (4.00x); and no req/s ratio against the original flow (234 / 87 = 2.69x) anywhere
    assert "fastapi-tortoise has 2.50× the req/s per server core of gunicorn-eventlet" in md
    assert "2.69" not in md and "4.00×" not in md
    means = md.split("## What this means")[1]
    orig_findings = means.split("### constant, original flow (m1)")[1].split("###")[0]
    assert "fastapi-tortoise" not in orig_findings and "raw-asgi-asyncpg" not in orig_findings
    assert "No reference row serves this flow" in orig_findings
    # every chart is drawn per table: no chart is handed rows of two flows (recorded, not drawn: fast)
    from asgibench.report import charts

    seen = []

    def recorder(plt, section, rows, best):
        seen.append((section, {r.flow for r in rows}, best.get(section)))

    made = groups.group_trials(runs)
    best = groups.summarize(made, tmp_path, None)
    monkeypatch.setattr(charts, "CHARTS", (("probe", "probe", recorder),))
    monkeypatch.setattr(charts, "_pyplot", lambda: None)
    charts.make_charts(made, best, tmp_path / "charts")
    assert sorted((sec, flows) for sec, flows, _ in seen) == [(("m1", "constant", "api"), {"api"}),
                                                               (("m1", "constant", "original"), {"original"})]
    assert dict((sec, b) for sec, _, b in seen)[("m1", "constant", "original")] is None  # no API-flow ceiling line
    # the findings refuse to compare rows of two flows even when handed them together
    made = groups.group_trials(runs[:3])
    groups.summarize(made, tmp_path, None)
    mixed = findings.Section(made, made, None)
    assert findings.versus_best_wsgi(mixed) == [] and findings.spread(mixed) == []


def test_the_matrix_scenario_names_its_table_when_it_says_more_than_the_flow(tmp_path):
    """The matrix's api / original scenarios are constant users on a flow (turning connections over);
    its keepalive scenario is the API flow on a few long-lived connections: a table of its own."""
    def run(name, sc, flow, reconnect):
        meta = _meta(flow=flow, matrix=("m", 1))
        meta["matrix"]["scenario"] = sc
        meta["plan"]["reconnect_every"] = reconnect
        return _trial(tmp_path, name, meta)

    runs = [run("a", "api", "api", 5), run("b", "original", "original", 5), run("c", "keepalive", "api", 0),
            run("d", "cpu", "original", 0)]
    assert [t.scenario for t in runs] == ["constant", "constant", "keepalive", "constant"]
    made = groups.group_trials(runs)
    assert sorted(g.section for g in made) == [("m", "constant", "api"), ("m", "constant", "original"),
                                               ("m", "constant", "original"), ("m", "keepalive", "api")]
    assert len({g.label for g in made if g.section == ("m", "constant", "original")}) == 2  # kept apart
    md = report.build([t.path for t in runs[:3]], tmp_path / "out", charts=False,
                      calibration=tmp_path / "none.json")["report"].read_text()
    assert "## constant, api flow — matrix `m` (constant users, each user reconnecting every 5 iterations;" in md
    assert "## keepalive, api flow — matrix `m` (constant users, each user on one keep-alive connection" in md


def test_django_versions_are_never_averaged_together(tmp_path):
    runs = [_trial(tmp_path, "a", _contract(_meta(rps=100.0), django="3.2.25")),
            _trial(tmp_path, "b", _contract(_meta(rps=200.0), django="4.2.16"))]
    made = groups.group_trials(runs)
    assert sorted(g.label for g in made) == ["uvicorn [django=3.2.25]", "uvicorn [django=4.2.16]"]
    groups.summarize(made, tmp_path, None)
    assert sorted(g.row["django"] for g in made) == ["3.2.25", "4.2.16"]
    assert all(g.row["trials"] == 1 for g in made)
    md = report.build([t.path for t in runs], tmp_path / "out", charts=False,
                      calibration=tmp_path / "none.json")["report"].read_text()
    assert "Django 3.2.25/4.2.16 (rows of different versions are kept apart" in md


def test_headline_is_the_lowest_noise_candidate_that_every_row_has(tmp_path):
    made_dirs = iter(range(1000))

    def section(spec, scenario="constant", flow="api"):
        ts = [_trial(tmp_path / f"s{next(made_dirs)}", f"t{i}{j}",
                     _contract(_meta(v, "asgi", scenario, flow, rps=rps, efficiency=0.5 if flow == "io" else None),
                               server_us=us) if us else
                     _meta(v, "asgi", scenario, flow, rps=rps, efficiency=0.5 if flow == "io" else None))
              for i, (v, trial_specs) in enumerate(spec) for j, (rps, us) in enumerate(trial_specs)]
        made = groups.group_trials(ts)
        groups.summarize(made, tmp_path, None)
        return made

    quiet_cpu = section([("x", [(100.0, 1000.0), (150.0, 1010.0)]), ("y", [(300.0, 500.0), (310.0, 505.0)])])
    assert {g.row["headline"] for g in quiet_cpu} == {"capacity_per_core"}
    noisy_cpu = section([("x", [(100.0, 1000.0), (101.0, 1500.0)]), ("y", [(300.0, 500.0), (301.0, 800.0)])])
    assert {g.row["headline"] for g in noisy_cpu} == {"rps"}  # req/s was the quieter one here
    one_lacks = section([("x", [(100.0, 1000.0), (150.0, 1010.0)]), ("y", [(300.0, None), (310.0, None)])])
    assert {g.row["headline"] for g in one_lacks} == {"rps"}  # not a figure half the table lacks
    single = section([("x", [(100.0, 1000.0)]), ("y", [(300.0, 250.0)])])
    assert {g.row["headline"] for g in single} == {"capacity_per_core"} and "no CV" in single[0].row["headline_reason"]
    # rows ordered by the headline: y (4,000 req/s per core) before x (1,000) although x... has fewer req/s anyway
    assert [g.variant for g in single] == ["y", "x"]
    io = section([("x", [(5.0, None), (5.0, None)])], scenario="io", flow="io")
    assert io[0].row["headline"] == "efficiency"


def test_capacity_section_columns_chart_and_hockey_stick(tmp_path):
    from asgibench.report import charts

    runs = [_trial(tmp_path, f"u{i}", _contract(_meta(scenario="capacity", flow="api", rps=300.0, matrix=("m", i)),
                                               capacity=_capacity(cap, 200.0)))
            for i, cap in ((1, 300.0), (2, 310.0), (3, 320.0))]
    runs.append(_trial(tmp_path, "f1", _contract(_meta("fastapi-asyncpg", "fastapi", "capacity", "api", rps=900.0,
                                                       matrix=("m", 1)), capacity=_capacity(900.0, 150.0))))
    runs.append(_trial(tmp_path, "k1", _contract(_meta(flow="api", rps=400.0, matrix=("m", 1)))))  # constant
    broke = _capacity(100.0, 200.0)  # the first step already broke the SLO: no capacity, no overload
    broke.update(capacity_rps=None, at_capacity=None, overload=None, steps=broke["steps"][:1])
    broke["steps"][0].update(p99_ms=5000.0, ok=False)
    runs.append(_trial(tmp_path, "d1", _contract(_meta("daphne", "asgi", "capacity", "api", rps=20.0,
                                                       matrix=("m", 1)), capacity=broke)))
    xs, ys, over = charts.capacity_curve(runs[0])
    # ladder and bisection by offered rate (the bisection step between the last good and the first bad one)
    assert xs == [75.0, 150.0, 240.0, 300.0, 375.0] and ys == [20.0, 40.0, 90.0, 200.0, 900.0]
    assert over == [(450.0, 2000.0)]
    res = report.build([t.path for t in runs], tmp_path / "out", calibration=tmp_path / "none.json")
    rows = {(r["scenario"], r["variant"]): r for r in res["rows"]}
    u = rows[("capacity", "uvicorn")]
    assert u["headline"] == "capacity_rps" and u["capacity_rps_median"] == 310.0
    assert u["capacity_rps_cv_pct"] == pytest.approx(100 * statistics.stdev([300, 310, 320]) / 310, abs=0.01)
    assert u["capacity_p99_ms_median"] == 200.0 and u["capacity_p50_ms"] == 12.0 and u["capacity_p999_ms"] == 300.0
    assert u["slo"] == "p99<=250ms errors<=0.1% achieved>=97% dropped<=1% per request"
    assert u["overload_offered_rps"] == 465.0 and u["overload_timeouts"] == 9 and u["overload_dropped"] == 30
    assert u["overload_recovery_s"] == 3.0 and u["capacity_server_us_per_request"] == 5000.0
    names = sorted(p.name for p in res["charts"])
    assert "capacity-m-capacity-api.png" in names and "cost-m-constant-api.png" in names
    assert "capacity-m-constant-api.png" not in names  # no ladder: no hockey stick
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in res["charts"])
    md = res["report"].read_text()
    assert "| **capacity at SLO** (headline) | CV |" in md and "9 / 6 / 3 / 30, 0, 3.00" in md
    assert "- Capacity at the SLO (p99<=250ms" in md and "fastapi-asyncpg 900 req/s, uvicorn 310 req/s" in md
    assert "![p99 vs offered rate, SLO and knee](charts/capacity-m-capacity-api.png)" in md
    assert rows[("capacity", "daphne")]["capacity_rps_median"] is None
    assert "| daphne | asgi | api | none: no step met the SLO |" in md
    assert "**No step met the SLO**" in md and "ASGI: **uvicorn** 310 req/s" in md  # daphne is not "best" at 0
    for table in re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.MULTILINE):
        assert len({len(re.split(r"(?<!\\)\|", line)) for line in table.strip().splitlines()}) == 1, table


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
    assert {"latency-ad-hoc-io-io.png", "rps-ad-hoc-io-io.png", "concurrency-ad-hoc-io-io.png"} <= names
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
