"""The capacity ladder's rules, with no Locust import: the SLO, one step's figures from exact timings,
its verdict, and the plan of the next step. The ladder controller in openmodel.py judges each step
live with these; asgibench/capacity.py re-judges every step afterwards from timings.bin with the same
rules (one definition), so the recorded verdicts are the files', not the live guesses.

SLO (`--slo`, default DEFAULT_SLO = "p99=250ms,errors=0.1%"): request level, i.e. over every HTTP
request whose arrival was intended to start within the step (what an operator monitors per request;
a flow-level SLO over whole iterations is not what the default judges). Keys: p99 (ms or s), errors
(% of those requests that failed), achieved (default 97%: a step fails when its achieved rate is
below this share of the offered rate), dropped (default 1%: a step fails when more of its arrivals
than this could not start in time). Latency is measured from the intended start (coordinated-omission
corrected: the send latency plus the arrival's lag).

A step's figures: offered_rps (arrivals/s x requests per arrival: 1 when each arrival is one request,
else requests_per_iteration), achieved_rps (requests of the step's arrivals answered successfully by
the step's end + the SLO's p99, per second of the step: the same live and afterwards), p50/p99/p999
(ms from the intended start; a request still unanswered when the step is judged live counts with the
time it has waited so far), errors_pct, dropped, dropped_pct. With whole iterations per arrival (the
original flow) an iteration's later requests are sent after the earlier ones' answers and fall past
any step boundary, so there achieved_rps = offered_rps x started/offered arrivals x the successful
share of the step's requests (slowness is p99's to judge).

The ladder (Planner): offered rates start, start x factor, ... each held `hold` s, until the first
step that breaks the SLO (or the time budget is spent; a ladder step that breaks it is run once more,
`retries`, and a rate's last attempt is its verdict: one noisy step on a shared machine must not end
the climb); then bisection between the last good and the
first bad rate while the budget allows and they are more than `tolerance` apart (after a step that broke
the SLO no arrival is offered until nothing is in flight, at most DRAIN_S s: its backlog must not
fail the next step; when the very first step breaks the SLO the ladder steps down instead, rate /
factor, at most max_down times); the capacity at SLO is the highest good rate. Then one overload
step at overload_factor x capacity (held overload_hold s) and a recovery step at recovery_factor x
capacity (held recovery_hold s): recovery_s is how long after
the drop every later window of RECOVERY_WINDOW s met the SLO again.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from benchcontract import FLOW_REQUEST_TYPE

try:  # a Locust process: locustfiles/ is on sys.path
    from timingfile import percentile
except ImportError:  # the runner: `from locustfiles import ladder`
    from locustfiles.timingfile import percentile

DEFAULT_SLO = "p99=250ms,errors=0.1%"
# HTTP requests of one iteration, about (the original flow: login form, login + its redirect, the logged-in
# redirect, two API pages): a ladder of whole iterations starts at --ladder-start / this arrivals/s
REQUESTS_PER_ITERATION = {"original": 6, "api": 2, "io": 1, "bare": 1}
RECOVERY_WINDOW = 0.5  # seconds per window when looking for the recovery
# a failing step whose dispatcher lag (p99) exceeds this share of the SLO's p99 is the generator's
GENERATOR_LAG_SHARE = 0.5
DRAIN_S = 15.0  # after a step that broke the SLO, at most this long with no arrivals until nothing is in flight


@dataclass(frozen=True)
class Slo:
    p99_ms: float = 250.0
    errors_pct: float = 0.1
    min_achieved_ratio: float = 0.97
    max_dropped_pct: float = 1.0
    level: str = "request"

    def as_dict(self) -> dict:
        return asdict(self)


def _pct(value: str, key: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%?", value)
    if not m:
        raise ValueError(f"bad --slo {key}={value}: use a percentage, e.g. {key}=1%")
    v = float(m.group(1))
    if not 0 <= v <= 100:
        raise ValueError(f"bad --slo {key}={value}: a percentage is between 0 and 100")
    return v


def parse_slo(text: str) -> Slo:
    """'p99=250ms,errors=0.1%[,achieved=97%][,dropped=1%]' -> Slo; ValueError (one line) otherwise."""
    fields = {}
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or not value:
            raise ValueError(f"bad --slo part {part!r}: use key=value, e.g. p99=250ms")
        if key == "p99":
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)?", value)
            if not m:
                raise ValueError(f"bad --slo p99={value}: use milliseconds or seconds, e.g. p99=250ms or p99=0.5s")
            ms = float(m.group(1)) * (1000.0 if m.group(2) == "s" else 1.0)
            if not ms > 0:
                raise ValueError("bad --slo p99: it must be above 0")
            name, v = "p99_ms", ms
        elif key in ("errors", "error"):
            name, v = "errors_pct", _pct(value, key)
        elif key == "achieved":
            name, v = "min_achieved_ratio", _pct(value, key) / 100.0
        elif key == "dropped":
            name, v = "max_dropped_pct", _pct(value, key)
        else:
            raise ValueError(f"unknown --slo key {key!r} (p99, errors, achieved, dropped)")
        if name in fields:
            raise ValueError(f"--slo gives {key} twice")
        fields[name] = v
    if "p99_ms" not in fields:
        raise ValueError("--slo needs a p99, e.g. p99=250ms")
    return Slo(**fields)


def step_samples(series: dict, start: float, end: float, deadline: float | None = None) -> tuple[list, int, int, list]:
    """Requests (FLOW excluded) whose intended start (t - lag) lies in [start, end): their latencies from
    the intended start (ms), successes (answered by `deadline`, if given), failures, their lags (s).
    `series`: {SeriesKey: Series}; times in seconds since its t0."""
    lat, lags, good, bad = [], [], 0, 0
    for k, s in series.items():
        if k.request_type == FLOW_REQUEST_TYPE:
            continue
        has_lag = len(s.lag) == len(s.ms)
        for i, t in enumerate(s.t):
            g = s.lag[i] if has_lag else 0.0
            if start <= t - g < end:
                lat.append(s.ms[i] + 1000.0 * g)
                lags.append(g)
                if k.ok:
                    good += deadline is None or t + s.ms[i] / 1000.0 <= deadline
                else:
                    bad += 1
    return lat, good, bad, lags


def figures(series: dict, start: float, seconds: float, rate: float, offered: int, started: int, dropped: int,
            unfinished_ms=(), per_arrival: float | None = None, dispatch_lag_p99_ms: float = 0.0,
            slo: Slo | None = None) -> dict:
    """One step's figures (module docstring). offered/started/dropped: the step's arrivals; unfinished_ms:
    the waits so far of its requests still unanswered (live only: slow, not failed); per_arrival:
    requests per arrival (None: whole iterations, requests_per_iteration); dispatch_lag_p99_ms: how
    late the dispatcher itself started the step's arrivals (p99; the generator's own limit)."""
    iterations = per_arrival is None
    deadline = start + seconds + slo.p99_ms / 1000.0 if slo is not None and not iterations else None
    lat, good, bad, _ = step_samples(series, start, start + seconds, deadline)
    lat = sorted(lat + [float(x) for x in unfinished_ms])
    n = len(lat)
    if per_arrival is None:
        per_arrival = requests_per_iteration(series)
    q = {k: (round(percentile(lat, p), 3) if n else None) for k, p in (("p50_ms", 0.5), ("p99_ms", 0.99),
                                                                        ("p999_ms", 0.999))}
    achieved = good / seconds if seconds else 0.0
    if iterations:
        served = (started / offered if offered else 0.0) * (good / (good + bad) if good + bad else 0.0)
        achieved = rate * per_arrival * served
    return {"offered_rps": round(rate * per_arrival, 2), "achieved_rps": round(achieved, 2),
            **q, "errors_pct": round(100.0 * bad / n, 3) if n else 0.0, "dropped": int(dropped),
            "dropped_pct": round(100.0 * dropped / offered, 3) if offered else 0.0, "requests": n,
            "dispatch_lag_p99_ms": round(dispatch_lag_p99_ms, 3)}


def requests_per_iteration(series: dict) -> float:
    """Requests per whole iteration over everything recorded: requests / FLOW pseudo-requests (1 without
    FLOW rows). A run-wide figure: a step's own count would lose the later requests of its last
    iterations to the next step."""
    flows = sum(len(s) for k, s in series.items() if k.request_type == FLOW_REQUEST_TYPE)
    requests = sum(len(s) for k, s in series.items() if k.request_type != FLOW_REQUEST_TYPE)
    return requests / flows if flows else 1.0


def judge(fig: dict, slo: Slo) -> tuple[bool, str]:
    """(ok, reason): the first broken rule, or "within SLO"."""
    why = []
    if fig.get("requests", 1) == 0:
        why.append("no request answered")
    if fig["p99_ms"] is not None and fig["p99_ms"] > slo.p99_ms:
        why.append(f"p99 {fig['p99_ms']:.0f} ms > {slo.p99_ms:g} ms")
    if fig["errors_pct"] > slo.errors_pct:
        why.append(f"errors {fig['errors_pct']:.2f}% > {slo.errors_pct:g}%")
    if fig["offered_rps"] and fig["achieved_rps"] < slo.min_achieved_ratio * fig["offered_rps"]:
        why.append(f"achieved {fig['achieved_rps']:.1f} < {slo.min_achieved_ratio * 100:g}% of "
                   f"{fig['offered_rps']:.1f} req/s")
    if fig["dropped_pct"] > slo.max_dropped_pct:
        why.append(f"dropped {fig['dropped_pct']:.1f}% > {slo.max_dropped_pct:g}%")
    if why and fig.get("dispatch_lag_p99_ms", 0.0) > GENERATOR_LAG_SHARE * slo.p99_ms:
        why.append(f"generator-bound: the dispatcher started arrivals {fig['dispatch_lag_p99_ms']:.0f} ms late (p99)")
    return (not why, "; ".join(why) or "within SLO")


def recovery_seconds(series: dict, start: float, seconds: float, slo: Slo) -> float | None:
    """Seconds after `start` from which every RECOVERY_WINDOW s window (by intended start) up to
    start + seconds met the SLO's p99 and errors; None if the last window did not."""
    n = max(1, int(round(seconds / RECOVERY_WINDOW)))
    good = []
    for i in range(n):
        lat, ok, bad, _ = step_samples(series, start + i * RECOVERY_WINDOW, start + (i + 1) * RECOVERY_WINDOW)
        lat.sort()
        good.append(not lat or (percentile(lat, 0.99) <= slo.p99_ms and 100.0 * bad / len(lat) <= slo.errors_pct))
    if not good[-1]:
        return None
    i = n
    while i > 0 and good[i - 1]:
        i -= 1
    return round(i * RECOVERY_WINDOW, 3)


