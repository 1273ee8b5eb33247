"""Locust plugin (events only) that makes a run's numbers trustworthy. workload.py imports it, so it
is active in every asgibench Locust process: standalone, master, and every worker.

(a) Exact response times. Every request event is stored (ms, float32) per (request_type, name, ok)
    and written at quit to --timings-file (format: timingfile.py). One file per process: the
    standalone or master process writes exactly PATH; a worker writes PATH with ".worker<index>"
    inserted before the extension (".pid<pid>" if the master never told it its index), e.g.
    timings.bin, timings.worker0.bin, timings.worker1.bin. Merge them with timingfile.merge_timings.
    In master/worker mode the master never sees request events, so its own file has no series.
    Samples are cleared when a test starts (like Locust's stats), on the web UI's "reset stats", and
    when spawning completes if --reset-stats is set.

(b) Locust's outputs complete and consistent at exit (standalone and master processes).
    - PREFIX_stats.csv is rewritten by Locust once a second and not at shutdown, so it missed the last
      second of requests. On the `quitting` event this plugin stops Locust's CSV loop and rewrites
      PREFIX_stats.csv, PREFIX_failures.csv and PREFIX_exceptions.csv from the final stats with
      Locust's own StatsCSVFileWriter (its own file handles), and appends one final row per entry to
      PREFIX_stats_history.csv unless the last Aggregated row already has the final totals.
      Afterwards the Aggregated row of _stats.csv equals the sum of the --json-file entries (both
      include the FLOW rows: exclude request_type FLOW for request totals). Locust appends ".json"
      to --json-file's value: pass a prefix.
    - A SIGTERM fires `quitting` while users still run; this plugin then stops them first (as Locust
      does right after), so the CSV and the JSON hold the same final numbers there too.
    - save_stats_json() serializes with get_stripped_report(), which RESETS every entry; a SIGTERM'd
      master shuts down twice (Locust's "last worker quit" handler quits the runner again), and the
      second pass wrote "[]" over the JSON. From `quitting` on, serialization keeps the entries.
    - Master/worker: Locust's MasterRunner.quit() waits only 0.5 s for the workers' final stats,
      while a worker first stops its users (up to --stop-timeout): whatever finished in its last
      report interval (3 s) or stop phase was missing from the master's CSV/JSON (measured: 0 of 8
      requests). A headless master now tells its workers to quit when the test stops and waits
      (at most --stop-timeout + 5 s) until each has quit, i.e. has sent its final stats.
    - Locust's --processes children kept --json-file and could write their own empty "[]" over the
      master's file (measured); json_file/html_file are cleared in worker processes.
    - --run-time was cut short by the start-up time: gevent's loop clock is stale when locust.main
      arms the run-time timer (a 4 s run lasted 1 s, 6 s runs ~5 s). The loop clock is refreshed
      at `init`.

(c) Generator CPU. locust.runners.CPU_MONITOR_INTERVAL is lowered from 10 s to --cpu-monitor-interval
    (default 1 s) so that Locust's "CPU usage above 90%" warning can fire in short runs too (its first
    psutil reading is always 0, so the earliest warning comes after two intervals). At quit every
    process writes --generator-file (per-process naming as in (a)), a small JSON object:

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

    "run" spans test_start .. test_stop in this process: spawning, the run time and the stop phase
    (test_stopping .. test_stop: users finish their current task, at most --stop-timeout; requests
    completing then are counted, by Locust too). stop_phase_s is that last part. The timings file's
    start offsets let a reader pick any window (e.g. only requests started before stopping_at).
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import os
import time

import gevent
import locust.runners
from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

import timingfile

logger = logging.getLogger("asgibench.recorder")

DEFAULT_CPU_MONITOR_INTERVAL = 1.0
# Effective from the first sleep of the monitor greenlet (runners read the module global each loop).
locust.runners.CPU_MONITOR_INTERVAL = DEFAULT_CPU_MONITOR_INTERVAL

_PROCESS_T0_WALL = time.monotonic()  # import time ~ process start (forked workers: reset in init)
_IMPORT_PID = os.getpid()


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kw):
    parser.add_argument(
        "--timings-file",
        default=None,
        env_var="LOCUST_TIMINGS_FILE",
        help="write every response time (timingfile.py format) here at quit; workers insert .worker<N>",
    )
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


def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


def _find_csv_writer():
    """The StatsCSVFileWriter locust.main created for --csv (a local variable there): found once."""
    from locust.stats import StatsCSVFileWriter

    found = [o for o in gc.get_objects() if isinstance(o, StatsCSVFileWriter)]
    return found[-1] if found else None


def _last_history_totals(path: str):
    """(Total Request Count, Total Failure Count) of the last Aggregated row of a
    _stats_history.csv, or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().decode("utf-8", "replace").splitlines()
        with open(path, encoding="utf-8") as f:
            header = next(csv.reader(f), None)
        if not header:
            return None
        i_req, i_fail, i_name = (header.index("Total Request Count"), header.index("Total Failure Count"),
                                 header.index("Name"))
        for row in csv.reader(reversed(lines)):
            if len(row) == len(header) and row[i_name] == "Aggregated":
                return int(row[i_req]), int(row[i_fail])
    except (OSError, ValueError, StopIteration):
        return None
    return None


