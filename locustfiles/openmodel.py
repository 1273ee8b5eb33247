"""A true open model inside Locust: arrivals scheduled independently of responses, and the capacity
ladder that drives it.

How it runs: `-f workload.py,openmodel.py OpenModelUser --users 1` (loadgen.command does it for
`--arrival-rate R` and `--scenario capacity`). The one OpenModelUser is not a user of the flow: its
task is the DISPATCHER, one greenlet that schedules arrivals at --arrival-rate per second, with
constant spacing (default: exactly 1/R s apart, like k6's constant-arrival-rate) or Poisson spacing
(--arrival-spacing poisson: exponential gaps of mean 1/R, seeded by --arrival-seed, for a
memoryless stream of independent clients). An arrival never waits for an earlier one's response.

Each arrival runs on its own greenlet on a SLOT: an instance of the row's flow class (--open-flow,
e.g. ApiOnlyUser) created when first needed, with its own connection and cookie jar, running the
flow's own request code from workload.py. --max-inflight N slots at most (k6's maxVUs): an arrival
that finds every slot busy waits for one; one that cannot start within --max-lag s of its intended
time (no free slot, or the generator itself too late) is DROPPED, never sent, and counted (k6's
dropped_iterations). --arrival-unit: "iteration" (default) runs one whole iteration of the flow per
arrival (rate = iterations/s); "request" runs one request per arrival, the flow's steps in turn
(rate = requests/s; flows whose steps are independent: api, io, bare).

Latency: every request of an arrival carries its lag (actual start - intended start) in its request
context ("open_lag"); plugin_timings stores it beside the response time, so timings.bin keeps per
endpoint both the latency from the actual send and from the intended start (coordinated-omission
corrected: a queue for a slot or a late generator counts against the server's latency, as wrk2 and
k6 do). The run's arrivals (offered, started, dropped, per step) go to --open-model-file (JSON).

The LADDER (--ladder, the capacity scenario): a controller greenlet steps the rate through
ladder.Planner (start --ladder-start, x --ladder-factor, --ladder-hold s per step, --ladder-budget s,
bisection, overload, recovery), judges each step live with ladder.figures/judge on the exact timings
collected so far (waiting --slo's p99 past the step's end so that slow answers count), writes every
step to the open-model file, and ends the run after the recovery step. A warm-up
(--warmup-seconds) runs at the first rate before the first step.

Locust-only (imports gevent and locust).
"""

from __future__ import annotations

import random
import time
from array import array
from collections import deque

import gevent
from gevent.pool import Group
from locust import User, events, task
from locust.user.users import LOCUST_STATE_STOPPING

import inflight
import ladder
import workload
from plugin_shared import write_json_atomic
from recorder import RECORDERS

FLOWS = {name: getattr(workload, name) for name in ("OriginalFlowUser", "ApiOnlyUser", "IoProbeUser", "BareGetUser")}
TICK = 0.05  # the dispatcher wakes at least this often (rate changes, the end, expired waiters)
DRAIN = 4.0  # at the end, seconds the arrivals in flight get to finish (under Locust's --stop-timeout 5)


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kw):
    a = parser.add_argument
    a("--open-flow", default="ApiOnlyUser", help=f"flow class each arrival runs: {', '.join(FLOWS)}")
    a("--arrival-unit", default="iteration", choices=("iteration", "request"),
      help="what one arrival is: one iteration of the flow, or one of its requests in turn")
    a("--arrival-spacing", default="constant", choices=("constant", "poisson"), help="gaps between arrivals")
    a("--arrival-seed", type=int, default=0, help="seed of the Poisson gaps")
    a("--max-inflight", type=int, default=500, help="arrivals in flight at most (slots, connections)")
    a("--max-lag", type=float, default=1.0, help="an arrival not started within this many s of its time is dropped")
    a("--open-model-file", default=None, help="write the arrivals and the ladder's steps here (JSON)")
    a("--ladder", action="store_true", default=False, help="run the capacity ladder (rates from --ladder-*)")
    a("--ladder-start", type=float, default=ladder.Planner.start, help="first offered rate (arrivals/s)")
    a("--ladder-factor", type=float, default=ladder.Planner.factor, help="each step's rate x this")
    a("--ladder-hold", type=float, default=ladder.Planner.hold, help="seconds per step")
    a("--ladder-budget", type=float, default=ladder.Planner.budget, help="seconds of ladder + bisection steps")
    a("--slo", default=ladder.DEFAULT_SLO, help="the SLO each step must meet (ladder.py)")


