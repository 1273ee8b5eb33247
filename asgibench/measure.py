"""Timestamped samples of the process trees we did not start as direct children (the server and its
workers, the PostgreSQL postmaster and its backends), read straight from /proc, and the figures of
any window cut from them afterwards.

Why samples and not a meter restarted when the warm-up ends: the runner only learns of that end up
to ~1.5 s late (it polls Locust's files), which undercounted the measured window's CPU by 5-11%. The
sampler runs for the whole Locust run; the pipeline cuts the exact window the recorder wrote
(generator*.json: epoch seconds, time.time(), the clock of the samples here) and reads each cumulative
counter at the window's edges by linear interpolation between the samples around them.

What one sample holds, per process of a tree (pid, role):
  cpu   utime+stime+cutime+cstime (/proc/<pid>/stat), seconds. The children's part matters: a
        process that exits between two samples (a short-lived backend, a restarted worker) has its
        CPU added to its parent's cutime when reaped, so the tree's sum is one continuous counter.
  rss   resident set (/proc/<pid>/statm), MB, every sample
  pss   proportional set (/proc/<pid>/smaps_rollup), MB, every PSS_EVERY-th sample (the kernel walks
        the page tables for it: dearer than the rest)
and, per sample, the busy and total jiffies of the CPUs the server may run on (/proc/stat), for the
"was the server CPU-bound" half of the generator-competing rule.

The speed probe: on this VM the CPU second is not a fixed unit (a fixed loop's own CPU: 2,764-4,051 us
in 12 s blocks at idle, CV 13%; two busy processes moved with a low-duty probe beside them, correlation
0.96, CV 10.7% -> 3.3% once divided by it; README "Numbers you can trust"). Every sample also times one
PROBE_LOOPS loop by the sampler thread's own CPU clock (~1 ms, ~0.5% of a core, counted in no tree);
speed() gives a window's mean and the steal share of all CPUs; metrics derives "at reference speed".

The trees' CPU counters are kept in the run folder (SAMPLES_FILE, write_samples): any later reader cuts
its own window from them (cpu_between), e.g. one step of a capacity ladder.

Cost of the sampler itself (it shares the cores with the server): every INTERVAL_S a read of two
/proc files per process of the trees and /proc/stat; every TREE_EVERY-th sample a scan of /proc to find
new children; every PSS_EVERY-th the server's smaps_rollup. Measured: ~1% of one core.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field

from asgibench import files

INTERVAL_S = 0.2
TREE_EVERY = 5  # samples between scans of /proc for the trees' processes (new workers, backends)
PSS_EVERY = 10  # samples between PSS readings (the server tree only: no figure needs PostgreSQL's)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
SAMPLES_FILE = "proc_samples.json"
PROBE_LOOPS = 5500  # one probe run: ~1 ms of CPU here
PROBE_NOMINAL_US = 1000.0  # the reference machine's probe run (metrics: CPU "at reference speed")
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.semaphore_tracker", "multiprocessing.forkserver")


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


BOOT = _boot_time()


def read_stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, cpu seconds utime+stime+cutime+cstime, start epoch) of a live pid; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    f = raw[raw.rfind(")") + 2:].split()  # f[0] is field 3 (state)
    return int(f[1]), sum(int(x) for x in f[11:15]) / CLK_TCK, BOOT + int(f[19]) / CLK_TCK


def read_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return None


def read_pss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_jiffies(cpus) -> tuple[int, int]:
    """(busy, total) jiffies of these CPUs since boot (/proc/stat; busy = all but idle and iowait)."""
    want = {f"cpu{c}" for c in cpus}
    busy = total = 0
    with open("/proc/stat") as fh:
        for line in fh:
            f = line.split()
            if f and f[0] in want:
                vals = [int(x) for x in f[1:9]]  # user nice system idle iowait irq softirq steal
                total += sum(vals)
                busy += sum(vals) - vals[3] - vals[4]
    return busy, total


def machine_jiffies() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot (/proc/stat's "cpu" line)."""
    with open("/proc/stat") as fh:
        vals = [int(x) for x in fh.readline().split()[1:9]]
    return vals[7], sum(vals)


def probe_run() -> float:
    """One run of the speed probe: a fixed loop of integer arithmetic and dict stores (the interpreter
    work a Python server does most), timed by this thread's own CPU clock. Returns CPU microseconds."""
    c0 = time.thread_time()
    s, d = 0, {}
    for i in range(PROBE_LOOPS):
        s += i * i % 7
        d[i & 1023] = s
    return (time.thread_time() - c0) * 1e6


def probe_mean(series, start: float, stop: float) -> tuple[float | None, int]:
    """(mean CPU us of the probe runs [(epoch, us)] inside [start, stop] or None, their count)."""
    runs = [us for t, us in series if start <= t <= stop]
    return (statistics.fmean(runs) if runs else None), len(runs)


