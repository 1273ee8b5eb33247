"""The open model and the capacity ladder against servers whose behaviour is known in advance.

  a real ladder   gunicorn-sync with 2 sync workers and the I/O probe (each request sleeps S s in
                  PostgreSQL): at most 2 requests at a time, so no more than 2/S req/s can be served;
                  the ladder's knee must land just under it, and the overload step cannot achieve more.
  a stalled server tests/slotserver.py pauses every request for P s once the run is going: the
                  dispatcher keeps offering arrivals, 4 slots fill, the rest wait; their latency from
                  the intended start must include the wait, their latency from the send must not.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from asgibench import ROOT, loadgen
from asgibench.capacity import open_model_figures
from helpers import cli, meta_of, only_run_dir
from locustfiles import timingfile

S = 0.1  # seconds each probe sleeps
WORKERS = 2
KNEE = WORKERS / S  # req/s the server cannot exceed


@pytest.mark.e2e
def test_ladder_finds_the_knee_of_a_server_of_known_capacity(db, tmp_path):
    res = cli("bench", "gunicorn-sync", "--scenario", "capacity", "--io-probe", "--io-seconds", f"{S:g}",
              "--workers", str(WORKERS), "--ladder-start", "4", "--ladder-hold", "1.5", "--ladder-budget", "12",
              "--warmup", "0", results=tmp_path, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    cap = meta_of(only_run_dir(tmp_path, "gunicorn-sync"))["capacity"]
    phases = [s["phase"] for s in cap["steps"]]
    assert phases[:3] == ["ladder"] * 3 and phases[-2:] == ["overload", "recovery"], phases
    assert 0.75 * KNEE <= cap["capacity_rps"] <= 1.02 * KNEE, cap["steps"]
    bad = [s["offered_rps"] for s in cap["steps"] if s["phase"] in ("ladder", "bisect") and not s["ok"]]
    assert bad and min(bad) <= 1.3 * KNEE, bad  # bisection closed in on the knee
    o = cap["overload"]
    assert o["offered_rps"] == pytest.approx(1.5 * cap["capacity_rps"], rel=0.02)
    assert o["achieved_rps"] <= 1.05 * KNEE  # nobody serves more than 2 slots of S s allow
    assert o["worker_restarts"] == 0 and cap["at_capacity"]["p99_ms"] <= 250
    for step in cap["steps"]:  # the printed ladder, step by step
        assert f"{step['offered_rps']:9.1f} {step['achieved_rps']:9.1f}" in res.stdout, step
    assert f"capacity at SLO: {cap['capacity_rps']:.1f} req/s" in res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_latency_from_the_intended_start_includes_a_stall(tmp_path):
    rate, slots, pause = 40.0, 4, 0.8
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "slotserver.py"), str(port), "--pause-at", "1.0",
                               "--pause-s", str(pause)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "slotserver did not start"
                time.sleep(0.05)
        plan = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="bare", users=slots, arrival_rate=rate, duration=4,
                                bare_path="/")
        loadgen.run(plan, f"http://127.0.0.1:{port}", tmp_path)
    finally:
        server.kill()
        server.wait()
    tf = timingfile.read_timings(str(tmp_path / "timings.bin"))
    (key,) = [k for k in tf.series if k.ok]
    s = tf.series[key]
    sent, intended = list(s.ms), list(s.intended_ms())
    assert 3.5 * rate <= len(sent) <= 4.5 * rate, len(sent)
    # only the requests already sent when the server paused waited in the server: at most one per slot
    assert 1 <= sum(m > 0.5 * pause * 1000 for m in sent) <= slots, sorted(sent)[-8:]
    # the arrivals queued behind them carry the stall in their latency from the intended start
    assert sum(m > 0.5 * pause * 1000 for m in intended) >= 0.4 * rate * pause, sorted(intended)[-30:]
    assert max(intended) >= 0.85 * pause * 1000 and all(i >= m - 0.01 for i, m in zip(intended, sent))
    om = open_model_figures(tmp_path)
    per = om["latency_ms"][f"{key.request_type} {key.name}"]
    assert per["from_intended"]["max"] >= per["from_send"]["max"] and om["max_inflight"] == slots
    assert om["offered"] >= len(sent) and om["dropped"] <= 2  # max lag 1 s: the 0.8 s wait dropped none