class Step:
    """The arrivals of one step (the whole run for a plain --arrival-rate)."""

    def __init__(self, phase: str, rate: float, start: float, hold: float):
        self.phase, self.rate, self.start, self.hold = phase, rate, start, hold
        self.offered = self.started = self.dropped = self.done = 0
        self.dispatch_lag = array("f")  # s, how late the dispatcher started each arrival
        self.failures = {"timeouts": 0, "errors_5xx": 0, "resets": 0, "other": 0}
        self.live: dict = {}

    def dispatch_lag_p99_ms(self) -> float:
        return round(1000.0 * ladder.percentile(sorted(self.dispatch_lag), 0.99), 3) if self.dispatch_lag else 0.0

    def as_dict(self, t0: float) -> dict:
        return {"phase": self.phase, "rate": self.rate, "start_s": round(self.start - t0, 4), "seconds": self.hold,
                "offered": self.offered, "started": self.started, "dropped": self.dropped,
                "dispatch_lag_p99_ms": self.dispatch_lag_p99_ms(),
                "failures": dict(self.failures), "live": self.live}


def failure_kind(exception) -> str:
    text = str(exception)
    if isinstance(exception, inflight.StillInFlight) or inflight.is_timeout(exception) or "timeout" in text:
        return "timeouts"
    if text.startswith("HTTP 5"):
        return "errors_5xx"
    if "no response" in text or "reset" in text.lower() or "refused" in text.lower() or "Broken pipe" in text:
        return "resets"
    return "other"


