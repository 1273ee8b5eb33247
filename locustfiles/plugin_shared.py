"""What the recorder's plugins share: who this Locust process is, its per-process file names, the
write at quit (atomic for JSON), and the run window with the warm-up.

Locust processes only (it imports Locust; the runner reads the files through timingfile.py and never
imports this). Locust processes do not import asgibench either, so this is the one helper of
locustfiles/ for these pieces. A piece goes here once two plugins need it; otherwise it stays in its
plugin.

Per-process file names: the standalone or master process writes exactly PATH; a worker writes PATH
with ".worker<index>" inserted before the extension (".pid<pid>" if the master never told it its
index), e.g. timings.bin, timings.worker0.bin, timings.worker1.bin.

The run window of a process spans test_start .. test_stop: spawning, the run time and the stop phase
(test_stopping .. test_stop: users finish their current task, at most --stop-timeout). With
--warmup-seconds (standalone runs) every statistic (Locust's, the timings, the generator CPU) is reset
that long after the test starts, and the window starts again then: the warm-up is excluded without a
second Locust start-up.
"""

from __future__ import annotations

import json
import logging
import os
import time

import gevent
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

logger = logging.getLogger("asgibench.recorder")


def add_arguments(parser) -> None:
    """The run window's option (registered by recorder.py after the plugins' options)."""
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=0.0,
        env_var="LOCUST_WARMUP_SECONDS",
        help="standalone runs: reset every statistic (Locust's, timings, generator CPU) this long after the "
             "test starts, so the warm-up is excluded without a second Locust start-up (include it in --run-time)",
    )


def per_process_path(path: str, role: str, worker_index: int | None, pid: int) -> str:
    """PATH for a standalone/master process, PATH with .worker<N> (or .pid<P>) before the extension
    for a worker."""
    if role != "worker":
        return path
    root, ext = os.path.splitext(path)
    tag = f"worker{worker_index}" if worker_index is not None and worker_index >= 0 else f"pid{pid}"
    return f"{root}.{tag}{ext}"


def cpu_times() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    t = os.times()
    return t.user, t.system


class ThisProcess:
    """The Locust process the plugins run in: its role, pid and (for a worker) index."""

    def __init__(self, runner):
        self.runner = runner
        if isinstance(runner, MasterRunner):
            self.role = "master"
        elif isinstance(runner, WorkerRunner):
            self.role = "worker"
        else:
            self.role = "standalone"
        self.pid = os.getpid()

    def worker_index(self) -> int | None:
        """The index the master gave this worker (known once it connected), else None."""
        if self.role != "worker":
            return None
        idx = getattr(self.runner, "worker_index", -1)
        return idx if idx is not None and idx >= 0 else None

    def write_at_quit(self, path: str | None, write) -> None:
        """write(per-process path of `path`) unless no path was asked for; creates the folder; a
        failure is logged, never raised (every other file must still be written)."""
        if not path:
            return
        p = per_process_path(path, self.role, self.worker_index(), self.pid)
        try:
            if os.path.dirname(p):
                os.makedirs(os.path.dirname(p), exist_ok=True)
            write(p)
        except Exception:
            logger.exception("asgibench recorder: could not write %s", p)


def write_json_atomic(path: str, doc) -> None:
    """`doc` as indented JSON + newline, written to a temporary file renamed over `path`."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


class RunWindow:
    """test_start .. test_stopping .. test_stop of this process, restarted when the warm-up ends.

    start and stop are (epoch s, monotonic s, cpu user s, cpu sys s), stopping is (epoch s,
    monotonic s); None until they happen. `restarted` fires (no arguments) whenever start is set:
    whatever is measured over the window starts from zero then."""

    def __init__(self, environment, process: ThisProcess):
        self.environment = environment
        self.process = process
        self.start = None
        self.stopping = None
        self.stop = None
        self.restarted = EventHook()
        ev = environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)

    @property
    def open(self) -> bool:
        """The test has started and not stopped yet."""
        return self.start is not None and self.stop is None

    @staticmethod
    def now() -> tuple[float, float, float, float]:
        return (time.time(), time.monotonic(), *cpu_times())

    def on_test_start(self, **_kw):
        self.restarted.fire()
        self.start = self.now()
        self.stopping = None
        self.stop = None
        warmup = getattr(self.environment.parsed_options, "warmup_seconds", 0) or 0
        if warmup > 0 and self.process.role == "standalone":
            gevent.spawn_later(warmup, self.end_warmup)

    def end_warmup(self):
        """The warm-up is over: start every figure from zero, as Locust's own "reset stats" does."""
        if self.stop is not None:
            return
        runner = self.environment.runner
        runner.stats.reset_all()
        runner.exceptions = {}
        runner.cpu_warning_emitted = False
        self.environment.events.reset_stats.fire()  # -> the timings restart too
        self.restarted.fire()
        self.start = self.now()

    def on_test_stopping(self, **_kw):
        if self.start is not None and self.stopping is None:
            self.stopping = (time.time(), time.monotonic())

    def on_test_stop(self, **_kw):
        if self.start is not None:
            self.stop = self.now()
