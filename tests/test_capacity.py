"""The capacity ladder's rules on synthetic data (no server, no Locust): the SLO and its refusals, one
step's figures and verdict, the ladder's plan (ladder, bisection, overload, recovery), the recovery
time, timings.bin's lags, meta["capacity"] from a synthetic run folder, and the load plan's words."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from asgibench import capacity, loadgen, measure
from asgibench.errors import UsageError
from locustfiles import ladder, timingfile

K = timingfile.SeriesKey
CONTRACT_STEP = {"phase", "offered_rps", "achieved_rps", "p50_ms", "p99_ms", "p999_ms", "errors_pct", "dropped",
                 "dropped_pct", "ok", "reason", "start_s", "seconds"}


# -- the SLO ------------------------------------------------------------------------------------------
def test_default_slo_is_request_level_p99_250ms_errors_0_1pct():
    slo = ladder.parse_slo(ladder.DEFAULT_SLO)
    assert slo == ladder.Slo(p99_ms=250.0, errors_pct=0.1, min_achieved_ratio=0.97, max_dropped_pct=1.0)
    assert slo.as_dict()["level"] == "request"


def test_slo_units_and_optional_keys():
    assert ladder.parse_slo("p99=0.5s, errors=1%").p99_ms == 500.0
    s = ladder.parse_slo("p99=100,errors=0,achieved=90%,dropped=5%")
    assert (s.p99_ms, s.errors_pct, s.min_achieved_ratio, s.max_dropped_pct) == (100.0, 0.0, 0.9, 5.0)


@pytest.mark.parametrize("text, words", [
    ("errors=1%", "needs a p99"),
    ("p99=fast", "bad --slo p99=fast"),
    ("p99=0ms", "above 0"),
    ("p99=250ms,errors=150%", "between 0 and 100"),
    ("p99=250ms,latency=3", "unknown --slo key 'latency'"),
    ("p99=250ms,p99=300ms", "gives p99 twice"),
    ("p99", "use key=value"),
])
def test_slo_refusals_are_one_line(text, words):
    with pytest.raises(UsageError) as e:
        capacity.parse_slo(text)
    assert words in str(e.value) and "\n" not in str(e.value)


# -- one step ---------------------------------------------------------------------------------------
def _series(samples):
    """samples: (intended start s, lag s, send ms, ok) -> {SeriesKey: Series}."""
    out = {}
    for t, lag, ms, ok in samples:
        s = out.setdefault(K("GET", "/x", ok), timingfile.Series())
        s.t.append(t + lag)
        s.ms.append(ms)
        s.lag.append(lag)
    return out


def test_figures_measure_from_the_intended_start():
    # 100 arrivals over 1 s at 100/s, answered in 10 ms; 5 in the middle waited 0.5 s for a slot
    samples = [(i / 100, 0.5 if 50 <= i < 55 else 0.0, 10.0, True) for i in range(100)]
    fig = ladder.figures(_series(samples), 0.0, 1.0, 100.0, offered=100, started=100, dropped=0,
                         per_arrival=1.0, slo=ladder.Slo())
    assert fig["p50_ms"] == pytest.approx(10.0) and fig["p99_ms"] == pytest.approx(510.0, abs=0.01)
    assert fig["offered_rps"] == 100.0 and fig["achieved_rps"] == 100.0  # answered by end + p99 (1.25 s)
    ok, reason = ladder.judge(fig, ladder.Slo())
    assert not ok and reason.startswith("p99 510 ms > 250 ms")


def test_achieved_counts_only_answers_by_the_end_plus_the_slo():
    samples = [(i / 10, 0.0, 10.0 if i < 8 else 2000.0, True) for i in range(10)]
    fig = ladder.figures(_series(samples), 0.0, 1.0, 10.0, 10, 10, 0, per_arrival=1.0, slo=ladder.Slo())
    assert fig["achieved_rps"] == 8.0
    assert "achieved 8.0 < 97% of 10.0 req/s" in ladder.judge(fig, ladder.Slo())[1]


def test_errors_dropped_and_unfinished():
    samples = [(i / 10, 0.0, 5.0, i != 3) for i in range(10)]
    fig = ladder.figures(_series(samples), 0.0, 1.0, 12.0, offered=12, started=10, dropped=2,
                         unfinished_ms=[900.0], per_arrival=1.0)
    # the unfinished request is slow, not failed
    assert fig["requests"] == 11 and fig["errors_pct"] == pytest.approx(100 / 11, abs=1e-3)
    assert fig["dropped"] == 2 and fig["dropped_pct"] == pytest.approx(16.667, abs=1e-3)
    reason = ladder.judge(fig, ladder.Slo())[1]
    assert "errors 9.09% > 0.1%" in reason and "dropped 16.7% > 1%" in reason and "p99" in reason


def test_a_step_within_slo_and_the_generator_bound_reason():
    fig = ladder.figures(_series([(i / 50, 0.0, 20.0, True) for i in range(50)]), 0.0, 1.0, 50.0, 50, 50, 0,
                         per_arrival=1.0)
    assert ladder.judge(fig, ladder.Slo()) == (True, "within SLO")
    late = {**fig, "p99_ms": 400.0, "dispatch_lag_p99_ms": 300.0}
    assert "generator-bound" in ladder.judge(late, ladder.Slo())[1]


def test_iteration_arrivals_offer_their_requests_per_arrival():
    samples = [(i / 10, 0.0, 5.0, True) for i in range(10) for _ in range(3)]  # 3 requests per arrival
    series = _series(samples)
    series[K("FLOW", "iteration", True)] = timingfile.Series([15.0] * 10, [i / 10 for i in range(10)])
    fig = ladder.figures(series, 0.0, 1.0, 10.0, 10, 10, 0)
    assert fig["offered_rps"] == 30.0 and fig["achieved_rps"] == 30.0
    assert ladder.figures(series, 0.0, 0.5, 10.0, 5, 5, 0)["offered_rps"] == 30.0  # a run-wide count per arrival


# -- the ladder's plan ------------------------------------------------------------------------------
def _climb(planner, capacity_rate):
    done = []
    while (nxt := planner.next(done)) is not None:
        phase, rate, hold = nxt
        done.append({"phase": phase, "rate": rate, "ok": rate <= capacity_rate, "hold": hold})
    return done


def test_ladder_stops_at_the_first_bad_step_bisects_then_overloads_and_recovers():
    p = ladder.Planner(start=10, factor=2, hold=5, budget=200, tolerance=0.1)
    done = _climb(p, 130.0)
    phases = [d["phase"] for d in done]
    assert [d["rate"] for d in done[:6]] == [10, 20, 40, 80, 160, 160] and done[5]["ok"] is False  # confirmed
    assert phases[6:-2] == ["bisect"] * (len(phases) - 8) and phases[-2:] == ["overload", "recovery"]
    cap = p.capacity(done)
    assert 130.0 / 1.1 <= cap <= 130.0  # within the tolerance below the true knee
    assert done[-2]["rate"] == pytest.approx(1.5 * cap) and done[-1]["rate"] == pytest.approx(0.5 * cap)
    assert done[-1]["hold"] == p.recovery_hold


def test_ladder_respects_its_budget_and_a_first_bad_step_means_no_capacity():
    p = ladder.Planner(start=10, factor=2, hold=5, budget=20)
    done = _climb(p, 1e9)  # never breaks: the budget ends the climb
    assert sum(d["hold"] for d in done if d["phase"] == "ladder") <= 20
    assert [d["phase"] for d in done][-2:] == ["overload", "recovery"]
    assert p.capacity(done) == 80
    none = _climb(ladder.Planner(start=10), 0.5)  # 10, 5, 2.5, 1.25: all bad (twice), no capacity, no overload
    assert [d["rate"] for d in none] == [10, 10, 5, 5, 2.5, 2.5, 1.25, 1.25]
    assert ladder.Planner().capacity(none) is None
    down = _climb(ladder.Planner(start=10, factor=2), 3.0)  # 10, 5 bad, 2.5 good, then bisection up
    assert [d["rate"] for d in down[:6]] == [10, 10, 5, 5, 2.5, 3.75] and 2.5 <= ladder.Planner().capacity(down) <= 3.0


def test_a_ladder_step_that_fails_once_is_confirmed_before_it_ends_the_climb():
    p, done, seen = ladder.Planner(start=10, factor=2, budget=200), [], set()
    while (nxt := p.next(done)) is not None:
        phase, rate, _ = nxt
        ok = rate <= 100 and not (rate == 40 and rate not in seen)  # 40 fails once (noise), then passes
        seen.add(rate)
        done.append({"phase": phase, "rate": rate, "ok": ok})
    assert [d["rate"] for d in done[:7]] == [10, 20, 40, 40, 80, 160, 160]
    assert 100 / 1.1 <= p.capacity(done) <= 100


def test_recovery_seconds():
    slow = [(i / 20, 0.0, 900.0 if i / 20 < 1.2 else 10.0, True) for i in range(60)]  # 3 s at 20/s
    assert ladder.recovery_seconds(_series(slow), 0.0, 3.0, ladder.Slo()) == 1.5
    assert ladder.recovery_seconds(_series([(i / 20, 0.0, 900.0, True) for i in range(60)]), 0.0, 3.0,
                                   ladder.Slo()) is None


# -- timings.bin keeps the lags ---------------------------------------------------------------------
def test_lags_round_trip_and_leave_lagless_series_unchanged(tmp_path):
    data = {K("GET", "/a", True): timingfile.Series([10.0, 20.0], [0.5, 1.0], [0.0, 0.25]),
            K("GET", "/b", True): timingfile.Series([5.0], [0.1])}
    p = tmp_path / "t.bin"
    timingfile.write_timings(str(p), 100.0, data)
    tf = timingfile.read_timings(str(p))
    assert list(tf.series[K("GET", "/a", True)].intended_ms()) == pytest.approx([10.0, 270.0])
    assert list(tf.series[K("GET", "/b", True)].intended_ms()) == [5.0] and not len(tf.series[K("GET", "/b", True)].lag)
    header = json.loads(p.read_bytes().split(b"\n")[1])
    assert [s.get("lag", False) for s in header["series"]] == [True, False]
    header_len = len(json.dumps(header, separators=(",", ":"))) + 1
    assert p.stat().st_size == len(timingfile.MAGIC) + header_len + 4 * (3 * 2 + 2)
    other = timingfile.TimingsFile(100.0, {}, {K("GET", "/a", True): timingfile.Series([1.0], [2.0])})
    merged = timingfile.merge_timings([tf, other])
    assert list(merged.series[K("GET", "/a", True)].lags()) == [0.0, 0.25, 0.0]


# -- meta["capacity"] from a synthetic run folder ---------------------------------------------------
def _run_dir(tmp_path: Path, knee: float) -> Path:
    """A ladder at 10, 20, 40 /s (1 s each) against a server that answers in 20 ms below `knee` and in
    600 ms at or above it; overload at 30/s, recovery at 10/s slow for its first 0.5 s."""
    steps, series, at = [], {}, 0.0
    for phase, rate in (("ladder", 10), ("ladder", 20), ("ladder", 40), ("bisect", 30), ("overload", 30),
                        ("recovery", 10)):
        n = rate
        for i in range(n):
            t = at + i / rate
            slow = rate >= knee if phase != "recovery" else i < n / 2
            s = series.setdefault(K("GET", "/x", True), timingfile.Series())
            s.t.append(t)
            s.ms.append(600.0 if slow else 20.0)
            s.lag.append(0.0)
        steps.append({"phase": phase, "rate": float(rate), "start_s": at, "seconds": 1.0, "offered": n, "started": n,
                      "dropped": 0, "failures": {"timeouts": 2 if phase == "overload" else 0}})
        at += 1.5
    timingfile.write_timings(str(tmp_path / "timings.bin"), 1000.0, series)
    (tmp_path / "openmodel.json").write_text(json.dumps({"t0": 1000.0, "unit": "request", "spacing": "constant",
                                                          "max_inflight": 100, "slots_created": 3, "steps": steps}))
    (tmp_path / "server.log").write_text("[CRITICAL] WORKER TIMEOUT (pid:12)\nBooting worker with pid: 13\n")
    return tmp_path


def test_analyse_writes_the_contract(tmp_path):
    run = _run_dir(tmp_path, knee=25)
    # The server's CPU samples: 1 s before the capacity step (20/s, epochs 1001.5-1002.5), 0.05 s in it,
    # 2 s after: the step's cost is 0.05 s over its 20 requests, never the whole run's.
    (run / measure.SAMPLES_FILE).write_text(json.dumps(
        {"version": 1, "cpu": {"server": [[1000.0, 0.0], [1001.5, 1.0], [1002.5, 1.05], [1009.0, 3.05]]},
         # the speed probe: 1,250 us per run inside the capacity step (0.8x the reference), 500 outside it
         "probe_us": [[1001.0, 500.0], [1001.7, 1200.0], [1002.2, 1300.0], [1003.0, 500.0]]}))
    cap = capacity.analyse(run, "p99=250ms,errors=0.1%")
    assert set(cap) == {"slo", "steps", "capacity_rps", "capacity_ref_rps", "at_capacity", "overload"}
    assert cap["at_capacity"]["speed_factor"] == 0.8 and cap["capacity_ref_rps"] == 25.0
    assert all(set(s) == CONTRACT_STEP for s in cap["steps"])
    assert [s["ok"] for s in cap["steps"]] == [True, True, False, False, False, False]
    assert cap["capacity_rps"] == 20.0 and cap["at_capacity"]["p99_ms"] == pytest.approx(20.0)
    assert cap["at_capacity"]["server_us_per_request"] == pytest.approx(2500.0)
    o = cap["overload"]
    assert o["offered_rps"] == 30.0 and o["timeouts"] == 2 and o["worker_restarts"] == 1 and o["recovery_s"] == 0.5
    # a matrix's server log lives outside the run folder and holds earlier scenarios' lines: from the offset on
    log = tmp_path / "elsewhere.server.log"
    earlier = "Booting worker with pid: 9\nWorker exited (pid: 9)\n"
    log.write_text(earlier + "[CRITICAL] WORKER TIMEOUT (pid:12)\nWORKER TIMEOUT (pid:13)\n")
    assert capacity.analyse(run, "p99=250ms", log, len(earlier))["overload"]["worker_restarts"] == 2
    assert capacity.analyse(run, "p99=250ms", log)["overload"]["worker_restarts"] == 3
    assert capacity.worker_restarts(tmp_path / "missing.log") is None
    lines = capacity.ladder_lines(cap)
    assert "capacity at SLO: 20.0 req/s" in "\n".join(lines) and len(lines) == 2 + 6 + 2


# -- the load plan ----------------------------------------------------------------------------------
def test_capacity_and_arrival_rate_run_the_dispatcher(tmp_path):
    cap = loadgen.LoadPlan(scenario=loadgen.CAPACITY, flow="api", users=loadgen.CAPACITY_INFLIGHT)
    cmd = loadgen.command(cap, "http://127.0.0.1:1", tmp_path)
    assert cmd[2].endswith("openmodel.py") and cmd[3] == loadgen.OPEN_USER
    assert cmd[cmd.index("--arrival-unit") + 1] == "request" and "--ladder" in cmd
    assert cmd[cmd.index("--slo") + 1] == ladder.DEFAULT_SLO and cmd[cmd.index("--max-inflight") + 1] == "500"
    assert cap.seconds <= 150  # the run-time bound: budget + overload + recovery + judging, under 3 minutes
    plain = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="original", users=16, arrival_rate=8.0)
    cmd = loadgen.command(plain, "http://127.0.0.1:1", tmp_path)
    assert cmd[cmd.index("--arrival-unit") + 1] == "iteration" and "--ladder" not in cmd
    assert cmd[cmd.index("--arrival-rate") + 1] == "8.0" and cmd[cmd.index("--users") + 1] == "1"


@pytest.mark.parametrize("kw, words", [
    ({"arrival_rate": 5.0}, "chooses its own rates"),
    ({"processes": 2}, "one Locust process"),
    ({"slo": "p99=soon"}, "bad --slo p99=soon"),
    ({"ladder_factor": 1.0}, "--ladder-factor must be between"),
])
def test_capacity_plan_refusals(kw, words):
    with pytest.raises(UsageError, match=words):
        loadgen.validate(loadgen.LoadPlan(scenario=loadgen.CAPACITY, flow="api", **kw))


def test_bench_help_documents_the_capacity_defaults():
    from asgibench import options
    text = options.bench_parser().format_help()  # argparse's %-formatting of every help string
    assert "p99=250ms,errors=0.1%" in text and "--ladder-budget" in text and "poisson" in text
    a = options.bench_parser().parse_args(["raw-asgi-asyncpg", "--scenario", "capacity"])
    plan = options.build_options(a).plan
    assert plan.scenario == loadgen.CAPACITY and plan.users == loadgen.CAPACITY_INFLIGHT and plan.flow == "api"


def test_judged_steps_are_told_once_as_the_run_goes(tmp_path):
    p, told = tmp_path / "openmodel.json", []
    live = {"offered_rps": 10.0, "achieved_rps": 10.0, "p99_ms": 12.0, "errors_pct": 0.0, "dropped": 0, "ok": True,
            "reason": "within SLO"}
    assert loadgen._tell_steps(p, 0, told.append) == 0  # no file yet
    p.write_text(json.dumps({"steps": [{"phase": "ladder", "live": live}, {"phase": "ladder", "live": {}}]}))
    n = loadgen._tell_steps(p, 0, told.append)
    assert n == 1 and loadgen._tell_steps(p, n, told.append) == 1 and len(told) == 1
    assert capacity.live_line(told[0]).split() == ["step", "ladder", "offered", "10.0", "achieved", "10.0", "p99",
                                                   "12.0", "ms", "errors", "0.00%", "dropped", "0", "ok"]


def test_the_matrix_has_a_capacity_scenario():
    from asgibench import matrix, variants
    s = matrix.MatrixSettings(rows=["uvicorn"], scenarios=["capacity"], trials=1)
    plan = matrix.plan_for(s, variants.get("uvicorn"), "capacity")
    # the API flow on every row (a Django row's default is the original flow): capacities in one unit
    assert plan.scenario == loadgen.CAPACITY and plan.flow == "api" != variants.get("uvicorn").default_flow
    loadgen.validate(plan)
    assert s.estimate_seconds() == (matrix.SERVER_OVERHEAD_SECONDS + s.warmup + matrix.LOCUST_OVERHEAD_SECONDS
                                    + matrix.CAPACITY_SECONDS)