class OpenModelUser(User):
    """The dispatcher (and, with --ladder, the controller): see the module docstring."""

    fixed_count = 1

    def on_start(self):
        o = self.environment.parsed_options
        self.flow_class = FLOWS[o.open_flow]
        self.flow_class.host = self.host  # Locust sets it on the classes it runs; the slots' class is ours
        self.unit, self.spacing = o.arrival_unit, o.arrival_spacing
        self.random = random.Random(o.arrival_seed)
        self.max_inflight, self.max_lag = max(1, o.max_inflight), o.max_lag
        self.slots: list = []
        self.created = 0
        self.waiting: deque = deque()  # (intended time, step) of arrivals waiting for a slot
        self.inflight: dict = {}  # slot id -> (intended time, step)
        self.arrivals = Group()
        self.turn = 0  # request unit: which step of the flow is next
        self.steps: list[Step] = []
        self.timings = RECORDERS[-1].timings
        self.file = o.open_model_file
        self.planner = None
        if o.ladder:
            self.slo = ladder.parse_slo(o.slo)
            self.planner = ladder.Planner(start=o.ladder_start, factor=o.ladder_factor, hold=o.ladder_hold,
                                          budget=o.ladder_budget, overload_hold=o.ladder_hold,
                                          recovery_hold=2 * o.ladder_hold)
        self.step = Step("warmup" if o.ladder else "open", o.ladder_start if o.ladder else o.arrival_rate,
                         time.time(), 0.0)
        self.environment.events.request.add_listener(self.on_request)
        if o.ladder:
            self.controller = gevent.spawn(self.control, float(getattr(o, "warmup_seconds", 0) or 0))
        elif getattr(o, "warmup_seconds", 0):
            gevent.spawn_later(o.warmup_seconds, self.new_plain_step)

    def new_plain_step(self):
        """A plain --arrival-rate run: the one step starts when the warm-up ends (or at once)."""
        self.step = Step("open", self.step.rate, time.time(), 0.0)
        self.steps.append(self.step)

    # -- the dispatcher ----------------------------------------------------------------------------
    @task
    def dispatch(self):
        if self.planner is None and not self.environment.parsed_options.warmup_seconds:
            self.new_plain_step()
        next_t = time.time()
        try:
            while self._state != LOCUST_STATE_STOPPING:
                rate, now = self.step.rate, time.time()
                self.expire(now)
                if rate <= 0:
                    gevent.sleep(TICK)
                    next_t = time.time()
                    continue
                if next_t > now:
                    gevent.sleep(min(next_t - now, TICK))
                    continue
                self.arrive(next_t, now)
                gap = 1.0 / rate
                next_t += self.random.expovariate(rate) if self.spacing == "poisson" else gap
                if next_t < self.step.start:  # a new step began: its arrivals start with it
                    next_t = self.step.start
        finally:
            self.finish()

    def arrive(self, t: float, now: float) -> None:
        step = self.step
        step.offered += 1
        step.dispatch_lag.append(now - t)
        if now - t > self.max_lag:  # the generator itself is that late
            step.dropped += 1
        elif self.slots or self.created < self.max_inflight:
            slot = self.slots.pop() if self.slots else self.new_slot()
            self.arrivals.spawn(self.serve, slot, t, step)
        else:
            self.waiting.append((t, step))

    def expire(self, now: float) -> None:
        while self.waiting and now - self.waiting[0][0] > self.max_lag:
            self.waiting.popleft()[1].dropped += 1

    def new_slot(self):
        self.created += 1
        slot = self.flow_class(self.environment)
        slot.on_start()
        return slot

    def serve(self, slot, t: float, step: Step) -> None:
        """Run arrivals on `slot`: this one, then the waiting ones still in time; then free the slot."""
        while True:
            lag = max(0.0, time.time() - t)
            ctx = {"open_lag": lag}
            slot.context = lambda ctx=ctx: ctx  # FastHttpSession merges the user's context into every request
            step.started += 1
            self.inflight[id(slot)] = (t, step)
            try:
                self.run_one(slot)
            except Exception as e:  # noqa: BLE001 (an arrival's bug must not stop the dispatcher)
                self.environment.events.user_error.fire(user_instance=slot, exception=e, tb=e.__traceback__)
            finally:
                self.inflight.pop(id(slot), None)
                step.done += 1
            self.expire(time.time())
            if not self.waiting:
                break
            t, step = self.waiting.popleft()
        self.slots.append(slot)

    def run_one(self, slot) -> None:
        steps = getattr(slot, "steps", None)
        if self.unit == "request" and steps:
            self.turn += 1
            steps[self.turn % len(steps)]()
        else:
            self.flow_class.tasks[0](slot)

    def finish(self) -> None:
        """The run ends: no new arrival; those in flight get DRAIN s, then are cut off (inflight.py)."""
        if self.planner is None and self.steps:
            self.steps[-1].hold = round(time.time() - self.steps[-1].start, 3)
        self.step = Step("end", 0.0, time.time(), 0.0)
        for _, st in self.waiting:
            st.dropped += 1
        self.waiting.clear()
        self.arrivals.join(timeout=DRAIN)
        self.arrivals.kill(block=True, timeout=1)
        self.write()

    def on_request(self, request_type, name, response_time, exception=None, context=None, start_time=None, **_kw):
        if exception is None or request_type == workload.FLOW_REQUEST_TYPE:
            return
        lag = (context or {}).get("open_lag", 0.0)
        intended = (start_time or time.time()) - lag
        for st in reversed(self.steps):
            if st.start <= intended and (not st.hold or intended < st.start + st.hold):
                st.failures[failure_kind(exception)] += 1
                break

    # -- the ladder controller ---------------------------------------------------------------------
    def control(self, warmup: float) -> None:
        gevent.sleep(warmup)
        done = []
        while True:
            nxt = self.planner.next(done)
            if nxt is None:
                break
            phase, rate, hold = nxt
            step = Step(phase, rate, time.time(), hold)
            self.steps.append(step)
            self.step = step
            gevent.sleep(max(0.0, step.start + hold - time.time()))
            self.step = Step("gap", rate, time.time(), 0.0)  # arrivals while this step is judged belong to none
            gevent.sleep(self.slo.p99_ms / 1000.0)
            fig = self.judge(step)
            ok, reason = ladder.judge(fig, self.slo)
            step.live = {**fig, "ok": ok, "reason": reason}
            done.append({"phase": phase, "rate": rate, "ok": ok})
            self.write()
            if not ok and phase in ("ladder", "bisect"):
                self.drain()
        self.step = Step("end", 0.0, time.time(), 0.0)
        self.write()
        gevent.spawn(self.environment.runner.quit)

    def drain(self) -> None:
        """No arrivals until nothing is in flight or waiting (at most ladder.DRAIN_S s)."""
        self.step = Step("drain", 0.0, time.time(), 0.0)
        deadline = time.time() + ladder.DRAIN_S
        while (self.inflight or self.waiting) and time.time() < deadline:
            gevent.sleep(TICK)

    def judge(self, step: Step) -> dict:
        now = time.time()
        unfinished = [1000.0 * (now - t) for t, st in list(self.inflight.values()) if st is step]
        waiting = sum(1 for _, st in self.waiting if st is step)
        t0 = self.timings.t0
        return ladder.figures(self.timings.series, step.start - t0, step.hold, step.rate, step.offered,
                              step.started, step.dropped + waiting, unfinished,
                              per_arrival=1.0 if self.unit == "request" else None,
                              dispatch_lag_p99_ms=step.dispatch_lag_p99_ms(), slo=self.slo)

    def write(self) -> None:
        if not self.file:
            return
        t0 = self.timings.t0
        write_json_atomic(self.file, {
            "t0": t0, "unit": self.unit, "spacing": self.spacing, "max_inflight": self.max_inflight,
            "max_lag_s": self.max_lag, "slots_created": self.created, "open_flow": self.flow_class.__name__,
            "slo": self.slo.as_dict() if self.planner else None,
            "steps": [s.as_dict(t0) for s in self.steps]})
