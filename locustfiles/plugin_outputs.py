"""Recorder plugin (b): Locust's outputs complete and consistent at exit (standalone and master
processes), and the --run-time clock.

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
"""

from __future__ import annotations

import csv
import gc
import os
import time

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from plugin_shared import ThisProcess, logger


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


def refresh_loop_clock() -> None:
    """gevent's loop caches "now" and nothing has refreshed it since Locust started importing, so the
    --run-time timer that locust.main arms right after the `init` event (gevent.spawn_later) would
    fire early by the whole start-up time (measured: a 4 s run lasted 1 s, 6 s runs ~5 s)."""
    gevent.get_hub().loop.update_now()


class LocustOutputs:
    def __init__(self, environment, process: ThisProcess):
        self.environment = environment
        self.runner = environment.runner
        self.role = process.role
        self.csv_writer = None
        self.quitting_count = 0
        opts = environment.parsed_options
        if self.role != "worker" and opts is not None and getattr(opts, "csv_prefix", None):
            self.csv_writer = _find_csv_writer()
        if self.role == "worker" and opts is not None:
            # the master writes these; a worker's copy would be empty and could land after it
            opts.json_file = None
            opts.html_file = None
        ev = environment.events
        ev.quitting.add_listener(self.on_quitting)
        if self.role == "master":
            ev.test_stop.add_listener(self.on_master_test_stop)
        refresh_loop_clock()

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
