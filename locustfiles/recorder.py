"""The Locust plugin that makes a run's numbers trustworthy. workload.py imports it, so it is active in
every asgibench Locust process: standalone, master, and every worker.

It registers three small plugins (events only), one per job, each documented in its own file:

  (a) plugin_timings.py    exact response times: every request event, written at quit to
                           --timings-file (format: timingfile.py).
  (b) plugin_outputs.py    Locust's outputs complete and consistent at exit: the final _stats.csv,
                           the JSON not reset by a second shutdown, a master that waits for its
                           workers' final stats, no "[]" from --processes children, and a --run-time
                           not cut short by a stale loop clock.
  (c) plugin_generator.py  generator CPU: Locust's CPU monitor every --cpu-monitor-interval s and, at
                           quit, --generator-file (this process's CPU and wall time over the run, its
                           CPU warnings, cpu_us_per_request).

What they share lives in plugin_shared.py: the process's role and per-process file names (a worker
writes PATH with ".worker<N>" before the extension), the write at quit, and the run window
(test_start .. test_stop) with --warmup-seconds, which resets every statistic when the warm-up ends.

Options: --timings-file, --generator-file (none: nothing written), --cpu-monitor-interval 1,
--warmup-seconds 0. Each is also an environment variable (LOCUST_TIMINGS_FILE, ...).

A new plugin goes in its own plugin_<job>.py: an add_arguments(parser) for its options and a class
that adds its listeners to environment.events in __init__; register both here. Within one event,
listeners run in registration order, and Recorder's order is part of the behaviour (see Recorder).
"""

from __future__ import annotations

from locust import events

import plugin_generator
import plugin_outputs
import plugin_shared
import plugin_timings


class Recorder:
    """The plugins of one Locust process, created at `init` in this order: on test_start the samples
    are cleared before the window starts; on test_stop the window closes before a master waits for
    its workers (so "run" ends when the test stops); at quit the timings file is written before the
    generator file (whose "process" figures include that write)."""

    def __init__(self, environment):
        self.process = plugin_shared.ThisProcess(environment.runner)
        self.timings = plugin_timings.ExactTimings(environment, self.process)
        self.window = plugin_shared.RunWindow(environment, self.process)
        self.generator = plugin_generator.GeneratorCpu(environment, self.process, self.window, self.timings.counts)
        self.outputs = plugin_outputs.LocustOutputs(environment, self.process)


RECORDERS: list[Recorder] = []


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kw):
    plugin_timings.add_arguments(parser)  # --timings-file
    plugin_generator.add_arguments(parser)  # --generator-file, --cpu-monitor-interval
    plugin_shared.add_arguments(parser)  # --warmup-seconds


@events.init.add_listener
def _on_init(environment, **_kw):
    RECORDERS.append(Recorder(environment))