def _descendants(roots, table: dict) -> list[int]:
    kids: dict[int, list] = {}
    for pid, ppid in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, seen, todo = [], set(), [r for r in roots if r in table]
    while todo:
        p = todo.pop()
        if p in seen:  # roots that are descendants of other roots count once
            continue
        seen.add(p)
        out.append(p)
        todo += kids.get(p, [])
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Series:
    """One process's samples: [(epoch, cumulative cpu s)], [(epoch, rss MB)], [(epoch, pss MB)]."""
    pid: int
    ppid: int
    born: float
    role: str = "worker"
    cpu: list = field(default_factory=list)
    rss: list = field(default_factory=list)
    pss: list = field(default_factory=list)


class Tree:
    """The samples of one process tree (roots from root_pids_fn, every descendant found in /proc)."""

    def __init__(self, root_pids_fn, pss: bool = True):
        self.root_pids_fn = root_pids_fn
        self.want_pss = pss
        self.roots: list[int] = []
        self.pids: list[int] = []
        self.procs: dict[int, Series] = {}
        self.total: list = []  # [(epoch, sum of the live processes' cumulative cpu)]
        self.rss_total: list = []
        self.pss_total: list = []

    def refresh(self, table: dict) -> None:
        self.roots = list(self.root_pids_fn())
        self.pids = _descendants(self.roots, table)
        for pid in self.pids:
            if pid not in self.procs:
                st = read_stat(pid)
                if st:
                    self.procs[pid] = Series(pid, st[0], st[2], role=self._role(pid, st[0]))

    def _role(self, pid: int, ppid: int) -> str:
        if pid in self.roots:
            return "root"  # master or worker: decided by whether it has workers (roles())
        if any(h in _cmdline(pid) for h in HELPERS):
            return "helper"
        return "worker" if ppid in self.roots else "child"

    def sample(self, now: float, pss: bool) -> None:
        cpu = rss = pss_sum = 0.0
        for pid in self.pids:
            s = self.procs.get(pid)
            st = read_stat(pid)
            if s is None or st is None:
                continue
            s.cpu.append((now, st[1]))
            cpu += st[1]
            r = read_rss_mb(pid)
            if r is not None:
                s.rss.append((now, r))
                rss += r
            if pss and self.want_pss:
                p = read_pss_mb(pid)
                if p is not None:
                    s.pss.append((now, p))
                    pss_sum += p
        if self.pids:
            self.total.append((now, cpu))
            self.rss_total.append((now, rss))
            if pss and self.want_pss:
                self.pss_total.append((now, pss_sum))

    # -- figures of a window ------------------------------------------------------------------------
    def cpu_seconds(self, start: float, stop: float) -> float | None:
        """CPU seconds the whole tree used between two epochs (None: never sampled)."""
        if not self.total:
            return None
        return max(0.0, at(self.total, stop) - at(self.total, start))

    def roles(self) -> dict[int, str]:
        """pid -> "master" | "worker" | "helper" (a root with workers is the master, else a worker)."""
        workers = [p for p, s in self.procs.items() if s.role == "worker"]
        out = {}
        for pid, s in self.procs.items():
            if s.role == "root":
                out[pid] = "master" if workers else "worker"
            elif s.role in ("worker", "helper"):
                out[pid] = s.role
        return out

    def process_cpu(self, pid: int, start: float, stop: float) -> float:
        """One process's CPU in the window (its own children included); born inside it: from zero."""
        s = self.procs[pid]
        if not s.cpu:
            return 0.0
        series = ([(s.born, 0.0)] if s.born > start and s.born < s.cpu[0][0] else []) + s.cpu
        return max(0.0, at(series, stop) - at(series, start))

    def memory(self, start: float, stop: float) -> dict:
        """RSS and PSS of the server in total and per master/worker: steady (median of the samples in
        the window) and peak (their max), MB."""
        by = self.roles()
        per = []
        for pid in sorted(by):
            if by[pid] == "helper":
                continue
            s = self.procs[pid]
            per.append({"pid": pid, "role": by[pid], "rss_mb": steady_peak(s.rss, start, stop),
                        "pss_mb": steady_peak(s.pss, start, stop)})
        return {"server_rss_mb": steady_peak(self.rss_total, start, stop),
                "server_pss_mb": steady_peak(self.pss_total, start, stop), "per_worker": per}


