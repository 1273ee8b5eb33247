"""CPU accounting for process trees we did not start as direct children (server workers, the
PostgreSQL postmaster and its backends): user+sys seconds summed over the tree, sampled so that
processes that exit between samples still count up to their last sample.

A new meter of a process tree is a context manager here with restart() (the warm-up is over) and a
reading; the pipeline's measure step opens it around the Locust run."""
from __future__ import annotations

import threading

import psutil


class TreeCpu:
    def __init__(self, root_pids_fn, interval: float = 0.5):
        self.root_pids_fn = root_pids_fn
        self.interval = interval
        self._last: dict[int, float] = {}
        self._start: dict[int, float] = {}
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for root in self.root_pids_fn():
            try:
                p = psutil.Process(root)
                tree = [p] + p.children(recursive=True)
            except psutil.Error:
                continue
            for proc in tree:
                try:
                    t = proc.cpu_times()
                except psutil.Error:
                    continue
                used = t.user + t.system
                # A process born after the first sample (a new worker or backend) counts from zero.
                self._start.setdefault(proc.pid, used if not self._started else 0.0)
                self._last[proc.pid] = used

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def restart(self) -> None:
        """Count from now on (the warm-up inside the same Locust run is over)."""
        self._sample()
        self._start = dict(self._last)

    @property
    def seconds(self) -> float:
        return sum(self._last[p] - self._start[p] for p in self._last)
