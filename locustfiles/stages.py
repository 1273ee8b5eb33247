"""The original study's k6 load shapes as plain data (no Locust import), shared by the Locust
shape class (shapes.py) and the runner (asgibench.loadgen), which needs their length and peak.

Each stage is (duration_seconds, target_users): like k6 `stages`, users ramp linearly from the
previous target to this one over the stage's duration.
"""

SHAPES = {
    # The original's published table: up to 10 users over 1 minute (asgibench's default scenario).
    "readme": [(60, 10)],
    "easy": [(60, 100)],
    "medium": [(60, 50), (60, 60), (60, 70), (60, 80), (60, 90), (60, 0)],
    "medium-large": [(60, 100), (60, 120), (60, 140), (60, 160), (60, 180), (60, 0)],
    "laptop-heater": [(60, 200), (60, 500), (60, 700), (60, 900), (60, 1100), (60, 0)],
}


def total_seconds(name: str) -> float:
    return float(sum(d for d, _ in SHAPES[name]))


def peak_users(name: str) -> int:
    return max(u for _, u in SHAPES[name])


def users_at(name: str, t: float, time_scale: float = 1.0):
    """Target users at second t (k6-style linear ramp), or None once the shape is over."""
    start_users, elapsed = 0, 0.0
    for duration, target in SHAPES[name]:
        d = duration * time_scale
        if t < elapsed + d:
            frac = (t - elapsed) / d if d else 1.0
            return round(start_users + (target - start_users) * frac)
        elapsed += d
        start_users = target
    return None
