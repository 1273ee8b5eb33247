"""The sampler of process trees (asgibench.measure) on processes of the test's own (no server, no
PostgreSQL, no Locust), and the figures metrics derives from its samples: cost per request, memory,
worker balance, the generator's share of the machine and the rules in stats."""
from __future__ import annotations

import io
import statistics
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout

import pytest

from asgibench import console, figures, measure, metrics, stats

# A parent that forks: one child burning CPU for the whole life, short-lived children (each dies long
# before the sampler's next look: only the parent's cutime can count them), then reports the CPU
# the kernel charged its children (os.times) and itself on stdout.
BURNER = r"""
import os, sys, time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
long = os.fork()
if long == 0:
    burn(0.5); os._exit(0)
for _ in range(10):
    if os.fork() == 0:
        burn(0.02); os._exit(0)
    os.wait()
burn(0.1)
os.waitpid(long, 0)
t = os.times()
print(t.user + t.system + t.children_user + t.children_system, flush=True)
time.sleep(0.6)
"""


def test_the_tree_counts_every_cpu_second_of_its_processes_including_short_lived_ones(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    try:
        with measure.Sampler({"t": lambda: [proc.pid]}, interval=0.1) as s:
            start = time.time() - 1.0  # the whole life of the tree
            total = float(proc.stdout.readline())
            time.sleep(0.3)
            stop = time.time()
    finally:
        proc.wait(10)
    tree = s.trees["t"]
    assert total > 0.75
    assert tree.cpu_seconds(start, stop) == pytest.approx(total, abs=0.05)
    # the window's edges are interpolated: half the samples' span is half the counter's growth
    t0, t1 = tree.total[0][0], tree.total[-1][0]
    mid = (t0 + t1) / 2
    assert tree.cpu_seconds(t0, mid) + tree.cpu_seconds(mid, t1) == pytest.approx(tree.cpu_seconds(t0, t1))
    roles = tree.roles()
    assert roles[proc.pid] == "master" and "worker" in roles.values()
    mem = tree.memory(start, stop)
    assert mem["server_rss_mb"]["steady"] > 1 and mem["server_pss_mb"]["peak"] >= mem["server_pss_mb"]["steady"]
    assert [w["pid"] for w in mem["per_worker"]][0] == proc.pid
    assert s.cpus and 0 <= s.cpus_busy(start, stop) <= 1
    measure.write_samples(tmp_path / measure.SAMPLES_FILE, s)  # what a later reader cuts its windows from
    assert measure.cpu_between(tmp_path / measure.SAMPLES_FILE, "t", t0, mid) == pytest.approx(
        tree.cpu_seconds(t0, mid), abs=0.002)
    assert measure.cpu_between(tmp_path / "none.json", "t", t0, mid) is None


def test_the_speed_probe_times_its_own_work_not_the_wait_for_a_core(monkeypatch):
    """probe_run is the thread's own CPU: with a second thread of this process spinning (the GIL
    handed back and forth), its wall time grows but its figure must not; twice the loops, ~twice the
    figure (it measures work, not a fixed overhead). Interleaved, compared pair by pair: the VM's speed
    itself moves by tens of percent within seconds (measure's docstring)."""
    stop, running = threading.Event(), threading.Event()

    def spin():
        running.set()
        while not stop.is_set():
            sum(range(1000))
    loops = 20 * measure.PROBE_LOOPS  # ~20 ms: the GIL changes hands every 5 ms (sys.getswitchinterval)
    monkeypatch.setattr(measure, "PROBE_LOOPS", loops)
    busy_ratio, wall_ratio, double_ratio = [], [], []
    for _ in range(9):
        quiet = measure.probe_run()
        th = threading.Thread(target=spin, daemon=True)
        th.start()
        running.wait(5)
        w0 = time.perf_counter()
        busy = measure.probe_run()
        wall = (time.perf_counter() - w0) * 1e6
        stop.set()
        th.join()
        stop.clear()
        running.clear()
        monkeypatch.setattr(measure, "PROBE_LOOPS", 2 * loops)
        double = measure.probe_run()
        monkeypatch.setattr(measure, "PROBE_LOOPS", loops)
        busy_ratio.append(busy / quiet)
        wall_ratio.append(wall / busy)
        double_ratio.append(double / quiet)
    assert statistics.median(wall_ratio) > 1.3  # it did wait for the GIL...
    assert 0.7 < statistics.median(busy_ratio) < 1.4  # ...and that wait is not in the figure
    assert 1.6 < statistics.median(double_ratio) < 2.5


def test_the_sampler_reports_the_machine_speed_and_steal_of_a_window():
    with measure.Sampler({}, interval=0.05) as s:
        start = time.time()
        time.sleep(0.6)
        stop = time.time()
    m = s.speed(start, stop)
    inside = [us for t, us in s.probe if start <= t <= stop]
    assert m["probe_runs"] == len(inside) >= 5 and m["probe_us"] == pytest.approx(statistics.fmean(inside), abs=0.1)
    assert m["speed_factor"] == pytest.approx(measure.PROBE_NOMINAL_US / m["probe_us"], rel=1e-3)
    assert 0 <= m["steal_pct"] <= 100
    assert s.speed(stop + 100, stop + 200)["speed_factor"] is None  # no probe ran then: no factor


def test_interpolation_and_steady_peak():
    series = [(10.0, 1.0), (11.0, 3.0), (12.0, 3.5)]
    assert measure.at(series, 9.0) == 1.0 and measure.at(series, 13.0) == 3.5
    assert measure.at(series, 10.5) == 2.0 and measure.at(series, 11.0) == 3.0
    assert measure.steady_peak([(1, 5.0), (2, 7.0), (3, 6.0), (9, 100.0)], 0, 4) == {"steady": 6.0, "peak": 7.0}
    assert measure.steady_peak([(1, 5.0), (9, 7.0)], 4, 5) == {"steady": 5.0, "peak": 5.0}  # nearest
    assert measure.steady_peak([], 0, 1) == {"steady": None, "peak": None}


def _tree(workers_cpu: list, master_cpu: float = 0.1, start=100.0, stop=110.0) -> measure.Tree:
    """A sampled tree without processes: a master and workers whose CPU grew linearly over [start, stop]."""
    t = measure.Tree(lambda: [1])
    t.roots = [1]
    t.procs[1] = measure.Series(1, 0, 0.0, role="root", cpu=[(start, 5.0), (stop, 5.0 + master_cpu)],
                                rss=[(start, 40.0)], pss=[(start, 20.0)])
    for i, c in enumerate(workers_cpu):
        t.procs[10 + i] = measure.Series(10 + i, 1, 0.0, role="worker", cpu=[(start, 1.0), (stop, 1.0 + c)],
                                         rss=[(start, 60.0)], pss=[(start, 30.0)])
    t.procs[9] = measure.Series(9, 1, 0.0, role="helper", cpu=[(start, 0.0), (stop, 0.0)])
    total = master_cpu + sum(workers_cpu)
    t.total = [(start, 50.0), (stop, 50.0 + total)]
    t.rss_total = [(start, 40.0 + 60 * len(workers_cpu))]
    t.pss_total = [(start, 20.0 + 30 * len(workers_cpu))]
    return t


SUMMARY = {"requests": 1000, "rps": 100.0, "window": {"start": 100.0, "stop": 110.0}}


def test_cost_memory_and_balance_of_a_sampled_tree():
    server, db = _tree([4.9, 0.1]), _tree([], master_cpu=1.0)
    mem = metrics.memory(SUMMARY, server, 7)
    assert mem["server_pss_mb"] == {"steady": 80.0, "peak": 80.0} and mem["db_backends_peak"] == 7
    assert [(w["pid"], w["role"]) for w in mem["per_worker"]] == [(1, "master"), (10, "worker"), (11, "worker")]
    cost = metrics.cost(SUMMARY, server, db, {"cpu_seconds": 0.4}, mem)
    assert cost == {"server_us_per_request": 5100.0, "db_us_per_request": 1000.0, "generator_us_per_request": 400.0,
                    "capacity_per_server_core": round(1e6 / 5100, 1), "rps_per_gb": round(100 / (80 / 1024), 1),
                    "server_cpu_seconds": 5.1, "db_cpu_seconds": 1.0, "window_s": 10.0,
                    "server_ref_us_per_request": None, "capacity_per_ref_core": None}  # no probe: not adjusted
    # a window that ran at 0.8x the reference machine's speed: its CPU seconds were 1/0.8 too long
    slow = metrics.cost(SUMMARY, server, db, {"cpu_seconds": 0.4}, mem, {"speed_factor": 0.8})
    assert slow["server_ref_us_per_request"] == 4080.0 and slow["capacity_per_ref_core"] == round(1e6 / 4080, 1)
    assert slow["server_us_per_request"] == 5100.0  # the raw figure is kept as measured
    b = metrics.balance(SUMMARY, server)
    assert b["workers"] == 2 and b["shares"] == [0.98, 0.02] and b["imbalance"] == 1.96 and b["imbalanced"]
    assert b["reason"] == "worker shares 98/2%" and b["threshold"] == stats.IMBALANCE_MAX
    assert figures.flags({"status": "completed", "summary": {"balance": b}}) == [("imbalanced", "worker shares 98/2%")]
    even = metrics.balance(SUMMARY, _tree([2.2, 2.8]))
    assert even["shares"] == [0.44, 0.56] and not even["imbalanced"]
    idle = metrics.balance(SUMMARY, _tree([0.1, 0.0]))  # too little CPU to judge
    assert not idle["imbalanced"] and "not judged" in idle["reason"]
    assert metrics.balance(SUMMARY, _tree([3.0])) is None  # one worker: no balance
    assert metrics.cost({"requests": 0, "rps": 0}, server, None, {}, mem)["server_us_per_request"] is None


def test_generator_share_of_the_machine_and_the_competing_rule():
    gen = {"cpu_seconds": 2.0, "per_process": [{"run": {"wall_s": 4.0}}]}
    got = metrics.competing(gen, 0.97, cpu_count=2)
    assert got["machine_share"] == 0.25 and got["competing"]
    assert got["competing_reason"] == ("generator took 25% of the machine's CPU (over 10%) while the server's CPUs "
                                       "were 97% busy")
    flagged = figures.flags({"status": "completed", "generator": got})
    assert flagged == [("generator-competing", got["competing_reason"])]
    assert not metrics.competing(gen, 0.5, cpu_count=2)["competing"]  # the server's CPUs had room
    assert not metrics.competing({"cpu_seconds": 0.2, "per_process": gen["per_process"]}, 1.0, 2)["competing"]
    assert metrics.competing({"cpu_seconds": None, "per_process": []}, 1.0)["machine_share"] is None
    # pinned: the rule reads the share of its own CPUs; pinned apart from the server, it never competes
    small = {"cpu_seconds": 0.6, "per_process": gen["per_process"]}
    pinned = metrics.competing(small, 0.99, cpu_count=2, generator_cpus={0}, server_cpus=[0])
    assert pinned["machine_share"] == 0.075 and pinned["competing"]
    assert pinned["competing_reason"].startswith("generator took 15% of its pinned CPU(s) 0 (over 10%)")
    assert not metrics.competing(small, 0.99, cpu_count=2)["competing"]  # 7.5% of the machine
    assert not metrics.competing(gen, 0.99, cpu_count=2, generator_cpus={1}, server_cpus=[0])["competing"]
    assert stats.GENERATOR_COMPETING_SHARE == 0.10 and stats.SERVER_CPUS_BUSY == 0.90  # as documented
    assert stats.imbalance([0.5, 0.5]) == 1.0 and stats.imbalance([1.0, 0.0, 0.0]) == 3.0
    assert stats.imbalance([1.0]) is None


def test_the_summary_prints_cost_memory_and_balance():
    server = _tree([4.9, 0.1])
    summary = dict(SUMMARY, memory=metrics.memory(SUMMARY, server, 3))
    summary["cost"] = metrics.cost(summary, server, None, {"cpu_seconds": 0.4}, summary["memory"])
    summary["balance"] = metrics.balance(summary, server)
    out = io.StringIO()
    with redirect_stdout(out):
        console.print_cost(summary)
    text = out.getvalue()
    assert "cost per request: server 5100 µs, PostgreSQL n/a µs, generator 400 µs" in text
    assert "capacity 196 req/s per server core" in text
    assert "memory: server PSS 80 MB steady, 80 peak; RSS 160 MB steady" in text and "per worker PSS 30/30 MB" in text
    assert "PostgreSQL backends peak 3" in text
    assert "balance: 2 workers, worker shares 98/2%, imbalance 1.96" in text


def test_the_trials_line_gives_median_and_cv_of_cpu_per_request_and_capacity_per_core():
    trials = [{"rps": r, "cost": {"server_us_per_request": us, "capacity_per_server_core": 1e6 / us}}
              for r, us in ((150.0, 6288.0), (234.0, 6414.0), (190.0, 6350.0))]
    out = io.StringIO()
    with redirect_stdout(out):
        console.print_trials(trials)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("3 trials: median 190.0 req/s, CV 22.0%") and "UNSTABLE" in lines[0]
    assert lines[1] == "  server CPU per request: median 6350 µs, CV 1.0%"
    assert lines[2] == "  capacity per server core: median 157 req/s, CV 1.0%"


def test_a_root_that_is_also_a_descendant_counts_once():
    """A roots function that returns the server's root and its workers (Server.pids does) must not
    count the workers twice: fidelity measured 2x the server's CPU per request that way."""
    table = {10: 1, 11: 10, 12: 10, 13: 11}  # pid -> ppid: a master, two workers, a worker's child
    assert sorted(measure._descendants([10, 11, 12, 13], table)) == [10, 11, 12, 13]
    assert sorted(measure._descendants([10], table)) == [10, 11, 12, 13]
