"""Every numeric range the suite accepts, in ONE table, and the one check that enforces it.

The option parser (options), the request policy (policy.check_request), the load plan
(loadgen.validate) and the matrix (matrix.MatrixSettings.validate) all ask `check(name, value)`;
none of them writes its own `low <= value <= high`. The refusal is one line:
"users must be between 1 and 10000, got 0".

A new bounded number is one row in BOUNDS (name -> Bound) and one `check` call where the value is
known; its label is what the user reads (the option's meaning, not its Python name).
"""
from __future__ import annotations

from dataclasses import dataclass

from asgibench.errors import UsageError


@dataclass(frozen=True)
class Bound:
    label: str
    low: float
    high: float
    unit: str = ""  # appended to the upper bound in the message (" seconds")
    low_exclusive: bool = False  # the value must be above `low`, not at least `low`

    def holds(self, value) -> bool:
        return (self.low < value if self.low_exclusive else self.low <= value) and value <= self.high

    def refusal(self, value) -> str:
        if self.low_exclusive:
            return f"{self.label} must be above {self.low} and at most {self.high}{self.unit}, got {value}"
        return f"{self.label} must be between {self.low} and {self.high}{self.unit}, got {value}"


BOUNDS: dict[str, Bound] = {
    # the load plan (loadgen.validate): bench, verify, ui, the matrix, calibrate
    "users": Bound("users", 1, 10000),
    "spawn_rate": Bound("spawn rate", 0.01, 10000),
    "duration": Bound("duration", 1, 24 * 3600),
    "time_scale": Bound("time scale", 0.001, 100),
    "io_seconds": Bound("io seconds", 0, 5),
    "processes": Bound("processes", -1, 256),  # Locust --processes; -1 = one per core
    "arrival_rate": Bound("arrival rate", 0, 100000),
    "locust_workers": Bound("locust workers", 0, 256),
    "remote_workers": Bound("remote workers", 0, 1024),
    "request_timeout": Bound("request timeout", 0, 600, unit=" seconds", low_exclusive=True),
    "reconnect_every": Bound("--reconnect-every", 0, 1000000, unit=" iterations"),
    # the capacity ladder (locustfiles/ladder.py): a factor near 1 would never reach the knee in time
    "ladder_start": Bound("--ladder-start", 0, 100000, unit=" arrivals/s", low_exclusive=True),
    "ladder_factor": Bound("--ladder-factor", 1.1, 10),
    "ladder_hold": Bound("--ladder-hold", 1, 600, unit=" seconds"),
    "ladder_budget": Bound("--ladder-budget", 1, 3600, unit=" seconds"),
    # the io scenario's sleep as `bench --io-seconds` takes it: a zero sleep measures nothing
    "io_seconds_option": Bound("--io-seconds", 0, 5, low_exclusive=True),
    # the server, the database and the run (policy.check_request)
    "workers": Bound("workers", 1, 256),
    "port": Bound("port", 1024, 65535),
    "pool_size": Bound("pool size", 1, 100),
    "scale": Bound("scale", 1, 1000),
    "trials": Bound("trials", 1, 100),
    "fidelity_repeats": Bound("repeats", 1, 20),
    "warmup": Bound("warm-up", 0, 600, unit=" seconds"),
    # `asgibench matrix` (matrix.MatrixSettings.validate): shorter runs, fewer io users
    "matrix_duration": Bound("duration", 1, 3600),
    "matrix_io_duration": Bound("io duration", 1, 3600),
    "matrix_io_users": Bound("io users", 1, 1000),
    "matrix_io_seconds": Bound("io seconds", 0.01, 5),
    "matrix_warmup": Bound("warm-up", 0, 600),
}


def check(name: str, value) -> None:
    """Refuse `value` (UsageError, one line) unless BOUNDS[name] holds it; None means "not given"."""
    bound = BOUNDS[name]
    if value is not None and not bound.holds(value):
        raise UsageError(bound.refusal(value))