def at(series: list, t: float) -> float:
    """A cumulative counter at epoch t: linear between the samples around it, flat outside them."""
    i = bisect_right(series, (t, float("inf")))
    if i == 0:
        return series[0][1]
    if i == len(series):
        return series[-1][1]
    (t0, c0), (t1, c1) = series[i - 1], series[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def steady_peak(series: list, start: float, stop: float) -> dict:
    """{"steady": median, "peak": max} of the samples inside [start, stop] (the nearest sample when
    none falls inside), MB, rounded to 0.1; None values when never sampled."""
    inside = [v for t, v in series if start <= t <= stop]
    if not inside and series:
        inside = [min(series, key=lambda s: abs(s[0] - (start + stop) / 2))[1]]
    if not inside:
        return {"steady": None, "peak": None}
    return {"steady": round(statistics.median(inside), 1), "peak": round(max(inside), 1)}


class Sampler:
    """Context manager: samples the named trees every INTERVAL_S from entry to exit (a thread), plus
    the busy share of the CPUs the first tree's root may run on. Cut a window afterwards. PSS is read
    for the trees named in `pss` (default: all)."""

    def __init__(self, trees: dict, interval: float = INTERVAL_S, pss=None):
        self.trees = {name: Tree(fn, pss is None or name in pss) for name, fn in trees.items()}
        self.interval = interval
        self.cpus: list[int] = []
        self.jiffies: list = []  # [(epoch, busy, total)]
        self.machine: list = []  # [(epoch, steal, total)] of all CPUs
        self.probe: list = []  # [(epoch, probe run's CPU us)]
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="asgibench-sampler")

    def _sample(self) -> None:
        if self._n % TREE_EVERY == 0:
            table = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    st = read_stat(int(d))
                    if st:
                        table[int(d)] = st[0]
            for tree in self.trees.values():
                tree.refresh(table)
            if not self.cpus:
                self.cpus = self._server_cpus()
        now = time.time()
        pss = self._n % PSS_EVERY == 0
        for tree in self.trees.values():
            tree.sample(now, pss)
        if self.cpus:
            self.jiffies.append((now, *cpu_jiffies(self.cpus)))
        self.machine.append((now, *machine_jiffies()))
        self.probe.append((now, probe_run()))
        self._n += 1

    def _server_cpus(self) -> list[int]:
        first = next(iter(self.trees.values()), None)
        for pid in (first.roots if first else []):
            try:
                return sorted(os.sched_getaffinity(pid))
            except OSError:
                pass
        return []

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def cpus_busy(self, start: float, stop: float) -> float | None:
        """Busy share (0..1) of the CPUs the server may run on between two epochs."""
        if len(self.jiffies) < 2:
            return None
        busy = at([(t, b) for t, b, _ in self.jiffies], stop) - at([(t, b) for t, b, _ in self.jiffies], start)
        total = at([(t, n) for t, _, n in self.jiffies], stop) - at([(t, n) for t, _, n in self.jiffies], start)
        return round(busy / total, 3) if total > 0 else None

    def speed(self, start: float, stop: float) -> dict:
        """The machine during a window: the speed probe's mean CPU per run (runs inside the window), the
        speed factor (PROBE_NOMINAL_US / that: 1.2 = this window ran 1.2x the reference machine's speed)
        and the share of all CPUs' time the hypervisor stole, %."""
        probe, runs = probe_mean(self.probe, start, stop)
        steal = None
        if len(self.machine) >= 2:
            st = at([(t, s) for t, s, _ in self.machine], stop) - at([(t, s) for t, s, _ in self.machine], start)
            tot = at([(t, n) for t, _, n in self.machine], stop) - at([(t, n) for t, _, n in self.machine], start)
            steal = round(100 * st / tot, 2) if tot > 0 else None
        return {"probe_us": round(probe, 1) if probe else None, "probe_runs": runs,
                "speed_factor": round(PROBE_NOMINAL_US / probe, 4) if probe else None, "steal_pct": steal,
                "probe_nominal_us": PROBE_NOMINAL_US}


def write_samples(path, sampler: Sampler) -> None:
    """SAMPLES_FILE: {"version": 1, "cpu": {tree: [[epoch, cumulative cpu s], ...]}, "server_cpus": [..],
    "cpus_jiffies": [[epoch, busy, total], ...], "probe_us": [[epoch, probe run's CPU us], ...]} (epochs to
    the ms, CPU to the ms)."""
    doc = {"version": 1, "cpu": {name: [[round(t, 3), round(c, 3)] for t, c in tree.total]
                                 for name, tree in sampler.trees.items()},
           "server_cpus": sampler.cpus, "cpus_jiffies": [[round(t, 3), b, n] for t, b, n in sampler.jiffies],
           "probe_us": [[round(t, 3), round(us, 1)] for t, us in sampler.probe]}
    files.write_text_atomic(path, json.dumps(doc, separators=(",", ":")))


def speed_between(path, start: float, stop: float) -> float | None:
    """The speed factor between two epochs from a run folder's SAMPLES_FILE (None: no probe run there)."""
    try:
        with open(path) as fh:
            probe, _ = probe_mean(json.load(fh).get("probe_us") or [], start, stop)
    except (OSError, ValueError, TypeError):
        return None
    return round(PROBE_NOMINAL_US / probe, 4) if probe else None


def cpu_between(path, tree: str, start: float, stop: float) -> float | None:
    """CPU seconds of one tree ("server", "db") between two epochs, from a run folder's SAMPLES_FILE
    (None when the file or the tree's samples are missing)."""
    try:
        with open(path) as fh:
            series = [tuple(x) for x in json.load(fh)["cpu"].get(tree) or []]
    except (OSError, ValueError, KeyError):
        return None
    return max(0.0, at(series, stop) - at(series, start)) if series else None