@dataclass
class Planner:
    """The next step from the ones done (module docstring). Rates are arrivals per second."""

    start: float = 10.0  # requests/s (see REQUESTS_PER_ITERATION)
    factor: float = 2.0
    hold: float = 5.0
    budget: float = 120.0  # seconds of ladder + bisection steps at most
    # bisection stops when first bad / last good - 1 is at most this: the capacity found lies within this of
    # the true knee, so it bounds the figure's repeatability (uniform over 10%: a CV of ~3% from that alone)
    tolerance: float = 0.05
    overload_factor: float = 1.5
    overload_hold: float = 5.0
    recovery_factor: float = 0.5
    recovery_hold: float = 10.0
    max_down: int = 3  # steps down (rate / factor each) when the first rate already breaks the SLO
    retries: int = 1  # a ladder step that breaks the SLO is run again this many times before it counts

    @staticmethod
    def verdicts(done: list) -> dict:
        """rate -> the verdict of its last attempt (ladder and bisection steps)."""
        return {d["rate"]: d["ok"] for d in done if d["phase"] in ("ladder", "bisect")}

    def capacity(self, done: list) -> float | None:
        good = [r for r, ok in self.verdicts(done).items() if ok]
        return max(good) if good else None

    def next(self, done: list) -> tuple[str, float, float] | None:
        """done: [{"phase", "rate", "ok"}] in order -> (phase, rate, hold) or None (finished)."""
        phases = [d["phase"] for d in done]
        if not done:
            return ("ladder", self.start, self.hold)
        if "recovery" in phases:
            return None
        cap = self.capacity(done)
        if "overload" in phases:
            return ("recovery", cap * self.recovery_factor, self.recovery_hold)
        spent = sum(self.hold for p in phases if p in ("ladder", "bisect"))
        room = spent + self.hold <= self.budget + 1e-9
        last = done[-1]
        tries = sum(1 for d in done if d["phase"] == "ladder" and d["rate"] == last["rate"])
        if last["phase"] == "ladder" and not last["ok"] and tries <= self.retries and room:
            return ("ladder", last["rate"], self.hold)  # one noisy step must not end the climb: confirm it
        verdicts = self.verdicts(done)
        bad = [r for r, ok in verdicts.items() if not ok]
        if cap is None:  # even the first rate broke the SLO: step down, at most max_down times, then give up
            if len(verdicts) <= self.max_down and room:
                return ("ladder", done[-1]["rate"] / self.factor, self.hold)
            return None
        if not bad:
            if room:
                return ("ladder", max(verdicts) * self.factor, self.hold)
            return ("overload", cap * self.overload_factor, self.overload_hold)
        hi = min(b for b in bad if b > cap) if any(b > cap for b in bad) else None
        if hi is not None and room and hi / cap - 1 > self.tolerance:
            return ("bisect", round((cap + hi) / 2.0, 3), self.hold)
        return ("overload", cap * self.overload_factor, self.overload_hold)

    def max_seconds(self) -> float:
        """The longest a ladder can run (for the run time): budget + one step over + overload + recovery."""
        return self.budget + self.hold + self.overload_hold + self.recovery_hold
