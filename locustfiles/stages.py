"""The original study's k6 load shapes as plain data, plus the arithmetic of a k6 ramp.

No Locust import (importing locust monkey-patches the process with gevent), so the runner can use it:
`from locustfiles import stages` (stages.SHAPES, stages.total_seconds(name), stages.peak_users(name)).
shapes.py turns it into a Locust LoadTestShape.

k6 semantics (ramping-vus, the `stages` shortcut): the run starts at START_USERS (k6's startVUs default,
1) and every stage ramps linearly from the previous stage's target to its own over its duration; the
integer user count changes when the line crosses the next integer (floor while rising, ceil while
falling); the run ends with the last stage.
"""

from __future__ import annotations

import math

START_USERS = 1  # k6 ramping-vus startVUs default

# name -> ((stage duration in seconds, target users at the end of the stage), ...)
SCENARIOS: dict[str, tuple[tuple[float, int], ...]] = {
    # the original's published table: up to 10 users over 1 minute
    "readme": ((60, 10),),
    "easy": ((60, 100),),
    "medium": ((60, 50), (60, 60), (60, 70), (60, 80), (60, 90), (60, 0)),
    "medium-large": ((60, 100), (60, 120), (60, 140), (60, 160), (60, 180), (60, 0)),
    "laptop-heater": ((60, 200), (60, 500), (60, 700), (60, 900), (60, 1100), (60, 0)),
}
DEFAULT_SCENARIO = "readme"
TICK_SECONDS = 1.0  # Locust's shape worker calls tick() about once a second
SHAPES = tuple(SCENARIOS)  # the scenario names, in the order above


def scaled_stages(scenario: str, time_scale: float = 1.0) -> tuple[tuple[float, int], ...]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    if not time_scale > 0 or math.isinf(time_scale):
        raise ValueError(f"time scale must be a positive finite number, not {time_scale!r}")
    return tuple((d * time_scale, target) for d, target in SCENARIOS[scenario])


def total_duration(stages) -> float:
    return float(sum(d for d, _ in stages))


def users_at(stages, t: float, start_users: int = START_USERS) -> int | None:
    """k6's integer VU count at time t (seconds) of the stages; None once the stages are over."""
    if t < 0:
        t = 0.0
    begin = 0.0
    prev = start_users
    for duration, target in stages:
        end = begin + duration
        if t < end:
            if duration <= 0:
                return target
            v = prev + (target - prev) * (t - begin) / duration
            # the count changes when the line reaches the next integer (tiny epsilon against FP noise)
            return int(math.floor(v + 1e-9)) if target >= prev else int(math.ceil(v - 1e-9))
        begin = end
        prev = target
    return None


def plan(stages, t: float, current_users: int, tick: float = TICK_SECONDS, start_users: int = START_USERS):
    """What to tell Locust at time t: (user count one tick ahead, spawn rate to get there in one
    tick), or None when the run is over."""
    total = total_duration(stages)
    if t >= total:
        return None
    ahead = min(t + tick, total)
    target = users_at(stages, ahead, start_users)
    if target is None:  # ahead == total: the last stage's final target
        target = stages[-1][1]
    rate = max(abs(target - current_users) / tick, 1.0)
    return target, float(rate)


def total_seconds(scenario: str, time_scale: float = 1.0) -> float:
    """Length of a scenario in seconds (stage durations x time_scale)."""
    return total_duration(scaled_stages(scenario, time_scale))


def peak_users(scenario: str) -> int:
    """Most users a scenario ever runs."""
    return max([START_USERS] + [target for _, target in scaled_stages(scenario)])
