"""The original study's k6 load shapes ("scenarios") as ONE Locust LoadTestShape, K6Stages.

Use: add this file to -f (`-f locustfiles/workload.py,locustfiles/shapes.py`) and pick the scenario
with --scenario (env LOCUST_SCENARIO, default "readme"); --time-scale X (env LOCUST_TIME_SCALE,
default 1.0) multiplies every stage duration (0.05 runs "medium" in 18 s instead of 6 min).

Why one class and an argument: Locust takes the FIRST shape class it finds in the -f files and has no
command-line switch to pick another (only the web UI's class picker can), so several classes in one
file cannot be selected cleanly in a headless run.

The stage tables and the ramp arithmetic live in stages.py (no Locust import, so the runner can read
them too). Semantics follow k6's ramping-vus executor (the `stages` shortcut): the run starts at START_USERS
(k6's startVUs default, 1) and every stage ramps linearly from the previous stage's target to its own
target over its duration; the integer user count changes when the line crosses the next integer
(floor while rising, ceil while falling). Locust asks the shape once a second, so each tick sets the
count the line will have ONE second (real time) later with a spawn rate that gets there in that
second: the users follow the line with one-second steps. After the last stage tick() returns None and
the run ends by itself (k6 stops at the end of its last stage too). With a shape, Locust ignores
--users, --spawn-rate and --run-time (it logs a warning when they are given); the run lasts
sum(stage durations) x time-scale, plus the stop phase (--stop-timeout).

Users still running at the end finish their current iteration within --stop-timeout (k6's
gracefulRampDown is 30 s; the runner passes 5 s).
"""

from __future__ import annotations

from locust import LoadTestShape, events

from stages import DEFAULT_SCENARIO, SCENARIOS, plan, scaled_stages


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kw):
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default=DEFAULT_SCENARIO, env_var="LOCUST_SCENARIO",
                        help="the original k6 stages to run (see SCENARIOS in stages.py)")
    parser.add_argument("--time-scale", type=float, default=1.0, env_var="LOCUST_TIME_SCALE",
                        help="multiply every stage duration by this factor (e.g. 0.05 for a quick test)")


class K6Stages(LoadTestShape):
    """--scenario's k6 stages, scaled by --time-scale; ends by itself after the last stage."""

    def _stages(self):
        opts = self.runner.environment.parsed_options if self.runner is not None else None
        scenario = getattr(opts, "scenario", DEFAULT_SCENARIO) or DEFAULT_SCENARIO
        scale = getattr(opts, "time_scale", None)
        return scaled_stages(scenario, 1.0 if scale is None else float(scale))

    def tick(self):
        stages = self._stages()
        current = self.get_current_user_count() if self.runner is not None else 0
        return plan(stages, self.get_run_time(), current)


@events.init.add_listener
def _validate(environment, **_kw):
    """Reject a bad --time-scale at start-up (an exception in an init listener makes Locust exit 1)."""
    if isinstance(environment.shape_class, K6Stages) and environment.parsed_options is not None:
        opts = environment.parsed_options
        scale = getattr(opts, "time_scale", None)
        scenario = getattr(opts, "scenario", DEFAULT_SCENARIO) or DEFAULT_SCENARIO
        scaled_stages(scenario, 1.0 if scale is None else float(scale))