def keep_entries_on_serialize(stats) -> None:
    """Make this RequestStats' serialize_stats() leave the entries alone (from now on).

    Locust's serialize_stats() (used by save_stats_json for --json-file, and by workers for their
    reports) RESETS every entry it serializes. In a standalone or master process that only happens
    at shutdown, but a SIGTERM'd master shuts down twice (Locust's "last worker quit" handler quits
    the runner again, which wakes locust.main's main loop): the second pass wrote the JSON (and the
    HTML report) from zeroed entries. With the entries kept, every write has the final numbers.
    Never call this in a worker: its reports must reset what they sent."""

    def serialize_stats():
        return [e.serialize() for e in stats.entries.values() if not (e.num_requests == 0 and e.num_failures == 0)]

    stats.serialize_stats = serialize_stats


def _kill_greenlets_running(func) -> int:
    """Kill the greenlets whose run callable is `func` (locust.main spawns the CSV writer's loop
    without keeping a reference)."""
    victims = [o for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and getattr(o, "_run", None) == func]
    for g in victims:
        g.kill(block=True)
    return len(victims)


class Recorder:
    def __init__(self, environment):
        self.environment = environment
        self.runner = environment.runner
        if isinstance(self.runner, MasterRunner):
            self.role = "master"
        elif isinstance(self.runner, WorkerRunner):
            self.role = "worker"
        else:
            self.role = "standalone"
        self.pid = os.getpid()
        # A forked worker (--processes) starts its own CPU times at 0, its wall clock at the fork.
        self.process_t0 = time.monotonic() if self.pid != _IMPORT_PID else _PROCESS_T0_WALL
        self.t0 = time.time()
        self.series: dict[timingfile.SeriesKey, timingfile.Series] = {}
        self.none_response_times = 0
        self.run_start = None  # (epoch, monotonic, user, sys)
        self.run_stopping = None  # (epoch, monotonic): test_stopping, the stop phase begins
        self.run_stop = None
        self.cpu_samples: list[list[float]] = []
        self.cpu_warning_readings = 0
        self.csv_writer = None
        self.quitting_count = 0
        opts = environment.parsed_options
        if opts is not None and getattr(opts, "cpu_monitor_interval", None):
            locust.runners.CPU_MONITOR_INTERVAL = float(opts.cpu_monitor_interval)
        if self.role != "worker" and opts is not None and getattr(opts, "csv_prefix", None):
            self.csv_writer = _find_csv_writer()
        if self.role == "worker" and opts is not None:
            # the master writes these; a worker's copy would be empty and could land after it
            opts.json_file = None
            opts.html_file = None

        ev = environment.events
        ev.request.add_listener(self.on_request)
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.reset_stats.add_listener(self.clear)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        ev.usage_monitor.add_listener(self.on_usage_monitor)
        ev.cpu_warning.add_listener(self.on_cpu_warning)
        ev.quitting.add_listener(self.on_quitting)
        if self.role == "master":
            ev.test_stop.add_listener(self.on_master_test_stop)
        ev.quit.add_listener(self.on_quit)

    # -- (a) samples --------------------------------------------------------------------------------
    def on_request(self, request_type, name, response_time, exception=None, start_time=None, **_kw):
        if response_time is None:
            self.none_response_times += 1
            return
        key = (request_type, name, exception is None)
        s = self.series.get(key)
        if s is None:
            s = self.series[timingfile.SeriesKey(*key)] = timingfile.Series()
        s.ms.append(response_time)
        if start_time is None:
            start_time = time.time() - response_time / 1000.0
        s.t.append(start_time - self.t0)

    def clear(self, **_kw):
        self.series = {}
        self.none_response_times = 0

    def on_spawning_complete(self, **_kw):
        if getattr(self.environment, "reset_stats", False):
            self.clear()

    # -- (c) generator CPU --------------------------------------------------------------------------
    def on_test_start(self, **_kw):
        self.clear()
        self.cpu_samples = []
        self.cpu_warning_readings = 0
        self.run_start = (time.time(), time.monotonic(), *_cpu())
        self.run_stopping = None
        self.run_stop = None
        warmup = getattr(self.environment.parsed_options, "warmup_seconds", 0) or 0
        if warmup > 0 and self.role == "standalone":
            gevent.spawn_later(warmup, self.end_warmup)

    def end_warmup(self):
        """The warm-up is over: start every figure from zero, as Locust's own "reset stats" does."""
        if self.run_stop is not None:
            return
        self.runner.stats.reset_all()
        self.runner.exceptions = {}
        self.runner.cpu_warning_emitted = False
        self.environment.events.reset_stats.fire()  # -> self.clear(): timings restart too
        self.cpu_samples = []
        self.cpu_warning_readings = 0
        self.run_start = (time.time(), time.monotonic(), *_cpu())

    def on_test_stopping(self, **_kw):
        if self.run_start is not None and self.run_stopping is None:
            self.run_stopping = (time.time(), time.monotonic())

    def on_test_stop(self, **_kw):
        if self.run_start is not None:
            self.run_stop = (time.time(), time.monotonic(), *_cpu())

    def on_usage_monitor(self, cpu_usage, **_kw):
        if self.run_start is not None and self.run_stop is None:
            self.cpu_samples.append([round(time.monotonic() - self.run_start[1], 3), cpu_usage])

    def on_cpu_warning(self, **_kw):
        if self.run_start is not None and self.run_stop is None:
            self.cpu_warning_readings += 1

    def counts(self) -> tuple[int, int, int]:
        requests = failures = flows = 0
        for k, s in self.series.items():
            if k.request_type == timingfile.FLOW_REQUEST_TYPE:
                flows += len(s)
                continue
            requests += len(s)
            if not k.ok:
                failures += len(s)
        return requests, failures, flows

    def worker_index(self):
        if self.role != "worker":
            return None
        idx = getattr(self.runner, "worker_index", -1)
        return idx if idx is not None and idx >= 0 else None

    def generator_report(self) -> dict:
        now = (time.time(), time.monotonic(), *_cpu())
        start = self.run_start
        stop = self.run_stop or now
        run = None
        if start is not None:
            user, sys_ = stop[2] - start[2], stop[3] - start[3]
            run = {
                "started_at": start[0],
                "stopping_at": self.run_stopping[0] if self.run_stopping else None,
                "stopped_at": stop[0],
                "wall_s": stop[1] - start[1],
                "stop_phase_s": (stop[1] - self.run_stopping[1]) if self.run_stopping else None,
                "cpu_user_s": user,
                "cpu_sys_s": sys_,
                "cpu_s": user + sys_,
            }
        requests, failures, flows = self.counts()
        return {
            "version": 1,
            "pid": self.pid,
            "role": self.role,
            "worker_index": self.worker_index(),
            "cpu_monitor_interval": locust.runners.CPU_MONITOR_INTERVAL,
            "cpu_warning_emitted": bool(getattr(self.runner, "cpu_warning_emitted", False)),
            "worker_cpu_warning_emitted": (
                bool(self.runner.worker_cpu_warning_emitted) if self.role == "master" else None
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

    # -- (b) + writing ------------------------------------------------------------------------------
    def rewrite_csv(self) -> None:
        """Rewrite the CSV files from the final stats with Locust's own writer and its own handles."""
        w = self.csv_writer
        if w is None:
            return
        for fh, write in (
            (w.requests_csv_filehandle, w.requests_csv),
            (w.failures_csv_filehandle, w.failures_csv),
            (w.exceptions_csv_filehandle, w.exceptions_csv),
        ):
            if fh.closed:
                return
            fh.seek(0)
            write(csv.writer(fh))
            fh.truncate()
            fh.flush()
        fh = w.stats_history_csv_filehandle
        if not fh.closed:
            fh.flush()
            total = self.environment.stats.total
            if _last_history_totals(fh.name) != (total.num_requests, total.num_failures):
                w._stats_history_data_rows(w.stats_history_csv_writer, time.time())
                fh.flush()

    def on_master_test_stop(self, **_kw):
        """Headless master: make the workers quit now and wait (bounded) until each has said so.

        Locust's MasterRunner.quit() sends "quit" to the workers and waits only 0.5 s before it stops
        listening; a worker first stops its users (up to --stop-timeout), then sends its final stats.
        Whatever finished in the worker's last report interval (3 s) or during its stop phase was lost
        from the master's stats, CSV and JSON (measured: 2 workers, 4 users on a 2 s probe, 3 s run:
        the master reported 0 of 8 requests). A worker sends its final stats before its "quit", on
        the same connection, so once every worker has quit the master's stats are complete."""
        opts = self.environment.parsed_options
        if opts is not None and getattr(opts, "headless", False):
            self.quit_workers_and_wait()

    def quit_workers_and_wait(self) -> None:
        runner = self.runner
        if not len(runner.clients):
            return
        runner.send_message("quit")
        deadline = time.monotonic() + float(self.environment.stop_timeout or 0) + 5.0
        while len(runner.clients) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if len(runner.clients):
            logger.warning("asgibench recorder: %d worker(s) did not quit in time; their last stats may be missing",
                           len(runner.clients))

    def on_quitting(self, **_kw):
        if self.role == "worker":
            return
        self.quitting_count += 1
        if self.quitting_count > 1:
            return  # a second shutdown in the same process (see keep_entries_on_serialize)
        keep_entries_on_serialize(self.runner.stats)
        try:
            if self.runner.state in (STATE_RUNNING, STATE_SPAWNING):
                # SIGTERM path: `quitting` fires while users still run; Locust stops them right after
                # (runner.quit()), before writing its JSON. Not quit() here: it would end the runner's
                # greenlets, wake locust.main's main loop and run a second shutdown that writes the
                # JSON twice, the second time from the reset entries ("[]").
                if self.role == "master":
                    # not stop() either: workers that report "stopped" are forgotten by the master,
                    # which then discards their last stats and never tells them to quit
                    self.quit_workers_and_wait()
                else:
                    self.runner.stop()
            if self.csv_writer is None:
                return
            # Stop Locust's once-a-second CSV loop first: nothing may write after the final rewrite,
            # and it would otherwise wake up after close_files() whenever the exit yields (the
            # --processes master sleeps while its workers exit) and die on the closed files.
            _kill_greenlets_running(self.csv_writer.stats_writer)
            self.rewrite_csv()
        except Exception:
            logger.exception("asgibench recorder: could not rewrite the final CSV stats")

    def on_quit(self, **_kw):
        opts = self.environment.parsed_options
        if opts is None:
            return
        idx = self.worker_index()
        meta = {
            "pid": self.pid,
            "role": self.role,
            "worker_index": idx,
            "locust_version": locust.__version__,
            "none_response_times": self.none_response_times,
        }
        for path, write in (
            (getattr(opts, "timings_file", None), lambda p: timingfile.write_timings(p, self.t0, self.series, meta)),
            (getattr(opts, "generator_file", None), self._write_generator),
        ):
            if not path:
                continue
            p = per_process_path(path, self.role, idx, self.pid)
            try:
                if os.path.dirname(p):
                         os.makedirs(os.path.dirname(p), exist_ok=True)
                write(p)
            except Exception:
                logger.exception("asgibench recorder: could not write %s", p)

    def _write_generator(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.generator_report(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)


RECORDERS: list[Recorder] = []


@events.init.add_listener
def _on_init(environment, **_kw):
    RECORDERS.append(Recorder(environment))
    # gevent's loop caches "now" and nothing has refreshed it since Locust started importing, so the
    # --run-time timer that locust.main arms right after this event (gevent.spawn_later) would fire
    # early by the whole start-up time (measured: a 4 s run lasted 1 s, 6 s runs ~5 s).
    gevent.get_hub().loop.update_now()
