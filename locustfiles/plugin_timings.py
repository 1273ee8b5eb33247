"""Recorder plugin (a): exact response times.

Every request event is stored (ms, float32) per (request_type, name, ok) and written at quit to
--timings-file (format: timingfile.py). One file per process (naming: plugin_shared.py), e.g.
timings.bin, timings.worker0.bin, timings.worker1.bin; merge them with timingfile.merge_timings. In
master/worker mode the master never sees request events, so its own file has no series. Samples are
cleared when a test starts (like Locust's stats), on the web UI's "reset stats", and when spawning
completes if --reset-stats is set.

The samples are also the generator plugin's request counts (counts()).

Open model (openmodel.py): a request whose user's context() carries "open_lag" (seconds its arrival
started after its intended time) stores that lag beside it, so the file keeps both latencies: from
the actual send (ms) and from the intended start (ms + 1000 * lag). live() hands the current samples
to the ladder controller, which judges each step while the run goes on.
"""

from __future__ import annotations

import time

import locust

import timingfile
from plugin_shared import ThisProcess


def add_arguments(parser) -> None:
    parser.add_argument(
        "--timings-file",
        default=None,
        env_var="LOCUST_TIMINGS_FILE",
        help="write every response time (timingfile.py format) here at quit; workers insert .worker<N>",
    )


class ExactTimings:
    def __init__(self, environment, process: ThisProcess):
        self.environment = environment
        self.process = process
        self.t0 = time.time()
        self.series: dict[timingfile.SeriesKey, timingfile.Series] = {}
        self.none_response_times = 0
        ev = environment.events
        ev.request.add_listener(self.on_request)
        ev.test_start.add_listener(self.clear)
        ev.reset_stats.add_listener(self.clear)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        ev.quit.add_listener(self.on_quit)

    def on_request(self, request_type, name, response_time, exception=None, start_time=None, context=None, **_kw):
        if response_time is None:
            self.none_response_times += 1
            return
        key = (request_type, name, exception is None)
        s = self.series.get(key)
        if s is None:
            s = self.series[timingfile.SeriesKey(*key)] = timingfile.Series()
        lag = context.get("open_lag") if context else None
        if lag is not None and len(s.lag) != len(s.ms):  # the first lagged sample of the series
            s.lag = s.lags()
        s.ms.append(response_time)
        if start_time is None:
            start_time = time.time() - response_time / 1000.0
        s.t.append(start_time - self.t0)
        if lag is not None or len(s.lag):
            s.lag.append(lag or 0.0)

    def clear(self, **_kw):
        self.series = {}
        self.none_response_times = 0

    def on_spawning_complete(self, **_kw):
        if getattr(self.environment, "reset_stats", False):
            self.clear()

    def counts(self) -> tuple[int, int, int]:
        """(requests, failures, FLOW iterations) stored since the last clear; FLOW is not a request."""
        requests = failures = flows = 0
        for k, s in self.series.items():
            if k.request_type == timingfile.FLOW_REQUEST_TYPE:
                flows += len(s)
                continue
            requests += len(s)
            if not k.ok:
                failures += len(s)
        return requests, failures, flows

    def on_quit(self, **_kw):
        opts = self.environment.parsed_options
        if opts is None:
            return
        self.process.write_at_quit(getattr(opts, "timings_file", None), self.write)

    def write(self, path: str) -> None:
        p = self.process
        meta = {
            "pid": p.pid,
            "role": p.role,
            "worker_index": p.worker_index(),
            "locust_version": locust.__version__,
            "none_response_times": self.none_response_times,
        }
        timingfile.write_timings(path, self.t0, self.series, meta)
