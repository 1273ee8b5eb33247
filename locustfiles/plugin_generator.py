"""Recorder plugin (c): generator CPU.

locust.runners.CPU_MONITOR_INTERVAL is lowered from 10 s to --cpu-monitor-interval (default 1 s) so
that Locust's "CPU usage above 90%" warning can fire in short runs too (its first psutil reading is
always 0, so the earliest warning comes after two intervals); Runner.stop()'s costly caller look-up
for a debug line is skipped unless debug logging is on (_CallerNotLookedUp). At quit every process writes
--generator-file (per-process naming: plugin_shared.py), a small JSON object:

  {"version": 1, "pid", "role": "standalone"|"master"|"worker", "worker_index": int|null,
   "cpu_monitor_interval": 1.0,
   "cpu_warning_emitted": bool,          # environment.runner.cpu_warning_emitted (this process)
   "worker_cpu_warning_emitted": bool|null,   # master only: some worker reported > 90 %
   "cpu_warning_readings": int,          # readings above the threshold during the test
   "cpu_percent_samples": [[seconds_since_test_start, percent], ...],   # Locust's own readings
   "run": {"started_at", "stopping_at", "stopped_at" (epoch s), "wall_s", "stop_phase_s",
           "cpu_user_s", "cpu_sys_s", "cpu_s"},
   "process": {"wall_s", "cpu_user_s", "cpu_sys_s", "cpu_s"},   # whole process life so far
   "requests": int, "failures": int,     # request events in this process, FLOW excluded
   "flow_iterations": int,
   "cpu_us_per_request": float|null}      # run.cpu_s / requests, in microseconds

"run" is the run window (plugin_shared.RunWindow): test_start .. test_stop in this process, spawning,
the run time and the stop phase (requests completing then are counted, by Locust too); stop_phase_s
is that last part. The timings file's start offsets let a reader pick any window (e.g. only requests
started before stopping_at). The request counts are the timings plugin's samples (the same clears).
"""

from __future__ import annotations

import inspect
import logging
import os
import time

import locust.runners

from plugin_shared import RunWindow, ThisProcess, cpu_times, write_json_atomic

DEFAULT_CPU_MONITOR_INTERVAL = 1.0
# Effective from the first sleep of the monitor greenlet (runners read the module global each loop).
locust.runners.CPU_MONITOR_INTERVAL = DEFAULT_CPU_MONITOR_INTERVAL



class _CallerNotLookedUp:
    """locust.runners' view of `inspect`. Runner.stop() calls inspect.stack() for one debug line ("Stopping
    all users (called from ...)"): the first call in a process walks every module's file (getmodule)
    and read sources, measured ~60 ms of CPU (6 ms when repeated), inside the measured window, i.e.
    ~17 us a request of a 12 s run at 300 req/s, ~120 us at 40 req/s. Unless locust.runners logs at
    DEBUG, stack() raises and Locust logs its "couldn't determine" variant (not shown) instead."""

    def __getattr__(self, name):
        return getattr(inspect, name)

    @staticmethod
    def stack(*args, **kwargs):
        if logging.getLogger(locust.runners.__name__).isEnabledFor(logging.DEBUG):
            return inspect.stack(*args, **kwargs)
        raise RuntimeError("caller not looked up: debug logging is off")


locust.runners.inspect = _CallerNotLookedUp()

_PROCESS_T0_WALL = time.monotonic()  # import time ~ process start (forked workers: reset in init)
_IMPORT_PID = os.getpid()


def add_arguments(parser) -> None:
    parser.add_argument(
        "--generator-file",
        default=None,
        env_var="LOCUST_GENERATOR_FILE",
        help="write this process's CPU time, wall time and CPU warning (JSON) here at quit; workers insert .worker<N>",
    )
    parser.add_argument(
        "--cpu-monitor-interval",
        type=float,
        default=DEFAULT_CPU_MONITOR_INTERVAL,
        env_var="LOCUST_CPU_MONITOR_INTERVAL",
        help="seconds between Locust's CPU usage checks (Locust's own default is 10)",
    )


class GeneratorCpu:
    def __init__(self, environment, process: ThisProcess, window: RunWindow, counts):
        """counts() -> (requests, failures, FLOW iterations) of this process (the timings plugin's)."""
        self.environment = environment
        self.runner = environment.runner
        self.process = process
        self.window = window
        self.counts = counts
        # A forked worker (--processes) starts its own CPU times at 0, its wall clock at the fork.
        self.process_t0 = time.monotonic() if process.pid != _IMPORT_PID else _PROCESS_T0_WALL
        self.cpu_samples: list[list[float]] = []
        self.cpu_warning_readings = 0
        opts = environment.parsed_options
        if opts is not None and getattr(opts, "cpu_monitor_interval", None):
            locust.runners.CPU_MONITOR_INTERVAL = float(opts.cpu_monitor_interval)
        window.restarted.add_listener(self.clear)
        ev = environment.events
        ev.usage_monitor.add_listener(self.on_usage_monitor)
        ev.cpu_warning.add_listener(self.on_cpu_warning)
        ev.quit.add_listener(self.on_quit)

    def clear(self, **_kw):
        self.cpu_samples = []
        self.cpu_warning_readings = 0

    def on_usage_monitor(self, cpu_usage, **_kw):
        if self.window.open:
            self.cpu_samples.append([round(time.monotonic() - self.window.start[1], 3), cpu_usage])

    def on_cpu_warning(self, **_kw):
        if self.window.open:
            self.cpu_warning_readings += 1

    def report(self) -> dict:
        now = (time.time(), time.monotonic(), *cpu_times())
        w = self.window
        start = w.start
        stop = w.stop or now
        run = None
        if start is not None:
            user, sys_ = stop[2] - start[2], stop[3] - start[3]
            run = {
                "started_at": start[0],
                "stopping_at": w.stopping[0] if w.stopping else None,
                "stopped_at": stop[0],
                "wall_s": stop[1] - start[1],
                "stop_phase_s": (stop[1] - w.stopping[1]) if w.stopping else None,
                "cpu_user_s": user,
                "cpu_sys_s": sys_,
                "cpu_s": user + sys_,
            }
        requests, failures, flows = self.counts()
        role = self.process.role
        return {
            "version": 1,
            "pid": self.process.pid,
            "role": role,
            "worker_index": self.process.worker_index(),
            "cpu_monitor_interval": locust.runners.CPU_MONITOR_INTERVAL,
            "cpu_warning_emitted": bool(getattr(self.runner, "cpu_warning_emitted", False)),
            "worker_cpu_warning_emitted": (
                bool(self.runner.worker_cpu_warning_emitted) if role == "master" else None
            ),
            "cpu_warning_readings": self.cpu_warning_readings,
            "cpu_percent_samples": self.cpu_samples,
            "run": run,
            "process": {
                "wall_s": now[1] - self.process_t0,
                "cpu_user_s": now[2],
                "cpu_sys_s": now[3],
                "cpu_s": now[2] + now[3],
            },
            "requests": requests,
            "failures": failures,
            "flow_iterations": flows,
            "cpu_us_per_request": (run["cpu_s"] * 1e6 / requests) if run and requests else None,
        }

    def on_quit(self, **_kw):
        opts = self.environment.parsed_options
        if opts is None:
            return
        self.process.write_at_quit(getattr(opts, "generator_file", None),
                                   lambda path: write_json_atomic(path, self.report()))
