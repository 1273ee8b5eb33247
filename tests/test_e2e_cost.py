"""Cost per request, memory, worker balance and the generator's share of a real run, each checked
against the test's own count: while `bench` runs, the test samples (every 0.1 s, its own /proc parser)
the utime+stime of every process of the server's tree and of Locust, each process's RSS from psutil,
and /proc/stat; then it cuts the run's measured window (summary.window: the recorder's test start and
stop) from its own samples and compares.

  imbalanced   uvicorn (Django), 2 workers, ONE keep-alive user: one worker carries every request; the
               trial must be flagged with the shares the test measured itself. Its generator takes a
               few % of the machine: not competing.
  competing    raw-asgi-asyncpg, 1 worker, 8 users, --pin server=0,locust=0: Locust and the server
               share one core, which is saturated; the generator takes well over 10% of it.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from bisect import bisect_right
from pathlib import Path

import psutil
import pytest

from asgibench import figures, measure, stats
from helpers import cli_watched, meta_of, only_run_dir

pytestmark = pytest.mark.e2e
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int):
    """(ppid, utime+stime seconds, starttime ticks) from /proc/<pid>/stat; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rfind(")") + 2:].split()
    return int(f[1]), (int(f[11]) + int(f[12])) / CLK_TCK, int(f[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cpu0() -> tuple[int, int]:
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == "cpu0":
            v = [int(x) for x in f[1:9]]
            return sum(v) - v[3] - v[4], sum(v)
    raise AssertionError("no cpu0 in /proc/stat")


class Watch(threading.Thread):
    """The test's own instrument: every 0.1 s, per process of the trees under `bench` (the server: the
    child running `server_word`; Locust: the child running locust), (epoch, utime+stime) and psutil's
    RSS; and cpu0's busy/total jiffies."""

    def __init__(self, bench_pid: int, server_word: str):
        super().__init__(daemon=True)
        self.bench_pid, self.word = bench_pid, server_word
        self.cpu: dict[str, dict[int, list]] = {"server": {}, "locust": {}}
        self.rss: dict[int, list] = {}
        self.cmd: dict[int, str] = {}
        self.cpu0: list = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(0.1):
            table = {int(d): st for d in os.listdir("/proc") if d.isdigit() and (st := _stat(int(d)))}
            now = time.time()
            kids: dict[int, list] = {}
            for pid, st in table.items():
                kids.setdefault(st[0], []).append(pid)
            for child in kids.get(self.bench_pid, []):
                cmd = self.cmd.setdefault(child, _cmdline(child))
                name = "server" if self.word in cmd else "locust" if "locust" in cmd else None
                todo = [child] if name else []
                while todo:
                    pid = todo.pop()
                    self.cpu[name].setdefault(pid, []).append((now, table[pid][1]))
                    self.cmd.setdefault(pid, _cmdline(pid))
                    if name == "server":
                        try:
                            self.rss.setdefault(pid, []).append((now, psutil.Process(pid).memory_info().rss / 2**20))
                        except psutil.Error:
                            pass
                    todo += kids.get(pid, [])
            self.cpu0.append((now, *_cpu0()))

    def seconds(self, name: str, pids, start: float, stop: float) -> float:
        return sum(_at(self.cpu[name][p], stop) - _at(self.cpu[name][p], start) for p in pids)

    def workers(self) -> list[int]:
        root = min(self.cpu["server"], key=lambda p: len(self.cmd[p]) if "spawn_main" in self.cmd[p] else 0)
        return sorted(p for p in self.cpu["server"] if "spawn_main" in self.cmd[p] and p != root)


def _at(series: list, t: float) -> float:
    i = bisect_right(series, (t, float("inf")))
    if i == 0:
        return series[0][1]
    if i == len(series):
        return series[-1][1]
    (t0, c0), (t1, c1) = series[i - 1], series[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def _bench(tmp_path_factory, name: str, row: str, word: str, extra: list):
    root = tmp_path_factory.mktemp(f"cost-{name}") / "results"
    env = dict(os.environ, ASGIBENCH_RESULTS=str(root))
    watches = []

    def watch_of(pid):
        watches.append(Watch(pid, word))
        return watches[0]
    rc, out, err = cli_watched(["bench", row, "--api-only", *extra], env, watch_of, timeout=180)
    assert rc == 0, err[-3000:]
    watch = watches[0]
    run_dir = only_run_dir(root, row)
    meta = meta_of(run_dir)
    w = meta["summary"]["window"]
    return {"dir": run_dir, "meta": meta, "out": out, "watch": watch, "start": w["start"], "stop": w["stop"]}


@pytest.fixture(scope="module")
def imbalanced(db, tmp_path_factory):
    return _bench(tmp_path_factory, "imbalanced", "uvicorn", "bin/uvicorn",
                  ["--workers", "2", "--users", "1", "--duration", "5s", "--warmup", "1s"])


@pytest.fixture(scope="module")
def competing(db, tmp_path_factory):
    return _bench(tmp_path_factory, "competing", "raw-asgi-asyncpg", "bin/uvicorn",
                  ["--workers", "1", "--users", "8", "--duration", "4s", "--warmup", "1s",
                   "--pin", "server=0,locust=0"])


def test_server_cpu_per_request_against_proc(imbalanced):
    r, s = imbalanced, imbalanced["meta"]["summary"]
    w = r["watch"]
    mine = w.seconds("server", w.cpu["server"], r["start"], r["stop"])
    cost = s["cost"]
    assert mine > 0.3, mine
    assert cost["server_cpu_seconds"] == pytest.approx(mine, rel=0.05, abs=0.05), (cost, mine)
    assert cost["window_s"] == pytest.approx(s["seconds"], abs=0.01)
    assert cost["server_us_per_request"] == pytest.approx(1e6 * mine / s["requests"], rel=0.05, abs=50)
    assert cost["capacity_per_server_core"] == pytest.approx(1e6 / cost["server_us_per_request"], rel=0.001)
    assert cost["db_us_per_request"] > 0 and cost["db_cpu_seconds"] > 0
    assert r["meta"]["server_cpu_seconds"] == cost["server_cpu_seconds"]  # the older key, same figure
    kept = measure.cpu_between(r["dir"] / measure.SAMPLES_FILE, "server", r["start"], r["stop"])  # for later windows
    assert kept == pytest.approx(cost["server_cpu_seconds"], abs=0.005)
    gen = r["meta"]["generator"]
    assert cost["generator_us_per_request"] == pytest.approx(1e6 * gen["cpu_seconds"] / s["requests"], rel=0.01)


def test_memory_against_psutil(imbalanced):
    r, m = imbalanced, imbalanced["meta"]["summary"]["memory"]
    w = r["watch"]
    inside = {p: [v for t, v in series if r["start"] <= t <= r["stop"]] for p, series in w.rss.items()}
    workers = w.workers()
    by_pid = {x["pid"]: x for x in m["per_worker"]}
    assert sorted(p for p, x in by_pid.items() if x["role"] == "worker") == workers
    for pid in workers:
        assert by_pid[pid]["rss_mb"]["steady"] == pytest.approx(statistics.median(inside[pid]), rel=0.05)
        assert by_pid[pid]["rss_mb"]["peak"] >= by_pid[pid]["rss_mb"]["steady"]
        assert 0 < by_pid[pid]["pss_mb"]["steady"] <= by_pid[pid]["rss_mb"]["peak"]
    total = sum(statistics.median(v) for v in inside.values() if v)
    assert m["server_rss_mb"]["steady"] == pytest.approx(total, rel=0.05)
    assert m["server_pss_mb"]["steady"] < m["server_rss_mb"]["steady"]  # the workers share pages
    s = imbalanced["meta"]["summary"]
    assert s["cost"]["rps_per_gb"] == pytest.approx(s["rps"] / (m["server_pss_mb"]["steady"] / 1024), rel=0.01)
    assert m["db_backends_peak"] >= 1


def test_one_keep_alive_user_on_two_workers_is_flagged_imbalanced(imbalanced):
    r, b = imbalanced, imbalanced["meta"]["summary"]["balance"]
    w = r["watch"]
    workers = w.workers()
    used = [w.seconds("server", [p], r["start"], r["stop"]) for p in workers]
    mine = [u / sum(used) for u in used]
    assert max(mine) > 0.85, mine  # the test's own count: one worker carried (nearly) everything
    assert b["workers"] == 2 and b["pids"] == workers
    assert b["shares"] == pytest.approx(mine, abs=0.05)
    assert b["imbalance"] == pytest.approx(2 * max(b["shares"]), abs=0.002) and b["imbalanced"]
    flagged = dict(figures.flags(r["meta"]))
    assert flagged["imbalanced"] == b["reason"] and b["reason"].startswith("worker shares ")
    assert "generator-competing" not in flagged and r["meta"]["generator"]["competing"] is False
    out = r["out"]
    assert "cost per request: server " in out and "req/s per server core" in out
    assert "memory: server PSS " in out and "per worker PSS " in out
    assert "balance: 2 workers, worker shares " in out and f"IMBALANCED: {b['reason']}" in out


def test_a_generator_sharing_the_servers_core_is_flagged_competing(competing):
    r, gen = competing, competing["meta"]["generator"]
    w = r["watch"]
    locust = w.seconds("locust", w.cpu["locust"], r["start"], r["stop"])
    wall = r["stop"] - r["start"]
    share = locust / (wall * os.cpu_count())
    busy = [(t, b) for t, b, _ in w.cpu0], [(t, n) for t, _, n in w.cpu0]
    cpu0 = (_at(busy[0], r["stop"]) - _at(busy[0], r["start"])) / (_at(busy[1], r["stop"]) - _at(busy[1], r["start"]))
    # pinned to cpu0, the rule reads the generator's share of cpu0 (the server's only CPU)
    assert locust / wall > stats.GENERATOR_COMPETING_SHARE and cpu0 > stats.SERVER_CPUS_BUSY, (locust / wall, cpu0)
    assert gen["machine_share"] == pytest.approx(share, abs=0.02)
    assert "of its pinned CPU(s) 0" in gen["competing_reason"]
    assert gen["server_cpus_busy"] == pytest.approx(cpu0, abs=0.05)
    assert gen["competing"] is True
    flagged = dict(figures.flags(r["meta"]))
    assert flagged["generator-competing"] == gen["competing_reason"]
    assert f"GENERATOR-COMPETING: {gen['competing_reason']}" in r["out"]
    assert r["meta"]["summary"]["balance"] is None  # one worker: nothing to balance
